"""The transaction every service's unit of work stands on: state, outbox events and audit
records commit together or not at all.

A service subclasses :class:`SqlTransaction`, names itself in ``source`` and
attaches its repositories in :meth:`_bind`. Used as ``async with uow:`` it owns
its transaction (rolled back unless :meth:`commit` ran); :meth:`joining` wraps
a transaction someone else owns (an event consumer's), whose commit is theirs.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, ClassVar, Self

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared import audit, context
from seisan_shared.bus.outbox import add_event
from seisan_shared.events import new_event
from seisan_shared.storage.db import Database


class SqlTransaction:
    source: ClassVar[str]

    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self.db: Database | None = db
        self.on_commit = on_commit
        self._session: AsyncSession | None = None
        self._emitted = False

    @classmethod
    def joining(cls, session: AsyncSession) -> Self:
        """A unit of work inside a transaction someone else owns (an event consumer's)."""
        uow = cls.__new__(cls)
        SqlTransaction.__init__(uow, None, None)  # type: ignore[arg-type]
        uow._bind(session)
        return uow

    def _bind(self, session: AsyncSession) -> None:
        """Attach the service's repositories to ``session`` (subclasses extend this)."""
        self._session = session

    async def __aenter__(self) -> Self:
        assert self.db is not None, "a joined unit of work is already inside a transaction"
        session = self.db.session()
        await session.begin()
        self._bind(session)
        self._emitted = False
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._session is not None
        if self._session.in_transaction():
            await self._session.rollback()
        await self._session.close()
        self._session = None

    @property
    def session(self) -> AsyncSession:
        assert self._session is not None, "use `async with uow:`"
        return self._session

    async def commit(self) -> None:
        await self.session.commit()
        if self._emitted and self.on_commit is not None:
            self.on_commit()  # wake the outbox relay now instead of at its next poll

    async def emit(
        self, event_type: str, aggregate_id: str, payload: Message, *, actor: str = ""
    ) -> None:
        """Queue an event in this transaction's outbox (correlation id from the request)."""
        envelope = new_event(
            event_type,
            source=self.source,
            aggregate_id=aggregate_id,
            payload=payload,
            correlation_id=context.correlation_id(),
            actor=actor,
        )
        await add_event(self.session, envelope)
        self._emitted = True

    async def record_decision(
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
        """Write a decision to the audit trail in this transaction."""
        await audit.record_decision(
            self.session,
            source=self.source,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
            reason=reason,
            correlation_id=context.correlation_id(),
        )
        self._emitted = True
