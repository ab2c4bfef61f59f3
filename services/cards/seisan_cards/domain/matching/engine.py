"""Batch reconciliation: a whole statement (or a million charges) against open receipts.

1. Candidates by blocking (candidates.py) and vectorised scores (scoring.py).
2. Global one-to-one assignment, greedy by score (ties: lower charge, then lower receipt
   row), computed in rounds of "mutually best" pairs: a pair that is the best remaining
   pair of both its charge and its receipt is exactly the pair sequential greedy would take,
   so each round is a few numpy passes instead of a Python loop over millions of pairs.
3. A confirmed pair whose runner-up was left open and scores within the ambiguity margin is
   only suggested: a person decides between look-alikes.
4. Splits among what is still open (splits.py), greedy by score.

Rejected (charge_id, receipt_id) pairs never reach scoring, so they are never proposed.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from .candidates import VIA_BILLED, VIA_ORIGINAL, Candidates, find_candidates
from .encoding import EncodedCharges, EncodedReceipts, Encoder, FxRates
from .model import (
    DEFAULT_THRESHOLDS,
    AmountKind,
    ChargeTable,
    ChargeView,
    Match,
    MatchStatus,
    ReceiptTable,
    ReceiptView,
    SignalBreakdown,
    Thresholds,
)
from .scoring import WEIGHTS, Scored, describe, describe_split, merchant_scores, score_candidates
from .splits import SplitCandidate, find_splits

__all__ = ["AUTO", "SUGGESTED", "Reconciliation", "greedy_one_to_one", "reconcile"]

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]
AUTO, SUGGESTED = 1, 2
_STATUS = {AUTO: MatchStatus.AUTO, SUGGESTED: MatchStatus.SUGGESTED}
_GREEDY_ROUNDS = 64
_PARALLEL_FROM = 200_000  # charges + receipts


@dataclass
class Reconciliation:
    """The engine's answer, one row per proposed (charge, receipt) pair, sorted by charge row
    then receipt row. Pairs of one split share ``match_id``. Signals per pair."""

    charges: ChargeTable
    receipts: ReceiptTable
    thresholds: Thresholds
    charge_row: I64
    receipt_row: I64
    match_id: I64
    score: F64
    status: npt.NDArray[np.int8]
    amount: F64
    date: F64
    merchant: F64
    cardholder: F64
    card_last4: F64
    kind: npt.NDArray[np.int8]
    via: npt.NDArray[np.int8]
    lag: npt.NDArray[np.int32]
    rate: F64

    def __len__(self) -> int:
        return len(self.charge_row)

    @property
    def auto_pairs(self) -> int:
        return int(np.count_nonzero(self.status == AUTO))

    @property
    def suggested_pairs(self) -> int:
        return int(np.count_nonzero(self.status == SUGGESTED))

    def unmatched_charge_rows(self) -> I64:
        matched = np.zeros(len(self.charges), bool)
        matched[self.charge_row] = True
        return np.flatnonzero(~matched).astype(np.int64)

    def unmatched_receipt_rows(self) -> I64:
        matched = np.zeros(len(self.receipts), bool)
        matched[self.receipt_row] = True
        return np.flatnonzero(~matched).astype(np.int64)

    def rows(self) -> Iterator[tuple[str, str, float, MatchStatus]]:
        """(charge_id, receipt_id, score, status) per pair, in the result's order."""
        cid, rid = self.charges.charge_id, self.receipts.receipt_id
        for c, r, s, st in zip(
            self.charge_row.tolist(),
            self.receipt_row.tolist(),
            self.score.tolist(),
            self.status.tolist(),
            strict=True,
        ):
            yield cid[c], rid[r], s, _STATUS[st]

    def _signals(self, i: int) -> SignalBreakdown:
        last4 = float(self.card_last4[i])
        return SignalBreakdown(
            amount=round(float(self.amount[i]), 4),
            date=round(float(self.date[i]), 4),
            merchant=round(float(self.merchant[i]), 4),
            cardholder=float(self.cardholder[i]),
            card_last4=None if np.isnan(last4) else last4,
        )

    def matches(self) -> list[Match]:
        """Every proposal with its reasons in words, in the result's order."""
        groups: dict[int, list[int]] = {}
        for i, m in enumerate(self.match_id.tolist()):
            groups.setdefault(m, []).append(i)
        out: list[Match] = []
        for rows in groups.values():
            first = rows[0]
            charges = sorted({int(self.charge_row[i]) for i in rows})
            receipts = sorted({int(self.receipt_row[i]) for i in rows})
            views_c = [self.charges.view(c) for c in charges]
            views_r = [self.receipts.view(r) for r in receipts]
            if len(rows) == 1:
                reasons = describe(
                    views_c[0],
                    views_r[0],
                    self._signals(first),
                    AmountKind(int(self.kind[first])),
                    int(self.via[first]),
                    float(self.rate[first]),
                    int(self.lag[first]),
                    self.thresholds,
                )
            else:
                originals = [int(self.via[i]) == VIA_ORIGINAL for i in rows]
                reasons = describe_split(
                    views_c,
                    views_r,
                    self._signals(first),
                    [int(self.lag[i]) for i in rows],
                    any(originals),
                )
            out.append(
                Match(
                    charge_ids=tuple(v.charge_id for v in views_c),
                    receipt_ids=tuple(v.receipt_id for v in views_r),
                    score=float(self.score[first]),
                    status=_STATUS[int(self.status[first])],
                    reasons=reasons,
                    signals=self._signals(first),
                    threshold_version=self.thresholds.version,
                )
            )
        return out


