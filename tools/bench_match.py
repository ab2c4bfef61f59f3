"""`make bench-match`: the matching engine on a hard synthetic set with ground truth.

    .venv/bin/python tools/bench_match.py [--n 1000000] [--seed 7] [--queries 2000]

Generates (vectorised; not timed) N card charges and about N receipts of E = N/50
employees at M merchants in five currencies, with what makes matching hard:
tips (some on a tip line), FX (receipt in the original currency; the feed gives the
original amount for 70% of foreign charges, not for the rest), posting lag (-1..4 days),
authorisation/capture differences, card descriptors against receipt names (SQ *, TST*,
PAYPAL *, AMZN Mktp codes, store numbers, cities and states, half-width katakana on the
statement and full-width names with 株式会社 on the receipt), same-amount decoys of other
employees (same merchant, same or next day), missing receipts, personal receipts that
match no charge, splits both ways, and mostly JPY.

Then it times `reconcile` (wall clock from the column tables to the answer: string
vocabularies and merchant normalisation included) and counts ``auto`` pairs against
the truth. Peak memory is the process's resident set high-water mark
(``resource.getrusage(RUSAGE_SELF).ru_maxrss``, generation included). Then it loads all
charges into a `MatchIndex` and times single-receipt queries. Output ends with::

    match-incremental: open_charges=<N> p50_ms=<x> p99_ms=<y>
    match: charges=<N> receipts=<M> seconds=<S> peak_mb=<MB> precision=<P> recall=<R>
"""

from __future__ import annotations

import argparse
import gc
import resource
import sys
import time
import unicodedata
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from seisan_cards.domain.matching import (
    ChargeTable,
    MatchIndex,
    ReceiptTable,
    reconcile,
)
from seisan_cards.domain.matching.engine import AUTO

I64 = npt.NDArray[np.int64]

CURRENCIES = ("JPY", "USD", "EUR", "GBP", "SGD")
EXPONENT = np.array([0, 2, 2, 2, 2])
JPY_PER_UNIT = np.array([1.0, 150.0, 162.0, 190.0, 112.0])  # major units
MERCHANT_CURRENCY_SHARE = np.array([0.60, 0.25, 0.07, 0.04, 0.04])
CITIES = {
    "JPY": [("TOKYO", "JP", "渋谷"), ("OSAKA", "JP", "梅田"), ("NAGOYA", "JP", "名古屋駅")],
    "USD": [("SAN FRANCISCO", "CA", ""), ("NEW YORK", "NY", ""), ("SEATTLE", "WA", "")],
    "EUR": [("PARIS", "FR", ""), ("BERLIN", "DE", ""), ("MUNICH", "DE", "")],
    "GBP": [("LONDON", "GB", "")],
    "SGD": [("SINGAPORE", "SG", "")],
}

# name, MCC, share, price range in JPY major units, tipped abroad, JPY rounding
CATEGORIES = (
    ("Grill", 5812, 0.22, 800, 12000, True, 10),
    ("Coffee", 5814, 0.15, 300, 1500, True, 10),
    ("Bar", 5813, 0.04, 2000, 15000, True, 10),
    ("Taxi", 4121, 0.12, 700, 8000, True, 10),
    ("Hotel", 7011, 0.06, 8000, 40000, False, 100),
    ("Air", 4511, 0.03, 10000, 90000, False, 10),
    ("Books", 5942, 0.08, 500, 8000, False, 1),
    ("Supply", 5111, 0.08, 300, 20000, False, 1),
    ("Software", 5734, 0.05, 1000, 30000, False, 1),
    ("Amazon", 5999, 0.04, 500, 20000, False, 1),
    ("Rail", 4112, 0.13, 200, 15000, False, 10),
)
CATEGORY_KANA = (
    "グリル",
    "カフェ",
    "バー",
    "タクシー",
    "ホテル",
    "エア",
    "ブックス",
    "ショップ",
    "ソフト",
    "",
    "レール",
)
ADJECTIVES = (
    "Blue Red Green Golden Silver Happy Lucky Royal Grand Little Big Old New Urban Rustic Sunny "
    "Misty Quiet Bright Wild Noble Swift Humble Brave Clever Gentle Honest Jolly Kind Lively Merry "
    "Proud Silly Witty Zesty Amber Coral Crimson Indigo Ivory Jade Olive Ruby Scarlet Teal Violet"
).split()
NOUNS = (
    "Bottle Anchor Harbor Garden Forest River Mountain Meadow Lantern Compass Falcon Otter Badger "
    "Maple Cedar Willow Pebble Stone Bridge Tower Castle Island Canyon Prairie Orchard Pepper "
    "Ginger Basil Clover Fern Thistle Acorn Juniper Hazel Birch Aspen Sparrow Robin Heron Crane"
).split()
KANA_WORDS = (
    "サクラ ミドリ アオイ ヒカリ ソラ ウミ ヤマ カゼ ツキ ホシ ハナ モリ カワ ユキ アサヒ コダマ "
    "ミナト ハルカ ナギ イロハ マツ タケ ウメ キク スズ ツバメ カモメ ヒバリ"
).split()
SURNAMES = (
    "Kobayashi Tanaka Watanabe Okafor Schmidt Moreau Rossi Novak Larsen Silva Chen Patel "
    "Nguyen Kowalski Dubois Ferreira Lindqvist"
).split()
LEGAL_FORMS = ("Holdings Ltd.", "Trading Co.", "Hospitality Group LLC", "Foods Inc.", "GmbH")
LEGAL_KANJI = tuple("山田中川村松井上木林森石原藤高橋")
LAG_DAYS = np.array([-1, 0, 1, 2, 3, 4])
LAG_SHARE = np.array([0.01, 0.60, 0.25, 0.08, 0.04, 0.02])


