"""One holder per database: a PostgreSQL session advisory lock kept on its own connection.

Work that must run in one process at a time even when a service runs as
several replicas (the payout driver) asks :meth:`Lease.held` before each pass.
The replica that holds the lease keeps one pooled connection for it; if that
process dies, PostgreSQL ends the session and the lock goes with it, so another
replica takes over on its next pass. On SQLite one process owns the file and
the lease is always held.
"""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

from seisan_shared.storage.db import Database

log = logging.getLogger("seisan.storage.lease")


class Lease:
    """``pg_try_advisory_lock(key)`` held on a dedicated connection while this process has it."""

    def __init__(self, db: Database, key: int, name: str) -> None:
        self.db = db
        self.key = key
        self.name = name
        self._conn: AsyncConnection | None = None

    async def held(self) -> bool:
        """Whether this process holds the lease now (taking it if it is free)."""
        if self.db.is_sqlite:
            return True
        if self._conn is not None:
            try:
                await self._conn.execute(text("SELECT 1"))
                await self._conn.commit()
                return True
            except Exception as exc:  # the session (and with it the lock) is gone
                log.warning("lease %s lost with its connection (%r)", self.name, exc)
                await self._drop()
        conn = await self.db.engine.connect()
        try:
            got = await conn.scalar(text("SELECT pg_try_advisory_lock(:k)"), {"k": self.key})
            await conn.commit()  # the session-level lock outlives the transaction
        except BaseException:
            with contextlib.suppress(Exception):
                await conn.close()
            raise
        if not got:
            await conn.close()
            return False
        log.info("lease %s taken", self.name)
        self._conn = conn
        return True

    async def release(self) -> None:
        """Give the lease up (on shutdown) so another replica takes it at once."""
        if self._conn is None:
            return
        with contextlib.suppress(Exception):
            await self._conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": self.key})
            await self._conn.commit()
        await self._drop()

    async def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.invalidate()
            with contextlib.suppress(Exception):
                await conn.close()