def greedy_one_to_one(charge: I64, receipt: I64, n_charges: int, n_receipts: int) -> I64:
    """Positions of the pairs a sequential greedy pass would accept, for pairs given best-first.

    Each round accepts every pair that is the best remaining pair of both its charge and its
    receipt, then drops pairs touching what was taken. After a bounded number of rounds the
    (rare) rest is finished sequentially.
    """
    n = len(charge)
    alive = np.arange(n, dtype=np.int64)
    used_c = np.zeros(n_charges, bool)
    used_r = np.zeros(n_receipts, bool)
    accepted: list[I64] = []
    for _ in range(_GREEDY_ROUNDS):
        if not len(alive):
            break
        ca, ra = charge[alive], receipt[alive]
        best_c = np.full(n_charges, n, np.int64)
        np.minimum.at(best_c, ca, alive)
        best_r = np.full(n_receipts, n, np.int64)
        np.minimum.at(best_r, ra, alive)
        win = (best_c[ca] == alive) & (best_r[ra] == alive)
        taken = alive[win]
        accepted.append(taken)
        used_c[charge[taken]] = True
        used_r[receipt[taken]] = True
        alive = alive[~used_c[ca] & ~used_r[ra]]
    rest: list[int] = []
    for pos, c, r in zip(
        alive.tolist(), charge[alive].tolist(), receipt[alive].tolist(), strict=True
    ):
        if not used_c[c] and not used_r[r]:
            used_c[c] = used_r[r] = True
            rest.append(pos)
    accepted.append(np.asarray(rest, np.int64))
    return np.sort(np.concatenate(accepted))


def _score(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    cand: Candidates,
    encoder: Encoder,
    th: Thresholds,
    pool: Executor | None,
) -> Scored:
    if pool is None or len(cand) < 2:
        return score_candidates(ch, rc, cand, encoder.signatures, th)
    half = len(cand) // 2
    first = pool.submit(
        score_candidates, ch, rc, cand.select(slice(0, half)), encoder.signatures, th
    )
    second = score_candidates(ch, rc, cand.select(slice(half, None)), encoder.signatures, th)
    a = first.result()
    return Scored(
        **{
            name: np.concatenate([getattr(a, name), getattr(second, name)])
            for name in Scored.__dataclass_fields__
        }
    )


def _best_first(score: F64, charge: I64, receipt: I64, nc: int, nr: int) -> I64:
    """Order by score descending, then charge row, then receipt row (a strict total order)."""
    if nc <= 1 << 21 and nr <= 1 << 21:
        # scores carry six decimals: one int64 key sorts faster than a three-key lexsort
        rank = np.rint((1.0 - score) * 1e6).astype(np.int64)
        return np.argsort((rank << 42) | (charge << 21) | receipt)
    return np.lexsort((receipt, charge, -score))


