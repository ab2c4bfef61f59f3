"""Visa VCF, Mastercard CDF and Amex GL1025 feeds built here, to test what the shared samples
do not show: other currencies, credits, foreign amounts, and every way a file can be bad."""

from datetime import date

import pytest

from seisan_cards.adapters.statements import detect_format, parse_statement
from seisan_cards.adapters.statements.amex_gl1025 import FIELDS
from seisan_cards.adapters.statements.pan import find_pans
from seisan_cards.domain.charges import StatementFormat, StatementRejected
from seisan_shared.money import Money

PAN = "4111111111111111"
PAN2 = "5555555555554444"

# --- Visa VCF 4.0 --------------------------------------------------------------------------


def vcf_control(code: str, block: str, count: int = 0) -> str:
    fields = [code, "0130574581", "00002", "01042019", block, f"{count:010d}", "0" * 16, "4.0"]
    return "\t".join([*fields, "10020936", "0000000012", "3"])


def vcf_t05(**overrides: str) -> str:
    fields = {
        1: PAN,
        2: "01032019",
        3: "74463669002900021662792",
        4: "0032044068",
        5: "18358",
        8: "SQ *BLUE BOTTLE",
        13: "0000000000008998",
        14: "0000000000008998",
        15: "00978",
        16: "5814",
        17: "10",
        18: "01022019",
        19: "00978",
    }
    names = {
        "account": 1, "posting": 2, "ref": 3, "seq": 4, "period": 5, "merchant": 8,
        "source_amount": 13, "billing_amount": 14, "source_currency": 15, "mcc": 16,
        "type": 17, "date": 18, "billing_currency": 19,
    }  # fmt: skip
    for name, value in overrides.items():
        fields[names[name]] = value
    return "\t".join(["4"] + [fields.get(i, "") for i in range(1, 24)])


def vcf_file(*records: str, count: int | None = None, trailer: bool = True) -> bytes:
    lines = [vcf_control("6", "00"), vcf_control("8", "05"), *records]
    if trailer:
        lines.append(vcf_control("9", "05", len(records) if count is None else count))
        lines.append(vcf_control("7", "00", len(records) + 2))
    return ("\r\n".join(lines) + "\r\n").encode("ascii")


def test_vcf_debit_credit_foreign_and_jpy():
    data = vcf_file(
        vcf_t05(),
        vcf_t05(seq="2", type="11", merchant="REFUND"),
        vcf_t05(
            seq="3",
            billing_currency="392",
            billing_amount="0000000000001112",
            source_currency="840",
            source_amount="0000000000000750",
        ),
    )
    assert detect_format(data) == StatementFormat.VISA_VCF
    debit, credit, jpy = parse_statement(data).charges
    assert debit.amount == Money(8998, "EUR")
    assert debit.original_amount is None
    assert debit.mcc == "5814" and debit.merchant == "SQ *BLUE BOTTLE"
    assert (debit.transaction_date, debit.posting_date) == (date(2019, 1, 2), date(2019, 1, 3))
    assert debit.source_line == 3
    assert credit.amount == Money(-8998, "EUR")
    assert jpy.amount == Money(1112, "JPY")  # JPY has no minor unit: 1112 yen, not 11.12
    assert jpy.original_amount == Money(750, "USD")
    assert PAN not in repr(parse_statement(data))


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"billing_amount": "00000000000089.8"}, "billing_amount", "not an amount"),
        ({"billing_currency": "999"}, "billing_currency_code", "unknown"),
        ({"date": "13012019"}, "transaction_date", "not a date"),
        ({"posting": "2019-01-03"}, "posting_date", "not a date"),
        ({"type": "99"}, "transaction_type_code", "unknown transaction type"),
        ({"mcc": "58a4"}, "merchant_category_code", "merchant category code"),
        ({"account": "NONE"}, "account_number", "four digits"),
    ],
)
def test_vcf_bad_fields_are_refused_naming_line_and_field(overrides, field, fragment):
    data = vcf_file(vcf_t05(seq="1"), vcf_t05(seq="2", **overrides))
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.VISA_VCF)
    assert (caught.value.line, caught.value.field) == (4, field)
    assert fragment in str(caught.value)


