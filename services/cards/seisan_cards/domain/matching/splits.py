"""Splits: several receipts paid by one charge, or one receipt paid in several charges.

Searched only among items the one-to-one pass left open (or merely suggested), only
within one cardholder = submitter and one currency, within the posting-lag window, and
only for exact sums of 2..k parts. Vectorised: every combination of 2..k open items of a
(person, currency) block is summed at once and joined on (block, sum) against the other
side's amounts. Blocks with more open items than `_MAX_BLOCK` (for k = 2) or
`_MAX_BLOCK_3` (for k = 3) are not searched: there a sum would be a guess, not evidence.
A split is unique when no other combination sums to the same target.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from itertools import combinations

import numpy as np
import numpy.typing as npt

from .encoding import EncodedCharges, EncodedReceipts
from .model import Thresholds

__all__ = ["SplitCandidate", "find_splits"]

I64 = npt.NDArray[np.int64]
_MAX_BLOCK = 64
_MAX_BLOCK_3 = 24
_AMOUNT_BITS = 40


@dataclass(frozen=True)
class SplitCandidate:
    charges: tuple[int, ...]
    receipts: tuple[int, ...]
    # for each charge: compared on its original amount (True) or billed amount (False)
    original: tuple[bool, ...]
    unique: bool


@cache
def _template(n: int, k: int) -> I64:
    """All k-combinations of range(n), as an (m, k) array."""
    return np.array(list(combinations(range(n), k)), np.int64).reshape(-1, k)


def _combinations(block: I64, k: int, limit: int) -> I64:
    """(m, k) positions into ``block`` (sorted) of every k items sharing a block value."""
    starts = np.flatnonzero(np.r_[True, block[1:] != block[:-1]])
    sizes = np.diff(np.r_[starts, len(block)])
    out = [np.zeros((0, k), np.int64)]
    for n in np.unique(sizes[(sizes >= k) & (sizes <= limit)]).tolist():
        first = starts[sizes == n]
        out.append((first[:, None, None] + _template(n, k)[None, :, :]).reshape(-1, k))
    return np.concatenate(out)


@dataclass
class _Parts:
    """One side's open items as summable parts, sorted by block."""

    block: I64
    row: I64
    amount: I64
    day: I64
    original: npt.NDArray[np.bool_]

    @classmethod
    def build(
        cls, block: I64, row: I64, amount: I64, day: I64, original: npt.NDArray[np.bool_]
    ) -> _Parts:
        order = np.argsort(block, kind="stable")
        return cls(block[order], row[order], amount[order], day[order], original[order])


def _charge_forms(ch: EncodedCharges, rows: I64) -> _Parts:
    foreign = rows[ch.original_currency[rows] >= 0]
    all_rows = np.concatenate([rows, foreign])
    currency = np.concatenate([ch.currency[rows], ch.original_currency[foreign]]).astype(np.int64)
    return _Parts.build(
        ch.holder[all_rows].astype(np.int64) * 4096 + currency,
        all_rows,
        np.concatenate([ch.amount[rows], ch.original_amount[foreign]]),
        ch.day[all_rows].astype(np.int64),
        np.r_[np.zeros(len(rows), bool), np.ones(len(foreign), bool)],
    )


def _receipt_parts(rc: EncodedReceipts, rows: I64) -> _Parts:
    return _Parts.build(
        rc.holder[rows].astype(np.int64) * 4096 + rc.currency[rows],
        rows,
        rc.total[rows],
        rc.day[rows].astype(np.int64),
        np.zeros(len(rows), bool),
    )


def _key(block: I64, amount: I64) -> I64:
    return (block << _AMOUNT_BITS) | np.clip(amount, 0, (1 << _AMOUNT_BITS) - 1)


def _solve(
    parts: _Parts,
    targets: _Parts,
    k_max: int,
    lag_sign: int,
    th: Thresholds,
) -> list[tuple[I64, I64]]:
    """Per k: (target positions, (m, k) part positions) of combinations summing to a target.

    ``lag_sign`` is +1 when the targets are charges (lag = target day - part day) and -1 when
    they are receipts (lag = part day - target day).
    """
    t_key = _key(targets.block, targets.amount)
    t_order = np.argsort(t_key, kind="stable")
    t_sorted = t_key[t_order]
    found: list[tuple[I64, I64]] = []
    for k in range(2, k_max + 1):
        combo = _combinations(parts.block, k, _MAX_BLOCK if k == 2 else _MAX_BLOCK_3)
        if not len(combo):
            continue
        key = _key(parts.block[combo[:, 0]], parts.amount[combo].sum(axis=1))
        lo = np.searchsorted(t_sorted, key, "left")
        counts = np.searchsorted(t_sorted, key, "right") - lo
        which = np.repeat(np.arange(len(combo)), counts)
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        target = t_order[np.repeat(lo, counts) + offsets]
        lag = lag_sign * (targets.day[target][:, None] - parts.day[combo[which]])
        ok = ((lag >= th.lag_min_days) & (lag <= th.lag_max_days)).all(axis=1)
        found.append((target[ok], combo[which[ok]]))
    return found


def find_splits(
    ch: EncodedCharges,
    rc: EncodedReceipts,
    open_charges: I64,
    open_receipts: I64,
    rejected: set[tuple[int, int]],
    th: Thresholds,
) -> list[SplitCandidate]:
    """Exact-sum splits among open items, each target once (its first solution, in order of
    size then position); unique when it has no other solution."""
    k = th.split_max_parts
    if k < 2 or not len(open_charges) or not len(open_receipts):
        return []
    charges = _charge_forms(ch, open_charges)
    receipts = _receipt_parts(rc, open_receipts)
    found: list[SplitCandidate] = []
    # several receipts for one charge
    solutions: dict[int, list[tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...]]]] = {}
    for target, combo in _solve(receipts, charges, k, +1, th):
        rows = np.sort(receipts.row[combo], axis=1).tolist()
        for t, c, o, r in zip(
            target.tolist(), charges.row[target].tolist(), charges.original[target].tolist(),
            rows, strict=True,
        ):  # fmt: skip
            solutions.setdefault(t, []).append(((c,), tuple(r), (o,)))
    found += _collect(solutions, rejected)
    # one receipt over several charges
    solutions = {}
    for target, combo in _solve(charges, receipts, k, -1, th):
        order = np.argsort(charges.row[combo], axis=1, kind="stable")
        combo = np.take_along_axis(combo, order, axis=1)
        rows, originals = charges.row[combo].tolist(), charges.original[combo].tolist()
        for t, r, c, o in zip(
            target.tolist(), receipts.row[target].tolist(), rows, originals, strict=True
        ):
            if len(set(c)) == len(c):
                solutions.setdefault(t, []).append((tuple(c), (r,), tuple(o)))
    found += _collect(solutions, rejected)
    return found


def _collect(
    solutions: dict[int, list[tuple[tuple[int, ...], tuple[int, ...], tuple[bool, ...]]]],
    rejected: set[tuple[int, int]],
) -> list[SplitCandidate]:
    out: list[SplitCandidate] = []
    for t in sorted(solutions):
        allowed = [
            s for s in solutions[t] if not any((c, r) in rejected for c in s[0] for r in s[1])
        ] if rejected else solutions[t]  # fmt: skip
        if allowed:
            charges, receipts, original = allowed[0]
            out.append(SplitCandidate(charges, receipts, original, len(allowed) == 1))
    return out
