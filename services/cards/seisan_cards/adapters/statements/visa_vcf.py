"""Visa Commercial Format (VCF) 4.0: tab-separated records grouped in blocks.

A file is ``6`` (file header), then blocks, each ``8`` (block header naming the
record type of the block), detail records, ``9`` (block trailer with the
block's record count), then ``7`` (file trailer). The file
header and trailer are optional here (extracts split by block omit them); the
blocks must be complete, and a card-transaction block must hold as many records
as its trailer counts, so a truncated or spliced file is refused.

Blocks read: 05 card transactions; 03 card accounts and 04 cardholders (to
name the holder of each card); 11 periods (the statement period). Others are
checked for structure and skipped. Amounts carry the implied decimals of their
currency (ISO 4217 exponent), so ``0000000000008998`` in EUR is 89.98 and in
JPY 8998.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from seisan_cards.adapters.statements.common import (
    ChargeLine,
    assemble,
    clean_text,
    currency_from_numeric,
    decode_utf8_or_latin1,
    digits_amount,
    is_digits,
    parse_date,
    reject,
    shown,
)
from seisan_cards.adapters.statements.pan import last4_of_account, redact_pans
from seisan_cards.domain.charges import ParsedStatement, StatementFormat
from seisan_shared.money import Money

FILE_HEADER, FILE_TRAILER, BLOCK_HEADER, BLOCK_TRAILER = "6", "7", "8", "9"
DETAIL_CODES = {"1", "2", "4"}  # add, change, add-or-change
DELETE_CODE = "3"

CARD_ACCOUNT, CARDHOLDER, CARD_TRANSACTION, PERIOD = 3, 4, 5, 11

# Transaction type codes that reduce the balance (credits); the others listed are charges.
CREDIT_TYPES = {"11", "30", "31", "61", "63", "65", "71", "73"}
DEBIT_TYPES = {"10", "20", "22", "40", "50", "52", "54", "56", "62", "64", "66", "80", "82"}
DEBIT_TYPES |= {"84", "86", "88"}

_DATE = "%m%d%Y"
_VERSION_FIELD = 7

# T05 card transaction fields (0-based).
T05 = {
    "account_number": 1,
    "posting_date": 2,
    "transaction_reference_number": 3,
    "sequence_number": 4,
    "period": 5,
    "supplier_name": 8,
    "source_amount": 13,
    "billing_amount": 14,
    "source_currency_code": 15,
    "merchant_category_code": 16,
    "transaction_type_code": 17,
    "transaction_date": 18,
    "billing_currency_code": 19,
}
_T05_MIN_FIELDS = max(T05.values()) + 1


@dataclass(frozen=True)
class Record:
    line: int
    fields: list[str]

    def get(self, index: int) -> str:
        return self.fields[index] if index < len(self.fields) else ""


Block = tuple[int, list[Record]]


def looks_like(text: str) -> bool:
    first = text.lstrip("\ufeff").split("\n", 1)[0].rstrip("\r").split("\t")
    return (
        len(first) > _VERSION_FIELD
        and first[0].strip() in (FILE_HEADER, BLOCK_HEADER)
        and first[_VERSION_FIELD].strip() == "4.0"
    )


def parse(data: bytes) -> ParsedStatement:
    text = decode_utf8_or_latin1(data)
    blocks = _blocks(text)
    transactions = [r for kind, records in blocks for r in records if kind == CARD_TRANSACTION]
    holders = _cardholders(blocks)
    periods = _periods(blocks)

    lines = []
    used_periods = set()
    for record in transactions:
        lines.append(_charge(record, holders))
        used_periods.add(record.get(T05["period"]).strip())
    spans = [periods[p] for p in sorted(used_periods) if p in periods]
    period = (
        min((s for s, _ in spans), default=None),
        max((e for _, e in spans), default=None),
    )
    return assemble(
        StatementFormat.VISA_VCF, data, lines, period=period, id_field="sequence_number"
    )


def _blocks(text: str) -> list[Block]:
    """(block record type, detail records) for every block, structure checked."""
    raw_lines = text.split("\n")
    numbered = [
        Record(n, line.rstrip("\r").split("\t"))
        for n, line in enumerate(raw_lines, start=1)
        if line.strip()
    ]
    if not numbered:
        raise reject("the file is empty", line=1)
    blocks: list[Block] = []
    open_block: tuple[Record, int, list[Record]] | None = None
    for position, record in enumerate(numbered):
        code = record.get(0).strip()
        if code == FILE_HEADER:
            if position != 0:
                raise reject("file header (6) after the first record", line=record.line)
            _check_version(record)
        elif code == FILE_TRAILER:
            if position != len(numbered) - 1:
                raise reject("records after the file trailer (7)", line=record.line)
            if open_block is not None:
                raise _unclosed(open_block[0])
        elif code == BLOCK_HEADER:
            if open_block is not None:
                raise _unclosed(open_block[0])
            _check_version(record)
            open_block = (record, _block_type(record), [])
        elif code == BLOCK_TRAILER:
            if open_block is None:
                raise reject("block trailer (9) without a block header (8)", line=record.line)
            header, kind, records = open_block
            if _block_type(record) != kind:
                raise reject(
                    f"block trailer for record type {_block_type(record):02d} closes a block of"
                    f" type {kind:02d} opened on line {header.line}",
                    line=record.line,
                    field="record_type_code",
                )
            if kind == CARD_TRANSACTION:
                _check_trailer(record, records)
            blocks.append((kind, records))
            open_block = None
        elif code in DETAIL_CODES or code == DELETE_CODE:
            if open_block is None:
                raise reject("detail record outside a block", line=record.line)
            if code == DELETE_CODE and open_block[1] == CARD_TRANSACTION:
                raise reject(
                    "a delete record for a card transaction is not supported; ask the issuer"
                    " for a corrected file",
                    line=record.line,
                    field="load_transaction_code",
                )
            if code != DELETE_CODE:
                open_block[2].append(record)
        else:
            raise reject(
                f"unknown load transaction code {shown(code)}",
                line=record.line,
                field="load_transaction_code",
            )
    if open_block is not None:
        raise _unclosed(open_block[0])
    return blocks


def _unclosed(header: Record) -> Exception:
    return reject(
        "block opened here has no block trailer (9) (truncated file?)",
        line=header.line,
        field="record_type_code",
    )


def _check_version(record: Record) -> None:
    version = record.get(_VERSION_FIELD).strip()
    if version != "4.0":
        raise reject(
            f"unsupported VCF version {shown(version)}; 4.0 is read",
            line=record.line,
            field="load_file_format",
        )


def _block_type(record: Record) -> int:
    raw = record.get(4).strip()
    if not is_digits(raw):
        raise reject(
            f"{shown(raw)} is not a record type", line=record.line, field="record_type_code"
        )
    return int(raw)


def _check_trailer(trailer: Record, records: list[Record]) -> None:
    # The count guards against a truncated or spliced block. The trailer's amount total
    # is not checked: feeds in the wild (the shared samples among them) leave it zero.
    count_raw = trailer.get(5).strip()
    if count_raw:
        count = digits_amount(count_raw, line=trailer.line, field="record_count")
        if count != len(records):
            raise reject(
                f"block trailer counts {count} records, the block has {len(records)}",
                line=trailer.line,
                field="record_count",
            )


def _cardholders(blocks: list[Block]) -> dict[str, str]:
    """Account number → cardholder name, from card account (03) and cardholder (04) records."""
    names: dict[str, str] = {}
    for kind, records in blocks:
        if kind == CARDHOLDER:
            for r in records:
                name = " ".join(p for p in (r.get(4).strip(), r.get(5).strip()) if p)
                names[r.get(2).strip()] = clean_text(name)
    accounts: dict[str, str] = {}
    for kind, records in blocks:
        if kind == CARD_ACCOUNT:
            for r in records:
                holder = names.get(r.get(1).strip())
                if holder:
                    accounts[r.get(2).strip()] = holder
    return accounts


def _periods(blocks: list[Block]) -> dict[str, tuple[date, date]]:
    periods: dict[str, tuple[date, date]] = {}
    for kind, records in blocks:
        if kind == PERIOD:
            for r in records:
                start = parse_date(r.get(4), _DATE, line=r.line, field="period_open_date")
                end = parse_date(r.get(5), _DATE, line=r.line, field="period_close_date")
                periods[r.get(2).strip()] = (start, end)
    return periods


def _charge(record: Record, holders: dict[str, str]) -> ChargeLine:
    line = record.line
    if len(record.fields) < _T05_MIN_FIELDS:
        raise reject(
            f"card transaction record has {len(record.fields)} fields, expected at least"
            f" {_T05_MIN_FIELDS}",
            line=line,
        )

    def field(name: str) -> str:
        return record.get(T05[name])

    account = field("account_number").strip()
    last4 = last4_of_account(account)
    if last4 is None:
        raise reject(
            "the account number does not end in four digits", line=line, field="account_number"
        )
    posting_date = parse_date(field("posting_date"), _DATE, line=line, field="posting_date")
    source_raw = field("source_amount")
    billing_raw = field("billing_amount")
    source_minor = (
        digits_amount(source_raw, line=line, field="source_amount") if source_raw.strip() else 0
    )
    billing_minor = digits_amount(billing_raw, line=line, field="billing_amount")
    source_currency = (
        currency_from_numeric(
            field("source_currency_code"), line=line, field="source_currency_code"
        )
        if field("source_currency_code").strip().strip("0")
        else ""
    )
    mcc = field("merchant_category_code").strip()
    if mcc.strip("0") == "":
        mcc = ""
    elif not (len(mcc) == 4 and is_digits(mcc)):
        raise reject(
            f"{shown(mcc)} is not a merchant category code",
            line=line,
            field="merchant_category_code",
        )
    type_code = field("transaction_type_code").strip()
    if type_code in CREDIT_TYPES:
        sign = -1
    elif type_code in DEBIT_TYPES:
        sign = 1
    else:
        raise reject(
            f"unknown transaction type code {shown(type_code)}",
            line=line,
            field="transaction_type_code",
        )
    transaction_date = parse_date(
        field("transaction_date"), _DATE, line=line, field="transaction_date"
    )
    currency = currency_from_numeric(
        field("billing_currency_code"), line=line, field="billing_currency_code"
    )

    original = None
    if source_currency and source_currency != currency and source_minor:
        original = Money(sign * source_minor, source_currency)
    reference = redact_pans(field("transaction_reference_number").strip())
    sequence = field("sequence_number").strip()
    feed_id = (
        f"{StatementFormat.VISA_VCF.value}:{last4}:{posting_date.isoformat()}:{reference}:{sequence}"
        if sequence or reference
        else ""
    )
    return ChargeLine(
        line=line,
        feed_transaction_id=feed_id,
        card_last4=last4,
        cardholder=holders.get(account, ""),
        transaction_date=transaction_date,
        posting_date=posting_date,
        merchant=clean_text(field("supplier_name")),
        mcc=mcc,
        amount=Money(sign * billing_minor, currency),
        original_amount=original,
    )