def test_vcf_structure_errors():
    with pytest.raises(StatementRejected, match="no block trailer"):
        parse_statement(vcf_file(vcf_t05(), trailer=False))
    with pytest.raises(StatementRejected) as caught:
        parse_statement(vcf_file(vcf_t05(), vcf_t05(seq="2"), count=3))
    assert caught.value.field == "record_count"
    delete = vcf_t05().replace("4", "3", 1)
    with pytest.raises(StatementRejected) as caught:
        parse_statement(vcf_file(delete))
    assert caught.value.field == "load_transaction_code"
    short = "\t".join(vcf_t05().split("\t")[:12])
    with pytest.raises(StatementRejected, match="fields, expected at least"):
        parse_statement(vcf_file(short))
    with pytest.raises(StatementRejected) as caught:
        parse_statement(vcf_file(vcf_t05(), vcf_t05()))
    assert "repeats line 3" in str(caught.value)


def test_vcf_other_version_is_refused():
    data = vcf_file(vcf_t05()).replace(b"\t4.0\t", b"\t3.0\t")
    with pytest.raises(StatementRejected, match="unsupported VCF version"):
        parse_statement(data, StatementFormat.VISA_VCF)


# --- Mastercard CDF 3.0 ------------------------------------------------------------------


def cdf_tx(ptid: str, amount: str = "0000000000139900", sign: str = "D", cur: str = "978",
           exp: str = "4", orig: str | None = None, orig_cur: str | None = None,
           name: str = "ZOOM", mcc: str = "5968", maintenance: str = "A",
           tx_date: str = "2018-12-18") -> str:  # fmt: skip
    orig = orig or amount
    orig_cur = orig_cur or cur
    return f"""
      <FinancialTransactionEntity ProcessorTransactionId="{ptid}">
        <FinancialTransaction_5000>
          <FinancialRecordHeader><MaintenanceCode>{maintenance}</MaintenanceCode></FinancialRecordHeader>
          <ProcessorTransactionId>{ptid}</ProcessorTransactionId>
          <AlternateAccount><AlternateAccountNumber>{PAN2}</AlternateAccountNumber></AlternateAccount>
          <PostingDate>2018-12-20</PostingDate>
          <TransactionDate>{tx_date}</TransactionDate>
          <DebitOrCreditIndicator>{sign}</DebitOrCreditIndicator>
          <AmountInOriginalCurrency CurrencyCode="{orig_cur}" CurrencyExponent="{exp}" CurrencySign="{sign}">{orig}</AmountInOriginalCurrency>
          <OriginalCurrencyCode>{orig_cur}</OriginalCurrencyCode>
          <AmountInPostedCurrency CurrencyCode="{cur}" CurrencyExponent="{exp}" CurrencySign="{sign}">{amount}</AmountInPostedCurrency>
          <PostedCurrencyCode>{cur}</PostedCurrencyCode>
        </FinancialTransaction_5000>
        <CardAcceptor_5001>
          <CardAcceptorName>{name}</CardAcceptorName>
          <CardAcceptorBusinessCode>{mcc}</CardAcceptorBusinessCode>
        </CardAcceptor_5001>
      </FinancialTransactionEntity>"""  # noqa: E501


def cdf_file(*txs: str, trailer: str = "", account: str = PAN, prolog: str = "") -> bytes:
    return f"""<?xml version="1.0" encoding="utf-8"?>{prolog}
<CDFTransmissionFile>
  <TransmissionHeader_1000>
    <ProcessingStartDate>2018-12-20</ProcessingStartDate>
    <ProcessingEndDate>2018-12-21</ProcessingEndDate>
    <CDFVersionNum>3.00</CDFVersionNum>
  </TransmissionHeader_1000>
  <IssuerEntity ICANumber="1">
    <CorporateEntity CorporationNumber="2">
      <AccountEntity AccountNumber="{account}">
        <CardAcctInfo_4300><NameLine1>Sato Hanako</NameLine1></CardAcctInfo_4300>
        {"".join(txs)}
      </AccountEntity>
    </CorporateEntity>
  </IssuerEntity>
  <TransmissionTrailer_9999>{trailer}</TransmissionTrailer_9999>
</CDFTransmissionFile>
""".encode()


