"""Card charges as the reconciliation domain sees them, and the statement that carries them.

Invariants that money depends on:

* ``CardCharge.amount`` is exact (integer minor units): a charge is positive, a
  credit or refund is negative, so a statement's total per currency is the plain sum.
* ``card_last4`` is exactly four digits. No field of a charge or a statement ever
  holds a full card number (PAN); the adapters keep the last four digits and
  redact PANs from every free-text field before a value reaches this module.
* Identifiers are deterministic: the same file parsed twice yields the same
  ``statement_id``, ``issuer_transaction_id`` and ``charge_id`` values, which is
  what makes an import idempotent.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from seisan_cards.domain.errors import CardsError
from seisan_shared.errors import InvalidArgument
from seisan_shared.money import Money


class StatementFormat(StrEnum):
    GENERIC_CSV = "generic_csv"
    OFX = "ofx"
    VISA_VCF = "visa_vcf"
    MASTERCARD_CDF = "mastercard_cdf"
    AMEX_GL1025 = "amex_gl1025"
    DINERS_S3DF = "diners_s3df"
    STRIPE_ISSUING = "stripe_issuing"


class StatementRejected(CardsError, InvalidArgument):
    """A statement (or feed event) that cannot be imported whole.

    ``str(err)`` names the line and field, e.g.
    ``line 7, field amount: '12.3.4' is not an amount``. The adapters redact
    card numbers from the message before raising.
    """

    def __init__(self, reason: str, *, line: int | None = None, field: str | None = None):
        self.reason = reason
        self.line = line
        self.field = field
        where = []
        if line is not None:
            where.append(f"line {line}")
        if field is not None:
            where.append(f"field {field}")
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


_LAST4 = re.compile(r"[0-9]{4}")
_MCC = re.compile(r"([0-9]{4})?")


@dataclass(frozen=True)
class CardCharge:
    """One line of a card statement: a charge (positive) or a credit (negative)."""

    charge_id: str
    issuer_transaction_id: str
    card_last4: str
    cardholder: str
    transaction_date: date
    posting_date: date | None
    merchant: str
    mcc: str
    amount: Money
    original_amount: Money | None
    source_format: StatementFormat
    source_line: int

    def __post_init__(self) -> None:
        if not self.charge_id or not self.issuer_transaction_id:
            raise ValueError("a charge needs a charge_id and an issuer_transaction_id")
        if not _LAST4.fullmatch(self.card_last4):
            raise ValueError("card_last4 must be exactly four digits")
        if not _MCC.fullmatch(self.mcc):
            raise ValueError("mcc must be empty or four digits")
        if not isinstance(self.amount, Money):
            raise TypeError("amount must be Money")
        if self.original_amount is not None:
            if not isinstance(self.original_amount, Money):
                raise TypeError("original_amount must be Money or None")
            if self.original_amount.currency == self.amount.currency:
                raise ValueError("original_amount is only for a charge in another currency")
        if self.source_line < 0:
            raise ValueError("source_line must not be negative")

    @property
    def is_credit(self) -> bool:
        return self.amount.minor_units < 0


@dataclass(frozen=True)
class ParsedStatement:
    """A whole statement file, parsed and validated; never a partial one."""

    format: StatementFormat
    statement_id: str
    card_last4s: tuple[str, ...]
    period_start: date | None
    period_end: date | None
    charges: tuple[CardCharge, ...]
    total: Mapping[str, int] = field(hash=False)

    def __post_init__(self) -> None:
        if dict(self.total) != statement_total(self.charges):
            raise ValueError("statement total must equal the sum of its charges per currency")

    @classmethod
    def of(
        cls,
        fmt: StatementFormat,
        statement_id: str,
        charges: Iterable[CardCharge],
        period: tuple[date | None, date | None] = (None, None),
    ) -> ParsedStatement:
        """Build a statement; the period defaults to the charges' transaction dates."""
        items = tuple(charges)
        start, end = period
        if start is None and items:
            start = min(c.transaction_date for c in items)
        if end is None and items:
            end = max(c.transaction_date for c in items)
        return cls(
            format=fmt,
            statement_id=statement_id,
            card_last4s=tuple(sorted({c.card_last4 for c in items})),
            period_start=start,
            period_end=end,
            charges=items,
            total=statement_total(items),
        )


def statement_total(charges: Iterable[CardCharge]) -> dict[str, int]:
    """Sum of amounts per currency, in minor units (credits count negative)."""
    totals: dict[str, int] = {}
    for charge in charges:
        currency = charge.amount.currency
        totals[currency] = totals.get(currency, 0) + charge.amount.minor_units
    return dict(sorted(totals.items()))


def _b32(raw: bytes) -> str:
    # Base32 rather than hex: a hex digest now and then holds 13+ digits that pass Luhn,
    # which a PAN scanner (ours, or a log pipeline's) would flag or mangle.
    return base64.b32encode(raw).decode("ascii").rstrip("=").lower()[:26]


def _digest(*parts: object) -> str:
    text = "\x1f".join(str(p) for p in parts)
    return _b32(hashlib.sha256(text.encode("utf-8")).digest())


def statement_id_for(data: bytes) -> str:
    """The statement's id: a hash of the file's bytes, so a re-import is recognised."""
    return "st_" + _b32(hashlib.sha256(data).digest())


def charge_id_for(issuer_transaction_id: str) -> str:
    """A charge's id, derived from its dedup key so that it is the same on every import."""
    return "ch_" + _digest("charge", issuer_transaction_id)


def fallback_transaction_id(
    fmt: StatementFormat,
    card_last4: str,
    transaction_date: date,
    posting_date: date | None,
    amount: Money,
    merchant: str,
    occurrence: int,
) -> str:
    """Dedup key for a feed line that carries no transaction id of its own.

    ``occurrence`` counts earlier lines of the same file with the same key, so two
    identical coffees on one day stay two charges, and re-importing the file
    yields the same keys again.
    """
    digest = _digest(
        fmt.value,
        card_last4,
        transaction_date.isoformat(),
        posting_date.isoformat() if posting_date else "",
        amount.minor_units,
        amount.currency,
        merchant,
        occurrence,
    )
    return f"{fmt.value}:h:{digest}"
