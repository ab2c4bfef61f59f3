"""The shared corporate-card and OFX samples: every positive one parses and agrees with the
reference parse (expected.json, produced by the card-data-parsers package) on the fields we
keep; the malformed one is refused naming line and field; no card number survives."""

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from seisan_cards.adapters.statements import detect_format, parse_statement
from seisan_cards.adapters.statements.pan import find_pans
from seisan_cards.domain.charges import StatementFormat, StatementRejected
from seisan_shared.money import from_decimal

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "data"
CARDS = DATA / "statements" / "corporate-card"
OFX = DATA / "statements" / "ofx"

pytestmark = pytest.mark.skipif(
    not CARDS.is_dir(), reason=f"shared statement samples not found at {CARDS}"
)

FORMATS = {
    "vcf": StatementFormat.VISA_VCF,
    "cdf": StatementFormat.MASTERCARD_CDF,
    "amex": StatementFormat.AMEX_GL1025,
    "s3df": StatementFormat.DINERS_S3DF,
}


def _cases() -> list[str]:
    if not CARDS.is_dir():
        return []
    return sorted(
        f"{d.parent.name}/{d.name}" for d in CARDS.glob("*/*") if (d / "expected.json").exists()
    )


def _merchant_expected(kind: str, row: dict) -> str:
    if kind == "amex":
        # card-data-parsers' "vendor" for GL1025 reads the establishment brand field, which in
        # this sample holds "5"; the descriptor printed on the statement is the description.
        return " ".join(row["description"].split())
    if kind == "s3df":
        # The reference appends ", <state>" to the acceptor name; we keep the name as printed.
        return row["vendor"].rsplit(", ", 1)[0]
    return row["vendor"]


@pytest.mark.parametrize("case", _cases())
def test_sample_parses_and_agrees_with_the_reference_parse(case):
    kind = case.split("/")[0]
    data = (CARDS / case / "data").read_bytes()
    expected = json.loads((CARDS / case / "expected.json").read_text())

    statement = parse_statement(data, None)

    assert statement.format == FORMATS[kind]
    assert detect_format(data) == FORMATS[kind]
    assert len(statement.charges) == len(expected)
    for charge, row in zip(statement.charges, expected, strict=True):
        currency = row["currency"]
        assert charge.amount.currency == currency
        minor = from_decimal(Decimal(row["amount"]), currency)
        if row["transaction_type"] == "debit":
            assert charge.amount.minor_units == minor
        else:
            assert charge.amount.minor_units == -minor
        assert charge.transaction_date.isoformat() == row["transaction_dt"][:10]
        assert charge.posting_date is not None
        assert charge.posting_date.isoformat() == row["post_date"][:10]
        assert charge.merchant == _merchant_expected(kind, row)
        assert charge.mcc == row.get("merchant_category_code", "")
        assert charge.card_last4 == row["account_number"][-4:]
        if row.get("foreign_currency"):
            assert charge.original_amount is not None
            foreign = row["foreign_currency"]
            assert charge.original_amount.currency == foreign
            assert abs(charge.original_amount.minor_units) == from_decimal(
                Decimal(row["foreign_amount"]), foreign
            )
        else:
            assert charge.original_amount is None
    totals: dict[str, int] = {}
    for charge in statement.charges:
        cur = charge.amount.currency
        totals[cur] = totals.get(cur, 0) + charge.amount.minor_units
    assert dict(statement.total) == totals


def test_malformed_vcf_is_refused_naming_line_and_field():
    data = (CARDS / "vcf" / "n1" / "data").read_bytes()
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, None)
    err = caught.value
    assert err.line == 2
    assert err.field in ("source_amount", "billing_amount")
    assert str(err).startswith(f"line 2, field {err.field}: ")
    assert "not an amount" in str(err)
    # The reference parser refuses it too, for the same reason.
    assert "amount" in (CARDS / "vcf" / "n1" / "expected.txt").read_text()


def test_malformed_vcf_is_refused_when_the_format_is_named_too():
    data = (CARDS / "vcf" / "n1" / "data").read_bytes()
    with pytest.raises(StatementRejected, match=r"^line 2, field \w+_amount: "):
        parse_statement(data, StatementFormat.VISA_VCF)


def _raw_card_numbers(data: bytes) -> set[str]:
    text = data.decode("latin-1")
    return set(re.findall(r"(?<!\d)\d{13,19}(?!\d)", text))


