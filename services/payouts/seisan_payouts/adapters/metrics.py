"""What the payout service reports on /metrics beyond the shared RPC and bus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import sqlalchemy as sa

from seisan_payouts.adapters.tables import claims, payouts
from seisan_payouts.domain.model import ClaimStatus
from seisan_payouts.domain.payouts import PayoutStatus
from seisan_shared.storage import Database

PAYOUT_STATUSES = tuple(s.value for s in PayoutStatus)
CLAIM_STATUSES = tuple(s.value for s in ClaimStatus)


def status_counts(db: Database, table: sa.Table) -> Callable[[], Awaitable[dict[str, float]]]:
    """Rows of ``table`` (payouts or claims) by their ``status`` column, for a state gauge."""

    async def sample() -> dict[str, float]:
        async with db.transaction() as session:
            rows = await session.execute(
                sa.select(table.c.status, sa.func.count()).group_by(table.c.status)
            )
            return {str(status): float(count) for status, count in rows.all()}

    return sample


def payout_counts(db: Database) -> Callable[[], Awaitable[dict[str, float]]]:
    return status_counts(db, payouts)


def claim_counts(db: Database) -> Callable[[], Awaitable[dict[str, float]]]:
    return status_counts(db, claims)
