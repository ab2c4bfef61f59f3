"""The Zengin 総合振込 file, read back field by field at the published column positions.

The offsets below are written out here from the 全銀協 layout (1-based
columns, inclusive), independently of the writer, so a layout slip in the
writer shows up as a wrong field, not as a matching one.
"""

import hashlib
from datetime import date, datetime, timedelta, timezone
from typing import Any

import jaconv
import pytest

from seisan_payouts.adapters.bankfiles import (
    BranchNames,
    ZenginOptions,
    to_zengin_text,
    write_zengin,
)
from seisan_payouts.domain.bank_transfer import (
    AccountType,
    BankFileError,
    BankTransfer,
    Debtor,
    TransferBatch,
)
from seisan_shared.money import Money

JST = timezone(timedelta(hours=9))

HEADER = {
    "record_type": (1, 1),
    "kind": (2, 3),
    "code_set": (4, 4),
    "client_code": (5, 14),
    "client_name": (15, 54),
    "date": (55, 58),
    "bank_code": (59, 62),
    "bank_name": (63, 77),
    "branch_code": (78, 80),
    "branch_name": (81, 95),
    "account_type": (96, 96),
    "account_number": (97, 103),
    "dummy": (104, 120),
}
DATA = {
    "record_type": (1, 1),
    "bank_code": (2, 5),
    "bank_name": (6, 20),
    "branch_code": (21, 23),
    "branch_name": (24, 38),
    "clearing_house": (39, 42),
    "account_type": (43, 43),
    "account_number": (44, 50),
    "payee": (51, 80),
    "amount": (81, 90),
    "new_code": (91, 91),
    "customer_code_1": (92, 101),
    "customer_code_2": (102, 111),
    "edi": (92, 111),
    "transfer_kind": (112, 112),
    "edi_flag": (113, 113),
    "dummy": (114, 120),
}
TRAILER = {"record_type": (1, 1), "count": (2, 7), "total": (8, 19), "dummy": (20, 120)}
END = {"record_type": (1, 1), "dummy": (2, 120)}


def field(record: bytes, layout: dict, name: str) -> str:
    start, end = layout[name]
    return record[start - 1 : end].decode("cp932")


def records_of(content: bytes, separator: bytes = b"\r\n") -> list[bytes]:
    if separator:
        assert content.endswith(separator)
        records = content.split(separator)[:-1]
    else:
        assert len(content) % 120 == 0
        records = [content[i : i + 120] for i in range(0, len(content), 120)]
    for record in records:
        assert len(record) == 120
    return records


DEBTOR = Debtor(
    name="Seisan KK",
    name_kana="セイサン(カ",
    zengin_client_code="12345",
    bank_code="0001",
    bank_name_kana="ミズホ",
    branch_code="001",
    branch_name_kana="トウキヨウ",
    account_type=AccountType.CURRENT,
    account_number="98765",
)


def transfer(payout_id: str, amount: int, kana: str = "やまだ たろう", **kwargs) -> BankTransfer:
    fields: dict[str, Any] = {
        "payee_name": "山田 太郎",
        "payee_name_kana": kana,
        "bank_code": "0005",
        "branch_code": "123",
        "account_number": "7654321",
    }
    fields.update(kwargs)
    return BankTransfer(payout_id=payout_id, amount=Money(amount, "JPY"), **fields)


def batch(*transfers: BankTransfer, debtor: Debtor = DEBTOR) -> TransferBatch:
    return TransferBatch(
        batch_id="run-2026-11-28",
        debtor=debtor,
        execution_date=date(2026, 12, 1),
        created_at=datetime(2026, 11, 28, 10, 0, tzinfo=JST),
        transfers=transfers,
    )


TWO = batch(
    transfer("po_1", 12345),
    transfer(
        "po_2",
        1_000_000,
        "スズキ ハナコ",
        bank_code="0009",
        branch_code="002",
        account_number="42",
        account_type=AccountType.SAVINGS,
        bank_name_kana="ミツイスミトモ",
        branch_name_kana="ギンザ",
    ),
)


