"""The SQL unit of work: reconciliation state, outbox events and audit records together."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_cards.adapters.repository import (
    SqlChargeRepository,
    SqlDeclarationRepository,
    SqlMatchRepository,
    SqlReceiptRefRepository,
    SqlStatementRepository,
)
from seisan_cards.domain.ports import UnitOfWork
from seisan_shared import audit, context
from seisan_shared.bus.outbox import add_events
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database

SOURCE = "cards"


class SqlUnitOfWork(UnitOfWork):
    """Events and audit records are queued and written in one statement at commit (a
    statement import queues thousands); inside someone else's transaction (``joining``)
    they are written at once, since the owner commits."""

    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self.db: Database | None = db
        self.on_commit = on_commit
        self._session: AsyncSession | None = None
        self._owned = True
        self._emitted = False
        self._queued: list[Envelope] = []

    @classmethod
    def joining(cls, session: AsyncSession) -> SqlUnitOfWork:
        """A unit of work inside a transaction someone else owns (an event consumer's).

        Entering and leaving it neither begins, commits nor closes anything; ``commit``
        is a no-op, the owner commits.
        """
        uow = cls.__new__(cls)
        uow.db = None
        uow.on_commit = None
        uow._session = session
        uow._owned = False
        uow._emitted = False
        uow._queued = []
        uow._bind(session)
        return uow

    def _bind(self, session: AsyncSession) -> None:
        self.statements = SqlStatementRepository(session)
        self.charges = SqlChargeRepository(session)
        self.matches = SqlMatchRepository(session)
        self.receipts = SqlReceiptRefRepository(session)
        self.declarations = SqlDeclarationRepository(session)

    async def __aenter__(self) -> SqlUnitOfWork:
        if not self._owned:
            return self
        assert self.db is not None
        self._session = self.db.session()
        await self._session.begin()
        self._bind(self._session)
        self._emitted = False
        self._queued = []
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if not self._owned:
            return
        assert self._session is not None
        self._queued = []
        if self._session.in_transaction():
            await self._session.rollback()
        await self._session.close()
        self._session = None

    @property
    def session(self) -> AsyncSession:
        assert self._session is not None, "use `async with uow:`"
        return self._session

    async def _queue(self, envelope: Envelope) -> None:
        self._emitted = True
        if self._owned:
            self._queued.append(envelope)
        else:
            await add_events(self.session, [envelope])

    async def commit(self) -> None:
        if not self._owned:
            return
        queued, self._queued = self._queued, []
        await add_events(self.session, queued)
        await self.session.commit()
        if self._emitted and self.on_commit is not None:
            self.on_commit()  # wake the outbox relay now instead of at its next poll

    async def emit(
        self, event_type: str, aggregate_id: str, payload: Message, *, actor: str = ""
    ) -> None:
        await self._queue(
            new_event(
                event_type,
                source=SOURCE,
                aggregate_id=aggregate_id,
                payload=payload,
                correlation_id=context.correlation_id(),
                actor=actor,
            )
        )

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
        await self._queue(
            audit.audit_event(
                source=SOURCE,
                actor=actor,
                action=action,
                entity_type=entity_type,
                entity_id=entity_id,
                before=before,
                after=after,
                reason=reason,
                correlation_id=context.correlation_id(),
            )
        )
