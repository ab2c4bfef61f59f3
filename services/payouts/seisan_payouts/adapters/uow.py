"""The SQL unit of work: payout state, ledger, outbox events and audit records, one transaction."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from google.protobuf.message import Message
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_payouts.adapters.repository import (
    SqlBankFiles,
    SqlClaims,
    SqlLedger,
    SqlPayees,
    SqlPayouts,
    SqlReceiptRefs,
    SqlStripeEvents,
)
from seisan_payouts.domain.ports import UnitOfWork
from seisan_shared import audit, context
from seisan_shared.bus.outbox import add_event
from seisan_shared.events import new_event
from seisan_shared.storage import Database

SOURCE = "payouts"


class SqlUnitOfWork(UnitOfWork):
    def __init__(self, db: Database, on_commit: Callable[[], None] | None = None) -> None:
        self.db = db
        self.on_commit = on_commit
        self._session: AsyncSession | None = None
        self._emitted = False

    @classmethod
    def joining(cls, session: AsyncSession) -> SqlUnitOfWork:
        """A unit of work inside a transaction someone else owns (an event consumer's)."""
        uow = cls.__new__(cls)
        uow.db = None  # type: ignore[assignment]
        uow.on_commit = None
        uow._emitted = False
        uow._bind(session)
        return uow

    def _bind(self, session: AsyncSession) -> None:
        self._session = session
        self.claims = SqlClaims(session)
        self.receipts = SqlReceiptRefs(session)
        self.payouts = SqlPayouts(session)
        self.payees = SqlPayees(session)
        self.ledger = SqlLedger(session)
        self.stripe_events = SqlStripeEvents(session)
        self.bank_files = SqlBankFiles(session)

    async def __aenter__(self) -> SqlUnitOfWork:
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
        envelope = new_event(
            event_type,
            source=SOURCE,
            aggregate_id=aggregate_id,
            payload=payload,
            correlation_id=context.correlation_id(),
            actor=actor,
        )
        await add_event(self.session, envelope)
        self._emitted = True

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
        await audit.record_decision(
            self.session,
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
        self._emitted = True
