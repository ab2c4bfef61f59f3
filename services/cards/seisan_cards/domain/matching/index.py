"""Incremental matching: open charges and open receipts indexed for one-at-a-time queries.

A new receipt (``receipt.extracted``) asks for its best open charges; a new charge
asks for its best open receipts. Both sides keep

* an exact index: (currency, day, amount) → items, the amount being the billed or the
  original amount of a charge, or the total (and total + tip line) of a receipt;
* sorted blocks per (cardholder, currency) and per (card last four, currency) for the
  amount windows (tips, capture differences, the FX rate band).

A query touches a few dict entries and a few bisected slices (microseconds, whatever the
number of open items), then scores the handful of candidates with the batch engine's own
vectorised scoring, so incremental and batch proposals agree.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal

import numpy as np
import numpy.typing as npt

from .candidates import VIA_BILLED, VIA_FX_RATE, VIA_ORIGINAL
from .encoding import Encoder, FxRates
from .model import (
    DEFAULT_THRESHOLDS,
    ChargeTable,
    ChargeView,
    Match,
    MatchStatus,
    ReceiptTable,
    ReceiptView,
    Thresholds,
    day_number,
)
from .scoring import PairScore, describe, merchant_score_bits, score_pair

__all__ = ["MatchIndex"]

I64 = npt.NDArray[np.int64]
_DAY_BITS, _AMOUNT_BITS, _CURRENCY_LIMIT = 16, 40, 1 << 7
_MAX_AMOUNT = (1 << _AMOUNT_BITS) - 1


def _exact_key(word: int, currency: int, day: int, amount: int) -> int:
    """(merchant word, currency, day, amount) as one Python int (arbitrary precision)."""
    head = (word * _CURRENCY_LIMIT + currency) << _DAY_BITS | (day & 0xFFFF)
    return (head << _AMOUNT_BITS) | min(max(amount, 0), _MAX_AMOUNT)


def _windows(total: int, tip: int, th: Thresholds) -> tuple[int, int, int]:
    """As candidates._windows: low, high for every charge, high for charges at tip MCCs."""
    cap = total * th.capture_tolerance_bp // 10_000
    high = max(total + cap, total + tip)
    over = max(th.suggest_over_percent, th.tip_max_percent)
    return total - cap, high, max(high, total + total * over // 100)


@dataclass
class _Block:
    """Entries of one (person or card, currency), kept sorted by amount.

    An entry is one int, ``slot << 2 | via``: no tuple per entry, nothing for the cyclic
    garbage collector to walk through (a million open items would make its pauses long).
    """

    amounts: list[int] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)

    def add(self, amount: int, slot: int, via: int) -> None:
        i = bisect_right(self.amounts, amount)
        self.amounts.insert(i, amount)
        self.entries.insert(i, slot << 2 | via)

    def remove(self, amount: int, slot: int) -> None:
        i = bisect_left(self.amounts, amount)
        while i < len(self.amounts) and self.amounts[i] == amount:
            if self.entries[i] >> 2 == slot:
                del self.amounts[i], self.entries[i]
                return
            i += 1

    def between(self, low: int, high: int, cap: int) -> list[tuple[int, tuple[int, int]]]:
        """(amount, (slot, via)) of entries with low <= amount <= high, at most ``cap``."""
        lo = bisect_left(self.amounts, low)
        hi = min(bisect_right(self.amounts, high), lo + cap)
        pairs = zip(self.amounts[lo:hi], self.entries[lo:hi], strict=True)
        return [(a, (e >> 2, e & 3)) for a, e in pairs]


Filing = tuple[list[tuple[int, int]], list[tuple[dict[int, "_Block"], int, int, int]]]


class _Side:
    """One side's open items: growable integer columns plus the exact index and blocks."""

    COLUMNS = (
        "holder",
        "last4",
        "day",
        "mcc",
        "amount",
        "currency",
        "orig_amount",
        "orig_currency",
        "tip",
        "merchant",
        "word",
        "active",
    )

    def __init__(self) -> None:
        self.cols: dict[str, I64] = {name: np.zeros(1024, np.int64) for name in self.COLUMNS}
        self.alive = np.zeros(1024, bool)
        self.size = 0
        self.ids: list[str] = []
        self.slot_of: dict[str, int] = {}
        self.source: list[tuple[ChargeTable | ReceiptTable, int]] = []
        self.exact: dict[int, list[int]] = {}  # key -> [slot << 2 | via]
        self.by_holder: dict[int, _Block] = {}
        self.by_last4: dict[int, _Block] = {}

    def _grow(self, need: int) -> None:
        cap = len(self.alive)
        if need <= cap:
            return
        new_cap = max(need, 2 * cap)
        for name, col in self.cols.items():
            grown = np.zeros(new_cap, np.int64)
            grown[:cap] = col
            self.cols[name] = grown
        alive = np.zeros(new_cap, bool)
        alive[:cap] = self.alive
        self.alive = alive

    def append(
        self,
        ids: Sequence[str],
        columns: Mapping[str, npt.NDArray[np.integer]],
        source: ChargeTable | ReceiptTable,
    ) -> range:
        start, n = self.size, len(ids)
        self._grow(start + n)
        for name, values in columns.items():
            self.cols[name][start : start + n] = values
        self.alive[start : start + n] = True
        self.size += n
        for i, item_id in enumerate(ids):
            if item_id in self.slot_of:
                raise ValueError(f"{item_id!r} is already open in the index")
            self.slot_of[item_id] = start + i
        self.ids.extend(ids)
        self.source.extend((source, i) for i in range(n))
        return range(start, start + n)

    def file(self, slot: int, filing: Filing) -> None:
        """File ``slot`` under exact ``(key, via)`` and blocks ``(index, key, amount, via)``."""
        exact, blocks = filing
        for key, via in exact:
            self.exact.setdefault(key, []).append(slot << 2 | via)
        for index, key, amount, via in blocks:
            block = index.get(key)
            if block is None:
                block = index[key] = _Block()
            block.add(amount, slot, via)

    def hits(self, key: int) -> list[tuple[int, int]]:
        """(slot, via) of the items filed under exact ``key``."""
        return [(e >> 2, e & 3) for e in self.exact.get(key, ())]

    def remove(self, item_id: str, filing: Callable[[int], Filing]) -> None:
        """Take an item out; ``filing`` recomputes where it was filed (nothing is kept)."""
        slot = self.slot_of.pop(item_id)
        self.alive[slot] = False
        exact, blocks = filing(slot)
        for key, _ in exact:
            entries = [e for e in self.exact.get(key, ()) if e >> 2 != slot]
            if entries:
                self.exact[key] = entries
            else:
                self.exact.pop(key, None)
        for index, key, amount, _ in blocks:
            index[key].remove(amount, slot)

    def row(self, slot: int) -> dict[str, int]:
        return {name: int(col[slot]) for name, col in self.cols.items()}