def _rejected_rows(
    charges: ChargeTable, receipts: ReceiptTable, rejected: Collection[tuple[str, str]]
) -> set[tuple[int, int]]:
    if not rejected:
        return set()
    want_c = {c for c, _ in rejected}
    want_r = {r for _, r in rejected}
    c_rows: dict[str, list[int]] = {}
    for i, cid in enumerate(charges.charge_id):
        if cid in want_c:
            c_rows.setdefault(cid, []).append(i)
    r_rows: dict[str, list[int]] = {}
    for i, rid in enumerate(receipts.receipt_id):
        if rid in want_r:
            r_rows.setdefault(rid, []).append(i)
    return {
        (c, r) for cid, rid in rejected for c in c_rows.get(cid, ()) for r in r_rows.get(rid, ())
    }


def _drop_rejected(cand: Candidates, rejected: set[tuple[int, int]], n_receipts: int) -> Candidates:
    if not rejected or not len(cand):
        return cand
    keys = np.fromiter((c * n_receipts + r for c, r in rejected), np.int64, count=len(rejected))
    keep = ~np.isin(cand.charge * n_receipts + cand.receipt, keys)
    return Candidates(
        cand.charge[keep],
        cand.receipt[keep],
        cand.via[keep],
        cand.charge_amount[keep],
        cand.rate[keep],
    )


@dataclass
class _Pairs:
    """Working arrays of proposed pairs before the final sort."""

    charge: list[I64]
    receipt: list[I64]
    match_id: list[I64]
    status: list[npt.NDArray[np.int8]]
    columns: list[dict[str, npt.NDArray[np.generic]]]


_SIGNAL_COLUMNS = ("score", "amount", "date", "merchant", "cardholder", "card_last4")


def reconcile(
    charges: ChargeTable | Sequence[ChargeView],
    receipts: ReceiptTable | Sequence[ReceiptView],
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    rejected: Collection[tuple[str, str]] = (),
    fx_rates: Mapping[tuple[str, str], Decimal | int | str] | None = None,
) -> Reconciliation:
    """Match charges to receipts globally. ``rejected`` (charge_id, receipt_id) pairs are never
    proposed; ``fx_rates`` maps (original, billed) currency to a reference rate in major units
    (without it, rates come from the feed's own foreign charges)."""
    th = thresholds
    ct = charges if isinstance(charges, ChargeTable) else ChargeTable.from_views(charges)
    rt = receipts if isinstance(receipts, ReceiptTable) else ReceiptTable.from_views(receipts)
    encoder = Encoder(FxRates(fx_rates))
    ch, rc = encoder.charges(ct), encoder.receipts(rt)
    nc, nr = len(ch), len(rc)
    rejected_rows = _rejected_rows(ct, rt, rejected)

    # Two threads for the big numpy passes (they release the GIL); none for small inputs.
    with ThreadPoolExecutor(max_workers=2) if nc + nr >= _PARALLEL_FROM else nullcontext() as pool:
        cand = find_candidates(ch, rc, encoder.fx_table(), th, pool)
        cand = _drop_rejected(cand, rejected_rows, nr)
        scored = _score(ch, rc, cand, encoder, th, pool)
    keep = np.flatnonzero(scored.valid & (scored.score >= th.suggest))
    order = keep[_best_first(scored.score[keep], cand.charge[keep], cand.receipt[keep], nc, nr)]
    c_sorted, r_sorted = cand.charge[order], cand.receipt[order]
    chosen = order[greedy_one_to_one(c_sorted, r_sorted, nc, nr)]

    status = np.where(
        scored.eligible[chosen] & (scored.score[chosen] >= th.auto_confirm), AUTO, SUGGESTED
    ).astype(np.int8)
    status[_ambiguous(cand, scored, order, chosen, nc, nr, th)] = SUGGESTED

    pairs = _Pairs(
        charge=[cand.charge[chosen]],
        receipt=[cand.receipt[chosen]],
        match_id=[np.arange(len(chosen), dtype=np.int64)],
        status=[status],
        columns=[_columns(scored, cand, chosen)],
    )
    _add_splits(pairs, ch, rc, encoder, rejected_rows, th)
    return _assemble(ct, rt, th, pairs)


def _columns(scored: Scored, cand: Candidates, idx: I64) -> dict[str, npt.NDArray[np.generic]]:
    out: dict[str, npt.NDArray[np.generic]] = {
        name: getattr(scored, name)[idx] for name in _SIGNAL_COLUMNS
    }
    out["kind"] = scored.kind[idx]
    out["lag"] = scored.lag[idx]
    out["via"] = cand.via[idx]
    out["rate"] = cand.rate[idx]
    return out


