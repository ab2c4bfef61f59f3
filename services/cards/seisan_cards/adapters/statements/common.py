"""What every statement parser shares: refusing a file, ISO 4217 numeric codes, dates,
and assembling charges into one statement with deterministic, duplicate-free ids."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from functools import lru_cache

from seisan_cards.adapters.statements.pan import redact_pans
from seisan_cards.domain.charges import (
    CardCharge,
    ParsedStatement,
    StatementFormat,
    StatementRejected,
    charge_id_for,
    fallback_transaction_id,
    statement_id_for,
)
from seisan_shared.money import EXPONENTS, Money, MoneyError, parse_minor_units

_SHOWN_CHARS = 40


def reject(reason: str, *, line: int | None = None, field: str | None = None) -> StatementRejected:
    """A StatementRejected whose message carries no card number."""
    return StatementRejected(redact_pans(reason), line=line, field=field)


def shown(value: str) -> str:
    """A raw value as it may appear in an error message: PANs redacted, length capped."""
    text = redact_pans(value)
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    return repr(text)


def is_digits(text: str) -> bool:
    """ASCII digits only (``str.isdigit`` also takes "１２" and "²")."""
    return text.isascii() and text.isdigit()


def clean_text(value: str) -> str:
    """A free-text field as kept: PANs redacted, runs of white space folded."""
    return " ".join(redact_pans(value).split())


# ISO 4217 numeric codes of the currencies seisan_shared.money knows.
NUMERIC_CURRENCIES: dict[str, str] = {
    "392": "JPY", "410": "KRW", "704": "VND", "152": "CLP", "352": "ISK", "600": "PYG",
    "800": "UGX", "950": "XAF", "952": "XOF", "953": "XPF", "174": "KMF", "324": "GNF",
    "646": "RWF", "548": "VUV", "262": "DJF", "048": "BHD", "414": "KWD", "512": "OMR",
    "400": "JOD", "788": "TND", "434": "LYD", "368": "IQD", "840": "USD", "978": "EUR",
    "826": "GBP", "756": "CHF", "124": "CAD", "036": "AUD", "554": "NZD", "702": "SGD",
    "344": "HKD", "156": "CNY", "901": "TWD", "458": "MYR", "764": "THB", "360": "IDR",
    "608": "PHP", "356": "INR", "752": "SEK", "578": "NOK", "208": "DKK", "985": "PLN",
    "203": "CZK", "348": "HUF", "484": "MXN", "986": "BRL", "710": "ZAR", "784": "AED",
    "682": "SAR", "376": "ILS", "949": "TRY", "643": "RUB", "032": "ARS", "170": "COP",
    "604": "PEN", "818": "EGP", "566": "NGN", "404": "KES", "586": "PKR", "050": "BDT",
    "144": "LKR",
}  # fmt: skip


def currency_from_numeric(raw: str, *, line: int | None, field: str) -> str:
    code = raw.strip()
    if not is_digits(code):
        raise reject(
            f"{shown(raw)} is not an ISO 4217 numeric currency code", line=line, field=field
        )
    code = code.lstrip("0").zfill(3)
    try:
        return NUMERIC_CURRENCIES[code]
    except KeyError:
        raise reject(
            f"unknown or unsupported currency code {code}", line=line, field=field
        ) from None


def currency_from_alpha(raw: str, *, line: int | None, field: str) -> str:
    code = raw.strip().upper()
    if code not in EXPONENTS:
        raise reject(f"unknown or unsupported currency {shown(raw)}", line=line, field=field)
    return code


@lru_cache(maxsize=16)
def _date_layout(pattern: str) -> tuple[re.Pattern[str], str]:
    regex = re.escape(pattern)
    for code, group in (
        ("%Y", r"(?P<Y>[0-9]{4})"),
        ("%m", r"(?P<m>[0-9]{2})"),
        ("%d", r"(?P<d>[0-9]{2})"),
    ):
        regex = regex.replace(re.escape(code), group)
    layout = pattern.replace("%Y", "YYYY").replace("%m", "MM").replace("%d", "DD")
    return re.compile(regex), layout


def parse_date(raw: str, pattern: str, *, line: int | None, field: str) -> date:
    """A date in a fixed layout (``%Y-%m-%d``, ``%m%d%Y``...); anything else is refused."""
    regex, layout = _date_layout(pattern)
    match = regex.fullmatch(raw.strip())
    if match:
        try:
            return date(int(match["Y"]), int(match["m"]), int(match["d"]))
        except ValueError:
            pass
    raise reject(f"{shown(raw)} is not a date ({layout})", line=line, field=field)


def digits_amount(raw: str, *, line: int | None, field: str) -> int:
    """An unsigned, digits-only number: an amount in minor units (implied decimals), a count."""
    text = raw.strip()
    if not is_digits(text):
        raise reject(f"{shown(raw)} is not an amount", line=line, field=field)
    return int(text)


_PLAIN_AMOUNT = re.compile(r"(-?)([0-9]{1,18})(?:\.([0-9]{1,3}))?")


def printed_amount(raw: str, currency: str, *, line: int | None, field: str) -> int:
    """A signed amount printed in major units ("10.59", "-1112") in minor units."""
    plain = _PLAIN_AMOUNT.fullmatch(raw)
    exp = EXPONENTS.get(currency)
    if plain and exp is not None and len(plain[3] or "") <= exp:
        # The common case, without the symbol and separator handling of parse_minor_units.
        minor = int(plain[2] + (plain[3] or "").ljust(exp, "0"))
        return -minor if plain[1] else minor
    try:
        return parse_minor_units(raw, currency)
    except MoneyError:
        raise reject(
            f"{shown(raw)} is not an amount in {currency}", line=line, field=field
        ) from None


@dataclass(frozen=True)
class ChargeLine:
    """A parsed line before ids are assigned: everything a CardCharge holds but its ids."""

    line: int
    feed_transaction_id: str  # "" when the feed gives none; already namespaced otherwise
    card_last4: str
    cardholder: str
    transaction_date: date
    posting_date: date | None
    merchant: str
    mcc: str
    amount: Money
    original_amount: Money | None
    charge_id: str = ""  # a charge id the file itself names (generic CSV), else derived


def assemble(
    fmt: StatementFormat,
    data: bytes,
    lines: Iterable[ChargeLine],
    *,
    period: tuple[date | None, date | None] = (None, None),
    id_field: str = "transaction_id",
) -> ParsedStatement:
    """Give each line its ids, refuse duplicates within the file, and build the statement."""
    occurrences: dict[tuple[object, ...], int] = {}
    seen_ids: dict[str, int] = {}
    seen_charge_ids: dict[str, int] = {}
    charges = []
    for item in lines:
        issuer_id = item.feed_transaction_id
        if not issuer_id:
            key = (
                item.card_last4,
                item.transaction_date,
                item.posting_date,
                item.amount,
                item.merchant,
            )
            occurrence = occurrences.get(key, 0)
            occurrences[key] = occurrence + 1
            issuer_id = fallback_transaction_id(
                fmt,
                item.card_last4,
                item.transaction_date,
                item.posting_date,
                item.amount,
                item.merchant,
                occurrence,
            )
        if issuer_id in seen_ids:
            raise reject(
                f"transaction id repeats line {seen_ids[issuer_id]}", line=item.line, field=id_field
            )
        seen_ids[issuer_id] = item.line
        charge_id = item.charge_id or charge_id_for(issuer_id)
        if charge_id in seen_charge_ids:
            raise reject(
                f"charge id repeats line {seen_charge_ids[charge_id]}",
                line=item.line,
                field="charge_id",
            )
        seen_charge_ids[charge_id] = item.line
        charges.append(
            CardCharge(
                charge_id=charge_id,
                issuer_transaction_id=issuer_id,
                card_last4=item.card_last4,
                cardholder=item.cardholder,
                transaction_date=item.transaction_date,
                posting_date=item.posting_date,
                merchant=item.merchant,
                mcc=item.mcc,
                amount=item.amount,
                original_amount=item.original_amount,
                source_format=fmt,
                source_line=item.line,
            )
        )
    return ParsedStatement.of(fmt, statement_id_for(data), charges, period)


def decode_utf8_or_latin1(data: bytes) -> str:
    """Text of a feed whose spec says ASCII: UTF-8 when it is, else byte-for-byte Latin-1."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def line_of_offset(data: bytes | str, offset: int) -> int:
    newline: bytes | str = b"\n" if isinstance(data, bytes) else "\n"
    return data.count(newline, 0, offset) + 1  # type: ignore[arg-type]
