"""Ports the handlers talk to. Adapters implement them; unit tests subclass them with fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any

from google.protobuf.message import Message

from seisan_cards.domain.model import (
    ChargeRecord,
    ChargeStatus,
    Match,
    MissingReceiptDeclaration,
    ReceiptRef,
    ReceiptState,
    Statement,
    Tally,
)


@dataclass(frozen=True)
class ChargeQuery:
    status: ChargeStatus | None = None
    cardholder: str | None = None
    date_from: date | None = None  # transaction date, inclusive
    date_to: date | None = None
    statement_id: str | None = None
    limit: int = 100
    # Opaque cursor: (transaction date iso, charge_id) of the last row of the previous page.
    after: tuple[str, str] | None = None


@dataclass(frozen=True)
class Near:
    """Narrows matching candidates to those the incremental index can pair: the same amount
    (any of ``amounts``, as (currency, minor units)) from anyone, or anything of ``person``
    or of the card ``card_last4``."""

    amounts: tuple[tuple[str, int], ...]
    person: str
    card_last4: str | None = None


class DuplicateKey(Exception):
    """A row with the same unique key was written concurrently; the command is retried."""


class ConcurrentUpdate(Exception):
    """The row changed between read and write (another decision won the race)."""


class StatementRepository(ABC):
    @abstractmethod
    async def get(self, statement_id: str) -> Statement | None: ...

    @abstractmethod
    async def add(self, statement: Statement) -> None:
        """Insert the statement and its totals; raises DuplicateKey if it exists."""

    @abstractmethod
    async def add_lines(self, statement_id: str, lines: Sequence[tuple[str, int]]) -> None:
        """Link the statement to its charges: (charge_id, line number in the file)."""

    @abstractmethod
    async def overlapping(self, start: date | None, end: date | None) -> list[Statement]:
        """Statements whose period overlaps [start, end] (None: unbounded), oldest first."""

    @abstractmethod
    async def charge_ids(self, statement_id: str) -> list[str]: ...


class ChargeRepository(ABC):
    @abstractmethod
    async def known_issuer_ids(self, issuer_ids: Collection[str]) -> dict[str, str]:
        """issuer_transaction_id → charge_id of those already stored."""

    @abstractmethod
    async def known_charge_ids(self, charge_ids: Collection[str]) -> set[str]: ...

    @abstractmethod
    async def add_many(self, records: Sequence[ChargeRecord]) -> None:
        """Insert; raises DuplicateKey if an issuer transaction id or charge id exists."""

    @abstractmethod
    async def get_many(self, charge_ids: Collection[str]) -> dict[str, ChargeRecord]: ...

    @abstractmethod
    async def set_states(self, changes: Sequence[tuple[str, ChargeStatus, str]]) -> None:
        """(charge_id, status, match_id) for many charges at once."""

    @abstractmethod
    async def query(self, q: ChargeQuery) -> list[ChargeRecord]: ...

    @abstractmethod
    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ChargeRecord]:
        """Unmatched charges by transaction date (billed or original amount near), to match."""

    @abstractmethod
    async def tally(
        self,
        *,
        statement_id: str | None = None,
        cardholder: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> list[Tally]:
        """Counts and sums by (cardholder, currency, status) of the charges selected."""

    @abstractmethod
    async def booked_between(self, start: date, end: date) -> list[ChargeRecord]:
        """Charges whose booking date (posting, else transaction) falls in [start, end]."""


class MatchRepository(ABC):
    @abstractmethod
    async def add(self, match: Match) -> None:
        """Insert; raises DuplicateKey if a charge or receipt is already in a live match."""

    @abstractmethod
    async def add_many(self, matches: Sequence[Match]) -> None:
        """Insert all or none; raises DuplicateKey if any item is already in a live match."""

    @abstractmethod
    async def get(self, match_id: str) -> Match | None: ...

    @abstractmethod
    async def get_many(self, match_ids: Collection[str]) -> dict[str, Match]: ...

    @abstractmethod
    async def update(self, match: Match) -> None:
        """Save a decision; raises if the match changed since it was read."""

    @abstractmethod
    async def live_for(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> list[Match]:
        """Live (proposed or confirmed) matches touching any of the charges or receipts."""

    @abstractmethod
    async def proposed(self, limit: int, cardholder: str | None = None) -> list[Match]:
        """Proposals waiting for a person, best score first."""

    @abstractmethod
    async def rejected_pairs(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> set[tuple[str, str]]:
        """(charge_id, receipt_id) pairs a person turned down, touching the given items."""

    @abstractmethod
    async def add_rejected_pairs(self, pairs: Iterable[tuple[str, str]], match_id: str) -> None: ...


class ReceiptRefRepository(ABC):
    @abstractmethod
    async def get(self, receipt_id: str) -> ReceiptRef | None: ...

    @abstractmethod
    async def get_many(self, receipt_ids: Collection[str]) -> dict[str, ReceiptRef]: ...

    @abstractmethod
    async def save(self, ref: ReceiptRef) -> None:
        """Insert or replace."""

    @abstractmethod
    async def set_states(self, changes: Sequence[tuple[str, ReceiptState, str]]) -> None:
        """(receipt_id, state, match_id) for many receipts (a deleted one stays deleted)."""

    @abstractmethod
    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ReceiptRef]:
        """Open receipts dated in [start, end] (and near, if given), for matching."""


class DeclarationRepository(ABC):
    @abstractmethod
    async def add(self, declaration: MissingReceiptDeclaration) -> None:
        """Insert; raises DuplicateKey if the charge is already declared."""

    @abstractmethod
    async def for_charges(
        self, charge_ids: Collection[str]
    ) -> dict[str, MissingReceiptDeclaration]: ...


class CardDirectory(ABC):
    """Who holds which card: the principal a charge belongs to, and Stripe card facts."""

    @abstractmethod
    def principal_for(self, card_last4: str, printed_name: str) -> str | None: ...

    @abstractmethod
    def stripe_card(self, card_id: str) -> tuple[str, str] | None:
        """(last four digits, principal) of a Stripe Issuing card id, if known."""

    @abstractmethod
    def stripe_cardholder(self, cardholder_id: str) -> str | None:
        """The principal of a Stripe Issuing cardholder id, if known."""


class UnitOfWork(ABC):
    """One transaction: state, outbox events and audit records commit together or not at all."""

    statements: StatementRepository
    charges: ChargeRepository
    matches: MatchRepository
    receipts: ReceiptRefRepository
    declarations: DeclarationRepository

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
    async def commit(self) -> None:
        """Write what is queued (events, audit records) and commit."""

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
