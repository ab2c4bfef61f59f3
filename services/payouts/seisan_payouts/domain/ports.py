"""Ports the handlers talk to. Adapters implement them; unit tests subclass them with fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any

from google.protobuf.message import Message

from seisan_payouts.domain.bank_transfer import AccountType
from seisan_payouts.domain.ledger import JournalEntry
from seisan_payouts.domain.model import Claim, ClaimStatus, ReceiptRef
from seisan_payouts.domain.payouts import Payout, PayoutRun, PayoutStatus, Rail


class DuplicateKey(Exception):
    """A row with the same unique key exists (a receipt already in an active claim…)."""


class ConcurrentUpdate(RuntimeError):
    """The row changed between read and write; the caller reloads and decides again."""


@dataclass(frozen=True)
class BankDetails:
    payee_name: str
    payee_name_kana: str = ""
    bank_code: str = ""
    branch_code: str = ""
    account_type: AccountType = AccountType.ORDINARY
    account_number: str = ""
    iban: str = ""
    bic: str = ""


@dataclass(frozen=True)
class PayeeAccount:
    employee: str
    stripe_account_id: str = ""
    bank: BankDetails | None = None
    updated_by: str = ""
    updated_at: datetime | None = None


@dataclass(frozen=True)
class ClaimQuery:
    claimant: str | None = None
    status: ClaimStatus | None = None
    limit: int = 50
    after: tuple[str, str] | None = None  # (submitted_at iso, claim_id) of the previous page


@dataclass(frozen=True)
class PayoutQuery:
    employee: str | None = None
    status: PayoutStatus | None = None
    run_id: str | None = None
    limit: int = 50
    after: tuple[str, str] | None = None  # (created_at iso, payout_id)


@dataclass(frozen=True)
class StoredBankFile:
    run_id: str
    format: str
    filename: str
    content: bytes
    sha256: str
    created_at: datetime


class ClaimRepository(ABC):
    @abstractmethod
    async def add(self, claim: Claim) -> None:
        """Insert, reserving its receipts; DuplicateKey if one is in another active claim."""

    @abstractmethod
    async def get(self, claim_id: str) -> Claim | None: ...

    @abstractmethod
    async def get_many(self, claim_ids: list[str]) -> list[Claim]: ...

    @abstractmethod
    async def update(self, claim: Claim) -> None:
        """Save; ConcurrentUpdate if it changed since read. A rejected claim frees its receipts."""

    @abstractmethod
    async def query(self, q: ClaimQuery) -> list[Claim]: ...

    @abstractmethod
    async def approved_unpaid(self, currency: str | None) -> list[Claim]: ...

    @abstractmethod
    async def claims_holding(self, receipt_ids: list[str]) -> dict[str, str]:
        """receipt id → id of the active (not rejected) claim that holds it."""


class ReceiptRefRepository(ABC):
    @abstractmethod
    async def get_many(self, receipt_ids: list[str]) -> dict[str, ReceiptRef]: ...

    @abstractmethod
    async def get(self, receipt_id: str) -> ReceiptRef | None: ...

    @abstractmethod
    async def put(self, ref: ReceiptRef) -> None: ...

    @abstractmethod
    async def matched_to(self, match_id: str) -> list[ReceiptRef]: ...


class PayoutRepository(ABC):
    @abstractmethod
    async def add(self, payout: Payout) -> None: ...

    @abstractmethod
    async def get(self, payout_id: str) -> Payout | None: ...

    @abstractmethod
    async def update(self, payout: Payout) -> None:
        """Save; ConcurrentUpdate if it changed since read."""

    @abstractmethod
    async def query(self, q: PayoutQuery) -> list[Payout]: ...

    @abstractmethod
    async def to_drive(self, rail: Rail, now: datetime, limit: int) -> list[str]:
        """Ids of payouts with rail work to do now: created, or in flight and due."""

    @abstractmethod
    async def sent_unsettled(self, rail: Rail, checked_before: datetime, limit: int) -> list[str]:
        """Ids of sent payouts not checked with the rail since ``checked_before``."""

    @abstractmethod
    async def add_run(self, run: PayoutRun) -> None:
        """Insert; DuplicateKey if its request_id was used before."""

    @abstractmethod
    async def get_run(self, run_id: str) -> PayoutRun | None: ...

    @abstractmethod
    async def run_by_request(self, request_id: str) -> PayoutRun | None: ...

    @abstractmethod
    async def of_run(self, run_id: str) -> list[Payout]: ...


class PayeeRepository(ABC):
    @abstractmethod
    async def get(self, employee: str) -> PayeeAccount | None: ...

    @abstractmethod
    async def put(self, account: PayeeAccount) -> None: ...


class LedgerRepository(ABC):
    @abstractmethod
    async def post(self, entry: JournalEntry) -> None:
        """Append; DuplicateKey if an entry of the same kind and reference exists."""

    @abstractmethod
    async def has(self, kind: str, reference: str) -> bool: ...

    @abstractmethod
    async def balance(self, account: str, currency: str) -> int: ...

    @abstractmethod
    async def balances(self) -> dict[tuple[str, str], int]: ...


class StripeEventLog(ABC):
    @abstractmethod
    async def record(self, event_id: str, event_type: str, payout_id: str) -> bool:
        """True the first time an event id is seen, False for a duplicate delivery."""


class BankFileRepository(ABC):
    @abstractmethod
    async def get(self, run_id: str) -> StoredBankFile | None: ...

    @abstractmethod
    async def add(self, file: StoredBankFile) -> None: ...


class UnitOfWork(ABC):
    """One transaction: state, ledger, outbox events and audit records commit together."""

    claims: ClaimRepository
    receipts: ReceiptRefRepository
    payouts: PayoutRepository
    payees: PayeeRepository
    ledger: LedgerRepository
    stripe_events: StripeEventLog
    bank_files: BankFileRepository

    @abstractmethod
    async def __aenter__(self) -> UnitOfWork: ...

    @abstractmethod
    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    @abstractmethod
    async def commit(self) -> None: ...

    @abstractmethod
    async def emit(
        self, event_type: str, aggregate_id: str, payload: Message, *, actor: str = ""
    ) -> None:
        """Queue an event in the outbox of this transaction."""

    @abstractmethod
    async def audit(
        self,
        *,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str = "",
    ) -> None:
        """Record a decision in the audit trail, in this transaction."""


# -- the Stripe rail ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RailTransfer:
    transfer_id: str
    amount: int
    currency: str  # upper case
    destination: str
    amount_reversed: int = 0
    attempt: int = 0
    reversal_id: str = ""

    @property
    def fully_reversed(self) -> bool:
        return self.amount_reversed >= self.amount


@dataclass(frozen=True)
class RailPayout:
    payout_id: str
    status: str  # pending, in_transit, paid, failed, canceled
    amount: int
    currency: str
    failure_code: str = ""
    failure_message: str = ""
    attempt: int = 0

    @property
    def failure_reason(self) -> str:
        return f"{self.failure_message or 'the payout failed'} ({self.failure_code or 'failed'})"


class RailError(Exception):
    """Base of what the rail's adapter raises."""