def test_cdf_debit_credit_foreign_and_trailer_totals():
    data = cdf_file(
        cdf_tx("1"),
        cdf_tx("2", sign="C", amount="0000000000050000", name="REFUND"),
        cdf_tx("3", amount="0000000000150000", cur="840", orig="0000000000200000", orig_cur="978"),
        trailer="<NumOfCredits>1</NumOfCredits><NumOfDebits>2</NumOfDebits>"
        "<TotalAmountOfDebits>0000000000000289900</TotalAmountOfDebits>",
    )
    assert detect_format(data) == StatementFormat.MASTERCARD_CDF
    statement = parse_statement(data)
    debit, credit, foreign = statement.charges
    assert debit.amount == Money(1399, "EUR")
    assert debit.cardholder == "Sato Hanako"
    assert debit.card_last4 == "1111"
    assert credit.amount == Money(-500, "EUR")
    assert foreign.amount == Money(1500, "USD")
    assert foreign.original_amount == Money(2000, "EUR")
    assert dict(statement.total) == {"EUR": 899, "USD": 1500}
    text = repr(statement)
    assert PAN not in text and PAN2 not in text
    assert find_pans(text) == []


@pytest.mark.parametrize(
    ("tx", "field", "fragment"),
    [
        (cdf_tx("2", amount="12x"), "AmountInPostedCurrency", "not an amount"),
        (cdf_tx("2", amount="0000000000139901"), "AmountInPostedCurrency", "decimal digits"),
        (cdf_tx("2", sign="X"), "DebitOrCreditIndicator", "neither D"),
        (cdf_tx("2", cur="999"), "PostedCurrencyCode", "unknown"),
        (cdf_tx("2", tx_date="18/12/2018"), "TransactionDate", "not a date"),
        (cdf_tx("2", mcc="ABCD"), "CardAcceptorBusinessCode", "merchant category code"),
        (cdf_tx("2", maintenance="D"), "MaintenanceCode", "delete record"),
        (cdf_tx("1"), "ProcessorTransactionId", "repeats"),
        (cdf_tx("2", exp="x"), "CurrencyExponent", "not a currency exponent"),
    ],
)
def test_cdf_bad_transactions_are_refused_naming_line_and_field(tx, field, fragment):
    data = cdf_file(cdf_tx("1"), tx)
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.MASTERCARD_CDF)
    assert caught.value.field == field
    assert fragment in str(caught.value)
    assert caught.value.line is not None and caught.value.line > 30  # in the second transaction


def test_cdf_trailer_disagreement_is_refused():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(cdf_file(cdf_tx("1"), trailer="<NumOfDebits>2</NumOfDebits>"))
    assert caught.value.field == "NumOfDebits"
    bad_total = "<TotalAmountOfDebits>0000000000000139800</TotalAmountOfDebits>"
    with pytest.raises(StatementRejected) as caught:
        parse_statement(cdf_file(cdf_tx("1"), trailer=bad_total))
    assert caught.value.field == "TotalAmountOfDebits"


