from datetime import date

import pytest

from seisan_cards.adapters.statements import detect_format, parse_statement
from seisan_cards.adapters.statements.generic_csv import COLUMNS
from seisan_cards.adapters.statements.pan import find_pans
from seisan_cards.domain.charges import StatementFormat, StatementRejected
from seisan_shared.money import Money

HEADER = ",".join(COLUMNS)
VISA_TEST_PAN = "4111111111111111"


def csv_bytes(*rows: str, header: str = HEADER, newline: str = "\n") -> bytes:
    return newline.join([header, *rows, ""]).encode("utf-8")


def parse(*rows: str, **kwargs):
    return parse_statement(csv_bytes(*rows, **kwargs), StatementFormat.GENERIC_CSV)


def rejected(*rows: str, **kwargs) -> StatementRejected:
    with pytest.raises(StatementRejected) as caught:
        parse(*rows, **kwargs)
    return caught.value


def test_documented_example_parses_exactly():
    statement = parse(
        "tx-1001,4242,Hanako Sato,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
        "tx-1002,4242,Hanako Sato,2026-11-05,2026-11-06,"
        '"AMZN Mktp US, Inc",5942,1598,JPY,10.59,USD',
        "tx-1003,4242,Hanako Sato,2026-11-07,,STARBUCKS 1234,5814,-480,JPY,,",
    )
    first, second, third = statement.charges
    assert first.charge_id == "tx-1001"
    assert first.issuer_transaction_id == "generic_csv:tx-1001"
    assert first.amount == Money(1112, "JPY")
    assert first.transaction_date == date(2026, 11, 2)
    assert first.posting_date == date(2026, 11, 3)
    assert (first.merchant, first.mcc, first.cardholder) == (
        "SQ *BLUE BOTTLE",
        "5814",
        "Hanako Sato",
    )
    assert first.source_line == 2
    assert second.merchant == "AMZN Mktp US, Inc"
    assert second.original_amount == Money(1059, "USD")
    assert third.amount == Money(-480, "JPY") and third.is_credit
    assert third.posting_date is None
    assert dict(statement.total) == {"JPY": 1112 + 1598 - 480}
    assert statement.card_last4s == ("4242",)
    assert (statement.period_start, statement.period_end) == (date(2026, 11, 2), date(2026, 11, 7))


def test_usd_amounts_are_minor_units_and_bom_crlf_and_column_order_do_not_matter():
    header = ",".join(reversed(COLUMNS))
    row = ",".join(
        reversed(["a1", "0042", "Ken", "2026-01-31", "", "Blue Bottle", "", "10.59", "USD", "", ""])
    )
    data = ("\ufeff" + header + "\r\n" + row + "\r\n").encode("utf-8")
    statement = parse_statement(data, None)
    assert statement.format == StatementFormat.GENERIC_CSV
    (charge,) = statement.charges
    assert charge.amount == Money(1059, "USD")
    assert charge.card_last4 == "0042"


def test_quoted_fields_follow_rfc_4180_and_lines_count_physical_lines():
    statement = parse(
        'q1,1111,"Sato, Hanako",2026-01-01,,"Caf\u00e9 ""Luna""\nGinza",5812,1000,JPY,,',
        "q2,1111,,2026-01-02,,Kiosk,,200,JPY,,",
    )
    first, second = statement.charges
    assert first.cardholder == "Sato, Hanako"
    assert first.merchant == 'Caf\u00e9 "Luna" Ginza'
    assert (first.source_line, second.source_line) == (2, 4)


def test_rows_without_charge_id_get_deterministic_distinct_ids():
    rows = (
        ",1111,,2026-01-01,,Coffee,,480,JPY,,",
        ",1111,,2026-01-01,,Coffee,,480,JPY,,",
        ",1111,,2026-01-02,,Coffee,,480,JPY,,",
    )
    once, again = parse(*rows), parse(*rows)
    ids = [c.issuer_transaction_id for c in once.charges]
    assert len(set(ids)) == 3
    assert ids == [c.issuer_transaction_id for c in again.charges]
    assert [c.charge_id for c in once.charges] == [c.charge_id for c in again.charges]
    assert all(i.startswith("generic_csv:h:") for i in ids)
    assert once.statement_id == again.statement_id


def test_statement_id_follows_content():
    one = parse("a,1111,,2026-01-01,,X,,1,JPY,,")
    two = parse("a,1111,,2026-01-01,,X,,2,JPY,,")
    assert one.statement_id != two.statement_id