class RailDeclined(RailError):
    """The rail refused the request and did nothing (bad destination, insufficient funds)."""

    def __init__(self, reason: str, code: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.code = code


class RailIndeterminate(RailError):
    """The key is spent on an error (a saved 500, an idempotency conflict): whether the
    work happened is unknown until looked up, and this key will never say."""


class RailTemporarilyDown(RailError):
    """Timeouts, 429s or retryable 5xx outlasted the retries; the same key is to be
    re-sent later (after a lookup)."""


class StripeGateway(ABC):
    """The Stripe calls the rail makes. Every create takes an idempotency key."""

    @abstractmethod
    async def create_transfer(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailTransfer: ...

    @abstractmethod
    async def find_transfer(self, payout_id: str) -> RailTransfer | None:
        """A transfer of this payout that is not wholly reversed, if there is one."""

    @abstractmethod
    async def get_transfer(self, transfer_id: str) -> RailTransfer: ...

    @abstractmethod
    async def create_payout(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailPayout: ...

    @abstractmethod
    async def find_payout(
        self, account: str, payout_id: str, attempt: int, since: datetime | None
    ) -> RailPayout | None:
        """The connected account's payout for this payout id: one that has not failed (of any
        attempt), else a failed one of this ``attempt``, else None."""

    @abstractmethod
    async def get_payout(self, account: str, stripe_payout_id: str) -> RailPayout: ...

    @abstractmethod
    async def reverse_transfer(self, key: str, *, transfer_id: str, payout_id: str) -> str:
        """Reverse the whole transfer; the reversal id."""

    @abstractmethod
    async def check_account(self, account: str) -> str:
        """'' if the connected account can take transfers, else why not."""

    @abstractmethod
    async def create_test_account(self, employee: str, currency: str) -> str:
        """Test mode: a custom connected account with a test bank account; its id."""
