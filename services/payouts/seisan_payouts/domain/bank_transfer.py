"""Bank transfers as treasury hands them to a bank, and the file that carries them.

Invariants that money depends on:

* ``BankTransfer.amount`` is exact (integer minor units) and strictly positive.
* A ``TransferBatch`` holds at least one transfer, every transfer in one
  currency, and no payout twice: a payout id appears at most once per file, so
  a file can never pay the same payout two times.
* A batch carries its own ``created_at``: writers take ids and timestamps from
  the batch, never from the clock, so regenerating a file gives the same bytes
  and the same ``BankFile.sha256``.
* An IBAN is checked (ISO 13616 mod 97) before any file can name it.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum

from seisan_shared.errors import InvalidArgument
from seisan_shared.money import Money


class BankFileError(InvalidArgument):
    """A transfer, batch or file that cannot be written as asked.

    ``str(err)`` names where it went wrong, e.g. ``data record 2 (payout
    po_1), field 受取人名 payee_name_kana: '山' cannot be written ...``.
    """

    def __init__(self, reason: str, *, record: str | None = None, field: str | None = None):
        self.reason = reason
        self.record = record
        self.field = field
        where = [w for w in (record, f"field {field}" if field else None) if w]
        super().__init__(f"{', '.join(where)}: {reason}" if where else reason)


class AccountType(StrEnum):
    """Japanese deposit types (預金種目); IBAN accounts need none."""

    ORDINARY = "ordinary"  # 普通
    CURRENT = "current"  # 当座
    SAVINGS = "savings"  # 貯蓄
    OTHER = "other"  # その他


# Ids travel as ISO 20022 Max35Text (MsgId, PmtInfId, EndToEndId) and as file names.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,34}")
_BANK_CODE = re.compile(r"[0-9]{4}")
_BRANCH_CODE = re.compile(r"[0-9]{3}")
_ACCOUNT_NUMBER = re.compile(r"[0-9]{1,7}")
_BIC = re.compile(r"[A-Z]{4}[A-Z]{2}[A-Z0-9]{2}(?:[A-Z0-9]{3})?")
_IBAN_SHAPE = re.compile(r"[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}")


def normalize_iban(text: str) -> str:
    """'de89 3704 0044 0532 0130 00' → 'DE89370400440532013000' (no check)."""
    return re.sub(r"\s", "", text).upper()


def iban_is_valid(iban: str) -> bool:
    """ISO 13616: country, two check digits, BBAN; rotated number mod 97 == 1."""
    if not _IBAN_SHAPE.fullmatch(iban):
        return False
    rotated = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rotated)
    return int(digits) % 97 == 1


def check_iban(text: str, *, record: str | None = None, field: str = "iban") -> str:
    iban = normalize_iban(text)
    if not iban_is_valid(iban):
        raise BankFileError(
            f"{text!r} is not a valid IBAN (checksum mod 97)", record=record, field=field
        )
    return iban


def check_bic(text: str, *, record: str | None = None, field: str = "bic") -> str:
    bic = text.strip().upper()
    if not _BIC.fullmatch(bic):
        raise BankFileError(
            f"{text!r} is not a BIC (8 or 11 characters)", record=record, field=field
        )
    return bic


def _check_digits(value: str, pattern: re.Pattern[str], what: str, record: str, name: str) -> None:
    if value and not pattern.fullmatch(value):
        raise BankFileError(f"{value!r} is not {what}", record=record, field=name)


@dataclass(frozen=True, kw_only=True)
class BankTransfer:
    """One payout to one payee account: a Japanese account (bank, branch,
    type, number; the payee's name in kana) or an IBAN (with an optional BIC)."""

    payout_id: str
    payee_name: str
    amount: Money
    payee_name_kana: str = ""
    bank_code: str = ""
    branch_code: str = ""
    account_type: AccountType = AccountType.ORDINARY
    account_number: str = ""
    iban: str = ""
    bic: str = ""
    reference: str = ""
    # Optional kana names of the payee's bank and branch (被仕向銀行名/支店名).
    bank_name_kana: str = ""
    branch_name_kana: str = ""

    def __post_init__(self) -> None:
        where = f"transfer {self.payout_id!r}"
        if not _ID.fullmatch(self.payout_id):
            raise BankFileError(
                "payout id must be 1-35 characters of A-Z a-z 0-9 . _ : -",
                record=where,
                field="payout_id",
            )
        if not self.payee_name.strip():
            raise BankFileError("is empty", record=where, field="payee_name")
        if not isinstance(self.amount, Money):
            raise BankFileError("must be Money", record=where, field="amount")
        if self.amount.minor_units <= 0:
            raise BankFileError(f"{self.amount} is not positive", record=where, field="amount")
        _check_digits(self.bank_code, _BANK_CODE, "a 4-digit bank code", where, "bank_code")
        _check_digits(self.branch_code, _BRANCH_CODE, "a 3-digit branch code", where, "branch_code")
        _check_digits(self.account_number, _ACCOUNT_NUMBER, "1-7 digits", where, "account_number")
        if self.iban:
            object.__setattr__(self, "iban", check_iban(self.iban, record=where))
        if self.bic:
            object.__setattr__(self, "bic", check_bic(self.bic, record=where))
        if not (self.iban or self.has_japanese_account):
            raise BankFileError(
                "needs an IBAN or a Japanese bank code, branch code and account number",
                record=where,
                field="account",
            )

    @property
    def has_japanese_account(self) -> bool:
        return bool(self.bank_code and self.branch_code and self.account_number)


@dataclass(frozen=True, kw_only=True)
class Debtor:
    """The company paying: its name, and its account in either or both systems.

    ``zengin_client_code`` is the 依頼人コード (委託者コード) the company's bank
    assigned for Zengin uploads.
    """

    name: str
    name_kana: str = ""
    zengin_client_code: str = ""
    bank_code: str = ""
    bank_name_kana: str = ""
    branch_code: str = ""
    branch_name_kana: str = ""
    account_type: AccountType = AccountType.ORDINARY
    account_number: str = ""
    iban: str = ""
    bic: str = ""

    def __post_init__(self) -> None:
        where = "debtor"
        if not self.name.strip():
            raise BankFileError("is empty", record=where, field="name")
        if self.zengin_client_code and not re.fullmatch(r"[0-9]{1,10}", self.zengin_client_code):
            raise BankFileError(
                f"{self.zengin_client_code!r} is not a client code of 1-10 digits",
                record=where,
                field="zengin_client_code",
            )
        _check_digits(self.bank_code, _BANK_CODE, "a 4-digit bank code", where, "bank_code")
        _check_digits(self.branch_code, _BRANCH_CODE, "a 3-digit branch code", where, "branch_code")
        _check_digits(self.account_number, _ACCOUNT_NUMBER, "1-7 digits", where, "account_number")
        if self.iban:
            object.__setattr__(self, "iban", check_iban(self.iban, record=where))
        if self.bic:
            object.__setattr__(self, "bic", check_bic(self.bic, record=where))


@dataclass(frozen=True, kw_only=True)
class TransferBatch:
    """The transfers of one payout run in one currency, to be executed on one date.

    ``created_at`` (timezone-aware) is fixed when the run is created and is the
    file's creation timestamp, so the same batch always yields the same file.
    """

    batch_id: str
    debtor: Debtor
    execution_date: date
    created_at: datetime
    transfers: tuple[BankTransfer, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        where = f"batch {self.batch_id!r}"
        if not _ID.fullmatch(self.batch_id):
            raise BankFileError(
                "batch id must be 1-35 characters of A-Z a-z 0-9 . _ : -",
                record=where,
                field="batch_id",
            )
        if self.created_at.tzinfo is None or self.created_at.utcoffset() is None:
            raise BankFileError("must be timezone-aware", record=where, field="created_at")
        object.__setattr__(self, "transfers", tuple(self.transfers))
        if not self.transfers:
            raise BankFileError("has no transfers", record=where, field="transfers")
        currencies = sorted({t.amount.currency for t in self.transfers})
        if len(currencies) != 1:
            raise BankFileError(
                f"mixes currencies {', '.join(currencies)}; one file per currency",
                record=where,
                field="transfers",
            )
        seen: set[str] = set()
        for transfer in self.transfers:
            if transfer.payout_id in seen:
                raise BankFileError(
                    f"payout {transfer.payout_id!r} appears twice", record=where, field="transfers"
                )
            seen.add(transfer.payout_id)

    @property
    def currency(self) -> str:
        return self.transfers[0].amount.currency

    @property
    def total(self) -> Money:
        total = Money(0, self.currency)
        for transfer in self.transfers:
            total = total + transfer.amount
        return total


@dataclass(frozen=True)
class BankFile:
    """A written transfer file: its bytes, their SHA-256 (hex), and what it pays."""

    format: str
    filename: str
    content: bytes
    sha256: str
    count: int
    total: Money

    @classmethod
    def of(cls, *, format: str, filename: str, content: bytes, batch: TransferBatch) -> BankFile:
        return cls(
            format=format,
            filename=filename,
            content=content,
            sha256=hashlib.sha256(content).hexdigest(),
            count=len(batch.transfers),
            total=batch.total,
        )
