"""Crashes, failing handlers, poison events and competing consumers: still exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING

import nats.js.errors
import pytest
import sqlalchemy as sa
from google.protobuf.struct_pb2 import Value
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import (
    DELIVERIES_HEADER,
    ERROR_HEADER,
    ORIGINAL_SUBJECT_HEADER,
    EventConsumer,
)
from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.bus.outbox import OutboxRelay, add_events
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database
from seisan_shared.storage.tables import outbox
from seisan_shared.subjects import DLQ_STREAM, EVENTS_STREAM, RECEIPT_CAPTURED, dlq_subject

if TYPE_CHECKING:
    from tests.integration.conftest import Effects

Until = Callable[..., Awaitable[None]]

# A relay or consumer in its own process, so SEISAN_FAULTS can kill it for real.
WORKER = textwrap.dedent(
    """
    import asyncio, sys
    import sqlalchemy as sa
    from seisan_shared.bus import EventBus, EventConsumer, OutboxRelay
    from seisan_shared.faults import Faults
    from seisan_shared.storage import Database

    async def main(role, nats_url, db_url, durable, batch, per_batch):
        faults = Faults.from_env()
        db = await Database(db_url).open()
        bus = await EventBus(nats_url, name="worker-" + role).connect()
        if role == "relay":
            await OutboxRelay(db, bus, batch_size=batch, faults=faults).publish_pending()
            return
        async def handle(envelope, session):
            await session.execute(
                sa.text("INSERT INTO bus_effects (consumer, event_id) VALUES (:c, :e)"),
                {"c": durable, "e": envelope.event_id},
            )
        consumer = EventConsumer(
            bus, db, durable=durable, filter_subjects=["seisan.>"], handler=handle,
            batch=batch, ack_wait=1, fetch_timeout=0.5, transaction_per_batch=per_batch,
            faults=faults,
        )
        await asyncio.wait_for(consumer.run(), 20)

    role, nats_url, db_url, durable, batch, per_batch = sys.argv[1:]
    asyncio.run(main(role, nats_url, db_url, durable, int(batch), per_batch == "1"))
    """
)


def run_worker(
    tmp_path: Path,
    fault: str,
    role: str,
    server: NatsServer,
    db: Database,
    durable: str = "",
    *,
    batch: int = 10,
    per_batch: bool = True,
) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    env = {**os.environ, "SEISAN_FAULTS": fault}
    args = [role, server.url, db.url, durable or "-", str(batch), "1" if per_batch else "0"]
    return subprocess.run(
        [sys.executable, str(script), *args], env=env, capture_output=True, text=True, timeout=60
    )


def make_event(n: int = 0, aggregate_id: str = "") -> Envelope:
    return new_event(
        RECEIPT_CAPTURED,
        source="test",
        aggregate_id=aggregate_id or f"r-{n}",
        payload=Value(number_value=n),
    )


@asynccontextmanager
async def running(*workers: OutboxRelay | EventConsumer) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def count_unpublished(db: Database) -> int:
    async with db.transaction() as session:
        n = await session.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    return int(n or 0)


def effect_handler(
    effects: Effects, durable: str
) -> Callable[[Envelope, AsyncSession], Awaitable[None]]:
    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        await effects.record(session, durable, envelope.event_id)

    return handle


async def test_relay_crash_between_publish_and_mark_publishes_each_event_once(
    tmp_path: Path,
    nats_server: NatsServer,
    bus: EventBus,
    database: Database,
    effects: Effects,
    until: Until,
) -> None:
    events = [make_event(n) for n in range(30)]
    async with database.transaction() as session:
        await add_events(session, events)

    # Batch 1 is published and marked; batch 2 is published, then the relay dies.
    crashed = run_worker(tmp_path, "outbox.after_publish:exit@2", "relay", nats_server, database)
    assert crashed.returncode == 137, crashed.stderr
    assert "injected crash at outbox.after_publish" in crashed.stderr
    assert await count_unpublished(database) == 20
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 20

    # A fresh relay republishes batch 2 (dropped by JetStream: same Nats-Msg-Id) and batch 3.
    relay = OutboxRelay(database, bus, batch_size=10)
    assert await relay.publish_pending() == 20
    assert await count_unpublished(database) == 0
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 30

    durable = f"rc_{uuid.uuid4().hex[:8]}"
    consumer = EventConsumer(
        bus,
        database,
        durable=durable,
        filter_subjects=["seisan.receipt.>"],
        handler=effect_handler(effects, durable),
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().handled >= 30)
        await asyncio.sleep(0.3)
    per_event = await effects.per_event(durable)
    assert set(per_event) == {e.event_id for e in events}
    assert max(per_event.values()) == 1
    assert consumer.processed().duplicates == 0


@pytest.mark.parametrize("per_batch", [True, False], ids=["batch-tx", "message-tx"])
async def test_consumer_crash_after_commit_before_ack_does_not_repeat_the_effect(
    tmp_path: Path,
    nats_server: NatsServer,
    bus: EventBus,
    database: Database,
    effects: Effects,
    until: Until,
    per_batch: bool,
) -> None:
    events = [make_event(n) for n in range(20)]
    for env in events:
        await bus.publish(env)
    durable = f"cc_{uuid.uuid4().hex[:8]}"

    crashed = run_worker(
        tmp_path,
        "consumer.after_handle:exit",
        "consumer",
        nats_server,
        database,
        durable,
        batch=5,
        per_batch=per_batch,
    )
    assert crashed.returncode == 137, crashed.stderr
    committed = await effects.per_event(durable)
    assert sum(committed.values()) == (5 if per_batch else 1)  # committed, never acked

    consumer = EventConsumer(
        bus,
        database,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=effect_handler(effects, durable),
        ack_wait=1,
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().handled + consumer.processed().duplicates >= 20)
        await asyncio.sleep(0.3)
    per_event = await effects.per_event(durable)
    assert set(per_event) == {e.event_id for e in events}
    assert max(per_event.values()) == 1
    stats = consumer.processed()
    assert stats.duplicates == sum(committed.values())  # redelivered, recognised, acked
    assert stats.redelivered >= stats.duplicates
    assert stats.handled == 20 - stats.duplicates


async def test_handler_failing_on_first_delivery_is_retried_and_applied_once(
    bus: EventBus, database: Database, effects: Effects, until: Until
) -> None:
    events = [make_event(n) for n in range(12)]
    flaky = {e.event_id for e in events[::3]}
    calls: dict[str, int] = {}
    durable = f"fl_{uuid.uuid4().hex[:8]}"

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.event_id] = calls.get(envelope.event_id, 0) + 1
        await effects.record(session, durable, envelope.event_id)  # rolled back on the raise
        if envelope.event_id in flaky and calls[envelope.event_id] == 1:
            raise ConnectionError("OCR engine restarting")

    for env in events:
        await bus.publish(env)
    consumer = EventConsumer(
        bus,
        database,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=handle,
        nak_delay=0.05,
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().handled >= 12)
    per_event = await effects.per_event(durable)
    assert set(per_event) == {e.event_id for e in events}
    assert max(per_event.values()) == 1
    stats = consumer.processed()
    assert stats.retried == len(flaky)
    assert stats.redelivered == len(flaky)
    assert stats.dead_lettered == 0


@pytest.mark.parametrize("per_batch", [True, False], ids=["batch-tx", "message-tx"])
async def test_poison_event_is_dead_lettered_after_max_deliver_while_others_flow(
    bus: EventBus, sqlite_db: Database, sqlite_effects: Effects, until: Until, per_batch: bool
) -> None:
    durable = f"po_{uuid.uuid4().hex[:8]}"
    events = [make_event(n) for n in range(10)]
    poison = make_event(aggregate_id="poison")
    events.insert(4, poison)
    poison_calls = 0

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        nonlocal poison_calls
        await sqlite_effects.record(session, durable, envelope.event_id)
        if envelope.aggregate_id == "poison":
            poison_calls += 1
            raise ValueError("receipt total\nis negative")

    for env in events:
        await bus.publish(env)
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=handle,
        max_deliver=3,
        nak_delay=0.05,
        fetch_timeout=0.5,
        transaction_per_batch=per_batch,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().dead_lettered >= 1)
        await until(lambda: consumer.processed().handled >= 10)
        await asyncio.sleep(0.3)
    assert poison_calls == 3
    per_event = await sqlite_effects.per_event(durable)
    assert poison.event_id not in per_event  # its effects were rolled back every time
    assert len(per_event) == 10
    assert max(per_event.values()) == 1

    dead = await bus.js.get_last_msg(DLQ_STREAM, dlq_subject(durable))
    assert dead.data == poison.SerializeToString()
    headers = dead.headers or {}
    assert headers[ERROR_HEADER] == "ValueError: receipt total is negative"
    assert headers[ORIGINAL_SUBJECT_HEADER] == "seisan.receipt.captured"
    assert headers[DELIVERIES_HEADER] == "3"
    assert headers["Nats-Msg-Id"] == f"{poison.event_id}:{durable}"
    assert (await bus.js.stream_info(DLQ_STREAM)).state.messages == 1
    # Terminated: the consumer holds nothing back for redelivery.
    info = await bus.js.consumer_info(EVENTS_STREAM, durable)
    assert info.num_ack_pending == 0
    assert info.num_pending == 0


async def test_undecodable_message_is_dead_lettered_at_once(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    durable = f"un_{uuid.uuid4().hex[:8]}"
    called: list[str] = []

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        called.append(envelope.event_id)

    await bus.js.publish(
        "seisan.receipt.captured", b"\xff\xfe not an envelope", headers={"Nats-Msg-Id": "garbage-1"}
    )
    good = make_event(1)
    await bus.publish(good)
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=handle,
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().dead_lettered == 1 and called)
    assert called == [good.event_id]
    dead = await bus.js.get_last_msg(DLQ_STREAM, dlq_subject(durable))
    assert dead.data == b"\xff\xfe not an envelope"
    assert (dead.headers or {})[DELIVERIES_HEADER] == "1"
    assert (dead.headers or {})["Nats-Msg-Id"] == f"garbage-1:{durable}"
    with pytest.raises(nats.js.errors.NotFoundError):
        await bus.js.get_last_msg(DLQ_STREAM, dlq_subject("someone_else"))


async def test_two_consumers_on_one_durable_split_the_work(
    nats_server: NatsServer, bus: EventBus, database: Database, effects: Effects, until: Until
) -> None:
    durable = f"sh_{uuid.uuid4().hex[:8]}"
    events = [make_event(n) for n in range(200)]
    await bus.publish_raw_many(
        [("seisan.receipt.captured", e.SerializeToString(), e.event_id) for e in events]
    )

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        await effects.record(session, durable, envelope.event_id)
        await asyncio.sleep(0.002)  # some work, so both get a turn

    async with EventBus(nats_server.url, name="worker-2") as second_bus:
        consumers = [
            EventConsumer(
                b,
                database,
                durable=durable,
                filter_subjects=["seisan.>"],
                handler=handle,
                batch=10,
                fetch_timeout=0.5,
            )
            for b in (bus, second_bus)
        ]
        async with running(*consumers):
            await until(lambda: sum(c.processed().handled for c in consumers) >= 200)
            await asyncio.sleep(0.3)
    shares = [c.processed().handled for c in consumers]
    assert sum(shares) == 200
    assert min(shares) > 0, shares
    per_event = await effects.per_event(durable)
    assert set(per_event) == {e.event_id for e in events}
    assert max(per_event.values()) == 1


async def test_relay_and_consumer_ride_out_a_nats_server_crash(
    nats_server: NatsServer,
    bus: EventBus,
    sqlite_db: Database,
    sqlite_effects: Effects,
    until: Until,
) -> None:
    durable = f"kill_{uuid.uuid4().hex[:8]}"
    bus.ack_timeout = 2.0
    relay = OutboxRelay(sqlite_db, bus, batch_size=20, poll_interval=0.05)
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=effect_handler(sqlite_effects, durable),
        batch=20,
        ack_wait=1,
        fetch_timeout=0.5,
    )
    written: list[str] = []
    async with running(relay, consumer):
        for chunk in range(10):
            events = [make_event(chunk * 20 + i) for i in range(20)]
            async with sqlite_db.transaction() as session:
                await add_events(session, events)
            written += [e.event_id for e in events]
            relay.wake()
            await asyncio.sleep(0.05)
            if chunk == 4:  # SIGKILL mid-stream; the store (fsynced) survives
                await asyncio.to_thread(nats_server.kill)
                await asyncio.sleep(0.3)
                await asyncio.to_thread(nats_server.start)
        await until(lambda: consumer.processed().handled >= len(written), within=40)
        await asyncio.sleep(0.5)
    per_event = await sqlite_effects.per_event(durable)
    assert set(per_event) == set(written)
    assert max(per_event.values()) == 1
    assert await count_unpublished(sqlite_db) == 0
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == len(written)


@pytest.mark.parametrize("per_batch", [True, False], ids=["batch-tx", "message-tx"])
async def test_writes_refused_at_commit_count_as_the_handlers_failure(
    bus: EventBus, database: Database, effects: Effects, until: Until, per_batch: bool
) -> None:
    # A deferred constraint only bites at COMMIT, after the handler returned.
    async with database.transaction() as session:
        await session.execute(sa.text("CREATE TABLE bus_parent (id VARCHAR(40) PRIMARY KEY)"))
        await session.execute(
            sa.text(
                "CREATE TABLE bus_child (parent_id VARCHAR(40) NOT NULL REFERENCES bus_parent (id)"
                " DEFERRABLE INITIALLY DEFERRED)"
            )
        )
    durable = f"dc_{uuid.uuid4().hex[:8]}"
    events = [make_event(n) for n in range(8)]
    orphan = make_event(aggregate_id="orphan")
    events.insert(3, orphan)

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        await effects.record(session, durable, envelope.event_id)
        if envelope.aggregate_id != "orphan":
            await session.execute(
                sa.text("INSERT INTO bus_parent (id) VALUES (:p)"), {"p": envelope.aggregate_id}
            )
        await session.execute(
            sa.text("INSERT INTO bus_child (parent_id) VALUES (:p)"), {"p": envelope.aggregate_id}
        )

    for env in events:
        await bus.publish(env)
    consumer = EventConsumer(
        bus,
        database,
        durable=durable,
        filter_subjects=["seisan.>"],
        handler=handle,
        max_deliver=2,
        nak_delay=0.05,
        fetch_timeout=0.5,
        transaction_per_batch=per_batch,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().dead_lettered >= 1)
        await until(lambda: consumer.processed().handled >= 8)
    per_event = await effects.per_event(durable)
    assert orphan.event_id not in per_event
    assert len(per_event) == 8
    assert max(per_event.values()) == 1
    dead = await bus.js.get_last_msg(DLQ_STREAM, dlq_subject(durable))
    assert dead.data == orphan.SerializeToString()
    assert "IntegrityError" in (dead.headers or {})[ERROR_HEADER]
