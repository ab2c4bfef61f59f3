"""Zengin (全銀協) general transfer file, 総合振込 (種別コード 21).

Layout: fixed-length 120-byte records — header (データ区分 1), one data record
(2) per transfer, trailer (8) with count and total, end (9). Numeric fields
(N) are right-aligned and zero-padded; text fields (C) are left-aligned and
space-padded. Records are followed by CR LF by default (the layout sheets
allow a line end appended to each record, 122 bytes a line); bare 120-byte
records are the other convention (see ``ZenginOptions``).

Encoding: every text field is first reduced to the Zengin character set
(half-width katakana, A-Z, 0-9, space and ``( ) - . /``), which lies wholly in
the single-byte JIS X 0201 part of Shift_JIS; the header's コード区分 is 0
(JIS). The bytes are written with the ``cp932`` codec (Windows' Shift_JIS,
what files made by accounting software on PCs are in); for this character
set they are identical to ``shift_jis`` and to JIS X 0201 8-bit, one byte per
character, so every field has exactly its width in bytes.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal, Protocol

import jaconv

from seisan_payouts.domain.bank_transfer import (
    AccountType,
    BankFile,
    BankFileError,
    BankTransfer,
    Debtor,
    TransferBatch,
)

ZENGIN_FORMAT = "zengin-sogo-furikomi"
CODEC = "cp932"
RECORD_LENGTH = 120

MAX_AMOUNT = 10**10 - 1  # 振込金額 N(10)
MAX_TOTAL = 10**12 - 1  # 合計金額 N(12)
MAX_COUNT = 10**6 - 1  # 合計件数 N(6)

# 預金種目. The header (the company's own account) takes 1, 2 or 9.
_ACCOUNT_TYPE_CODE = {
    AccountType.ORDINARY: "1",
    AccountType.CURRENT: "2",
    AccountType.SAVINGS: "4",
    AccountType.OTHER: "9",
}
_DEBTOR_ACCOUNT_TYPES = {AccountType.ORDINARY, AccountType.CURRENT, AccountType.OTHER}

# Banks refuse small kana in names and read them as the large ones (キュウヨ → キユウヨ).
_SMALL_TO_LARGE = str.maketrans("ァィゥェォッャュョヮヵヶ", "アイウエオツヤユヨワカケ")
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212", "-"))
_KANA = {chr(c) for c in range(0xFF71, 0xFF9E)} | {"ｦ", "ﾞ", "ﾟ"}  # ｱ..ﾝ, ｦ, ﾞ, ﾟ
_ALLOWED = set("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ ().-/") | _KANA
ALLOWED_DESCRIPTION = "half-width katakana, A-Z, 0-9, space and ( ) - . /"


@dataclass(frozen=True)
class ZenginOptions:
    """What differs between banks' upload rules.

    ``record_separator``: ``b"\\r\\n"`` (122 bytes a line) or ``b""`` (bare
    120-byte records); banks' upload rules say which they take.
    ``long_vowel``: ``"-"`` writes ー as a hyphen (in every bank's set; ｰ is not);
    ``"ｰ"`` keeps the half-width long vowel for banks that take it.
    ``transfer_kind``: 振込指定区分, ``"7"`` telegraphic (電信) or ``"8"`` document (文書).
    ``reference_as_edi``: write the transfer's reference as EDI information
    (20 characters, 識別表示 ``Y``) instead of empty customer codes.
    """

    record_separator: bytes = b"\r\n"
    long_vowel: Literal["-", "ｰ"] = "-"
    transfer_kind: Literal["7", "8"] = "7"
    reference_as_edi: bool = False

    def __post_init__(self) -> None:
        if self.record_separator not in (b"\r\n", b""):
            raise BankFileError("record separator must be CR LF or nothing")
        if self.long_vowel not in ("-", "ｰ"):
            raise BankFileError("long vowel must be '-' or 'ｰ'")
        if self.transfer_kind not in ("7", "8"):
            raise BankFileError("transfer kind (振込指定区分) must be '7' or '8'")


@dataclass(frozen=True)
class BranchNames:
    bank_kana: str
    branch_kana: str


class BankDirectory(Protocol):
    """Japanese bank and branch codes to their kana names; None for an unknown code."""

    def names(self, bank_code: str, branch_code: str) -> BranchNames | None: ...


def to_zengin_text(
    text: str,
    *,
    long_vowel: str = "-",
    record: str | None = None,
    field: str | None = None,
) -> str:
    """Reduce ``text`` to the Zengin character set, as banks read names.

    'やまだ たろう' → 'ﾔﾏﾀﾞ ﾀﾛｳ'; 'キュウヨ' → 'ｷﾕｳﾖ'; full-width letters
    and digits become half-width, lower case becomes upper case. Anything
    else (kanji, ・, ,) is refused with a message naming ``record`` and ``field``.
    """
    allowed = _ALLOWED | ({"ｰ"} if long_vowel == "ｰ" else set())
    out = []
    # NFKC first (ｶﾞ and カ + combining U+3099 both become ガ), then one character at a time so a
    # refusal can name the character as given, not what it became.
    for ch in unicodedata.normalize("NFKC", text).strip():
        converted = _convert(ch, long_vowel)
        if not set(converted) <= allowed:
            kanji = unicodedata.name(ch, "").startswith("CJK")
            hint = " (give the name in kana)" if kanji else ""
            raise BankFileError(
                f"{ch!r} (U+{ord(ch):04X}) in {text!r} cannot be written in a Zengin file{hint}; "
                f"allowed: {ALLOWED_DESCRIPTION}",
                record=record,
                field=field,
            )
        out.append(converted)
    return "".join(out)


def _convert(ch: str, long_vowel: str) -> str:
    if "a" <= ch <= "z":
        return ch.upper()
    ch = jaconv.hira2kata(ch).translate(_SMALL_TO_LARGE).translate(_DASHES)
    if ch == "ー":
        return long_vowel
    return str(jaconv.z2h(ch, kana=True, ascii=True, digit=True))


class _Record:
    """Builds one record field by field, each checked against its width."""

    def __init__(self, label: str, options: ZenginOptions):
        self.label = label
        self.options = options
        self.parts: list[bytes] = []

    def number(self, name: str, value: int | str, width: int) -> _Record:
        digits = str(value)
        if not digits.isascii() or not digits.isdigit():
            raise BankFileError(f"{value!r} is not a number", record=self.label, field=name)
        if len(digits) > width:
            raise BankFileError(
                f"{value} does not fit in {width} digits", record=self.label, field=name
            )
        self.parts.append(digits.rjust(width, "0").encode("ascii"))
        return self

    def text(self, name: str, value: str, width: int) -> _Record:
        converted = to_zengin_text(
            value, long_vowel=self.options.long_vowel, record=self.label, field=name
        )
        encoded = converted.encode(CODEC)
        if len(encoded) > width:
            raise BankFileError(
                f"{converted!r} is {len(encoded)} characters after conversion to half-width "
                f"kana; the field holds {width}",
                record=self.label,
                field=name,
            )
        self.parts.append(encoded.ljust(width, b" "))
        return self

    def blank(self, width: int) -> _Record:
        self.parts.append(b" " * width)
        return self

    def build(self) -> bytes:
        record = b"".join(self.parts)
        if len(record) != RECORD_LENGTH:  # a layout bug, never bad input
            raise RuntimeError(f"{self.label} is {len(record)} bytes, not {RECORD_LENGTH}")
        return record


def _header(batch: TransferBatch, debtor: Debtor, options: ZenginOptions) -> bytes:
    label = "header record (debtor)"
    for name in ("zengin_client_code", "bank_code", "branch_code", "account_number"):
        if not getattr(debtor, name):
            raise BankFileError("is required for a Zengin file", record=label, field=name)
    if debtor.account_type not in _DEBTOR_ACCOUNT_TYPES:
        raise BankFileError(
            f"{debtor.account_type} is not a type the company's account can have here (1, 2, 9)",
            record=label,
            field="account_type",
        )
    when = batch.execution_date
    return (
        _Record(label, options)
        .number("データ区分 record_type", 1, 1)
        .number("種別コード kind", 21, 2)
        .number("コード区分 code_set", 0, 1)
        .number("依頼人コード zengin_client_code", debtor.zengin_client_code, 10)
        .text("依頼人名 name_kana", debtor.name_kana or debtor.name, 40)
        .number("取組日 execution_date", f"{when.month:02d}{when.day:02d}", 4)
        .number("仕向銀行番号 bank_code", debtor.bank_code, 4)
        .text("仕向銀行名 bank_name_kana", debtor.bank_name_kana, 15)
        .number("仕向支店番号 branch_code", debtor.branch_code, 3)
        .text("仕向支店名 branch_name_kana", debtor.branch_name_kana, 15)
        .number("預金種目 account_type", _ACCOUNT_TYPE_CODE[debtor.account_type], 1)
        .number("口座番号 account_number", debtor.account_number, 7)
        .blank(17)  # ダミー
        .build()
    )


def _data(
    index: int,
    transfer: BankTransfer,
    options: ZenginOptions,
    directory: BankDirectory | None,
) -> bytes:
    label = f"data record {index} (payout {transfer.payout_id})"
    if not transfer.has_japanese_account:
        raise BankFileError(
            "a Zengin transfer needs a bank code, branch code and account number",
            record=label,
            field="account",
        )
    if transfer.amount.minor_units > MAX_AMOUNT:
        raise BankFileError(
            f"{transfer.amount} exceeds the 10-digit amount field", record=label, field="amount"
        )
    bank_kana, branch_kana = transfer.bank_name_kana, transfer.branch_name_kana
    if directory is not None:
        known = directory.names(transfer.bank_code, transfer.branch_code)
        if known is None:
            raise BankFileError(
                f"bank {transfer.bank_code} branch {transfer.branch_code} is not in the "
                "Zengin bank code directory",
                record=label,
                field="bank_code",
            )
        bank_kana = bank_kana or known.bank_kana
        branch_kana = branch_kana or known.branch_kana
    record = (
        _Record(label, options)
        .number("データ区分 record_type", 2, 1)
        .number("被仕向銀行番号 bank_code", transfer.bank_code, 4)
        .text("被仕向銀行名 bank_name_kana", bank_kana, 15)
        .number("被仕向支店番号 branch_code", transfer.branch_code, 3)
        .text("被仕向支店名 branch_name_kana", branch_kana, 15)
        .number("手形交換所番号 clearing_house", 0, 4)
        .number("預金種目 account_type", _ACCOUNT_TYPE_CODE[transfer.account_type], 1)
        .number("口座番号 account_number", transfer.account_number, 7)
        .text("受取人名 payee_name_kana", transfer.payee_name_kana or transfer.payee_name, 30)
        .number("振込金額 amount", transfer.amount.minor_units, 10)
        .number("新規コード new_code", 0, 1)
    )
    if options.reference_as_edi:
        record.text("EDI情報 reference", transfer.reference, 20)
    else:
        record.number("顧客コード1 customer_code_1", 0, 10)
        record.number("顧客コード2 customer_code_2", 0, 10)
    record.number("振込指定区分 transfer_kind", options.transfer_kind, 1)
    if options.reference_as_edi:
        record.text("識別表示 edi_flag", "Y", 1)
    else:
        record.blank(1)
    return record.blank(7).build()  # ダミー


def _trailer(count: int, total: int, options: ZenginOptions) -> bytes:
    label = "trailer record"
    if count > MAX_COUNT:
        raise BankFileError(f"{count} transfers exceed the 6-digit count", record=label)
    if total > MAX_TOTAL:
        raise BankFileError(f"total {total} JPY exceeds the 12-digit total", record=label)
    return (
        _Record(label, options)
        .number("データ区分 record_type", 8, 1)
        .number("合計件数 count", count, 6)
        .number("合計金額 total", total, 12)
        .blank(101)
        .build()
    )


def _end(options: ZenginOptions) -> bytes:
    return _Record("end record", options).number("データ区分 record_type", 9, 1).blank(119).build()


def _join(records: Iterable[bytes], separator: bytes) -> bytes:
    return b"".join(record + separator for record in records)


def write_zengin(
    batch: TransferBatch,
    options: ZenginOptions | None = None,
    *,
    directory: BankDirectory | None = None,
) -> BankFile:
    """The 総合振込 file for ``batch``: same batch and options, same bytes.

    Yen only. With a ``directory``, unknown bank/branch codes are refused and
    missing bank and branch names are filled from it.
    """
    options = options or ZenginOptions()
    if batch.currency != "JPY":
        raise BankFileError(
            f"Zengin transfers are in yen only; this batch is in {batch.currency}",
            record=f"batch {batch.batch_id!r}",
            field="currency",
        )
    records = [_header(batch, batch.debtor, options)]
    records += [
        _data(index, transfer, options, directory)
        for index, transfer in enumerate(batch.transfers, start=1)
    ]
    records.append(_trailer(len(batch.transfers), batch.total.minor_units, options))
    records.append(_end(options))
    return BankFile.of(
        format=ZENGIN_FORMAT,
        filename=f"{batch.batch_id}.zengin.txt",
        content=_join(records, options.record_separator),
        batch=batch,
    )