ALL_SAMPLES = [f"{c}/data" for c in _cases()] + (
    ["../ofx/ofxparse__anzcc.ofx"] if (OFX / "ofxparse__anzcc.ofx").exists() else []
)


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_no_card_number_survives_parsing(sample):
    data = (CARDS / sample).read_bytes()
    statement = parse_statement(data, None)
    text = repr(statement)
    assert find_pans(text) == []
    numbers = _raw_card_numbers(data)
    leaked = sorted(n for n in numbers if n in text)
    assert leaked == []
    if statement.charges:
        # The sample does carry card numbers: the check above is not vacuous.
        assert any(n[-4:] in statement.card_last4s for n in numbers)


@pytest.mark.parametrize("sample", ALL_SAMPLES)
def test_importing_the_same_file_twice_yields_the_same_ids(sample):
    data = (CARDS / sample).read_bytes()
    first, second = parse_statement(data, None), parse_statement(data, None)
    assert first == second
    assert first.statement_id == second.statement_id
    ids = [c.charge_id for c in first.charges]
    assert len(set(ids)) == len(ids)
    issuer_ids = [c.issuer_transaction_id for c in first.charges]
    assert len(set(issuer_ids)) == len(issuer_ids)


def test_the_same_feed_line_in_two_files_keeps_its_ids():
    # vcf/p4 repeats vcf/p1's and vcf/p2's card transactions in one file.
    by_id = {}
    for case in ("p1", "p2"):
        for charge in parse_statement((CARDS / "vcf" / case / "data").read_bytes()).charges:
            by_id[charge.issuer_transaction_id] = charge.charge_id
    combined = parse_statement((CARDS / "vcf" / "p4" / "data").read_bytes())
    assert {c.issuer_transaction_id: c.charge_id for c in combined.charges} == by_id
    assert (
        combined.statement_id
        != parse_statement((CARDS / "vcf" / "p1" / "data").read_bytes()).statement_id
    )


def test_vcf_names_the_cardholder_and_the_period():
    p2 = parse_statement((CARDS / "vcf" / "p2" / "data").read_bytes())
    assert [c.cardholder for c in p2.charges] == ["ABCDE ABCDEFGHIJK"]
    assert p2.charges[0].amount.minor_units == 0  # a zero "CHARGE OFF" credit line
    p1 = parse_statement((CARDS / "vcf" / "p1" / "data").read_bytes())
    assert (p1.period_start, p1.period_end) == (date(2018, 12, 4), date(2019, 1, 3))


def test_empty_cdf_file_is_an_empty_statement_over_its_processing_window():
    statement = parse_statement((CARDS / "cdf" / "p1" / "data").read_bytes())
    assert statement.charges == ()
    assert dict(statement.total) == {}
    assert statement.period_start is not None
    assert statement.period_start.isoformat() == "2018-12-13"


def test_amex_keeps_the_foreign_amount_and_the_card_member_name():
    statement = parse_statement((CARDS / "amex" / "p1" / "data").read_bytes())
    (charge,) = statement.charges
    assert (charge.amount.minor_units, charge.amount.currency) == (6381, "CAD")
    assert charge.original_amount is not None
    assert (charge.original_amount.minor_units, charge.original_amount.currency) == (4833, "USD")
    assert charge.cardholder == "I ABCDEFG"
    assert charge.issuer_transaction_id.endswith("0914600172007637906017110005010001521")


@pytest.mark.skipif(not OFX.is_dir(), reason=f"shared OFX samples not found at {OFX}")
def test_ofx_credit_card_sample_parses():
    statement = parse_statement((OFX / "ofxparse__anzcc.ofx").read_bytes(), None)
    assert statement.format == StatementFormat.OFX
    (charge,) = statement.charges
    assert (charge.amount.minor_units, charge.amount.currency) == (550, "AUD")  # TRNAMT -5.50
    assert charge.card_last4 == "1234"
    assert charge.merchant == "SOME MEMO"
    assert charge.transaction_date.isoformat() == "2017-05-08"
    assert (statement.period_start, statement.period_end) == (date(2017, 3, 11), date(2017, 5, 9))


@pytest.mark.skipif(not OFX.is_dir(), reason=f"shared OFX samples not found at {OFX}")
@pytest.mark.parametrize(
    ("name", "element"),
    [
        ("ofxparse__checking.ofx", "STMTRS"),
        ("ofxparse__bank_medium.ofx", "STMTRS"),
        ("ofxparse__suncorp.ofx", "STMTRS"),
        ("ofxparse__multiple_accounts.ofx", "STMTRS"),
        ("ofxparse__fidelity.ofx", "INVSTMTRS"),
    ],
)
def test_ofx_bank_and_investment_statements_are_refused_with_a_reason(name, element):
    data = (OFX / name).read_bytes()
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, None)
    assert caught.value.field == element
    assert caught.value.line is not None and caught.value.line > 1
    assert "only credit-card statements" in str(caught.value)
