"""Candidate pairs for a batch run, by blocking on sorted integer keys (numpy, no Python loops).

Every search is a range join: charge entries sorted by a packed int64 key, receipts
asking for ``[low, high]`` through `numpy.searchsorted` (on pre-sorted needles, which
is what makes it fast). The searches, each bounded per receipt by ``max_candidates``:

* **exact, anyone**: same merchant word (first word of the normalised name), same
  currency and amount (the charge's billed amount, or its original amount when the
  receipt is in the original currency; the receipt's total, or total + tip line), and a
  transaction date within the posting-lag window. Finds the receipts other employees
  submitted too (decoys and delegates), which scoring then ranks below the cardholder's.
* **cardholder = submitter**, and **card last four on the receipt**: same currency, amount
  within the capture tolerance (or total + tip line) for every charge, and up to the
  suggestion bound above the total for charges at tip MCCs; then the lag window.
* **FX rate band, cardholder = submitter**: a receipt in a foreign currency against
  charges billed in another currency with no original amount, the total converted at the
  reference rate ± the band (wider above for tip MCCs).
"""

from __future__ import annotations

from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from .encoding import EncodedCharges, EncodedReceipts
from .model import Thresholds

__all__ = ["VIA_BILLED", "VIA_FX_RATE", "VIA_ORIGINAL", "Candidates", "find_candidates"]

I64 = npt.NDArray[np.int64]
Mask = npt.NDArray[np.bool_]
VIA_BILLED, VIA_ORIGINAL, VIA_FX_RATE = 0, 1, 2
_AMOUNT_BITS = 40
_MAX_AMOUNT = (1 << _AMOUNT_BITS) - 1
_MAX_BLOCK = (1 << (63 - _AMOUNT_BITS)) - 1
_DAY_BITS = 21


@dataclass
class Candidates:
    charge: I64
    receipt: I64
    via: npt.NDArray[np.int8]
    # the charge amount compared with the receipt total: billed or original amount
    charge_amount: I64
    # reference rate (billed minor units per receipt minor unit) for VIA_FX_RATE, else 0
    rate: npt.NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.charge)

    @classmethod
    def empty(cls) -> Candidates:
        z = np.zeros(0, np.int64)
        return cls(z, z, np.zeros(0, np.int8), z, np.zeros(0, np.float64))

    def select(self, keep: I64 | Mask | slice) -> Candidates:
        return Candidates(
            self.charge[keep], self.receipt[keep], self.via[keep], self.charge_amount[keep],
            self.rate[keep],
        )  # fmt: skip


def _pack(block: I64, amount: I64) -> I64:
    if len(block) and int(block.max()) > _MAX_BLOCK:
        raise ValueError("too many blocks (people x currencies, or merchants) for one batch run")
    return (block << _AMOUNT_BITS) | np.clip(amount, 0, _MAX_AMOUNT)


@dataclass
class _Side:
    """Charge entries of one search, sorted by key."""

    key: I64
    row: I64  # charge row
    amount: I64  # amount compared
    via: npt.NDArray[np.int8]
    # positions of the entries at tip MCCs, and their keys (still sorted)
    tip_pos: I64 | None = None
    tip_key: I64 | None = None

    def with_tips(self, ch: EncodedCharges, th: Thresholds) -> _Side:
        self.tip_pos = np.flatnonzero(tip_mcc_mask(ch.mcc[self.row], th)).astype(np.int64)
        self.tip_key = self.key[self.tip_pos]
        return self

    @classmethod
    def build(cls, key: I64, amount: I64, row: I64, via: npt.NDArray[np.int8]) -> _Side:
        order = np.argsort(key, kind="stable")
        return cls(key[order], row[order], amount[order], via[order])

    def candidates(self, receipt: I64, pos: I64) -> Candidates:
        return Candidates(
            self.row[pos], receipt, self.via[pos], self.amount[pos], np.zeros(len(pos))
        )


def _expand(lo: I64, hi: I64, cap: int) -> tuple[I64, I64]:
    """(query index, sorted position) for every position in [lo, hi) per query, capped."""
    counts = np.clip(hi - lo, 0, cap)
    total = int(counts.sum())
    query = np.repeat(np.arange(len(lo), dtype=np.int64), counts)
    starts = np.repeat(lo - (np.cumsum(counts) - counts), counts)
    return query, starts + np.arange(total, dtype=np.int64)


