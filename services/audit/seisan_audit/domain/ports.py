"""Ports the handlers talk to. Adapters implement them; unit tests subclass them with fakes."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass

from seisan_audit.domain.chain import ChainEntry, ChainHead, Checkpoint, DamagedEntry


@dataclass(frozen=True)
class RecordQuery:
    """Filters for listing entries (empty string: any), in chain order after ``after_seq``."""

    entity_type: str = ""
    entity_id: str = ""
    actor: str = ""
    source_service: str = ""
    action: str = ""
    after_seq: int = 0
    limit: int = 50


class AuditLog(ABC):
    """The write side, inside the caller's transaction (the consumer's, with its dedup row)."""

    @abstractmethod
    async def head(self) -> ChainHead:
        """The anchor: where the next entry goes. Locked against other appenders until commit."""

    @abstractmethod
    async def has_record(self, record_id: str) -> bool: ...

    @abstractmethod
    async def append(self, entry: ChainEntry) -> None:
        """Store ``entry`` and move the anchor to it, in the same transaction."""


class AuditReader(ABC):
    """The read side: each call sees committed state and holds no lock for long."""

    @abstractmethod
    async def anchor(self) -> ChainHead: ...

    @abstractmethod
    def entries(
        self, after_seq: int = 0, until_seq: int | None = None
    ) -> AsyncIterator[ChainEntry | DamagedEntry]:
        """Entries with ``after_seq < seq <= until_seq`` in seq order, read in batches."""

    @abstractmethod
    async def find(self, query: RecordQuery) -> list[ChainEntry | DamagedEntry]: ...

    @abstractmethod
    async def latest(self, count: int) -> list[ChainEntry | DamagedEntry]:
        """The last ``count`` entries, oldest first."""

    @abstractmethod
    async def get(self, seq: int) -> ChainEntry | DamagedEntry | None: ...


class CheckpointStore(ABC):
    """Heads copied out of the database: evidence that survives a rewritten database."""

    @abstractmethod
    def read(self) -> list[Checkpoint]:
        """Every checkpoint, oldest first; [] when there are none."""

    @abstractmethod
    def append(self, checkpoint: Checkpoint) -> None: ...