def _half_width_table() -> dict[str, str]:
    table: dict[str, str] = {}
    for code in range(0xFF66, 0xFF9E):
        half = chr(code)
        table.setdefault(unicodedata.normalize("NFKC", half), half)
        for mark in ("\uff9e", "\uff9f"):
            full = unicodedata.normalize("NFKC", half + mark)
            if len(full) == 1:
                table.setdefault(full, half + mark)
    table["ー"] = "ｰ"
    return table


HALF = _half_width_table()


def half_width(text: str) -> str:
    return "".join(HALF.get(ch, ch) for ch in text)


def full_width(text: str) -> str:
    return "".join(
        chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else "\u3000" if ch == " " else ch for ch in text
    )


@dataclass
class Synthetic:
    charges: ChargeTable
    receipts: ReceiptTable
    truth_charge: I64
    truth_receipt: I64


@dataclass
class _Merchants:
    currency: I64
    category: I64
    descriptors: list[list[str]]  # per merchant, one per branch
    names: list[list[str]]  # receipt name variants
    pools: list[I64]  # merchant ids per currency


def _merchants(rng: np.random.Generator, m: int) -> _Merchants:
    currency = rng.choice(len(CURRENCIES), m, p=MERCHANT_CURRENCY_SHARE)
    shares = np.array([c[2] for c in CATEGORIES])
    category = rng.choice(len(CATEGORIES), m, p=shares / shares.sum())
    japanese = (currency == 0) & (rng.random(m) < 0.6)
    branches = rng.integers(1, 7, m)
    prefixes = np.array(["", "", "", "", "SQ *", "SQ *", "TST* ", "PAYPAL *"])
    descriptors: list[list[str]] = []
    names: list[list[str]] = []
    for i in range(m):
        cur, cat = CURRENCIES[currency[i]], CATEGORIES[category[i]]
        cities = CITIES[cur]
        if cat[0] == "Amazon":
            descriptors.append(["AMZN Mktp " + ("JP" if cur == "JPY" else "US") + "*"])
            names.append(["Amazon.com", "Amazon.co.jp", "AMAZON"])
            continue
        if japanese[i]:
            kana = "".join(rng.choice(KANA_WORDS, 2)) + CATEGORY_KANA[category[i]]
            area = cities[int(rng.integers(len(cities)))][2]
            descriptors.append([half_width(kana)[:18] for _ in range(branches[i])])
            names.append([f"株式会社{kana}", f"{kana} {area}店", kana])
            continue
        name = f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {cat[0]}"
        prefix = str(rng.choice(prefixes)) if cat[5] else ""
        forms = []
        for _ in range(branches[i]):
            town, state, _ = cities[int(rng.integers(len(cities)))]
            field = (prefix + name.upper())[:22]
            if rng.random() < 0.5:
                field = f"{field[:17]} #{int(rng.integers(1, 9999)):04d}"
            forms.append(f"{field:<25}{town[:13]} {state}")
        descriptors.append(forms)
        variants = [name, f"{name} Inc.", name.upper(), f"The {name} LLC"]
        if cur == "JPY":
            variants.append(full_width(name.upper()))
        names.append(variants)
    pools = [np.flatnonzero(currency == c) for c in range(len(CURRENCIES))]
    return _Merchants(currency, category, descriptors, names, pools)


