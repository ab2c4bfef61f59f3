"""The SQL unit of work: receipts, outbox events and audit records in one DB transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from seisan_intake.adapters.repository import SqlReceiptRepository
from seisan_intake.domain.ports import UnitOfWork
from seisan_shared.storage.uow import SqlTransaction


class SqlUnitOfWork(SqlTransaction, UnitOfWork):
    source = "intake"

    def _bind(self, session: AsyncSession) -> None:
        super()._bind(session)
        self.receipts = SqlReceiptRepository(session)

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
        await self.record_decision(
            actor=actor,
            action=action,
            entity_type="receipt",
            entity_id=entity_id,
            before=before,
            after=after,
            reason=reason,
        )
