"""What the matching engine reads and what it answers. Pure: standard library and numpy.

The engine has its own small input types (`ChargeView`, `ReceiptView`) so that
it depends on nothing else in the service; the service maps its models onto
them. Batch runs take the same data column-wise (`ChargeTable`,
`ReceiptTable`), which is what lets a million charges be reconciled in seconds.

Money stays integer minor units throughout. Scores and amount ratios are
floats: they are measures of likeness, never amounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Any

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_THRESHOLDS",
    "TIP_MCCS",
    "AmountKind",
    "ChargeTable",
    "ChargeView",
    "Match",
    "MatchStatus",
    "ReceiptTable",
    "ReceiptView",
    "SignalBreakdown",
    "Thresholds",
    "day_number",
    "from_day_number",
]

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()

# Merchant category codes where the charge legitimately exceeds the receipt by a tip:
# caterers, restaurants, bars, fast food, taxis and limousines, beauty and barber shops.
TIP_MCCS = frozenset({5811, 5812, 5813, 5814, 4121, 4111, 7230, 7298})


def day_number(day: dt.date) -> int:
    """Days since 1970-01-01 (the engine compares dates as integers)."""
    return day.toordinal() - _EPOCH_ORDINAL


def from_day_number(day: int) -> dt.date:
    return dt.date.fromordinal(int(day) + _EPOCH_ORDINAL)


@dataclass(frozen=True, slots=True)
class ChargeView:
    charge_id: str
    card_last4: str
    cardholder: str
    transaction_date: dt.date
    posting_date: dt.date
    merchant: str
    mcc: int | None
    amount_minor: int
    currency: str
    original_amount_minor: int | None = None
    original_currency: str | None = None


@dataclass(frozen=True, slots=True)
class ReceiptView:
    receipt_id: str
    submitter: str
    merchant: str
    date: dt.date
    total_minor: int
    currency: str
    card_last4: str | None = None
    tip_minor: int | None = None
    paid_with_company_card: bool | None = None


@dataclass(frozen=True)
class Thresholds:
    """Score thresholds and amount/date tolerances, named by ``version`` in every match.

    A pair scores in 0..1. At or above ``auto_confirm`` (and with identity evidence:
    cardholder = submitter or the receipt's card last four) it is confirmed
    automatically; at or above ``suggest`` it goes to a person; below, nothing.
    """

    version: str = "match-1"
    auto_confirm: float = 0.85
    suggest: float = 0.55
    # charge transaction date minus receipt date, in days
    lag_min_days: int = -1
    lag_max_days: int = 5
    # a charge above the receipt total at a tip MCC, as a share of the total
    tip_max_percent: int = 30
    # above the tip bound (or at a non-tip MCC) the pair may still be suggested up to this
    suggest_over_percent: int = 50
    # authorisation vs capture: charge may differ from the receipt by this many basis points
    capture_tolerance_bp: int = 200
    # with no original amount in the feed, the receipt converted at the reference rate ± this
    fx_band_percent: int = 5
    # a confirmed pair whose runner-up (left open) scores within this margin is only suggested
    ambiguity_margin: float = 0.02
    # splits: at most this many receipts for one charge (or charges for one receipt)
    split_max_parts: int = 3
    tip_mccs: frozenset[int] = TIP_MCCS
    # per receipt and per search, the cap on candidates considered (nearest amounts first)
    max_candidates: int = 128

    def __post_init__(self) -> None:
        if not 0.0 <= self.suggest <= self.auto_confirm <= 1.0:
            raise ValueError("thresholds must satisfy 0 <= suggest <= auto_confirm <= 1")
        if self.lag_min_days > self.lag_max_days:
            raise ValueError("lag_min_days must not exceed lag_max_days")
        if self.split_max_parts < 1 or self.max_candidates < 1:
            raise ValueError("split_max_parts and max_candidates must be positive")


DEFAULT_THRESHOLDS = Thresholds()


class MatchStatus(StrEnum):
    AUTO = "auto"
    SUGGESTED = "suggested"


class AmountKind(IntEnum):
    """How the charge amount relates to the receipt total (drives the words in the reasons)."""

    EXACT = 0
    TIP_LINE = 1  # charge = total + the tip line printed on the receipt
    TIP = 2  # charge above total by a bounded tip share at a tip MCC
    CAPTURE = 3  # small authorisation/capture difference
    FX_RATE = 4  # foreign receipt, converted at the reference rate within the band
    OVER = 5  # above the tolerances: may be suggested, never confirmed automatically
    SPLIT_SUM = 6  # several parts summing exactly


@dataclass(frozen=True, slots=True)
class SignalBreakdown:
    """Each signal in 0..1; ``card_last4`` is None when the receipt shows no card digits."""

    amount: float
    date: float
    merchant: float
    cardholder: float
    card_last4: float | None

    def as_dict(self) -> dict[str, float]:
        out = {
            "amount": self.amount,
            "date": self.date,
            "merchant": self.merchant,
            "cardholder": self.cardholder,
        }
        if self.card_last4 is not None:
            out["card_last4"] = self.card_last4
        return out


@dataclass(frozen=True, slots=True)
class Match:
    """A proposed match: one charge and one receipt, or a split (several on one side)."""

    charge_ids: tuple[str, ...]
    receipt_ids: tuple[str, ...]
    score: float
    status: MatchStatus
    reasons: tuple[str, ...]
    signals: SignalBreakdown
    threshold_version: str

    @property
    def explanation(self) -> str:
        return "; ".join(self.reasons)

    @property
    def is_split(self) -> bool:
        return len(self.charge_ids) > 1 or len(self.receipt_ids) > 1

    def pairs(self) -> list[tuple[str, str]]:
        return [(c, r) for c in self.charge_ids for r in self.receipt_ids]


IntArray = npt.NDArray[np.int64]


def _int_array(values: Iterable[int], dtype: type[np.integer[Any]]) -> npt.NDArray[Any]:
    return np.fromiter(values, dtype=dtype)


@dataclass
class ChargeTable:
    """Charges column-wise. Days are `day_number`s; ``mcc`` 0 is unknown; absent original
    amounts are 0 with an empty ``original_currency``; ``card_last4`` '' is unknown."""

    charge_id: Sequence[str]
    card_last4: Sequence[str]
    cardholder: Sequence[str]
    transaction_day: npt.NDArray[np.int32]
    merchant: Sequence[str]
    mcc: npt.NDArray[np.int32]
    amount_minor: IntArray
    currency: Sequence[str]
    original_amount_minor: IntArray
    original_currency: Sequence[str]
    posting_day: npt.NDArray[np.int32] | None = None

    def __post_init__(self) -> None:
        n = len(self.charge_id)
        columns = (
            self.card_last4,
            self.cardholder,
            self.transaction_day,
            self.merchant,
            self.mcc,
            self.amount_minor,
            self.currency,
            self.original_amount_minor,
            self.original_currency,
        )
        if any(len(col) != n for col in columns):
            raise ValueError("every charge column must have one value per charge")

    def __len__(self) -> int:
        return len(self.charge_id)

    def view(self, row: int) -> ChargeView:
        original = int(self.original_amount_minor[row])
        posting = self.posting_day if self.posting_day is not None else self.transaction_day
        return ChargeView(
            charge_id=self.charge_id[row],
            card_last4=self.card_last4[row],
            cardholder=self.cardholder[row],
            transaction_date=from_day_number(self.transaction_day[row]),
            posting_date=from_day_number(posting[row]),
            merchant=self.merchant[row],
            mcc=int(self.mcc[row]) or None,
            amount_minor=int(self.amount_minor[row]),
            currency=self.currency[row],
            original_amount_minor=original if self.original_currency[row] else None,
            original_currency=self.original_currency[row] or None,
        )

    @classmethod
    def from_views(cls, charges: Sequence[ChargeView]) -> ChargeTable:
        return cls(
            charge_id=[c.charge_id for c in charges],
            card_last4=[c.card_last4 or "" for c in charges],
            cardholder=[c.cardholder for c in charges],
            transaction_day=_int_array((day_number(c.transaction_date) for c in charges), np.int32),
            posting_day=_int_array((day_number(c.posting_date) for c in charges), np.int32),
            merchant=[c.merchant for c in charges],
            mcc=_int_array((c.mcc or 0 for c in charges), np.int32),
            amount_minor=_int_array((c.amount_minor for c in charges), np.int64),
            currency=[c.currency for c in charges],
            original_amount_minor=_int_array(
                (c.original_amount_minor or 0 for c in charges), np.int64
            ),
            original_currency=[
                (c.original_currency or "") if c.original_amount_minor is not None else ""
                for c in charges
            ],
        )


@dataclass
class ReceiptTable:
    """Receipts column-wise. ``tip_minor`` 0 is no tip line; ``company_card`` is 1 (paid with
    the company card), 0 (paid personally: never matched to a charge) or -1 (unknown)."""

    receipt_id: Sequence[str]
    submitter: Sequence[str]
    merchant: Sequence[str]
    day: npt.NDArray[np.int32]
    total_minor: IntArray
    currency: Sequence[str]
    card_last4: Sequence[str]
    tip_minor: IntArray
    company_card: npt.NDArray[np.int8] = field(default_factory=lambda: np.zeros(0, np.int8))

    def __post_init__(self) -> None:
        n = len(self.receipt_id)
        if len(self.company_card) == 0 and n:
            self.company_card = np.full(n, -1, np.int8)
        columns = (
            self.submitter,
            self.merchant,
            self.day,
            self.total_minor,
            self.currency,
            self.card_last4,
            self.tip_minor,
            self.company_card,
        )
        if any(len(col) != n for col in columns):
            raise ValueError("every receipt column must have one value per receipt")

    def __len__(self) -> int:
        return len(self.receipt_id)

    def view(self, row: int) -> ReceiptView:
        flag = int(self.company_card[row])
        return ReceiptView(
            receipt_id=self.receipt_id[row],
            submitter=self.submitter[row],
            merchant=self.merchant[row],
            date=from_day_number(self.day[row]),
            total_minor=int(self.total_minor[row]),
            currency=self.currency[row],
            card_last4=self.card_last4[row] or None,
            tip_minor=int(self.tip_minor[row]) or None,
            paid_with_company_card=None if flag < 0 else bool(flag),
        )

    @classmethod
    def from_views(cls, receipts: Sequence[ReceiptView]) -> ReceiptTable:
        def company(flag: bool | None) -> int:
            return -1 if flag is None else int(flag)

        return cls(
            receipt_id=[r.receipt_id for r in receipts],
            submitter=[r.submitter for r in receipts],
            merchant=[r.merchant for r in receipts],
            day=_int_array((day_number(r.date) for r in receipts), np.int32),
            total_minor=_int_array((r.total_minor for r in receipts), np.int64),
            currency=[r.currency for r in receipts],
            card_last4=[r.card_last4 or "" for r in receipts],
            tip_minor=_int_array((r.tip_minor or 0 for r in receipts), np.int64),
            company_card=_int_array((company(r.paid_with_company_card) for r in receipts), np.int8),
        )