def _range_join(keys: I64, low_key: I64, high_key: I64, cap: int) -> tuple[I64, I64]:
    """(query index, position in ``keys``) of keys within [low_key, high_key] per query."""
    order: I64 | None = None
    if len(low_key) > 1 and bool(np.any(low_key[1:] < low_key[:-1])):
        order = np.argsort(low_key, kind="stable")
        low_key, high_key = low_key[order], high_key[order]
    lo = np.searchsorted(keys, low_key, side="left").astype(np.int64)
    hi = np.searchsorted(keys, high_key, side="right").astype(np.int64)
    query, pos = _expand(lo, np.maximum(hi, lo), cap)
    if order is not None:
        query = order[query]
    return query, pos


def _forms(ch: EncodedCharges, rows: I64) -> tuple[I64, I64, I64, npt.NDArray[np.int8]]:
    """Each charge once at its billed amount, and again at its original amount if any:
    (row, currency, amount, via)."""
    foreign = rows[ch.original_currency[rows] >= 0]
    return (
        np.concatenate([rows, foreign]),
        np.concatenate([ch.currency[rows], ch.original_currency[foreign]]).astype(np.int64),
        np.concatenate([ch.amount[rows], ch.original_amount[foreign]]),
        np.concatenate(
            [np.full(len(rows), VIA_BILLED, np.int8), np.full(len(foreign), VIA_ORIGINAL, np.int8)]
        ),
    )


def _lag_ok(
    ch: EncodedCharges, rc: EncodedReceipts, found: Candidates, th: Thresholds
) -> Candidates:
    lag = ch.day[found.charge].astype(np.int64) - rc.day[found.receipt]
    return found.select((lag >= th.lag_min_days) & (lag <= th.lag_max_days))


def _exact_search(
    ch: EncodedCharges, rc: EncodedReceipts, rows: I64, n_cur: int, th: Thresholds
) -> Candidates:
    """Same merchant word, currency and amount; transaction date in the lag window."""
    c_row, c_cur, c_amount, c_via = _forms(ch, np.flatnonzero(ch.active).astype(np.int64))
    c_packed = _pack(ch.merchant_key[c_row].astype(np.int64) * n_cur + c_cur, c_amount)
    day0 = int(min(ch.day.min(initial=0), rc.day.min(initial=0))) - th.lag_max_days - 1
    order = np.lexsort((ch.day[c_row], c_packed))
    c_packed, c_row, c_amount, c_via = c_packed[order], c_row[order], c_amount[order], c_via[order]
    # groups of equal (merchant word, currency, amount); within a group, sorted by day
    starts = np.ones(len(c_packed), bool)
    starts[1:] = c_packed[1:] != c_packed[:-1]
    group = np.cumsum(starts) - 1
    unique_keys = c_packed[starts]
    key2 = (group << _DAY_BITS) | (ch.day[c_row].astype(np.int64) - day0)
    side = _Side(key2, c_row, c_amount, c_via)

    with_tip = rows[rc.tip[rows] > 0]
    q_rows = np.concatenate([rows, with_tip])
    q_amount = np.concatenate([rc.total[rows], rc.total[with_tip] + rc.tip[with_tip]])
    q_packed = _pack(
        rc.merchant_key[q_rows].astype(np.int64) * n_cur + rc.currency[q_rows], q_amount
    )
    order = np.argsort(q_packed)  # sorted needles search an order of magnitude faster
    q_rows, q_packed = q_rows[order], q_packed[order]
    at = np.minimum(np.searchsorted(unique_keys, q_packed), max(len(unique_keys) - 1, 0))
    hit = np.flatnonzero(unique_keys[at] == q_packed) if len(unique_keys) else at[:0]
    g, q_rows = at[hit].astype(np.int64), q_rows[hit]
    day = rc.day[q_rows].astype(np.int64) - day0
    q, pos = _range_join(
        key2,
        (g << _DAY_BITS) | (day + th.lag_min_days),
        (g << _DAY_BITS) | (day + th.lag_max_days),
        th.max_candidates,
    )
    return side.candidates(q_rows[q], pos)


