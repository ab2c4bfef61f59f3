"""Generic CSV card statement.

One charge per row, with this header row first (the columns may come in any
order; every one must be present and no other)::

    charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,currency,original_amount,original_currency

Encoding and quoting
    UTF-8, with or without a byte-order mark. Quoting per RFC 4180: a field
    holding a comma, a double quote or a line break is enclosed in double
    quotes, and a double quote inside it is doubled (``"ACME ""West"", Inc"``).
    Lines may end in CRLF or LF. Blank lines are ignored.

Columns
    ``charge_id``
        The issuer's id of the charge, unique within the file; it is the dedup
        key, so importing a row whose id was already imported creates nothing.
        May be left empty: the charge then gets an id derived from its card,
        dates, amount, merchant and its position among identical rows of the
        file, which is the same every time the same file is imported.
    ``card_last4``
        The last four digits of the card, e.g. ``0123`` (quote it if a
        spreadsheet would drop the leading zero). A masked number
        (``************0123``) is accepted. A full card number is accepted and
        reduced to its last four digits at once: it is never stored or logged.
        Anything else with more or fewer digits is refused.
    ``cardholder``
        Name of the person holding the card (may be empty).
    ``transaction_date``
        Date of the purchase, ISO 8601 ``YYYY-MM-DD``. Required.
    ``posting_date``
        Date the issuer posted it, ``YYYY-MM-DD``, or empty.
    ``merchant``
        The merchant descriptor as printed on the statement
        (``SQ *BLUE BOTTLE``). Required.
    ``mcc``
        Merchant category code, four digits, or empty.
    ``amount``
        The amount billed, in major units as printed, in ``currency``: ``1112``
        for JPY, ``10.59`` for USD, ``1.234`` for BHD. No more decimals than
        the currency has. A charge is positive; a credit or refund is negative
        (``-10.59``).
    ``currency``
        ISO 4217 code of ``amount`` (``JPY``, ``USD``).
    ``original_amount``, ``original_currency``
        Both empty unless the charge was made in a foreign currency; then the
        amount and ISO code as charged by the merchant (``48.33``, ``USD``
        for a CAD card), with the same sign as ``amount``.

Example::

    charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,currency,original_amount,original_currency
    tx-1001,4242,Hanako Sato,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,
    tx-1002,4242,Hanako Sato,2026-11-05,2026-11-06,"AMZN Mktp US, Inc",5942,1598,JPY,10.59,USD
    tx-1003,4242,Hanako Sato,2026-11-07,,STARBUCKS 1234,5814,-480,JPY,,

A file is imported whole or not at all: the first bad row refuses the file,
naming its line (the header is line 1) and column, e.g.
``line 7, field amount: '12.3.4' is not an amount in USD``.
"""

from __future__ import annotations

import csv
import io
import re

from seisan_cards.adapters.statements.common import (
    ChargeLine,
    assemble,
    clean_text,
    currency_from_alpha,
    is_digits,
    line_of_offset,
    parse_date,
    printed_amount,
    reject,
    shown,
)
from seisan_cards.adapters.statements.pan import is_pan, last4_of_account
from seisan_cards.domain.charges import ParsedStatement, StatementFormat
from seisan_shared.money import Money

COLUMNS = (
    "charge_id",
    "card_last4",
    "cardholder",
    "transaction_date",
    "posting_date",
    "merchant",
    "mcc",
    "amount",
    "currency",
    "original_amount",
    "original_currency",
)

_ISO_DATE = "%Y-%m-%d"
_CHARGE_ID = re.compile(r"[\x21-\x7e]{1,128}")
_MAX_FIELD = 1024


def looks_like(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0].strip().lower()
    names = {name.strip().strip('"') for name in first.split(",")}
    return {"card_last4", "transaction_date", "amount", "currency"} <= names


def parse(data: bytes) -> ParsedStatement:
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise reject("not valid UTF-8 text", line=line_of_offset(data, err.start)) from None
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows = []
    line = 1
    try:
        for row in reader:
            rows.append((line, row))
            line = reader.line_num + 1
    except csv.Error as err:
        raise reject(f"not valid CSV ({err})", line=reader.line_num or line) from None
    rows = [(n, row) for n, row in rows if any(cell.strip() for cell in row)]
    if not rows:
        raise reject("the file is empty; a header row is required", line=1)
    header_line, header = rows[0]
    index = _header_index(header, header_line)
    lines = [_charge_line(n, row, index) for n, row in rows[1:]]
    return assemble(StatementFormat.GENERIC_CSV, data, lines, id_field="charge_id")


