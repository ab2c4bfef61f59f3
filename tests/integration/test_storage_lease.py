"""The lease that keeps one payout driver per database, however many replicas run."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from seisan_shared.storage import Database, sqlite_url_for
from seisan_shared.storage.lease import Lease

pytestmark = pytest.mark.postgres
KEY = 0x5E15FF


async def test_one_holder_at_a_time_and_the_next_takes_over(pg_db: Database) -> None:
    other = await Database(pg_db.url, pool_size=2).open()  # another replica's engine
    try:
        first, second = Lease(pg_db, KEY, "t"), Lease(other, KEY, "t")
        assert await first.held()
        assert not await second.held()
        assert await first.held()  # still ours on the next pass
        await first.release()
        assert await second.held()
        assert not await first.held()
        await second.release()
    finally:
        await other.close()


async def test_a_holder_whose_session_dies_loses_it_to_the_next(pg_db: Database) -> None:
    other = await Database(pg_db.url, pool_size=2).open()
    try:
        first, second = Lease(pg_db, KEY, "t"), Lease(other, KEY, "t")
        assert await first.held()
        async with other.transaction() as session:  # the holder's process dies
            await session.execute(
                sa.text(
                    # with a timeout, it returns once the backend is gone (PostgreSQL 14+)
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_locks"
                    " WHERE locktype = 'advisory' AND objid = :k"
                    " AND database = (SELECT oid FROM pg_database"
                    " WHERE datname = current_database())"
                ),
                {"k": KEY},
            )
        assert await second.held()
        assert not await first.held()  # it notices, and the lease is taken
        await second.release()
        assert await first.held()
        await first.release()
    finally:
        await other.close()


async def test_on_sqlite_the_one_process_always_holds_it(tmp_path: Path) -> None:
    db = await Database(sqlite_url_for(tmp_path / "x.db")).open()
    try:
        assert await Lease(db, KEY, "t").held()
        assert await Lease(db, KEY, "t").held()
    finally:
        await db.close()