def _ambiguous(
    cand: Candidates, scored: Scored, order: I64, chosen: I64, nc: int, nr: int, th: Thresholds
) -> npt.NDArray[np.bool_]:
    """Chosen pairs whose best competitor, left open, scores within the margin."""
    partner_c = np.full(nc, -1, np.int64)
    partner_r = np.full(nr, -1, np.int64)
    partner_c[cand.charge[chosen]] = cand.receipt[chosen]
    partner_r[cand.receipt[chosen]] = cand.charge[chosen]
    c, r, s = cand.charge[order], cand.receipt[order], scored.score[order]
    rival_c = np.zeros(nc)
    rival_r = np.zeros(nr)
    # an open receipt competing for a matched charge, and an open charge for a matched receipt
    open_r = (partner_c[c] >= 0) & (partner_r[r] < 0)
    np.maximum.at(rival_c, c[open_r], s[open_r])
    open_c = (partner_r[r] >= 0) & (partner_c[c] < 0)
    np.maximum.at(rival_r, r[open_c], s[open_c])
    rival = np.maximum(rival_c[cand.charge[chosen]], rival_r[cand.receipt[chosen]])
    return (scored.score[chosen] - rival) < th.ambiguity_margin


def _add_splits(
    pairs: _Pairs,
    ch: EncodedCharges,
    rc: EncodedReceipts,
    encoder: Encoder,
    rejected: set[tuple[int, int]],
    th: Thresholds,
) -> None:
    charge, receipt, status = pairs.charge[0], pairs.receipt[0], pairs.status[0]
    score = pairs.columns[0]["score"]
    auto_c = np.zeros(len(ch), bool)
    auto_r = np.zeros(len(rc), bool)
    auto_c[charge[status == AUTO]] = True
    auto_r[receipt[status == AUTO]] = True
    open_c = np.flatnonzero(ch.active & ~auto_c).astype(np.int64)
    open_r = np.flatnonzero(rc.active & ~auto_r).astype(np.int64)
    splits = find_splits(ch, rc, open_c, open_r, rejected, th)
    if not splits:
        return
    signals = _score_splits(splits, ch, rc, encoder)
    split_score = signals["score"].tolist()
    last4 = signals["card_last4"].tolist()
    suggested = np.flatnonzero(status == SUGGESTED)
    suggested_by_c = dict(zip(charge[suggested].tolist(), suggested.tolist(), strict=True))
    suggested_by_r = dict(zip(receipt[suggested].tolist(), suggested.tolist(), strict=True))
    pair_score = score.tolist()
    used_c: set[int] = set()
    used_r: set[int] = set()
    dropped: set[int] = set()
    taken: list[tuple[int, int]] = []  # (split index, status)
    for k in sorted(range(len(splits)), key=lambda k: (-split_score[k], k)):
        split, value = splits[k], split_score[k]
        if value < th.suggest:
            break
        if used_c.intersection(split.charges) or used_r.intersection(split.receipts):
            continue
        touched = {suggested_by_c[c] for c in split.charges if c in suggested_by_c}
        touched |= {suggested_by_r[r] for r in split.receipts if r in suggested_by_r}
        if any(pair_score[i] >= value for i in touched):
            continue
        auto = split.unique and last4[k] != 0.0 and value >= th.auto_confirm
        used_c.update(split.charges)
        used_r.update(split.receipts)
        dropped |= touched
        taken.append((k, AUTO if auto else SUGGESTED))
    if dropped:
        keep = np.ones(len(charge), bool)
        keep[list(dropped)] = False
        pairs.charge[0], pairs.receipt[0] = charge[keep], receipt[keep]
        pairs.status[0], pairs.match_id[0] = status[keep], pairs.match_id[0][keep]
        pairs.columns[0] = {k: v[keep] for k, v in pairs.columns[0].items()}
    rows: list[tuple[int, int, int, int, int, int]] = []  # charge, receipt, id, split, status, via
    for match_id, (k, st) in enumerate(taken, start=len(charge)):
        split = splits[k]
        for c, original in zip(split.charges, split.original, strict=True):
            via = VIA_ORIGINAL if original else VIA_BILLED
            rows.extend((c, r, match_id, k, st, via) for r in split.receipts)
    if not rows:
        return
    table = np.array(rows, np.int64)
    c_rows, r_rows, which = table[:, 0], table[:, 1], table[:, 3]
    pairs.charge.append(c_rows)
    pairs.receipt.append(r_rows)
    pairs.match_id.append(table[:, 2])
    pairs.status.append(table[:, 4].astype(np.int8))
    pairs.columns.append(
        {
            **{name: signals[name][which] for name in _SIGNAL_COLUMNS},
            "kind": np.full(len(c_rows), AmountKind.SPLIT_SUM, np.int8),
            "lag": (ch.day[c_rows].astype(np.int64) - rc.day[r_rows]).astype(np.int32),
            "via": table[:, 5].astype(np.int8),
            "rate": np.zeros(len(c_rows)),
        }
    )