class MatchIndex:
    """Open charges and open receipts, for incremental matching.

    ``best_charges_for(receipt)`` / ``best_receipts_for(charge)`` return up to ``limit``
    proposals, best first, each a `Match` with score, status, reasons and signals.
    Matching items is the caller's decision: remove them (``remove_charge`` /
    ``remove_receipt``) once confirmed. Rejected pairs are never proposed again.
    """

    def __init__(
        self,
        thresholds: Thresholds = DEFAULT_THRESHOLDS,
        *,
        rejected: Iterable[tuple[str, str]] = (),
        fx_rates: Mapping[tuple[str, str], Decimal | int | str] | None = None,
    ) -> None:
        self.thresholds = thresholds
        self._enc = Encoder(FxRates(fx_rates))
        self._charges = _Side()
        self._receipts = _Side()
        self._rejected: set[tuple[str, str]] = set(rejected)

    # ---- contents ----------------------------------------------------------------------

    @property
    def open_charges(self) -> int:
        return len(self._charges.slot_of)

    @property
    def open_receipts(self) -> int:
        return len(self._receipts.slot_of)

    def reject(self, charge_id: str, receipt_id: str) -> None:
        self._rejected.add((charge_id, receipt_id))

    def _check_currencies(self) -> None:
        if len(self._enc.currencies) >= _CURRENCY_LIMIT:
            raise ValueError(f"the index holds at most {_CURRENCY_LIMIT - 1} currencies")

    def add_charge(self, charge: ChargeView) -> None:
        self.add_charges(ChargeTable.from_views([charge]))

    def add_charges(self, charges: ChargeTable | Sequence[ChargeView]) -> None:
        table = charges if isinstance(charges, ChargeTable) else ChargeTable.from_views(charges)
        ch = self._enc.charges(table)
        self._check_currencies()
        side = self._charges
        slots = side.append(
            table.charge_id,
            {
                "holder": ch.holder,
                "last4": ch.last4,
                "day": ch.day,
                "mcc": ch.mcc,
                "amount": ch.amount,
                "currency": ch.currency,
                "orig_amount": ch.original_amount,
                "orig_currency": ch.original_currency,
                "merchant": ch.merchant,
                "word": ch.merchant_key,
                "active": ch.active.astype(np.int64),
            },
            table,
        )
        cols = [
            a.tolist()
            for a in (
                ch.holder, ch.last4, ch.day, ch.amount, ch.currency, ch.original_amount,
                ch.original_currency, ch.merchant_key, ch.active,
            )
        ]  # fmt: skip
        for slot, *values in zip(slots, *cols, strict=True):
            side.file(slot, self._charge_filing(*values))

    def _charge_filing(
        self, holder: int, last4: int, day: int, amount: int, cur: int, oamount: int, ocur: int,
        word: int, active: bool,
    ) -> Filing:  # fmt: skip
        if not active:
            return [], []
        side = self._charges
        forms = [(cur, amount, VIA_BILLED)]
        if ocur >= 0:
            forms.append((ocur, oamount, VIA_ORIGINAL))
        exact = [(_exact_key(word, c, day, a), via) for c, a, via in forms]
        blocks = [(side.by_holder, holder * _CURRENCY_LIMIT + c, a, via) for c, a, via in forms]
        if last4 >= 0:
            blocks += [(side.by_last4, last4 * _CURRENCY_LIMIT + c, a, via) for c, a, via in forms]
        return exact, blocks

    def _charge_filing_of(self, slot: int) -> Filing:
        c = self._charges.row(slot)
        return self._charge_filing(
            c["holder"], c["last4"], c["day"], c["amount"], c["currency"], c["orig_amount"],
            c["orig_currency"], c["word"], c["active"] > 0,
        )  # fmt: skip

    def add_receipt(self, receipt: ReceiptView) -> None:
        self.add_receipts(ReceiptTable.from_views([receipt]))

    def add_receipts(self, receipts: ReceiptTable | Sequence[ReceiptView]) -> None:
        table = (
            receipts if isinstance(receipts, ReceiptTable) else ReceiptTable.from_views(receipts)
        )
        rc = self._enc.receipts(table)
        self._check_currencies()
        side = self._receipts
        slots = side.append(
            table.receipt_id,
            {
                "holder": rc.holder,
                "last4": rc.last4,
                "day": rc.day,
                "amount": rc.total,
                "currency": rc.currency,
                "tip": rc.tip,
                "merchant": rc.merchant,
                "word": rc.merchant_key,
                "active": rc.active.astype(np.int64),
            },
            table,
        )
        cols = [
            a.tolist()
            for a in (
                rc.holder, rc.last4, rc.day, rc.total, rc.tip, rc.currency, rc.merchant_key,
                rc.active,
            )
        ]  # fmt: skip
        for slot, *values in zip(slots, *cols, strict=True):
            side.file(slot, self._receipt_filing(*values))

    def _receipt_filing(
        self, holder: int, last4: int, day: int, total: int, tip: int, cur: int, word: int,
        active: bool,
    ) -> Filing:  # fmt: skip
        if not active:
            return [], []
        side = self._receipts
        exact = [(_exact_key(word, cur, day, total), VIA_BILLED)]
        if tip > 0:
            exact.append((_exact_key(word, cur, day, total + tip), VIA_BILLED))
        blocks = [(side.by_holder, holder * _CURRENCY_LIMIT + cur, total, VIA_BILLED)]
        if last4 >= 0:
            blocks.append((side.by_last4, last4 * _CURRENCY_LIMIT + cur, total, VIA_BILLED))
        return exact, blocks

    def _receipt_filing_of(self, slot: int) -> Filing:
        r = self._receipts.row(slot)
        return self._receipt_filing(
            r["holder"], r["last4"], r["day"], r["amount"], r["tip"], r["currency"], r["word"],
            r["active"] > 0,
        )  # fmt: skip

    def remove_charge(self, charge_id: str) -> None:
        self._charges.remove(charge_id, self._charge_filing_of)

    def remove_receipt(self, receipt_id: str) -> None:
        self._receipts.remove(receipt_id, self._receipt_filing_of)

    # ---- queries -----------------------------------------------------------------------

    def best_charges_for(self, receipt: ReceiptView, limit: int = 3) -> list[Match]:
        """The best open charges for ``receipt`` (which need not be in the index)."""
        th, enc = self.thresholds, self._enc
        total, tip = receipt.total_minor, max(receipt.tip_minor or 0, 0)
        if total <= 0 or receipt.paid_with_company_card is False:
            return []
        holder = enc.holders.code(receipt.submitter)
        last4, day = enc.last4(receipt.card_last4), day_number(receipt.date)
        cur = enc.currencies.code(receipt.currency)
        _, word, bits = enc.merchant(receipt.merchant)
        side = self._charges
        mcc = side.cols["mcc"]
        found: dict[int, tuple[int, float]] = {}  # slot -> (via, rate)
        for lag in range(th.lag_min_days, th.lag_max_days + 1):
            for amount in (total, total + tip) if tip > 0 else (total,):
                for slot, via in side.hits(_exact_key(word, cur, day + lag, amount)):
                    found.setdefault(slot, (via, 0.0))
        low, high, tip_high = _windows(total, tip, th)
        for index, key in ((side.by_holder, holder), (side.by_last4, last4)):
            block = index.get(key * _CURRENCY_LIMIT + cur) if key >= 0 else None
            if block is not None:
                for amount, (slot, via) in block.between(low, tip_high, th.max_candidates):
                    if amount <= high or int(mcc[slot]) in th.tip_mccs:
                        found.setdefault(slot, (via, 0.0))
        band = th.fx_band_percent / 100
        for orig, billed, rate in enc.fx_table():
            block = side.by_holder.get(holder * _CURRENCY_LIMIT + billed) if orig == cur else None
            if block is None:
                continue
            lo = math.floor(low * rate * (1 - band))
            hi = math.ceil(tip_high * rate * (1 + band))
            plain_hi = math.ceil(high * rate * (1 + band))
            for amount, (slot, via) in block.between(lo, hi, th.max_candidates):
                if via != VIA_BILLED or side.cols["orig_currency"][slot] >= 0:
                    continue
                if amount <= plain_hi or int(mcc[slot]) in th.tip_mccs:
                    found.setdefault(slot, (VIA_FX_RATE, rate))
        scored: list[tuple[PairScore, int, int, float]] = []
        for slot, (via, rate) in found.items():
            c = side.row(slot)
            lag = c["day"] - day
            if not th.lag_min_days <= lag <= th.lag_max_days:
                continue
            if (side.ids[slot], receipt.receipt_id) in self._rejected:
                continue
            pair = score_pair(
                amount=c["orig_amount"] if via == VIA_ORIGINAL else c["amount"],
                total=total,
                tip=tip,
                tip_mcc=c["mcc"] in th.tip_mccs,
                via=via,
                rate=rate,
                lag=lag,
                merchant=merchant_score_bits(enc.signature_bits(c["merchant"]), bits),
                same_holder=c["holder"] == holder,
                charge_last4=c["last4"],
                receipt_last4=last4,
                th=th,
            )
            scored.append((pair, slot, via, rate))
        return self._proposals(scored, lambda slot: (self._charge_view(slot), receipt), limit)

    def best_receipts_for(self, charge: ChargeView, limit: int = 3) -> list[Match]:
        """The best open receipts for ``charge`` (which need not be in the index)."""
        th, enc = self.thresholds, self._enc
        if charge.amount_minor <= 0:
            return []
        holder = enc.holders.code(charge.cardholder)
        last4, day = enc.last4(charge.card_last4), day_number(charge.transaction_date)
        _, word, bits = enc.merchant(charge.merchant)
        tipped = charge.mcc in th.tip_mccs
        forms = [(enc.currencies.code(charge.currency), charge.amount_minor, VIA_BILLED)]
        if charge.original_amount_minor is not None and charge.original_currency:
            forms.append(
                (
                    enc.currencies.code(charge.original_currency),
                    charge.original_amount_minor,
                    VIA_ORIGINAL,
                )
            )
        side = self._receipts
        found: dict[int, tuple[int, int, float]] = {}  # slot -> (via, compared amount, rate)
        over = max(th.suggest_over_percent, th.tip_max_percent) if tipped else 0
        cap = th.capture_tolerance_bp
        for cur, amount, via in forms:
            for lag in range(th.lag_min_days, th.lag_max_days + 1):
                for slot, _ in side.hits(_exact_key(word, cur, day - lag, amount)):
                    found.setdefault(slot, (via, amount, 0.0))
            # receipt totals whose windows reach this amount (a tip line is an exact hit)
            low = min(amount * 100 // (100 + over), amount * 10_000 // (10_000 + cap))
            high = -(-amount * 10_000 // (10_000 - cap))
            for index, key in ((side.by_holder, holder), (side.by_last4, last4)):
                block = index.get(key * _CURRENCY_LIMIT + cur) if key >= 0 else None
                if block is not None:
                    for _, (slot, _) in block.between(low, high, th.max_candidates):
                        found.setdefault(slot, (via, amount, 0.0))
        if len(forms) == 1:
            band = th.fx_band_percent / 100
            billed_cur, amount, _ = forms[0]
            for orig, billed, rate in enc.fx_table():
                block = (
                    side.by_holder.get(holder * _CURRENCY_LIMIT + orig)
                    if billed == billed_cur
                    else None
                )
                if block is None:
                    continue
                low = math.floor(
                    amount / (rate * (1 + band)) * 10_000 / (10_000 + cap + 100 * over)
                )
                high = math.ceil(amount / (rate * (1 - band)) * 10_000 / (10_000 - cap))
                for _, (slot, _) in block.between(low, high, th.max_candidates):
                    found.setdefault(slot, (VIA_FX_RATE, amount, rate))
        scored: list[tuple[PairScore, int, int, float]] = []
        for slot, (via, amount, rate) in found.items():
            r = side.row(slot)
            lag = day - r["day"]
            if not th.lag_min_days <= lag <= th.lag_max_days:
                continue
            if (charge.charge_id, side.ids[slot]) in self._rejected:
                continue
            pair = score_pair(
                amount=amount,
                total=r["amount"],
                tip=r["tip"],
                tip_mcc=tipped,
                via=via,
                rate=rate,
                lag=lag,
                merchant=merchant_score_bits(bits, enc.signature_bits(r["merchant"])),
                same_holder=r["holder"] == holder,
                charge_last4=last4,
                receipt_last4=r["last4"],
                th=th,
            )
            scored.append((pair, slot, via, rate))
        return self._proposals(scored, lambda slot: (charge, self._receipt_view(slot)), limit)

    def _charge_view(self, slot: int) -> ChargeView:
        table, row = self._charges.source[slot]
        assert isinstance(table, ChargeTable)
        return table.view(row)

    def _receipt_view(self, slot: int) -> ReceiptView:
        table, row = self._receipts.source[slot]
        assert isinstance(table, ReceiptTable)
        return table.view(row)

    def _proposals(
        self,
        scored: list[tuple[PairScore, int, int, float]],
        views: Callable[[int], tuple[ChargeView, ReceiptView]],
        limit: int,
    ) -> list[Match]:
        th = self.thresholds
        ranked = sorted(
            (item for item in scored if item[0].valid and item[0].score >= th.suggest),
            key=lambda item: (-item[0].score, item[1]),
        )
        out: list[Match] = []
        for pos, (pair, slot, via, rate) in enumerate(ranked[:limit]):
            runner_up = ranked[1][0].score if pos == 0 and len(ranked) > 1 else 0.0
            auto = (
                pos == 0
                and pair.eligible
                and pair.score >= th.auto_confirm
                and pair.score - runner_up >= th.ambiguity_margin
            )
            charge, receipt = views(slot)
            signals = pair.signals()
            out.append(
                Match(
                    charge_ids=(charge.charge_id,),
                    receipt_ids=(receipt.receipt_id,),
                    score=pair.score,
                    status=MatchStatus.AUTO if auto else MatchStatus.SUGGESTED,
                    reasons=describe(charge, receipt, signals, pair.kind, via, rate, pair.lag, th),
                    signals=signals,
                    threshold_version=th.version,
                )
            )
        return out
