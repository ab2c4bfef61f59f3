"""Mastercard Common Data Format (CDF) 3.0 XML, and Diners Club S3DF, which uses the
same element layout under its own root.

Per card account (``<AccountEntity AccountNumber=...>``) each
``<FinancialTransactionEntity>`` holds a ``FinancialTransaction_5000`` (dates,
amounts, debit/credit) and a ``CardAcceptor_5001`` (merchant name and category).
Amounts are integers with an explicit ``CurrencyExponent`` attribute and are
converted exactly (a value finer than the currency's minor unit is refused).
The charge amount is the amount in the posted (account) currency; the original
currency amount is kept when it differs. The transmission trailer's debit and
credit counts and debit/credit totals, when present, must agree with the file.
"""

from __future__ import annotations

from datetime import date
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
from seisan_cards.adapters.statements.xmltree import Element, parse_xml
from seisan_cards.domain.charges import ParsedStatement, StatementFormat
from seisan_shared.money import Money, MoneyError, from_decimal

ROOTS = {
    "CDFTransmissionFile": (StatementFormat.MASTERCARD_CDF, "CDFVersionNum"),
    "DinersS3DFTransmissionFile": (StatementFormat.DINERS_S3DF, "DinersS3DFVersionNum"),
}
_ISO_DATE = "%Y-%m-%d"


def looks_like(data: bytes) -> StatementFormat | None:
    head = data[:2048]
    for root, (fmt, _version) in ROOTS.items():
        if b"<" + root.encode() in head:
            return fmt
    return None


def parse(data: bytes) -> ParsedStatement:
    root = parse_xml(data)
    if root.tag not in ROOTS:
        raise reject(
            f"root element <{root.tag}> is not a Mastercard CDF or Diners S3DF transmission file",
            line=root.line,
        )
    fmt, version_tag = ROOTS[root.tag]
    header = _required(root, "TransmissionHeader_1000")
    version = _required(header, version_tag)
    if not version.text.startswith("3."):
        raise reject(
            f"unsupported version {shown(version.text)}; 3.x is read",
            line=version.line,
            field=version_tag,
        )
    trailer = _required(root, "TransmissionTrailer_9999")

    lines: list[ChargeLine] = []
    tallies = {"D": [0, 0], "C": [0, 0]}  # count, raw amount total
    for account in root.iter("AccountEntity"):
        number = account.attrib.get("AccountNumber", "")
        last4 = last4_of_account(number)
        if last4 is None:
            raise reject(
                "the account number does not end in four digits",
                line=account.line,
                field="AccountNumber",
            )
        holder = _cardholder(account)
        for entity in account.children:
            if entity.tag == "FinancialTransactionEntity":
                line, indicator, raw = _charge(fmt, entity, last4, holder)
                lines.append(line)
                tallies[indicator][0] += 1
                tallies[indicator][1] += raw
    _check_trailer(trailer, tallies)
    # The period is the span of transaction dates; an empty file covers its processing window.
    period: tuple[date | None, date | None] = (None, None)
    if not lines:
        period = (
            _optional_date(header, "ProcessingStartDate"),
            _optional_date(header, "ProcessingEndDate"),
        )
    return assemble(fmt, data, lines, period=period, id_field="ProcessorTransactionId")


def _cardholder(account: Element) -> str:
    for child in account.children:
        if child.tag == "FinancialTransactionEntity":
            continue
        name = child if child.tag == "NameLine1" else child.first("NameLine1")
        if name is not None and name.text:
            return clean_text(name.text)
    return ""


