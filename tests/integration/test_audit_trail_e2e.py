"""Decision → outbox → relay → JetStream → audit consumer → chain → verify, then tampering.

A "service" database (SQLite, the shared outbox only) records decisions with
``record_decision`` in its own transactions; the audit database (SQLite and
PostgreSQL) is fed by the real consumer from a real nats-server.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from seisan.audit.v1 import audit_pb2
from seisan_audit.adapters.repository import SqlAuditReader
from seisan_audit.bootstrap import MIGRATIONS
from seisan_audit.domain.chain import ChainEntry, ProblemKind
from seisan_audit.entrypoints.cli import app
from seisan_audit.entrypoints.consumer import SUBJECT, audit_consumer
from seisan_audit.handlers import verify
from seisan_shared.audit import audit_event, record_decision
from seisan_shared.bus import EventBus, EventConsumer, OutboxRelay
from seisan_shared.bus.client import MSG_ID
from seisan_shared.storage import Database, run_migrations, sqlite_url_for


@pytest.fixture
async def audit_db(database: Database) -> AsyncIterator[Database]:
    await run_migrations(database, MIGRATIONS)
    yield database


@pytest.fixture
async def service_db(tmp_path: Path) -> AsyncIterator[Database]:
    db = Database(sqlite_url_for(tmp_path / "service" / "intake.db"))
    await db.open()
    await run_migrations(db)
    async with db.transaction() as session:
        await session.execute(
            sa.text("CREATE TABLE receipts (id TEXT PRIMARY KEY, total INTEGER NOT NULL)")
        )
    try:
        yield db
    finally:
        await db.close()


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def correct_receipt(db: Database, receipt_id: str, old: int, new: int, actor: str) -> str:
    """A service's decision: the state change and its audit record in one transaction."""
    async with db.transaction() as session:
        await session.execute(
            sa.text("INSERT OR REPLACE INTO receipts (id, total) VALUES (:id, :t)"),
            {"id": receipt_id, "t": new},
        )
        return await record_decision(
            session,
            source="intake",
            actor=actor,
            action="receipt.corrected",
            entity_type="receipt",
            entity_id=receipt_id,
            before={"total": {"minor_units": old, "currency": "JPY"}},
            after={"total": {"minor_units": new, "currency": "JPY"}},
            reason="合計の読み取り誤り",
            correlation_id=f"corr-{receipt_id}",
        )


async def start_consumer(bus: EventBus, db: Database, **options: Any) -> EventConsumer:
    consumer = audit_consumer(
        bus, db, durable=f"audit_{uuid.uuid4().hex[:8]}", fetch_timeout=0.5, **options
    )
    await consumer.provision()
    return consumer


async def test_decisions_reach_the_chain_once_and_tampering_is_caught(
    bus: EventBus, service_db: Database, audit_db: Database, tmp_path: Path
) -> None:
    recorded = [
        await correct_receipt(service_db, f"r-{i}", 1000 + i, 1100 + i, "aiko") for i in range(5)
    ]
    # A decision that fails leaves no audit record (and an audit record never outlives it).
    with pytest.raises(RuntimeError):
        async with service_db.transaction() as session:
            await record_decision(
                session,
                source="intake",
                actor="aiko",
                action="receipt.deleted",
                entity_type="receipt",
                entity_id="r-0",
                before={"total": 1100},
                after=None,
            )
            raise RuntimeError("the deletion failed after the audit call")

    relay = OutboxRelay(service_db, bus)
    assert await relay.publish_pending() == 5

    consumer = await start_consumer(bus, audit_db)
    task = asyncio.create_task(consumer.run())
    reader = SqlAuditReader(audit_db)
    try:

        async def appended() -> bool:
            return (await reader.anchor()).records == 5

        await eventually(appended)

        # The same event again (another message id, so JetStream keeps it): no second entry.
        last = (await bus.js.get_last_msg("SEISAN_EVENTS", SUBJECT)).data
        assert last is not None
        await bus.js.publish(SUBJECT, last, headers={MSG_ID: "replayed-" + uuid.uuid4().hex})

        async def deduplicated() -> bool:
            return consumer.processed().duplicates >= 1

        await eventually(deduplicated)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)

    entries = [e async for e in reader.entries()]
    assert all(isinstance(e, ChainEntry) for e in entries)
    chained = [e for e in entries if isinstance(e, ChainEntry)]
    assert [e.record.record_id for e in chained] == recorded  # arrival order, each once
    assert chained[0].record.actor == "aiko"
    assert chained[0].record.before_json == '{"total":{"currency":"JPY","minor_units":1000}}'
    assert chained[0].record.reason == "合計の読み取り誤り"
    report = await verify(reader)
    assert report.ok, report.problems
    assert report.records == 5

    cli = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["verify", "--database-url", audit_db.url, "--checkpoints", str(tmp_path / "cp")],
    )
    assert cli.exit_code == 0, cli.output
    assert cli.output.startswith("audit: records=5 head=")

    # Someone with owner rights drops the guard and quietly changes entry 3.
    async with audit_db.transaction() as session:
        if audit_db.is_sqlite:
            await session.execute(sa.text("DROP TRIGGER audit_entries_no_update"))
        else:
            await session.execute(
                sa.text("DROP TRIGGER audit_entries_append_only ON audit_entries")
            )
        await session.execute(
            sa.text("UPDATE audit_entries SET after_json = :a WHERE seq = 3"),
            {"a": '{"total":{"currency":"JPY","minor_units":99}}'},
        )
    report = await verify(reader)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 3)]
    cli = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["verify", "--database-url", audit_db.url, "--checkpoints", str(tmp_path / "cp")],
    )
    assert cli.exit_code == 1
    assert "edited at seq 3" in cli.output


async def test_a_malformed_record_is_dead_lettered_and_the_chain_carries_on(
    bus: EventBus, audit_db: Database
) -> None:
    good = audit_event(
        source="payouts",
        actor="system",
        action="payout.created",
        entity_type="payout",
        entity_id="po-1",
        before=None,
        after={"amount": {"minor_units": 12000, "currency": "JPY"}},
    )
    bad = audit_event(
        source="payouts",
        actor="system",
        action="payout.sent",
        entity_type="payout",
        entity_id="po-1",
        before=None,
        after=None,
    )
    payload = audit_pb2.AuditRecorded()
    bad.payload.Unpack(payload)
    payload.before_json = "{not json"
    bad.payload.Pack(payload, type_url_prefix="type.seisan.dev/")
    await bus.publish(bad)
    await bus.publish(good)

    consumer = await start_consumer(bus, audit_db, max_deliver=2, nak_delay=0.05)
    task = asyncio.create_task(consumer.run())
    try:

        async def settled() -> bool:
            return consumer.processed().dead_lettered == 1 and consumer.processed().handled == 1

        await eventually(settled)
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)
    reader = SqlAuditReader(audit_db)
    entries = [e async for e in reader.entries()]
    assert [e.record.record_id for e in entries if isinstance(e, ChainEntry)] == [good.event_id]
    assert (await verify(reader)).ok
    dead = await bus.js.get_last_msg("SEISAN_DLQ", f"dlq.{consumer.durable}")
    assert dead.headers is not None
    assert "before_json" in dead.headers.get("Seisan-Error", "")