def _windows(rc: EncodedReceipts, rows: I64, th: Thresholds) -> tuple[I64, I64, I64]:
    """Of receipt ``rows``: low bound, high bound for every charge, high bound at tip MCCs."""
    total, tip = rc.total[rows], rc.tip[rows]
    cap = (total * th.capture_tolerance_bp) // 10_000
    high = np.maximum(total + cap, total + tip)
    over = max(th.suggest_over_percent, th.tip_max_percent)
    return total - cap, high, np.maximum(high, total + (total * over) // 100)


def tip_mcc_mask(mcc: npt.NDArray[np.int32], th: Thresholds) -> Mask:
    """Which MCCs allow a tip (a lookup table: np.isin sorts, this does not)."""
    table = np.zeros(10_000, bool)
    table[[m for m in th.tip_mccs if 0 <= m < 10_000]] = True
    return table[np.clip(mcc, 0, 9_999)]


def _windowed_join(
    side: _Side,
    q_rows: I64,
    block: I64,
    low: I64,
    high: I64,
    tip_high: I64,
    cap: int,
) -> tuple[I64, I64]:
    """Entries in [low, high] of the block, and tip-MCC entries in (high, tip_high].

    Queries should come sorted by (block, low) (`_range_join` sorts them otherwise)."""
    q, pos = _range_join(side.key, _pack(block, low), _pack(block, high), cap)
    assert side.tip_pos is not None and side.tip_key is not None
    tq, tpos = _range_join(side.tip_key, _pack(block, high + 1), _pack(block, tip_high), cap)
    return np.concatenate([q_rows[q], q_rows[tq]]), np.concatenate([pos, side.tip_pos[tpos]])


def _person_side(
    ch: EncodedCharges, charge_key: npt.NDArray[np.int32], n_cur: int, th: Thresholds
) -> _Side:
    """Charges by (person or card digits, currency, amount): billed and original amounts."""
    active = np.flatnonzero(ch.active & (charge_key >= 0)).astype(np.int64)
    c_row, c_cur, c_amount, c_via = _forms(ch, active)
    key = _pack(charge_key[c_row].astype(np.int64) * n_cur + c_cur, c_amount)
    return _Side.build(key, c_amount, c_row, c_via).with_tips(ch, th)


def _sorted_by(rc: EncodedReceipts, rows: I64, key: npt.NDArray[np.int32], n_cur: int) -> I64:
    """Receipt rows with a key, sorted by (key, currency, total): the order the joins want."""
    rows = rows[key[rows] >= 0]
    return rows[
        np.argsort(_pack(key[rows].astype(np.int64) * n_cur + rc.currency[rows], rc.total[rows]))
    ]


def _range_search(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    rows: I64,
    side: _Side,
    receipt_key: npt.NDArray[np.int32],
    n_cur: int,
    th: Thresholds,
) -> Candidates:
    """Same key (cardholder, or card digits) and currency; amount within the windows.
    ``rows`` come from `_sorted_by` on the same key."""
    low, high, tip_high = _windows(rc, rows, th)
    block = receipt_key[rows].astype(np.int64) * n_cur + rc.currency[rows]
    q_rows, pos = _windowed_join(side, rows, block, low, high, tip_high, th.max_candidates)
    return _lag_ok(ch, rc, side.candidates(q_rows, pos), th)


def _fx_search(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    rows: I64,
    side: _Side,
    fx: list[tuple[int, int, float]],
    n_cur: int,
    th: Thresholds,
) -> Candidates:
    """Foreign receipts against same-cardholder charges that carry no original amount
    (``side`` is the cardholder side: its billed entries in the billed currency's block;
    ``rows`` come from `_sorted_by` on the cardholder)."""
    plain = ch.active & (ch.original_currency < 0)
    # which (person, billed currency) blocks hold such charges at all: ask only those
    has = np.zeros((int(ch.holder.max(initial=0)) + 1) * n_cur, bool)
    has[ch.holder[plain].astype(np.int64) * n_cur + ch.currency[plain]] = True
    band = th.fx_band_percent / 100
    found: list[Candidates] = []
    holder = rc.holder[rows].astype(np.int64)
    known = holder < len(has) // n_cur
    for orig, billed, rate in fx:
        if orig >= n_cur or billed >= n_cur:
            continue
        pick = (rc.currency[rows] == orig) & known
        pick[pick] = has[holder[pick] * n_cur + billed]
        sel = rows[pick]  # still sorted by (holder, total)
        if not len(sel):
            continue
        low, high, tip_high = _windows(rc, sel, th)
        q_rows, pos = _windowed_join(
            side, sel, rc.holder[sel].astype(np.int64) * n_cur + billed,
            np.floor(low * rate * (1 - band)).astype(np.int64),
            np.ceil(high * rate * (1 + band)).astype(np.int64),
            np.ceil(tip_high * rate * (1 + band)).astype(np.int64),
            th.max_candidates,
        )  # fmt: skip
        keep = (side.via[pos] == VIA_BILLED) & plain[side.row[pos]]
        q_rows, pos = q_rows[keep], pos[keep]
        part = Candidates(
            side.row[pos], q_rows, np.full(len(pos), VIA_FX_RATE, np.int8), side.amount[pos],
            np.full(len(pos), rate),
        )  # fmt: skip
        found.append(_lag_ok(ch, rc, part, th))
    return _concat(found)


def _concat(parts: list[Candidates]) -> Candidates:
    if not parts:
        return Candidates.empty()
    return Candidates(
        np.concatenate([p.charge for p in parts]),
        np.concatenate([p.receipt for p in parts]),
        np.concatenate([p.via for p in parts]),
        np.concatenate([p.charge_amount for p in parts]),
        np.concatenate([p.rate for p in parts]),
    )


def _across_people(
    ch: EncodedCharges, rc: EncodedReceipts, rows: I64, n_cur: int, th: Thresholds
) -> Candidates:
    """Pairs of different people: by merchant word and amount, or by card digits."""
    # Card digits of one's own card lead to one's own charges, which the cardholder search
    # finds: search by digits only the receipts showing digits of someone else's card.
    shown = rows[rc.last4[rows] >= 0]
    own_cards = np.unique(ch.holder.astype(np.int64) * 10_000 + np.maximum(ch.last4, 0))
    key = rc.holder[shown].astype(np.int64) * 10_000 + rc.last4[shown]
    at = np.minimum(np.searchsorted(own_cards, key), len(own_cards) - 1)
    foreign = shown[own_cards[at] != key] if len(own_cards) else shown
    parts = [_exact_search(ch, rc, rows, n_cur, th)]
    if len(foreign):
        card_side = _person_side(ch, ch.last4, n_cur, th)
        by_card = _sorted_by(rc, foreign, rc.last4, n_cur)
        parts.append(_range_search(ch, rc, by_card, card_side, rc.last4, n_cur, th))
    across = _concat(parts)
    across = across.select(ch.holder[across.charge] != rc.holder[across.receipt])
    pair = across.charge * len(rc) + across.receipt
    order = np.argsort(pair, kind="stable")
    first = np.ones(len(order), bool)
    first[1:] = pair[order][1:] != pair[order][:-1]
    return across.select(order[first])


def _same_person(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    rows: I64,
    fx: list[tuple[int, int, float]],
    n_cur: int,
    th: Thresholds,
) -> Candidates:
    holder_side = _person_side(ch, ch.holder, n_cur, th)
    by_holder = _sorted_by(rc, rows, rc.holder, n_cur)
    return _concat(
        [
            _range_search(ch, rc, by_holder, holder_side, rc.holder, n_cur, th),
            _fx_search(ch, rc, by_holder, holder_side, fx, n_cur, th),
        ]
    )


def find_candidates(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    fx: list[tuple[int, int, float]],
    th: Thresholds,
    pool: Executor | None = None,
) -> Candidates:
    """Every (charge, receipt) pair worth scoring, once each, in no particular order.

    The cardholder search finds every same-person pair the others would (its windows
    contain theirs) and the FX search compares other currencies, so only pairs across
    people can come twice (by merchant word and by card digits): those are deduplicated,
    and kept only where the receipt or the charge has no same-person candidate.
    With a ``pool`` the two halves run in parallel (numpy releases the GIL).
    """
    if not len(ch) or not len(rc):
        return Candidates.empty()
    n_cur = 1 + int(max(ch.currency.max(), ch.original_currency.max(), rc.currency.max()))
    rows = np.flatnonzero(rc.active).astype(np.int64)
    if pool is None:
        across = _across_people(ch, rc, rows, n_cur, th)
        mine = _same_person(ch, rc, rows, fx, n_cur, th)
    else:
        pending = pool.submit(_across_people, ch, rc, rows, n_cur, th)
        mine = _same_person(ch, rc, rows, fx, n_cur, th)
        across = pending.result()
    # A pair across people only for a receipt or a charge with no candidate of its own
    # person (a delegate's submission, a decoy): never to crowd out the cardholder's own.
    own_c = np.bincount(mine.charge, minlength=len(ch)) > 0
    own_r = np.bincount(mine.receipt, minlength=len(rc)) > 0
    across = across.select(~own_c[across.charge] | ~own_r[across.receipt])
    return _concat([mine, across])
