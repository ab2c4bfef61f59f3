"""Ports the handlers talk to. Adapters implement them; unit tests subclass them with fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from types import TracebackType
from typing import Any

from google.protobuf.message import Message

from seisan_intake.domain.model import Receipt, Status


@dataclass(frozen=True)
class ReceiptQuery:
    submitter: str | None = None
    status: Status | None = None
    date_from: date | None = None
    date_to: date | None = None
    amount_min: int | None = None
    amount_max: int | None = None
    currency: str | None = None
    merchant: str | None = None
    limit: int = 50
    # Opaque cursor: (uploaded_at iso, receipt_id) of the last row of the previous page.
    after: tuple[str, str] | None = None


class DuplicateKey(Exception):
    """A receipt with the same submitter and bytes was stored concurrently."""


class ReceiptRepository(ABC):
    @abstractmethod
    async def add(self, receipt: Receipt) -> None:
        """Insert; raises DuplicateKey when (submitter, sha256) exists already."""

    @abstractmethod
    async def get(self, receipt_id: str) -> Receipt | None: ...

    @abstractmethod
    async def find_exact(self, submitter: str, sha256: str) -> Receipt | None: ...

    @abstractmethod
    async def find_by_sha(self, sha256: str) -> list[Receipt]: ...

    @abstractmethod
    async def recent_hashes(self, limit: int) -> list[tuple[str, str]]:
        """(receipt_id, perceptual_hash) of the newest receipts, for near-duplicate checks."""

    @abstractmethod
    async def update(self, receipt: Receipt) -> None:
        """Save changes; raises if the row changed since it was read (optimistic version)."""

    @abstractmethod
    async def query(self, q: ReceiptQuery) -> list[Receipt]: ...


class UnitOfWork(ABC):
    """One transaction: receipts, the outbox and the audit trail commit together or not at all."""

    receipts: ReceiptRepository

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
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str = "",
    ) -> None:
        """Record a decision in the audit trail, in this transaction."""
