"""The SQL unit of work: payout state, ledger, outbox events and audit records, one transaction."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
from seisan_shared.storage.uow import SqlTransaction

SOURCE = "payouts"


class SqlUnitOfWork(SqlTransaction, UnitOfWork):
    source = SOURCE

    def _bind(self, session: AsyncSession) -> None:
        super()._bind(session)
        self.claims = SqlClaims(session)
        self.receipts = SqlReceiptRefs(session)
        self.payouts = SqlPayouts(session)
        self.payees = SqlPayees(session)
        self.ledger = SqlLedger(session)
        self.stripe_events = SqlStripeEvents(session)
        self.bank_files = SqlBankFiles(session)

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
        await self.record_decision(
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before=before,
            after=after,
            reason=reason,
        )