def _header_index(header: list[str], line: int) -> dict[str, int]:
    names = [name.strip().lower() for name in header]
    unknown = [n for n in names if n not in COLUMNS]
    if unknown:
        raise reject(f"unknown column {shown(unknown[0])}", line=line, field="header")
    missing = [c for c in COLUMNS if c not in names]
    if missing:
        raise reject(f"missing column {missing[0]!r}", line=line, field="header")
    repeated = [n for n in COLUMNS if names.count(n) > 1]
    if repeated:
        raise reject(f"column {repeated[0]!r} appears twice", line=line, field="header")
    return {name: names.index(name) for name in COLUMNS}


def _charge_line(line: int, row: list[str], index: dict[str, int]) -> ChargeLine:
    if len(row) != len(COLUMNS):
        raise reject(f"expected {len(COLUMNS)} fields, found {len(row)}", line=line)
    cell = {name: row[i] for name, i in index.items()}
    for name, value in cell.items():
        if len(value) > _MAX_FIELD:
            raise reject(f"longer than {_MAX_FIELD} characters", line=line, field=name)

    charge_id = cell["charge_id"].strip()
    if charge_id and (not _CHARGE_ID.fullmatch(charge_id) or is_pan(charge_id)):
        raise reject(
            f"{shown(charge_id)} is not an id (1-128 printable characters, no spaces)",
            line=line,
            field="charge_id",
        )

    currency = _required(cell, "currency", line)
    currency = currency_from_alpha(currency, line=line, field="currency")
    amount = Money(
        printed_amount(_required(cell, "amount", line), currency, line=line, field="amount"),
        currency,
    )
    transaction_date = parse_date(
        _required(cell, "transaction_date", line), _ISO_DATE, line=line, field="transaction_date"
    )
    posting = cell["posting_date"].strip()
    posting_date = (
        parse_date(posting, _ISO_DATE, line=line, field="posting_date") if posting else None
    )
    merchant = clean_text(_required(cell, "merchant", line))
    mcc = cell["mcc"].strip()
    if mcc and not re.fullmatch(r"[0-9]{4}", mcc):
        raise reject(
            f"{shown(mcc)} is not a merchant category code (4 digits)", line=line, field="mcc"
        )

    return ChargeLine(
        line=line,
        feed_transaction_id=f"{StatementFormat.GENERIC_CSV.value}:{charge_id}" if charge_id else "",
        charge_id=charge_id,
        card_last4=_card_last4(cell["card_last4"], line),
        cardholder=clean_text(cell["cardholder"]),
        transaction_date=transaction_date,
        posting_date=posting_date,
        merchant=merchant,
        mcc=mcc,
        amount=amount,
        original_amount=_original_amount(cell, amount, line),
    )


def _required(cell: dict[str, str], name: str, line: int) -> str:
    value = cell[name].strip()
    if not value:
        raise reject("required, but empty", line=line, field=name)
    return value


def _card_last4(raw: str, line: int) -> str:
    """Last four digits; a full card number is reduced to them, anything else is refused.

    The value itself never appears in the error: a near-miss card number (one
    mistyped digit) must not end up in a log either.
    """
    value = raw.strip()
    if re.fullmatch(r"[0-9]{4}", value):
        return value
    compact = re.sub(r"[ -]", "", value)
    if is_digits(compact):
        if is_pan(compact):
            return compact[-4:]
        raise reject(
            f"expected the last 4 digits of the card, got {len(compact)} digits"
            " that are not a card number",
            line=line,
            field="card_last4",
        )
    masked = last4_of_account(value)
    if masked is not None:
        return masked
    raise reject(
        "expected the last 4 digits of the card (or a masked card number)",
        line=line,
        field="card_last4",
    )


def _original_amount(cell: dict[str, str], amount: Money, line: int) -> Money | None:
    raw_amount = cell["original_amount"].strip()
    raw_currency = cell["original_currency"].strip()
    if not raw_amount and not raw_currency:
        return None
    if not raw_amount:
        raise reject("required when original_currency is given", line=line, field="original_amount")
    if not raw_currency:
        raise reject("required when original_amount is given", line=line, field="original_currency")
    currency = currency_from_alpha(raw_currency, line=line, field="original_currency")
    minor = printed_amount(raw_amount, currency, line=line, field="original_amount")
    if currency == amount.currency:
        if minor != amount.minor_units:
            raise reject(
                "same currency as amount but a different value; leave original_* empty"
                " for a charge made in the card's currency",
                line=line,
                field="original_amount",
            )
        return None
    if (minor < 0) != (amount.minor_units < 0) and minor != 0 and amount.minor_units != 0:
        raise reject("must have the same sign as amount", line=line, field="original_amount")
    return Money(minor, currency)
