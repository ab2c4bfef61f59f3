import hashlib
from datetime import date, datetime, timedelta, timezone
from typing import Any

import pytest

from seisan_payouts.domain.bank_transfer import (
    BankFile,
    BankFileError,
    BankTransfer,
    Debtor,
    TransferBatch,
    iban_is_valid,
    normalize_iban,
)
from seisan_shared.errors import InvalidArgument
from seisan_shared.money import Money

JST = timezone(timedelta(hours=9))
DEBTOR = Debtor(name="Seisan KK")


def transfer(payout_id: str = "po_1", amount: Money = Money(1000, "JPY"), **kwargs) -> BankTransfer:
    fields: dict[str, Any] = {
        "payee_name": "Yamada Taro",
        "bank_code": "0005",
        "branch_code": "001",
        "account_number": "1234567",
    }
    fields.update(kwargs)
    return BankTransfer(payout_id=payout_id, amount=amount, **fields)


def batch(*transfers: BankTransfer, **kwargs) -> TransferBatch:
    fields: dict[str, Any] = {
        "batch_id": "run-1",
        "debtor": DEBTOR,
        "execution_date": date(2026, 12, 1),
        "created_at": datetime(2026, 11, 28, 10, 0, tzinfo=JST),
        "transfers": transfers,
    }
    fields.update(kwargs)
    return TransferBatch(**fields)


# Published example IBANs (ISO 13616 / national examples), valid check digits.
VALID_IBANS = [
    "DE89370400440532013000",
    "GB82WEST12345698765432",
    "FR1420041010050500013M02606",
    "NL91ABNA0417164300",
    "BE68539007547034",
]


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_valid_ibans_pass_mod_97(iban):
    assert iban_is_valid(iban)


@pytest.mark.parametrize("iban", VALID_IBANS)
def test_every_single_digit_change_is_caught(iban):
    for position, ch in enumerate(iban):
        if position < 2 or not ch.isdigit():
            continue
        wrong = iban[:position] + str((int(ch) + 1) % 10) + iban[position + 1 :]
        assert not iban_is_valid(wrong), wrong


def test_adjacent_transposition_is_caught():
    iban = "DE89370400440532013000"
    swapped = iban[:5] + iban[6] + iban[5] + iban[7:]  # 3704... -> 3074...
    assert swapped != iban
    assert not iban_is_valid(swapped)


def test_iban_is_normalized_and_checked_on_the_transfer():
    t = transfer(iban="gb82 west 1234 5698 7654 32", bic="westgb22")
    assert t.iban == "GB82WEST12345698765432"
    assert t.bic == "WESTGB22"
    assert normalize_iban(" de89 3704 ") == "DE893704"
    with pytest.raises(BankFileError, match="not a valid IBAN"):
        transfer(iban="GB83WEST12345698765432")


def test_bank_file_errors_are_invalid_argument_and_name_the_place():
    with pytest.raises(BankFileError) as caught:
        transfer(payout_id="po_9", iban="DE00370400440532013000")
    assert isinstance(caught.value, InvalidArgument)
    assert caught.value.record == "transfer 'po_9'"
    assert caught.value.field == "iban"
    assert str(caught.value).startswith("transfer 'po_9', field iban:")


@pytest.mark.parametrize("bic", ["DEUTDEFF", "DEUTDEFF500", "deutdeff"])
def test_bic_accepts_8_or_11_characters(bic):
    assert transfer(bic=bic).bic == bic.upper()


@pytest.mark.parametrize("bic", ["DEUTDE", "DEUTDEFF5", "1EUTDEFF", "DEUTDEFF50X0"])
def test_bic_refuses_other_shapes(bic):
    with pytest.raises(BankFileError, match="not a BIC"):
        transfer(bic=bic)


@pytest.mark.parametrize("minor_units", [0, -1])
def test_amount_must_be_positive(minor_units):
    with pytest.raises(BankFileError, match="not positive"):
        transfer(amount=Money(minor_units, "JPY"))


@pytest.mark.parametrize(
    ("field", "value"),
    [("bank_code", "005"), ("branch_code", "01A"), ("account_number", "12345678")],
)
def test_japanese_account_fields_are_digits_of_their_width(field, value):
    with pytest.raises(BankFileError) as caught:
        transfer(**{field: value})
    assert caught.value.field == field


def test_a_transfer_needs_somewhere_to_go():
    with pytest.raises(BankFileError, match="needs an IBAN or a Japanese"):
        transfer(bank_code="", branch_code="", account_number="")


@pytest.mark.parametrize("payout_id", ["", "po 1", "x" * 36, "po/1"])
def test_payout_id_must_fit_an_end_to_end_id(payout_id):
    with pytest.raises(BankFileError) as caught:
        transfer(payout_id=payout_id)
    assert caught.value.field == "payout_id"


def test_batch_total_and_currency():
    b = batch(transfer("po_1", Money(1000, "JPY")), transfer("po_2", Money(2345, "JPY")))
    assert b.currency == "JPY"
    assert b.total == Money(3345, "JPY")


def test_batch_refuses_the_same_payout_twice():
    with pytest.raises(BankFileError, match="'po_1' appears twice"):
        batch(transfer("po_1"), transfer("po_1"))


def test_batch_refuses_mixed_currencies():
    with pytest.raises(BankFileError, match="mixes currencies EUR, JPY"):
        batch(
            transfer("po_1", Money(1000, "JPY")),
            transfer("po_2", Money(1000, "EUR"), iban="DE89370400440532013000"),
        )


def test_batch_refuses_no_transfers_and_a_clockless_timestamp():
    with pytest.raises(BankFileError, match="no transfers"):
        batch()
    with pytest.raises(BankFileError, match="timezone-aware"):
        batch(transfer(), created_at=datetime(2026, 11, 28, 10, 0))


def test_bank_file_carries_the_sha256_of_its_bytes():
    b = batch(transfer("po_1", Money(700, "JPY")), transfer("po_2", Money(300, "JPY")))
    content = b"some bytes"
    f = BankFile.of(format="x", filename="x.txt", content=content, batch=b)
    assert f.sha256 == hashlib.sha256(content).hexdigest()
    assert (f.count, f.total) == (2, Money(1000, "JPY"))