def _charge(
    fmt: StatementFormat, entity: Element, last4: str, holder: str
) -> tuple[ChargeLine, str, int]:
    tx = _required(entity, "FinancialTransaction_5000")
    maintenance = tx.first("MaintenanceCode")
    if maintenance is not None and maintenance.text.upper() == "D":
        raise reject(
            "a delete record for a transaction is not supported; ask the issuer for a"
            " corrected file",
            line=maintenance.line,
            field="MaintenanceCode",
        )
    transaction_date = _date(_required(tx, "TransactionDate"))
    posting_date = _optional_date(tx, "PostingDate")

    posted = _required(tx, "AmountInPostedCurrency")
    currency = _currency(tx, posted, "PostedCurrencyCode")
    indicator = _indicator(tx, posted)
    sign = 1 if indicator == "D" else -1
    raw_posted = digits_amount(posted.text, line=posted.line, field=posted.tag)
    amount = Money(sign * _exact(posted, raw_posted, currency), currency)

    original = None
    source = tx.child("AmountInOriginalCurrency")
    if source is not None and source.text:
        source_currency = _currency(tx, source, "OriginalCurrencyCode")
        raw_source = digits_amount(source.text, line=source.line, field=source.tag)
        if source_currency != currency and raw_source:
            original = Money(sign * _exact(source, raw_source, source_currency), source_currency)

    acceptor = entity.child("CardAcceptor_5001")
    merchant = ""
    mcc = ""
    if acceptor is not None:
        name = acceptor.child("CardAcceptorName")
        merchant = clean_text(name.text) if name is not None else ""
        code = acceptor.child("CardAcceptorBusinessCode")
        mcc = code.text if code is not None else ""
        if mcc and not (len(mcc) == 4 and is_digits(mcc)):
            raise reject(
                f"{shown(mcc)} is not a merchant category code",
                line=code.line if code is not None else acceptor.line,
                field="CardAcceptorBusinessCode",
            )

    feed_id = entity.attrib.get("ProcessorTransactionId", "").strip()
    if not feed_id:
        node = tx.child("ProcessorTransactionId") or tx.child("MasterCardFinancialTransactionId")
        feed_id = node.text if node is not None else ""
    feed_id = redact_pans(feed_id)
    line = ChargeLine(
        line=entity.line,
        feed_transaction_id=f"{fmt.value}:{feed_id}" if feed_id else "",
        card_last4=last4,
        cardholder=holder,
        transaction_date=transaction_date,
        posting_date=posting_date,
        merchant=merchant,
        mcc=mcc,
        amount=amount,
        original_amount=original,
    )
    return line, indicator, raw_posted


def _indicator(tx: Element, posted: Element) -> str:
    node = tx.child("DebitOrCreditIndicator")
    value = (node.text if node is not None else posted.attrib.get("CurrencySign", "")).upper()
    if value not in ("D", "C"):
        raise reject(
            f"{shown(value)} is neither D (debit) nor C (credit)",
            line=node.line if node is not None else posted.line,
            field="DebitOrCreditIndicator",
        )
    return value


def _currency(tx: Element, amount: Element, code_tag: str) -> str:
    element = tx.child(code_tag)
    attribute = amount.attrib.get("CurrencyCode", "").strip()
    raw = element.text if element is not None and element.text else attribute
    if not raw:
        raise reject("currency code is missing", line=amount.line, field=code_tag)
    currency = currency_from_numeric(raw, line=amount.line, field=code_tag)
    if (
        attribute
        and currency_from_numeric(attribute, line=amount.line, field="CurrencyCode") != currency
    ):
        raise reject(
            f"{amount.tag} is in currency {attribute}, but {code_tag} says {raw}",
            line=amount.line,
            field=code_tag,
        )
    return currency


def _exact(amount: Element, raw: int, currency: str) -> int:
    exp_text = amount.attrib.get("CurrencyExponent", "").strip()
    if not is_digits(exp_text) or int(exp_text) > 9:
        raise reject(
            f"{shown(exp_text)} is not a currency exponent",
            line=amount.line,
            field="CurrencyExponent",
        )
    try:
        return from_decimal(Decimal(raw).scaleb(-int(exp_text)), currency)
    except MoneyError as err:
        raise reject(str(err), line=amount.line, field=amount.tag) from None


def _check_trailer(trailer: Element, tallies: dict[str, list[int]]) -> None:
    checks = (
        ("NumOfDebits", tallies["D"][0], "debit transactions"),
        ("NumOfCredits", tallies["C"][0], "credit transactions"),
        ("TotalAmountOfDebits", tallies["D"][1], "the debit amounts"),
        ("TotalAmountOfCredits", tallies["C"][1], "the credit amounts"),
    )
    for tag, found, what in checks:
        node = trailer.child(tag)
        if node is None or not node.text:
            continue
        stated = digits_amount(node.text, line=node.line, field=tag)
        if stated != found:
            raise reject(
                f"the trailer states {stated}, the file has {found} ({what})",
                line=node.line,
                field=tag,
            )


def _required(parent: Element, tag: str) -> Element:
    node = parent.child(tag)
    if node is None:
        raise reject(f"<{tag}> is missing", line=parent.line, field=tag)
    return node


def _date(node: Element) -> date:
    return parse_date(node.text, _ISO_DATE, line=node.line, field=node.tag)


def _optional_date(parent: Element, tag: str) -> date | None:
    node = parent.child(tag)
    return _date(node) if node is not None and node.text else None
