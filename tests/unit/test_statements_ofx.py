from datetime import date

import pytest

from seisan_cards.adapters.statements import detect_format, parse_statement
from seisan_cards.adapters.statements.pan import find_pans
from seisan_cards.domain.charges import StatementFormat, StatementRejected
from seisan_shared.money import Money

SGML_HEADER = """OFXHEADER:100
DATA:OFXSGML
VERSION:102
SECURITY:NONE
ENCODING:USASCII
CHARSET:1252
COMPRESSION:NONE
OLDFILEUID:NONE
NEWFILEUID:NONE

"""


def sgml(transactions: str, acct: str = "4111111111111111", curdef: str = "USD") -> bytes:
    body = f"""<OFX>
<SIGNONMSGSRSV1><SONRS><STATUS><CODE>0<SEVERITY>INFO</STATUS>
<DTSERVER>20261130120000<LANGUAGE>ENG</SONRS></SIGNONMSGSRSV1>
<CREDITCARDMSGSRSV1>
<CCSTMTTRNRS>
<TRNUID>1
<STATUS><CODE>0<SEVERITY>INFO</STATUS>
<CCSTMTRS>
<CURDEF>{curdef}
<CCACCTFROM>
<ACCTID>{acct}
</CCACCTFROM>
<BANKTRANLIST>
<DTSTART>20261101
<DTEND>20261130
{transactions}
</BANKTRANLIST>
<LEDGERBAL><BALAMT>-10.00<DTASOF>20261130</LEDGERBAL>
</CCSTMTRS>
</CCSTMTTRNRS>
</CREDITCARDMSGSRSV1>
</OFX>
"""
    return (SGML_HEADER + body).encode("cp1252")


PURCHASE = """<STMTTRN>
<TRNTYPE>DEBIT
<DTPOSTED>20261103120000.000[-5:EST]
<DTUSER>20261102
<TRNAMT>-12.34
<FITID>F1
<SIC>5812
<NAME>SQ *BLUE BOTTLE &amp; CO
<MEMO>ignored when NAME is there
</STMTTRN>"""

REFUND = """<STMTTRN>
<TRNTYPE>CREDIT
<DTPOSTED>20261110
<TRNAMT>5.00
<FITID>F2
<NAME>Caf\u00e9 refund
</STMTTRN>"""


def test_sgml_credit_card_statement():
    data = sgml(PURCHASE + "\n" + REFUND)
    assert detect_format(data) == StatementFormat.OFX
    statement = parse_statement(data, None)
    purchase, refund = statement.charges
    assert purchase.amount == Money(1234, "USD")
    assert purchase.transaction_date == date(2026, 11, 2)
    assert purchase.posting_date == date(2026, 11, 3)
    assert purchase.merchant == "SQ *BLUE BOTTLE & CO"
    assert purchase.mcc == "5812"
    assert purchase.card_last4 == "1111"
    assert purchase.issuer_transaction_id == "ofx:1111:F1"
    assert refund.amount == Money(-500, "USD")
    assert refund.merchant == "Caf\u00e9 refund"  # CHARSET 1252 decoded
    assert refund.transaction_date == refund.posting_date == date(2026, 11, 10)
    assert dict(statement.total) == {"USD": 734}
    assert (statement.period_start, statement.period_end) == (date(2026, 11, 1), date(2026, 11, 30))
    assert "4111111111111111" not in repr(statement)
    assert find_pans(repr(statement)) == []


def test_xml_ofx_2_with_closing_tags():
    data = b"""<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<?OFX OFXHEADER="200" VERSION="220" SECURITY="NONE" OLDFILEUID="NONE" NEWFILEUID="NONE"?>
<OFX>
  <CREDITCARDMSGSRSV1>
    <CCSTMTTRNRS>
      <TRNUID>1</TRNUID>
      <STATUS><CODE>0</CODE><SEVERITY>INFO</SEVERITY></STATUS>
      <CCSTMTRS>
        <CURDEF>JPY</CURDEF>
        <CCACCTFROM><ACCTID>XXXXXXXXXXXX4242</ACCTID></CCACCTFROM>
        <BANKTRANLIST>
          <DTSTART>20261101</DTSTART><DTEND>20261130</DTEND>
          <STMTTRN>
            <TRNTYPE>DEBIT</TRNTYPE>
            <DTPOSTED>20261105</DTPOSTED>
            <TRNAMT>-1112</TRNAMT>
            <FITID>J1</FITID>
            <NAME><![CDATA[\xe3\x82\xb9\xe3\x82\xbf\xe3\x83\xbc\xe3\x83\x90\xe3\x83\x83\xe3\x82\xaf\xe3\x82\xb9]]></NAME>
            <MEMO></MEMO>
          </STMTTRN>
        </BANKTRANLIST>
      </CCSTMTRS>
    </CCSTMTTRNRS>
  </CREDITCARDMSGSRSV1>
</OFX>
"""
    statement = parse_statement(data, StatementFormat.OFX)
    (charge,) = statement.charges
    assert charge.amount == Money(1112, "JPY")
    assert charge.card_last4 == "4242"
    assert charge.merchant == "\u30b9\u30bf\u30fc\u30d0\u30c3\u30af\u30b9"
    assert charge.source_line == 13


