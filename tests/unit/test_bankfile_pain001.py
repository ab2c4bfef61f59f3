"""pain.001.001.09 files: parsed back and checked element by element, against the ISO XSD
that the sepaxml package ships, and against sepaxml's own SEPA writer."""

import hashlib
import importlib.resources
import xml.etree.ElementTree as ET
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from seisan_payouts.adapters.bankfiles import Pain001Options, write_pain001
from seisan_payouts.adapters.bankfiles.pain001 import amount_text, validate_pain001
from seisan_payouts.domain.bank_transfer import BankFileError, BankTransfer, Debtor, TransferBatch
from seisan_shared.money import Money

NS = {"p": "urn:iso:std:iso:20022:tech:xsd:pain.001.001.09"}
JST = timezone(timedelta(hours=9))
CREATED = datetime(2026, 11, 28, 10, 30, 5, tzinfo=JST)

DEBTOR = Debtor(name="Seisan GmbH", iban="DE89 3704 0044 0532 0130 00", bic="COBADEFFXXX")

PAYEES = [
    ("po_01HX1", "Jörg Müller", "GB82WEST12345698765432", "WESTGB22", "Claims C-1, C-2"),
    ("po_01HX2", "Anne Dupont", "FR1420041010050500013M02606", "", ""),
    ("po_01HX3", "Jan de Vries", "NL91ABNA0417164300", "ABNANL2A", "Taxi 2026-11-03"),
]


def batch(currency: str = "EUR", amounts=(12345, 1, 100000), debtor=DEBTOR, **kwargs):
    transfers = tuple(
        BankTransfer(
            payout_id=payout_id,
            payee_name=name,
            iban=iban,
            bic=bic,
            reference=reference,
            amount=Money(amount, currency),
        )
        for (payout_id, name, iban, bic, reference), amount in zip(PAYEES, amounts, strict=True)
    )
    fields = {
        "batch_id": "run-2026-11-28",
        "debtor": debtor,
        "execution_date": date(2026, 12, 1),
        "created_at": CREATED,
        "transfers": transfers,
    }
    fields.update(kwargs)
    return TransferBatch(**fields)


def parse(content: bytes) -> ET.Element:
    root = ET.fromstring(content)
    assert root.tag == "{urn:iso:std:iso:20022:tech:xsd:pain.001.001.09}Document"
    return root


def text(node: ET.Element, path: str) -> str:
    found = node.find(path, NS)
    assert found is not None, path
    assert found.text is not None, path
    return found.text