def _score_splits(
    splits: list[SplitCandidate], ch: EncodedCharges, rc: EncodedReceipts, encoder: Encoder
) -> dict[str, F64]:
    """Per split: the exact sum, and the weakest part's merchant and date signals."""
    c = np.array([c for s in splits for c in s.charges for _ in s.receipts], np.int64)
    r = np.array([r for s in splits for _ in s.charges for r in s.receipts], np.int64)
    sizes = np.array([len(s.charges) * len(s.receipts) for s in splits], np.int64)
    starts = np.cumsum(sizes) - sizes
    sig = encoder.signatures
    merchant = np.minimum.reduceat(
        merchant_scores(sig[ch.merchant[c]], sig[rc.merchant[r]]), starts
    )
    lag = ch.day[c].astype(np.int64) - rc.day[r]
    date_part = np.clip(np.where(lag >= 0, 1.0 - 0.06 * lag, 1.0 - 0.2 * np.abs(lag)), 0.0, 1.0)
    date = np.minimum.reduceat(date_part, starts)
    shown = np.add.reduceat((rc.last4[r] >= 0).astype(np.int64), starts) > 0
    wrong = np.add.reduceat(
        ((rc.last4[r] >= 0) & (ch.last4[c] != rc.last4[r])).astype(np.int64), starts
    )
    last4 = np.where(shown, (wrong == 0).astype(np.float64), np.nan)
    w = WEIGHTS
    weighted = (
        w["amount"] * 1.0
        + w["merchant"] * merchant
        + w["date"] * date
        + w["cardholder"] * 1.0
        + w["card_last4"] * np.nan_to_num(last4)
    )
    total_weight = 1.0 - np.where(shown, 0.0, w["card_last4"])
    ones = np.ones(len(splits))
    return {
        "score": np.floor(weighted / total_weight * 1e6 + 0.5) / 1e6,
        "amount": ones,
        "date": date,
        "merchant": merchant,
        "cardholder": ones,
        "card_last4": last4,
    }


def _assemble(ct: ChargeTable, rt: ReceiptTable, th: Thresholds, pairs: _Pairs) -> Reconciliation:
    charge = np.concatenate(pairs.charge)
    receipt = np.concatenate(pairs.receipt)
    if len(ct) <= 1 << 31 and len(rt) <= 1 << 31:
        order = np.argsort((charge << 31) | receipt)  # pairs are unique: one key suffices
    else:
        order = np.lexsort((receipt, charge))
    cols = {k: np.concatenate([c[k] for c in pairs.columns])[order] for k in pairs.columns[0]}
    return Reconciliation(
        charges=ct,
        receipts=rt,
        thresholds=th,
        charge_row=charge[order],
        receipt_row=receipt[order],
        match_id=np.concatenate(pairs.match_id)[order],
        status=np.concatenate(pairs.status)[order],
        score=cols["score"].astype(np.float64),
        amount=cols["amount"].astype(np.float64),
        date=cols["date"].astype(np.float64),
        merchant=cols["merchant"].astype(np.float64),
        cardholder=cols["cardholder"].astype(np.float64),
        card_last4=cols["card_last4"].astype(np.float64),
        kind=cols["kind"].astype(np.int8),
        via=cols["via"].astype(np.int8),
        lag=cols["lag"].astype(np.int32),
        rate=cols["rate"].astype(np.float64),
    )