def test_every_record_is_120_bytes_in_order_header_data_trailer_end():
    records = records_of(write_zengin(TWO).content)
    assert [r[:1] for r in records] == [b"1", b"2", b"2", b"8", b"9"]


def test_header_fields():
    header = records_of(write_zengin(TWO).content)[0]
    assert field(header, HEADER, "kind") == "21"
    assert field(header, HEADER, "code_set") == "0"
    assert field(header, HEADER, "client_code") == "0000012345"
    assert field(header, HEADER, "client_name") == "ｾｲｻﾝ(ｶ".ljust(40)
    assert field(header, HEADER, "date") == "1201"
    assert field(header, HEADER, "bank_code") == "0001"
    assert field(header, HEADER, "bank_name") == "ﾐｽﾞﾎ".ljust(15)
    assert field(header, HEADER, "branch_code") == "001"
    assert field(header, HEADER, "branch_name") == "ﾄｳｷﾖｳ".ljust(15)
    assert field(header, HEADER, "account_type") == "2"
    assert field(header, HEADER, "account_number") == "0098765"
    assert field(header, HEADER, "dummy") == " " * 17


def test_data_record_fields():
    _, first, second, _, _ = records_of(write_zengin(TWO).content)
    assert field(first, DATA, "bank_code") == "0005"
    assert field(first, DATA, "bank_name") == " " * 15
    assert field(first, DATA, "branch_code") == "123"
    assert field(first, DATA, "branch_name") == " " * 15
    assert field(first, DATA, "clearing_house") == "0000"
    assert field(first, DATA, "account_type") == "1"
    assert field(first, DATA, "account_number") == "7654321"
    assert field(first, DATA, "payee") == "ﾔﾏﾀﾞ ﾀﾛｳ".ljust(30)
    assert field(first, DATA, "amount") == "0000012345"
    assert field(first, DATA, "new_code") == "0"
    assert field(first, DATA, "customer_code_1") == "0" * 10
    assert field(first, DATA, "customer_code_2") == "0" * 10
    assert field(first, DATA, "transfer_kind") == "7"
    assert field(first, DATA, "edi_flag") == " "
    assert field(first, DATA, "dummy") == " " * 7

    assert field(second, DATA, "bank_code") == "0009"
    assert field(second, DATA, "bank_name") == "ﾐﾂｲｽﾐﾄﾓ".ljust(15)
    assert field(second, DATA, "branch_name") == "ｷﾞﾝｻﾞ".ljust(15)
    assert field(second, DATA, "account_type") == "4"
    assert field(second, DATA, "account_number") == "0000042"
    assert field(second, DATA, "payee") == "ｽｽﾞｷ ﾊﾅｺ".ljust(30)
    assert field(second, DATA, "amount") == "0001000000"


def test_trailer_counts_and_totals_the_data_records():
    file = write_zengin(TWO)
    records = records_of(file.content)
    data = [r for r in records if r[:1] == b"2"]
    trailer, end = records[-2], records[-1]
    amounts = [int(field(r, DATA, "amount")) for r in data]
    assert int(field(trailer, TRAILER, "count")) == len(data) == 2
    assert int(field(trailer, TRAILER, "total")) == sum(amounts) == 1_012_345
    assert field(trailer, TRAILER, "dummy") == " " * 101
    assert field(end, END, "dummy") == " " * 119
    assert (file.count, file.total) == (2, Money(1_012_345, "JPY"))


def test_japanese_name_round_trips_from_hiragana():
    payee = field(records_of(write_zengin(batch(transfer("po_1", 1))).content)[1], DATA, "payee")
    assert payee.rstrip() == "ﾔﾏﾀﾞ ﾀﾛｳ"
    assert jaconv.h2z(payee.rstrip(), kana=True) == "ヤマダ タロウ"
    # The bytes are JIS X 0201 half-width katakana: one byte a character, dakuten separate.
    raw = records_of(write_zengin(batch(transfer("po_1", 1))).content)[1][50:58]
    assert raw == bytes([0xD4, 0xCF, 0xC0, 0xDE, 0x20, 0xC0, 0xDB, 0xB3])