def test_group_header_and_payment_information():
    b = batch()
    root = parse(write_pain001(b).content)
    header = "p:CstmrCdtTrfInitn/p:GrpHdr"
    assert text(root, f"{header}/p:MsgId") == "run-2026-11-28"
    assert text(root, f"{header}/p:CreDtTm") == "2026-11-28T10:30:05+09:00"
    assert text(root, f"{header}/p:NbOfTxs") == "3"
    assert text(root, f"{header}/p:CtrlSum") == "1123.46"
    assert text(root, f"{header}/p:InitgPty/p:Nm") == "Seisan GmbH"

    payments = root.findall("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert len(payments) == 1
    pmt = payments[0]
    assert text(pmt, "p:PmtInfId") == "run-2026-11-28"
    assert text(pmt, "p:PmtMtd") == "TRF"
    assert text(pmt, "p:NbOfTxs") == "3"
    assert text(pmt, "p:CtrlSum") == "1123.46"
    assert text(pmt, "p:PmtTpInf/p:SvcLvl/p:Cd") == "SEPA"
    assert text(pmt, "p:ReqdExctnDt/p:Dt") == "2026-12-01"
    assert text(pmt, "p:Dbtr/p:Nm") == "Seisan GmbH"
    assert text(pmt, "p:DbtrAcct/p:Id/p:IBAN") == "DE89370400440532013000"
    assert text(pmt, "p:DbtrAgt/p:FinInstnId/p:BICFI") == "COBADEFFXXX"
    assert text(pmt, "p:ChrgBr") == "SLEV"


def test_each_transaction():
    b = batch()
    pmt = parse(write_pain001(b).content).find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert pmt is not None
    txs = pmt.findall("p:CdtTrfTxInf", NS)
    assert len(txs) == 3
    for tx, transfer, (_, name, iban, bic, reference) in zip(txs, b.transfers, PAYEES, strict=True):
        assert text(tx, "p:PmtId/p:EndToEndId") == transfer.payout_id
        amount = tx.find("p:Amt/p:InstdAmt", NS)
        assert amount is not None and amount.get("Ccy") == "EUR"
        assert Decimal(text(tx, "p:Amt/p:InstdAmt")) * 100 == transfer.amount.minor_units
        assert text(tx, "p:Cdtr/p:Nm") == name
        assert text(tx, "p:CdtrAcct/p:Id/p:IBAN") == iban
        if bic:
            assert text(tx, "p:CdtrAgt/p:FinInstnId/p:BICFI") == bic
        else:
            assert tx.find("p:CdtrAgt", NS) is None
        assert text(tx, "p:RmtInf/p:Ustrd") == (reference or transfer.payout_id)
    amounts = [text(tx, "p:Amt/p:InstdAmt") for tx in txs]
    assert amounts == ["123.45", "0.01", "1000.00"]
    assert sum(Decimal(a) for a in amounts) == Decimal(text(pmt, "p:CtrlSum"))


@pytest.mark.parametrize(
    ("minor_units", "currency", "written"),
    [
        (1, "EUR", "0.01"),
        (10, "EUR", "0.10"),
        (100000, "EUR", "1000.00"),
        (1000000000000001, "EUR", "10000000000000.01"),  # beyond float's exact range
        (1234, "JPY", "1234"),
        (1234, "BHD", "1.234"),
        (5, "BHD", "0.005"),
    ],
)
def test_amounts_are_exact_decimal_text(minor_units, currency, written):
    assert amount_text(Money(minor_units, currency)) == written


def test_non_euro_batch_is_not_sepa_and_uses_the_currency_exponent():
    content = write_pain001(batch("JPY", amounts=(1000, 1, 250000))).content
    root = parse(content)
    pmt = root.find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert pmt is not None
    assert pmt.find("p:PmtTpInf", NS) is None
    assert text(pmt, "p:ChrgBr") == "SHAR"
    assert text(pmt, "p:CtrlSum") == "251001"
    amounts = pmt.findall("p:CdtTrfTxInf/p:Amt/p:InstdAmt", NS)
    assert [(a.text, a.get("Ccy")) for a in amounts] == [
        ("1000", "JPY"),
        ("1", "JPY"),
        ("250000", "JPY"),
    ]


def test_sepa_must_be_euro():
    with pytest.raises(BankFileError, match="SEPA credit transfer is in EUR; this batch is in USD"):
        write_pain001(batch("USD"), Pain001Options(sepa=True))


def test_output_validates_against_the_iso_xsd_independently():
    import xmlschema

    resource = importlib.resources.files("sepaxml") / "schemas" / "pain.001.001.09.xsd"
    with importlib.resources.as_file(resource) as path:
        schema = xmlschema.XMLSchema(str(path))
    for b in (batch(), batch("JPY"), batch("USD")):
        content = write_pain001(b, Pain001Options(validate=False)).content
        assert schema.is_valid(content.decode("utf-8"))


def test_a_broken_file_fails_validation():
    content = write_pain001(batch()).content
    broken = content.replace(b"<EndToEndId>po_01HX2</EndToEndId>", b"")
    assert broken != content
    with pytest.raises(BankFileError, match=r"does not match the pain\.001\.001\.09 schema"):
        validate_pain001(broken)


def test_debtor_without_bic_uses_notprovided():
    debtor = Debtor(name="Seisan GmbH", iban="DE89370400440532013000")
    pmt = parse(write_pain001(batch(debtor=debtor)).content).find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
    assert pmt is not None
    assert text(pmt, "p:DbtrAgt/p:FinInstnId/p:Othr/p:Id") == "NOTPROVIDED"


def test_transfer_without_iban_is_refused():
    b = TransferBatch(
        batch_id="run-1",
        debtor=DEBTOR,
        execution_date=date(2026, 12, 1),
        created_at=CREATED,
        transfers=(
            BankTransfer(
                payout_id="po_1",
                payee_name="山田 太郎",
                payee_name_kana="ヤマダ タロウ",
                bank_code="0005",
                branch_code="001",
                account_number="1234567",
                amount=Money(1000, "JPY"),
            ),
        ),
    )
    with pytest.raises(BankFileError, match="needs the payee's IBAN") as caught:
        write_pain001(b)
    assert caught.value.record == "transaction 1 (payout po_1)"


def test_debtor_without_iban_is_refused():
    with pytest.raises(BankFileError, match="needs the company's IBAN"):
        write_pain001(batch(debtor=Debtor(name="Seisan GmbH")))


def test_sepa_names_are_limited_to_70_characters():
    long_name = Debtor(name="S" * 71, iban="DE89370400440532013000")
    with pytest.raises(BankFileError, match="71 characters; at most 70"):
        write_pain001(batch(debtor=long_name))
    write_pain001(batch("USD", debtor=long_name))  # 140 outside SEPA


def test_control_characters_are_refused():
    with pytest.raises(BankFileError, match="control characters"):
        write_pain001(batch(debtor=Debtor(name="Seisan\x07", iban="DE89370400440532013000")))


def test_same_batch_same_bytes_and_hash():
    first, second = write_pain001(batch()), write_pain001(batch())
    assert first.content == second.content
    assert first.sha256 == second.sha256 == hashlib.sha256(first.content).hexdigest()
    assert first.filename == "run-2026-11-28.pain001.xml"
    assert (first.count, first.total) == (3, Money(112346, "EUR"))
    later = write_pain001(batch(created_at=CREATED + timedelta(seconds=1)))
    assert later.sha256 != first.sha256


def test_agrees_with_sepaxml_on_every_payment():
    """sepaxml's SepaTransfer is the well-kept reference writer; its ids are random,
    so compare what the bank acts on: ids, amounts, accounts, names, totals."""
    from sepaxml import SepaTransfer

    b = batch()
    sepa = SepaTransfer(
        {
            "name": DEBTOR.name,
            "IBAN": DEBTOR.iban,
            "BIC": DEBTOR.bic,
            "batch": True,
            "currency": "EUR",
        },
        schema="pain.001.001.09",
        clean=False,
    )
    for t in b.transfers:
        payment = {
            "name": t.payee_name,
            "IBAN": t.iban,
            "amount": t.amount.minor_units,
            "execution_date": b.execution_date,
            "description": t.reference or t.payout_id,
            "endtoend_id": t.payout_id,
        }
        if t.bic:
            payment["BIC"] = t.bic
        sepa.add_payment(payment)
    reference = parse(sepa.export(validate=True))
    ours = parse(write_pain001(b).content)

    def summary(root: ET.Element):
        pmt = root.find("p:CstmrCdtTrfInitn/p:PmtInf", NS)
        assert pmt is not None
        txs = {
            (
                text(tx, "p:PmtId/p:EndToEndId"),
                text(tx, "p:Amt/p:InstdAmt"),
                tx.find("p:Amt/p:InstdAmt", NS).get("Ccy"),  # type: ignore[union-attr]
                text(tx, "p:Cdtr/p:Nm"),
                text(tx, "p:CdtrAcct/p:Id/p:IBAN"),
                tx.findtext("p:CdtrAgt/p:FinInstnId/p:BICFI", None, NS),
                text(tx, "p:RmtInf/p:Ustrd"),
            )
            for tx in pmt.findall("p:CdtTrfTxInf", NS)
        }
        return (
            text(root, "p:CstmrCdtTrfInitn/p:GrpHdr/p:NbOfTxs"),
            text(root, "p:CstmrCdtTrfInitn/p:GrpHdr/p:CtrlSum"),
            text(pmt, "p:ReqdExctnDt/p:Dt"),
            text(pmt, "p:DbtrAcct/p:Id/p:IBAN"),
            text(pmt, "p:DbtrAgt/p:FinInstnId/p:BICFI"),
            text(pmt, "p:ChrgBr"),
            text(pmt, "p:PmtTpInf/p:SvcLvl/p:Cd"),
            txs,
        )

    assert summary(ours) == summary(reference)