@pytest.mark.parametrize(
    ("row", "field", "fragment"),
    [
        ("a,1111,,2026-01-01,,X,,12.3.4,USD,,", "amount", "'12.3.4' is not an amount"),
        ("a,1111,,2026-01-01,,X,,10.5,JPY,,", "amount", "not an amount in JPY"),
        ("a,1111,,2026-01-01,,X,,,USD,,", "amount", "required"),
        ("a,1111,,2026-01-01,,X,,1,XXX,,", "currency", "unknown"),
        ("a,1111,,01/02/2026,,X,,1,USD,,", "transaction_date", "YYYY-MM-DD"),
        ("a,1111,,2026-02-30,,X,,1,USD,,", "transaction_date", "not a date"),
        ("a,1111,,20260101,,X,,1,USD,,", "transaction_date", "not a date"),
        ("a,1111,,2026-01-01,2026-1-2,X,,1,USD,,", "posting_date", "not a date"),
        ("a,1111,,2026-01-01,,,,1,USD,,", "merchant", "required"),
        ("a,1111,,2026-01-01,,X,581,1,USD,,", "mcc", "merchant category code"),
        ("a,111,,2026-01-01,,X,,1,USD,,", "card_last4", "last 4 digits"),
        ("a,12345,,2026-01-01,,X,,1,USD,,", "card_last4", "5 digits"),
        ("a,abcd,,2026-01-01,,X,,1,USD,,", "card_last4", "last 4 digits"),
        ("a,1111,,2026-01-01,,X,,1,USD,2,", "original_currency", "required"),
        ("a,1111,,2026-01-01,,X,,1,USD,,EUR", "original_amount", "required"),
        ("a,1111,,2026-01-01,,X,,1,USD,2,USD", "original_amount", "same currency"),
        ("a,1111,,2026-01-01,,X,,1,USD,-2,EUR", "original_amount", "same sign"),
        ("a b,1111,,2026-01-01,,X,,1,USD,,", "charge_id", "not an id"),
    ],
)
def test_bad_rows_are_refused_naming_line_and_field(row, field, fragment):
    good = "ok,2222,,2026-01-01,,Fine,,1,USD,,"
    err = rejected(good, good.replace("ok", "ok2"), row)
    assert err.line == 4
    assert err.field == field
    assert str(err).startswith(f"line 4, field {field}: ")
    assert fragment in str(err)


def test_the_issue_example_message():
    err = rejected(
        *[f"r{i},1111,,2026-01-01,,X,,1,USD,," for i in range(5)],
        "x,1111,,2026-01-01,,X,,12.3.4,USD,,",
    )
    assert str(err) == "line 7, field amount: '12.3.4' is not an amount in USD"


def test_wrong_field_count_and_bad_quoting_are_refused_with_the_line():
    assert rejected("a,1111,,2026-01-01,,X,,1,USD,").line == 2
    err = rejected("a,1111,,2026-01-01,,X,,1,USD,,", 'b,1111,,2026-01-01,,"X"Y,,1,USD,,')
    assert err.line == 3
    assert "CSV" in str(err)


@pytest.mark.parametrize(
    ("header", "fragment"),
    [
        (HEADER.replace("amount,currency", "ammount,currency"), "unknown column 'ammount'"),
        (HEADER.replace(",mcc", ""), "missing column 'mcc'"),
        (HEADER + ",mcc", "appears twice"),
    ],
)
def test_header_is_required_exactly(header, fragment):
    with pytest.raises(StatementRejected) as caught:
        parse_statement(
            csv_bytes("a,1111,,2026-01-01,,X,,1,USD,,", header=header), StatementFormat.GENERIC_CSV
        )
    assert caught.value.line == 1
    assert caught.value.field == "header"
    assert fragment in str(caught.value)


def test_file_without_header_is_not_recognised():
    data = b"a,1111,,2026-01-01,,X,,1,USD,,\n"
    with pytest.raises(StatementRejected, match="unrecognised statement format"):
        detect_format(data)


def test_invalid_utf8_is_refused_with_its_line():
    data = csv_bytes("a,1111,,2026-01-01,,X,,1,USD,,") + b"b,1111,,2026-01-01,,\xff\xfe,,1,USD,,\n"
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.GENERIC_CSV)
    assert caught.value.line == 3
    assert "UTF-8" in str(caught.value)


def test_duplicate_charge_id_is_refused_naming_both_lines():
    err = rejected("dup,1111,,2026-01-01,,X,,1,USD,,", "dup,1111,,2026-01-02,,Y,,2,USD,,")
    assert err.line == 3 and err.field == "charge_id"
    assert "line 2" in str(err)


def test_header_only_file_is_an_empty_statement():
    statement = parse()
    assert statement.charges == ()
    assert dict(statement.total) == {}
    assert statement.period_start is None


def test_a_full_card_number_in_card_last4_is_reduced_to_its_last_four():
    # Decision: the PAN has reached us either way; refusing would not unsend it, and every
    # network feed carries PANs too. Keep the last four, never the number, and carry on.
    statement = parse(
        f"a,{VISA_TEST_PAN},,2026-01-01,,X,,1,USD,,",
        "b,4111 1111 1111 1111,,2026-01-01,,Y,,1,USD,,",
        "c,************1111,,2026-01-01,,Z,,1,USD,,",
    )
    assert [c.card_last4 for c in statement.charges] == ["1111", "1111", "1111"]
    assert VISA_TEST_PAN not in repr(statement)
    assert find_pans(repr(statement)) == []


def test_a_long_number_that_is_not_a_card_is_refused_without_echoing_it():
    near_miss = "4111111111111112"  # fails Luhn: a typo, or not a card at all
    err = rejected(f"a,{near_miss},,2026-01-01,,X,,1,USD,,")
    assert err.field == "card_last4"
    assert near_miss not in str(err)
    assert "1112" not in str(err)


def test_card_numbers_in_free_text_are_redacted():
    statement = parse(
        f"a,1111,Card {VISA_TEST_PAN},2026-01-01,,REFUND TO 4111-1111-1111-1111 X,,1,USD,,"
    )
    (charge,) = statement.charges
    assert charge.merchant == "REFUND TO ************1111 X"
    assert charge.cardholder == "Card ************1111"
    assert find_pans(repr(statement)) == []


def test_a_card_number_never_appears_in_an_error_message():
    err = rejected(f"a,1111,,2026-01-01,,X,,{VISA_TEST_PAN},XXX,,")
    assert VISA_TEST_PAN not in str(err)
    err = rejected(f"a,1111,,2026-01-01,,X,,1,USD,{VISA_TEST_PAN}.5.5,EUR")
    assert VISA_TEST_PAN not in str(err)
    assert err.field == "original_amount"