@pytest.mark.parametrize(
    "spelling",
    ["やまだ たろう", "ヤマダ タロウ", "ヤマダ\u3000タロウ", "ﾔﾏﾀﾞ ﾀﾛｳ", " やまだ たろう "],
)
def test_every_kana_spelling_gives_the_same_bytes(spelling):
    expected = write_zengin(batch(transfer("po_1", 1, "やまだ たろう"))).content
    assert write_zengin(batch(transfer("po_1", 1, spelling))).content == expected


@pytest.mark.parametrize(
    ("given", "written"),
    [
        ("きゅうよ いちろう", "ｷﾕｳﾖ ｲﾁﾛｳ"),  # small kana become large
        ("がっこう", "ｶﾞﾂｺｳ"),
        ("ヴィクトリア", "ｳﾞｲｸﾄﾘｱ"),
        ("(かぶ)ぱぴぷ", "(ｶﾌﾞ)ﾊﾟﾋﾟﾌﾟ"),
        ("smith john", "SMITH JOHN"),  # lower case becomes upper case
        ("ＳＭＩＴＨ　１２３", "SMITH 123"),  # full-width becomes half-width
        ("コーヒー", "ｺ-ﾋ-"),  # long vowel as hyphen by default
        ("a.b-c/d", "A.B-C/D"),
    ],
)
def test_names_are_reduced_to_the_zengin_character_set(given, written):
    assert to_zengin_text(given) == written


def test_long_vowel_can_be_kept_for_banks_that_take_it():
    assert to_zengin_text("コーヒー", long_vowel="ｰ") == "ｺｰﾋｰ"
    file = write_zengin(batch(transfer("po_1", 1, "コーヒー")), ZenginOptions(long_vowel="ｰ"))
    assert records_of(file.content)[1][50:55] == bytes([0xBA, 0xB0, 0xCB, 0xB0, 0x20])


def test_every_text_byte_is_in_the_zengin_set():
    allowed = set(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ ().-/") | set(range(0xA6, 0xE0)) - set(
        range(0xA7, 0xB1)
    )  # ｦ, ｱ..ﾝ, ﾞ, ﾟ; no small kana (A7-AF), no long vowel (B0) by default
    content = write_zengin(TWO).content
    for record in records_of(content):
        assert set(record) <= allowed, record
    assert content.decode("cp932") == content.decode("shift_jis")


@pytest.mark.parametrize(
    ("kana", "bad"),
    [("山田 太郎", "山"), ("やまだ・たろう", "・"), ("ヤマダ,タロウ", ","), ("ヤマダ★", "★")],
)
def test_unrepresentable_characters_are_refused_naming_record_and_field(kana, bad):
    with pytest.raises(BankFileError) as caught:
        write_zengin(batch(transfer("po_1", 1), transfer("po_7", 1, kana)))
    message = str(caught.value)
    assert caught.value.record == "data record 2 (payout po_7)"
    assert caught.value.field is not None and "受取人名" in caught.value.field
    assert repr(bad) in message


def test_kanji_hint_asks_for_kana():
    with pytest.raises(BankFileError, match="give the name in kana"):
        to_zengin_text("山田")


def test_a_name_too_long_after_conversion_is_refused_not_cut():
    # 15 kana with dakuten: 15 characters in, 30 bytes out; one more does not fit.
    fits = "ガ" * 15
    assert to_zengin_text(fits) == "ｶﾞ" * 15
    write_zengin(batch(transfer("po_1", 1, fits)))
    with pytest.raises(BankFileError, match=r"is 32 characters .* holds 30"):
        write_zengin(batch(transfer("po_1", 1, fits + "ガ")))


def test_yen_only():
    eur = batch(
        BankTransfer(
            payout_id="po_1",
            payee_name="X",
            amount=Money(100, "EUR"),
            bank_code="0005",
            branch_code="001",
            account_number="1",
        )
    )
    with pytest.raises(BankFileError, match="yen only; this batch is in EUR"):
        write_zengin(eur)