def _pick(rng: np.random.Generator, pool: I64, k: int) -> I64:
    """Merchants of a pool with a popularity skew (a few chains get most of the spend)."""
    return pool[np.minimum((len(pool) * rng.random(k) ** 2.2).astype(np.int64), len(pool) - 1)]


def _price(rng: np.random.Generator, category: I64, currency: I64) -> I64:
    lo = np.array([c[3] for c in CATEGORIES], float)[category] / JPY_PER_UNIT[currency]
    hi = np.array([c[4] for c in CATEGORIES], float)[category] / JPY_PER_UNIT[currency]
    major = np.exp(rng.uniform(np.log(lo), np.log(hi)))
    minor = major * 10.0 ** EXPONENT[currency]
    step = np.where(currency == 0, np.array([c[6] for c in CATEGORIES])[category], 1)
    return np.maximum(np.round(minor / step).astype(np.int64) * step, 1)


def generate(n: int, seed: int = 7) -> Synthetic:
    """N charges, about N receipts, and the true (charge row, receipt row) pairs."""
    rng = np.random.default_rng(seed)
    n_emp = max(20, n // 50)
    n_merchants = int(np.clip(n // 100, 200, 10_000))
    merchants = _merchants(rng, n_merchants)
    home = np.where(rng.random(n_emp) < 0.8, 0, 1)  # card billed in JPY or USD
    last4 = rng.integers(0, 10_000, n_emp)

    n_split_receipt = n // 200  # one receipt, two charges
    t = n - n_split_receipt  # purchases
    holder = np.minimum((n_emp * rng.random(t) ** 1.3).astype(np.int64), n_emp - 1)
    billed_cur = home[holder]
    abroad = rng.random(t) < 0.10
    want = np.where(
        abroad, (billed_cur + rng.integers(1, len(CURRENCIES), t)) % len(CURRENCIES), billed_cur
    )
    merchant = np.zeros(t, np.int64)
    for c in range(len(CURRENCIES)):
        sel = np.flatnonzero(want == c)
        merchant[sel] = _pick(rng, merchants.pools[c], len(sel))
    m_cur = merchants.currency[merchant]
    category = merchants.category[merchant]
    total = _price(rng, category, m_cur)
    day = 20_400 + rng.integers(0, 31, t)  # a month in late 2025
    lag = rng.choice(LAG_DAYS, t, p=LAG_SHARE)
    domestic = m_cur == billed_cur

    kind = rng.random(t)
    missing = kind < 0.03
    split_charge = (kind >= 0.03) & (kind < 0.04) & domestic
    split_receipt = np.zeros(t, bool)
    split_receipt[
        rng.choice(
            np.flatnonzero(domestic & ~missing & ~split_charge), n_split_receipt, replace=False
        )
    ] = True
    plain = ~split_charge & ~split_receipt

    tipped_cat = np.array([c[5] for c in CATEGORIES])[category]
    tip = np.zeros(t, np.int64)
    has_tip = plain & tipped_cat & (m_cur != 0) & (rng.random(t) < 0.6)
    tip[has_tip] = np.round(total[has_tip] * rng.uniform(0.08, 0.25, int(has_tip.sum()))).astype(
        np.int64
    )
    tip_line = has_tip & (rng.random(t) < 0.3)
    tip_included = tip_line & (rng.random(t) < 0.5)
    capture = plain & ~has_tip & (rng.random(t) < 0.015)
    delta = np.zeros(t, np.int64)
    shift = rng.uniform(0.002, 0.015, int(capture.sum())) * rng.choice([-1, 1], int(capture.sum()))
    delta[capture] = np.round(total[capture] * shift).astype(np.int64)
    delta[capture & (delta == 0)] = 1
    paid = total + tip + delta  # in the merchant's currency

    # billed amount: FX at a daily rate with the issuer's markup
    rate = (
        JPY_PER_UNIT[m_cur]
        / JPY_PER_UNIT[billed_cur]
        * 10.0 ** (EXPONENT[billed_cur] - EXPONENT[m_cur])
    )
    rate = (
        rate
        * (1 + rng.uniform(0.015, 0.03, t))
        * (1 + np.clip(rng.normal(0, 0.005, t), -0.015, 0.015))
    )
    billed = np.where(domestic, paid, np.maximum(np.round(paid * rate), 1).astype(np.int64))
    with_original = ~domestic & (rng.random(t) < 0.7)

    # --- charges: one per purchase, two for a split receipt
    second = np.flatnonzero(split_receipt)
    first_part = np.maximum(
        (billed[second] * rng.uniform(0.3, 0.7, len(second))).astype(np.int64), 1
    )
    c_purchase = np.concatenate([np.arange(t), second])
    c_amount = billed.copy()
    c_amount[second] = first_part
    c_amount = np.concatenate([c_amount, billed[second] - first_part])
    c_day = (day + lag)[c_purchase]
    c_day[t:] += rng.integers(0, 2, len(second))

    # --- receipts: one per purchase (none if missing; parts if split), decoys, personal
    r_purchase_parts = [np.flatnonzero(~missing & ~split_charge)]
    r_total_parts = [np.where(tip_line & ~tip_included, total, total + tip)[r_purchase_parts[0]]]
    r_tip_parts = [np.where(tip_line, tip, 0)[r_purchase_parts[0]]]
    sc = np.flatnonzero(split_charge)
    three = rng.random(len(sc)) < 0.3
    a = np.maximum((paid[sc] * rng.uniform(0.2, 0.5, len(sc))).astype(np.int64), 1)
    b = np.where(
        three, np.maximum((paid[sc] * rng.uniform(0.15, 0.3, len(sc))).astype(np.int64), 1), 0
    )
    c_rest = paid[sc] - a - b
    r_purchase_parts += [sc, sc, sc[three]]
    r_total_parts += [a, c_rest, b[three]]
    r_tip_parts += [np.zeros(len(sc), np.int64)] * 2 + [np.zeros(int(three.sum()), np.int64)]
    r_purchase = np.concatenate(r_purchase_parts)
    r_total = np.concatenate(r_total_parts)
    r_tip = np.concatenate(r_tip_parts)
    r_holder = holder[r_purchase]
    r_day = day[r_purchase]
    r_merchant = merchant[r_purchase]
    r_cur = m_cur[r_purchase]
    r_true = np.ones(len(r_purchase), bool)

    n_decoy, n_personal, n_alike = n // 25, n // 25, n // 50
    # look-alikes: the same person at the same merchant a day or two apart, paid privately
    alike = rng.choice(len(r_purchase), n_alike)
    alike_total = np.maximum(
        np.round(r_total[alike] * rng.uniform(0.85, 1.15, n_alike)).astype(np.int64), 1
    )
    alike_total = np.where(alike_total == r_total[alike], alike_total + 1, alike_total)
    r_holder = np.concatenate([r_holder, r_holder[alike]])
    r_day = np.concatenate([r_day, r_day[alike] + rng.integers(-2, 3, n_alike)])
    r_total = np.concatenate([r_total, alike_total])
    r_tip = np.concatenate([r_tip, np.zeros(n_alike, np.int64)])
    r_merchant = np.concatenate([r_merchant, r_merchant[alike]])
    r_cur = np.concatenate([r_cur, r_cur[alike]])
    r_true = np.concatenate([r_true, np.zeros(n_alike, bool)])
    r_purchase = np.concatenate([r_purchase, np.full(n_alike, -1)])

    src = rng.choice(np.flatnonzero(r_true), n_decoy)
    other = (r_holder[src] + rng.integers(1, n_emp, n_decoy)) % n_emp
    p_holder = rng.integers(0, n_emp, n_personal)
    p_merchant = np.zeros(n_personal, np.int64)
    p_cur = home[p_holder]
    for c in range(len(CURRENCIES)):
        sel = np.flatnonzero(p_cur == c)
        p_merchant[sel] = _pick(rng, merchants.pools[c], len(sel))
    p_cur = merchants.currency[p_merchant]
    r_holder = np.concatenate([r_holder, other, p_holder])
    r_day = np.concatenate(
        [r_day, r_day[src] + rng.integers(0, 2, n_decoy), 20_400 + rng.integers(0, 31, n_personal)]
    )
    r_total = np.concatenate(
        [r_total, r_total[src], _price(rng, merchants.category[p_merchant], p_cur)]
    )
    r_tip = np.concatenate([r_tip, r_tip[src], np.zeros(n_personal, np.int64)])
    r_merchant = np.concatenate([r_merchant, r_merchant[src], p_merchant])
    r_cur = np.concatenate([r_cur, r_cur[src], p_cur])
    r_true = np.concatenate([r_true, np.zeros(n_decoy + n_personal, bool)])
    r_purchase = np.concatenate([r_purchase, np.full(n_decoy + n_personal, -1)])

    # --- shuffle both sides so that row order tells nothing
    c_perm, r_perm = rng.permutation(len(c_amount)), rng.permutation(len(r_total))
    c_row_of = np.empty_like(c_perm)
    c_row_of[c_perm] = np.arange(len(c_perm))
    r_row_of = np.empty_like(r_perm)
    r_row_of[r_perm] = np.arange(len(r_perm))

    # truth: every receipt of a purchase with every charge of that purchase
    c_by_purchase = np.argsort(c_purchase, kind="stable")
    starts = np.searchsorted(c_purchase[c_by_purchase], r_purchase[r_true], "left")
    ends = np.searchsorted(c_purchase[c_by_purchase], r_purchase[r_true], "right")
    counts = ends - starts
    truth_r = np.repeat(np.flatnonzero(r_true), counts)
    truth_c = c_by_purchase[
        np.repeat(starts, counts)
        + np.arange(counts.sum())
        - np.repeat(np.cumsum(counts) - counts, counts)
    ]

    charges = _charge_table(
        rng,
        merchants,
        c_perm,
        c_purchase,
        c_amount,
        c_day,
        holder,
        billed_cur,
        merchant,
        m_cur,
        paid,
        with_original,
        last4,
        category,
    )
    receipts = _receipt_table(
        rng, merchants, r_perm, r_holder, r_day, r_total, r_tip, r_merchant, r_cur, last4
    )
    return Synthetic(charges, receipts, c_row_of[truth_c], r_row_of[truth_r])


def _charge_table(
    rng,
    merchants,
    perm,
    purchase,
    amount,
    day,
    holder,
    billed_cur,
    merchant,
    m_cur,
    paid,
    with_original,
    last4,
    category,
) -> ChargeTable:  # type: ignore[no-untyped-def]
    p = purchase[perm]
    m = merchant[p]
    branch = rng.integers(0, 6, len(p))
    descriptors = []
    for mid, br in zip(m.tolist(), branch.tolist(), strict=True):
        forms = merchants.descriptors[mid]
        d = forms[br % len(forms)]
        if d.endswith("*"):  # AMZN Mktp US*<order code>
            d += "".join(rng.choice(list("0123456789ABCDEFGHJKLMNPQRSTUVWXYZ"), 9))
        descriptors.append(d)
    foreign = (m_cur[p] != billed_cur[p]) & with_original[p]
    # split-receipt second charges keep their own amount; the original is the purchase's
    original = np.where(foreign, paid[p], 0)
    single = np.bincount(purchase, minlength=len(paid))[p] == 1
    original = np.where(single, original, 0)
    h = holder[p]
    mcc = np.array([c[1] for c in CATEGORIES])[category[p]]
    return ChargeTable(
        charge_id=[f"ch-{i:08d}" for i in range(len(p))],
        card_last4=[f"{v:04d}" for v in last4[h].tolist()],
        cardholder=[f"emp-{v:06d}" for v in h.tolist()],
        transaction_day=day[perm].astype(np.int32),
        posting_day=(day[perm] + 2).astype(np.int32),
        merchant=descriptors,
        mcc=mcc.astype(np.int32),
        amount_minor=amount[perm].astype(np.int64),
        currency=[CURRENCIES[c] for c in billed_cur[p].tolist()],
        original_amount_minor=original.astype(np.int64),
        original_currency=[
            CURRENCIES[c] if o else ""
            for c, o in zip(m_cur[p].tolist(), original.tolist(), strict=True)
        ],
    )


def _receipt_table(
    rng, merchants, perm, holder, day, total, tip, merchant, cur, last4
) -> ReceiptTable:  # type: ignore[no-untyped-def]
    m = merchant[perm]
    variant = rng.integers(0, 5, len(perm))
    names = [
        merchants.names[mid][v % len(merchants.names[mid])]
        for mid, v in zip(m.tolist(), variant.tolist(), strict=True)
    ]
    # 2% print only the operating company's legal name, unrelated to the brand
    for i in np.flatnonzero(rng.random(len(perm)) < 0.02).tolist():
        if merchants.currency[m[i]] == 0 and rng.random() < 0.5:
            names[i] = f"株式会社{rng.choice(LEGAL_KANJI)}{rng.choice(LEGAL_KANJI)}商事"
        else:
            names[i] = f"{rng.choice(SURNAMES)} {rng.choice(LEGAL_FORMS)}"
    h = holder[perm]
    shows = rng.random(len(perm)) < 0.2
    return ReceiptTable(
        receipt_id=[f"rc-{i:08d}" for i in range(len(perm))],
        submitter=[f"emp-{v:06d}" for v in h.tolist()],
        merchant=names,
        day=day[perm].astype(np.int32),
        total_minor=total[perm].astype(np.int64),
        currency=[CURRENCIES[c] for c in cur[perm].tolist()],
        card_last4=[
            f"{last4[v]:04d}" if s else "" for v, s in zip(h.tolist(), shows.tolist(), strict=True)
        ],
        tip_minor=tip[perm].astype(np.int64),
    )


@dataclass
class Outcome:
    seconds: float
    precision: float
    recall: float
    auto_pairs: int
    suggested_pairs: int


def evaluate(data: Synthetic) -> Outcome:
    started = time.perf_counter()
    result = reconcile(data.charges, data.receipts)
    seconds = time.perf_counter() - started
    auto = result.status == AUTO
    n_r = len(data.receipts)
    got = result.charge_row[auto] * n_r + result.receipt_row[auto]
    truth = data.truth_charge * n_r + data.truth_receipt
    hits = int(np.isin(got, truth).sum())
    return Outcome(
        seconds=seconds,
        precision=hits / max(len(got), 1),
        recall=hits / max(len(truth), 1),
        auto_pairs=len(got),
        suggested_pairs=result.suggested_pairs,
    )


def incremental(data: Synthetic, queries: int, seed: int) -> tuple[float, float]:
    """p50 and p99 milliseconds of one receipt's query against every charge open."""
    started = time.perf_counter()
    index = MatchIndex()
    index.add_charges(data.charges)
    # A long-lived index holds millions of objects: move them out of the cyclic GC's
    # generations (what a service does after loading), so that no query pays for a full pass.
    gc.collect()
    gc.freeze()
    print(f"index of {index.open_charges} charges built in {time.perf_counter() - started:.1f}s",
          file=sys.stderr)  # fmt: skip
    rng = np.random.default_rng(seed)
    rows = rng.choice(len(data.receipts), min(queries, len(data.receipts)), replace=False)
    views = [data.receipts.view(int(r)) for r in rows]
    for view in views[:50]:  # warm caches
        index.best_charges_for(view)
    times = []
    for view in views:
        started = time.perf_counter_ns()
        index.best_charges_for(view)
        times.append((time.perf_counter_ns() - started) / 1e6)
    return float(np.percentile(times, 50)), float(np.percentile(times, 99))


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=1_000_000, help="charges (default 1,000,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--queries", type=int, default=2000, help="incremental queries timed")
    parser.add_argument("--skip-incremental", action="store_true")
    args = parser.parse_args(argv)

    started = time.perf_counter()
    data = generate(args.n, args.seed)
    print(
        f"generated {len(data.charges)} charges, {len(data.receipts)} receipts, "
        f"{len(data.truth_charge)} true pairs in {time.perf_counter() - started:.1f}s",
        file=sys.stderr,
    )
    outcome = evaluate(data)
    peak = peak_mb()
    print(
        f"auto pairs {outcome.auto_pairs}, suggested pairs {outcome.suggested_pairs}",
        file=sys.stderr,
    )
    if not args.skip_incremental:
        p50, p99 = incremental(data, args.queries, args.seed)
        print(
            f"match-incremental: open_charges={len(data.charges)} p50_ms={p50:.3f} p99_ms={p99:.3f}"
        )
    print(
        f"match: charges={len(data.charges)} receipts={len(data.receipts)} "
        f"seconds={outcome.seconds:.2f} peak_mb={peak:.0f} "
        f"precision={outcome.precision:.4f} recall={outcome.recall:.4f}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