def test_foreign_currency_transactions():
    orig = """<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20261104<TRNAMT>-15.00<FITID>F3<NAME>HOTEL PARIS
<ORIGCURRENCY><CURRATE>1.5<CURSYM>EUR</ORIGCURRENCY></STMTTRN>"""
    foreign = """<STMTTRN><TRNTYPE>DEBIT<DTPOSTED>20261105<TRNAMT>-1000<FITID>F4<NAME>TOKYO TAXI
<CURRENCY><CURRATE>0.0067<CURSYM>JPY</CURRENCY></STMTTRN>"""
    statement = parse_statement(sgml(orig + "\n" + foreign), StatementFormat.OFX)
    paris, tokyo = statement.charges
    assert paris.amount == Money(1500, "USD")
    assert paris.original_amount == Money(1000, "EUR")
    assert tokyo.original_amount == Money(1000, "JPY")
    assert tokyo.amount == Money(670, "USD")


@pytest.mark.parametrize(
    ("transaction", "field", "fragment"),
    [
        (PURCHASE.replace("-12.34", "-12.3.4"), "TRNAMT", "not an amount"),
        (PURCHASE.replace("<TRNAMT>-12.34\n", ""), "TRNAMT", "missing"),
        (
            PURCHASE.replace("20261103120000.000[-5:EST]", "2026-11-03"),
            "DTPOSTED",
            "not an OFX date",
        ),
        (PURCHASE.replace("<DTUSER>20261102", "<DTUSER>20261332"), "DTUSER", "not an OFX date"),
        (PURCHASE.replace("-12.34", "-12.345"), "TRNAMT", "decimal digits"),
    ],
)
def test_bad_transactions_are_refused_naming_line_and_field(transaction, field, fragment):
    data = sgml(REFUND + "\n" + transaction)
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.OFX)
    err = caught.value
    assert err.field == field
    assert fragment in str(err)
    # The bad transaction is the second one, below line 30 of the file.
    assert err.line is not None and err.line > 30


def test_truncated_file_is_refused():
    data = sgml(PURCHASE)
    cut = data[: data.index(b"</BANKTRANLIST>")]
    with pytest.raises(StatementRejected, match="never closed"):
        parse_statement(cut, StatementFormat.OFX)


def test_account_without_last_four_digits_is_refused():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(sgml(PURCHASE, acct="CARD-ABC"), StatementFormat.OFX)
    assert caught.value.field == "ACCTID"


def test_unknown_currency_is_refused():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(sgml(PURCHASE, curdef="ZZZ"), StatementFormat.OFX)
    assert caught.value.field == "CURDEF"


def test_bank_error_status_is_refused():
    data = sgml(PURCHASE).replace(b"<TRNUID>1\n<STATUS><CODE>0", b"<TRNUID>1\n<STATUS><CODE>2000")
    with pytest.raises(StatementRejected) as caught:
        parse_statement(data, StatementFormat.OFX)
    assert caught.value.field == "STATUS"
    assert "2000" in str(caught.value)


def test_duplicate_fitid_is_refused():
    with pytest.raises(StatementRejected) as caught:
        parse_statement(sgml(PURCHASE + "\n" + PURCHASE), StatementFormat.OFX)
    assert caught.value.field == "FITID"
    assert "repeats" in str(caught.value)


def test_a_card_number_in_free_text_or_errors_is_redacted():
    data = sgml(PURCHASE.replace("SQ *BLUE BOTTLE &amp; CO", "PAYMENT FROM 4111 1111 1111 1111"))
    statement = parse_statement(data, StatementFormat.OFX)
    assert statement.charges[0].merchant == "PAYMENT FROM ************1111"
    bad = sgml(PURCHASE.replace("-12.34", "4111111111111111x"))
    with pytest.raises(StatementRejected) as caught:
        parse_statement(bad, StatementFormat.OFX)
    assert "4111111111111111" not in str(caught.value)