def test_cdf_malformed_truncated_and_dtd_files_are_refused():
    data = cdf_file(cdf_tx("1"))
    with pytest.raises(StatementRejected, match="not well-formed XML") as caught:
        parse_statement(data[: len(data) // 2], StatementFormat.MASTERCARD_CDF)
    assert caught.value.line is not None
    bomb = '<!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;">]>'
    with pytest.raises(StatementRejected, match="DTD"):
        parse_statement(cdf_file(cdf_tx("1"), prolog=bomb), StatementFormat.MASTERCARD_CDF)
    with pytest.raises(StatementRejected, match="four digits"):
        parse_statement(cdf_file(cdf_tx("1"), account="ABCD"))


def test_named_format_must_match_the_file():
    with pytest.raises(StatementRejected, match="mastercard_cdf file, not diners_s3df"):
        parse_statement(cdf_file(cdf_tx("1")), StatementFormat.DINERS_S3DF)
    with pytest.raises(StatementRejected):
        parse_statement(cdf_file(cdf_tx("1")), StatementFormat.VISA_VCF)


# --- American Express GL1025 ---------------------------------------------------------------


def amex_line(kind: str, **values: str) -> str:
    chars = [" "] * 2000
    chars[0] = kind
    for name, value in values.items():
        start, length = FIELDS[name]
        assert len(value) <= length
        chars[start - 1 : start - 1 + len(value)] = value
    return "".join(chars).rstrip()


def amex_header() -> str:
    return "016094          018896     GL1025  0056 01 2026-11-30".ljust(200)


def amex_detail(**overrides: str) -> str:
    values = {
        "billing_account_number": "378282246310005",
        "last_name": "SATO",
        "first_name": "HANAKO",
        "billing_date": "20261120",
        "charge_date": "2026-11-18",
        "transaction_id": "0914600172007637906017110005010001521",
        "sign_indicator": "+",
        "billed_amount": "000000000006381",
        "billed_decimal_place_indicator": "2",
        "billed_currency_code": "124",
        "local_charge_amount": "000000000004833",
        "local_currency_code": "840",
        "charge_description_line_1": "UBER TRIP HELP.UBER.COM",
        "merchant_category_code": "4121",
    }
    values.update(overrides)
    return amex_line("1", **values)


def amex_file(*details: str, trailer: bool = True) -> bytes:
    lines = [amex_header(), *details] + (["9" + amex_header()[1:]] if trailer else [])
    return ("\n".join(lines) + "\n").encode("latin-1")


def test_amex_detail_with_foreign_amount_credit_and_jpy():
    data = amex_file(
        amex_detail(),
        amex_detail(transaction_id="T2", sign_indicator="-"),
        amex_detail(
            transaction_id="T3",
            billed_currency_code="392",
            billed_decimal_place_indicator="0",
            billed_amount="000000000001112",
            local_currency_code="392",
        ),
    )
    assert detect_format(data) == StatementFormat.AMEX_GL1025
    debit, credit, jpy = parse_statement(data).charges
    assert debit.amount == Money(6381, "CAD")
    assert debit.original_amount == Money(4833, "USD")
    assert debit.card_last4 == "0005"
    assert debit.cardholder == "HANAKO SATO"
    assert debit.merchant == "UBER TRIP HELP.UBER.COM"
    assert debit.mcc == "4121"
    assert (debit.transaction_date, debit.posting_date) == (date(2026, 11, 18), date(2026, 11, 20))
    assert credit.amount == Money(-6381, "CAD")
    assert jpy.amount == Money(1112, "JPY")
    assert jpy.original_amount is None
    assert "378282246310005" not in repr(parse_statement(data))


@pytest.mark.parametrize(
    ("overrides", "field", "fragment"),
    [
        ({"billed_amount": "0000000000063.1"}, "billed_amount", "not an amount"),
        ({"sign_indicator": "*"}, "sign_indicator", "neither"),
        ({"charge_date": "2026-13-18"}, "charge_date", "not a date"),
        ({"billed_currency_code": "ABC"}, "billed_currency_code", "not an ISO 4217"),
        ({"billed_decimal_place_indicator": "3"}, "billed_amount", "decimal digits"),
        ({"billing_account_number": "NONE"}, "billing_account_number", "four digits"),
    ],
)
def test_amex_bad_fields_are_refused_naming_line_and_field(overrides, field, fragment):
    data = amex_file(amex_detail(transaction_id="T1"), amex_detail(**overrides))
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.AMEX_GL1025)
    assert (caught.value.line, caught.value.field) == (3, field)
    assert fragment in str(caught.value)


def test_amex_truncated_or_short_records_are_refused():
    with pytest.raises(StatementRejected, match="file trailer"):
        parse_statement(amex_file(amex_detail(), trailer=False), StatementFormat.AMEX_GL1025)
    with pytest.raises(StatementRejected, match="characters long"):
        parse_statement(amex_file(amex_detail()[:900]), StatementFormat.AMEX_GL1025)
    with pytest.raises(StatementRejected, match="unknown record type"):
        parse_statement(amex_file(amex_detail(), "5 what"), StatementFormat.AMEX_GL1025)


def test_unknown_content_is_refused():
    for data in (b"", b"   \n", b"hello world\n", b"%PDF-1.7\n"):
        with pytest.raises(StatementRejected):
            parse_statement(data)


def test_stripe_is_not_a_file_format():
    with pytest.raises(StatementRejected, match="webhook"):
        parse_statement(b"{}", StatementFormat.STRIPE_ISSUING)
