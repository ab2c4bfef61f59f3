"""American Express Global Data File, daily transactions (GL1025): fixed-width records.

Record types (first character): ``0`` file header (names the report, GL1025),
``8`` market header and summary, ``1`` transaction detail, ``2`` card member
summary, ``9`` file trailer. A file must open with the header and end with the
trailer, so a truncated file is refused. Positions below are the specification's
(1-based start, length). Fixed positions count bytes, so the file is read as
Latin-1, which maps every byte to one character.

The merchant kept is *Charge Description Line 1*, the descriptor printed on
the statement; the service establishment's name is the fallback when it is
blank.
"""

from __future__ import annotations

from decimal import Decimal

from seisan_cards.adapters.statements.common import (
    ChargeLine,
    assemble,
    clean_text,
    currency_from_numeric,
    digits_amount,
    is_digits,
    parse_date,
    reject,
    shown,
)
from seisan_cards.adapters.statements.pan import last4_of_account, redact_pans
from seisan_cards.domain.charges import ParsedStatement, StatementFormat
from seisan_shared.money import Money, MoneyError, from_decimal

HEADER, MARKET, DETAIL, CARD_MEMBER_SUMMARY, TRAILER = "0", "8", "1", "2", "9"

FIELDS = {
    "billing_account_number": (208, 20),
    "last_name": (228, 30),
    "first_name": (258, 20),
    "middle_name": (278, 20),
    "billing_date": (574, 8),
    "charge_date": (589, 10),
    "transaction_id": (632, 50),
    "sign_indicator": (737, 1),
    "billed_amount": (738, 15),
    "billed_decimal_place_indicator": (769, 1),
    "billed_currency_code": (770, 3),
    "local_charge_amount": (812, 15),
    "local_currency_code": (859, 3),
    "charge_description_line_1": (947, 45),
    "merchant_category_code": (1678, 4),
    "service_establishment_name_1": (1914, 40),
}
_MIN_DETAIL_LENGTH = 946 + 45
_REPORT = (28, 6)


def _slice(line: str, name: str) -> str:
    start, length = FIELDS[name]
    return line[start - 1 : start - 1 + length]


def looks_like(text: str) -> bool:
    first = text.split("\n", 1)[0]
    start, length = _REPORT
    return first.startswith(HEADER) and first[start - 1 : start - 1 + length] == "GL1025"


def parse(data: bytes) -> ParsedStatement:
    text = data.decode("latin-1")
    records = [
        (n, line.rstrip("\r")) for n, line in enumerate(text.split("\n"), start=1) if line.strip()
    ]
    if not records or not looks_like(records[0][1]):
        raise reject("the file does not open with a GL1025 file header (record type 0)", line=1)
    last_line, last = records[-1]
    if last[:1] != TRAILER:
        raise reject(
            "the file does not end with a file trailer (record type 9) (truncated file?)",
            line=last_line,
        )
    lines = []
    for n, record in records[1:-1]:
        kind = record[:1]
        if kind == DETAIL:
            lines.append(_charge(n, record))
        elif kind in (MARKET, CARD_MEMBER_SUMMARY):
            continue
        elif kind in (HEADER, TRAILER):
            raise reject(f"a second file {'header' if kind == HEADER else 'trailer'}", line=n)
        else:
            raise reject(f"unknown record type {shown(kind)}", line=n, field="record_type")
    return assemble(StatementFormat.AMEX_GL1025, data, lines, id_field="transaction_id")


def _charge(n: int, record: str) -> ChargeLine:
    if len(record) < _MIN_DETAIL_LENGTH:
        raise reject(
            f"transaction record is {len(record)} characters long, at least"
            f" {_MIN_DETAIL_LENGTH} are needed",
            line=n,
        )

    def field(name: str) -> str:
        return _slice(record, name)

    last4 = last4_of_account(field("billing_account_number"))
    if last4 is None:
        raise reject(
            "the account number does not end in four digits",
            line=n,
            field="billing_account_number",
        )
    raw_posting = field("billing_date").strip()
    posting_date = (
        parse_date(raw_posting, "%Y%m%d", line=n, field="billing_date") if raw_posting else None
    )
    transaction_date = parse_date(field("charge_date"), "%Y-%m-%d", line=n, field="charge_date")

    sign_text = field("sign_indicator")
    if sign_text not in ("+", "-"):
        raise reject(f"{shown(sign_text)} is neither + nor -", line=n, field="sign_indicator")
    sign = 1 if sign_text == "+" else -1
    currency = currency_from_numeric(
        field("billed_currency_code"), line=n, field="billed_currency_code"
    )
    decimals_text = field("billed_decimal_place_indicator").strip()
    if not is_digits(decimals_text):
        raise reject(
            f"{shown(decimals_text)} is not a number of decimal places",
            line=n,
            field="billed_decimal_place_indicator",
        )
    billed = digits_amount(field("billed_amount"), line=n, field="billed_amount")
    amount = Money(
        sign * _exact(billed, int(decimals_text), currency, n, "billed_amount"), currency
    )

    original = None
    local_currency_raw = field("local_currency_code")
    local_raw = field("local_charge_amount")
    if local_currency_raw.strip().strip("0") and local_raw.strip().strip("0"):
        local_currency = currency_from_numeric(
            local_currency_raw, line=n, field="local_currency_code"
        )
        if local_currency != currency:
            local = digits_amount(local_raw, line=n, field="local_charge_amount")
            # The local amount carries its own currency's decimals (ISO 4217 exponent).
            original = Money(sign * local, local_currency)

    merchant = clean_text(field("charge_description_line_1")) or clean_text(
        field("service_establishment_name_1")
    )
    mcc = field("merchant_category_code").strip()
    if mcc and not (len(mcc) == 4 and is_digits(mcc)):
        raise reject(
            f"{shown(mcc)} is not a merchant category code", line=n, field="merchant_category_code"
        )
    name = " ".join(
        part.strip()
        for part in (field("first_name"), field("middle_name"), field("last_name"))
        if part.strip()
    )
    transaction_id = redact_pans(field("transaction_id").strip())
    return ChargeLine(
        line=n,
        feed_transaction_id=(
            f"{StatementFormat.AMEX_GL1025.value}:{transaction_id}" if transaction_id else ""
        ),
        card_last4=last4,
        cardholder=clean_text(name),
        transaction_date=transaction_date,
        posting_date=posting_date,
        merchant=merchant,
        mcc=mcc,
        amount=amount,
        original_amount=original,
    )


def _exact(raw: int, decimals: int, currency: str, line: int, field: str) -> int:
    try:
        return from_decimal(Decimal(raw).scaleb(-decimals), currency)
    except MoneyError as err:
        raise reject(str(err), line=line, field=field) from None