def test_amount_must_fit_ten_digits():
    write_zengin(batch(transfer("po_1", 9_999_999_999)))
    with pytest.raises(BankFileError, match="10-digit amount") as caught:
        write_zengin(batch(transfer("po_1", 10_000_000_000)))
    assert caught.value.record == "data record 1 (payout po_1)"


def test_iban_only_transfer_is_refused():
    iban_only = transfer(
        "po_1", 1, bank_code="", branch_code="", account_number="", iban="DE89370400440532013000"
    )
    with pytest.raises(BankFileError, match="needs a bank code, branch code and account number"):
        write_zengin(batch(iban_only))


@pytest.mark.parametrize("missing", ["zengin_client_code", "bank_code", "account_number"])
def test_header_needs_the_company_account(missing):
    fields = {k: getattr(DEBTOR, k) for k in DEBTOR.__dataclass_fields__}
    fields[missing] = ""
    with pytest.raises(BankFileError) as caught:
        write_zengin(batch(transfer("po_1", 1), debtor=Debtor(**fields)))
    assert caught.value.record == "header record (debtor)"
    assert caught.value.field == missing


def test_bare_records_without_separator():
    file = write_zengin(TWO, ZenginOptions(record_separator=b""))
    assert len(file.content) == 120 * 5
    assert b"\r" not in file.content and b"\n" not in file.content
    with_crlf = write_zengin(TWO).content
    assert file.content == with_crlf.replace(b"\r\n", b"")


def test_reference_as_edi_information():
    b = batch(transfer("po_1", 500, reference="inv 2026/11"))
    record = records_of(write_zengin(b, ZenginOptions(reference_as_edi=True)).content)[1]
    assert field(record, DATA, "edi") == "INV 2026/11".ljust(20)
    assert field(record, DATA, "edi_flag") == "Y"
    assert field(record, DATA, "amount") == "0000000500"


def test_document_transfer_kind():
    record = records_of(write_zengin(TWO, ZenginOptions(transfer_kind="8")).content)[1]
    assert field(record, DATA, "transfer_kind") == "8"


def test_same_batch_same_bytes_and_hash():
    first, second = write_zengin(TWO), write_zengin(TWO)
    assert first.content == second.content
    assert first.sha256 == second.sha256 == hashlib.sha256(first.content).hexdigest()
    assert first.filename == "run-2026-11-28.zengin.txt"
    other = write_zengin(batch(transfer("po_1", 12346)))
    assert other.sha256 != first.sha256


class FakeDirectory:
    def __init__(self, known: dict[tuple[str, str], BranchNames]):
        self.known = known

    def names(self, bank_code: str, branch_code: str) -> BranchNames | None:
        return self.known.get((bank_code, branch_code))


def test_directory_fills_missing_names_and_refuses_unknown_codes():
    directory = FakeDirectory({("0005", "123"): BranchNames("ミツビシユ－エフジエイ", "ホンテン")})
    record = records_of(write_zengin(batch(transfer("po_1", 1)), directory=directory).content)[1]
    assert field(record, DATA, "bank_name") == "ﾐﾂﾋﾞｼﾕ-ｴﾌｼﾞｴｲ".ljust(15)
    assert field(record, DATA, "branch_name") == "ﾎﾝﾃﾝ".ljust(15)
    with pytest.raises(BankFileError, match="bank 0005 branch 999 is not in the Zengin"):
        write_zengin(batch(transfer("po_1", 1, branch_code="999")), directory=directory)


def test_zengin_code_package_directory():
    pytest.importorskip("zengin_code")
    from seisan_payouts.adapters.bankfiles.bank_directory import ZenginCodeDirectory

    directory = ZenginCodeDirectory()
    mizuho = directory.names("0001", "001")
    assert mizuho is not None
    assert to_zengin_text(mizuho.bank_kana) == "ﾐｽﾞﾎ"
    assert directory.names("0001", "000") is None
    assert directory.names("0000", "001") is None
    t = transfer("po_1", 1, bank_code="0001", branch_code="001")
    record = records_of(write_zengin(batch(t), directory=directory).content)[1]
    assert field(record, DATA, "bank_name") == "ﾐｽﾞﾎ".ljust(15)
