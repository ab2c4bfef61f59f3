"""What the cards service reports on /metrics beyond the shared RPC and bus metrics."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from sqlalchemy import func, select

from seisan_cards.adapters.repository import matches
from seisan_cards.domain.model import MatchStatus
from seisan_shared.storage import Database

MATCH_STATUSES = tuple(s.value for s in MatchStatus)


def match_counts(db: Database) -> Callable[[], Awaitable[dict[str, float]]]:
    """Matches by status (proposed, confirmed, rejected, unmatched), for ``seisan_matches``."""

    async def sample() -> dict[str, float]:
        async with db.transaction() as session:
            rows = await session.execute(
                select(matches.c.status, func.count()).group_by(matches.c.status)
            )
            return {str(status): float(count) for status, count in rows.all()}

    return sample
