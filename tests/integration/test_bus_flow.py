"""Outbox → relay → JetStream → consumer → handler, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import pytest
import sqlalchemy as sa
from google.protobuf.struct_pb2 import Value
from nats.js.api import StorageType, StreamConfig
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared.bus.client import EventBus, PublishError
from seisan_shared.bus.consumer import EventConsumer
from seisan_shared.bus.outbox import OutboxRelay, add_event, add_events, stop_relay
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database
from seisan_shared.storage.tables import outbox, processed_events
from seisan_shared.subjects import (
    CLAIM_SUBMITTED,
    DLQ_STREAM,
    EVENTS_STREAM,
    RECEIPT_CAPTURED,
    subject_for,
)

if TYPE_CHECKING:
    from tests.integration.conftest import Effects

Until = Callable[..., Awaitable[None]]


def make_event(event_type: str = RECEIPT_CAPTURED, n: int = 0) -> Envelope:
    return new_event(
        event_type, source="test", aggregate_id=f"agg-{n}", payload=Value(number_value=n)
    )


@asynccontextmanager
async def running(*workers: OutboxRelay | EventConsumer) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for task in tasks:
            task.cancel()
        for task in tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass


def recording_handler(effects: Effects, durable: str, seen: list[str]):  # type: ignore[no-untyped-def]
    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        seen.append(envelope.event_id)
        await effects.record(session, durable, envelope.event_id)

    return handle


@pytest.mark.parametrize("per_batch", [True, False], ids=["batch-tx", "message-tx"])
async def test_each_event_is_handled_exactly_once_in_order(
    bus: EventBus, database: Database, effects: Effects, until: Until, per_batch: bool
) -> None:
    durable = f"flow_{uuid.uuid4().hex[:8]}"
    written: list[str] = []
    # State change and event commit together: 5 transactions of 60 events each.
    for chunk in range(5):
        events = [make_event(n=chunk * 60 + i) for i in range(60)]
        async with database.transaction() as session:
            if chunk % 2:
                await add_events(session, events)
            else:
                for env in events:
                    await add_event(session, env)
        written += [e.event_id for e in events]
    # A rolled-back transaction leaves no event behind.
    with pytest.raises(RuntimeError):
        async with database.transaction() as session:
            await add_event(session, make_event(n=-1))
            raise RuntimeError("business rule failed")

    seen: list[str] = []
    relay = OutboxRelay(database, bus, batch_size=100, poll_interval=0.05)
    consumer = EventConsumer(
        bus,
        database,
        durable=durable,
        filter_subjects=[subject_for(RECEIPT_CAPTURED)],
        handler=recording_handler(effects, durable, seen),
        batch=50,
        ack_wait=2,
        fetch_timeout=0.5,
        transaction_per_batch=per_batch,
    )
    async with running(relay, consumer):
        await until(lambda: consumer.processed().handled >= len(written))
        await asyncio.sleep(0.3)  # anything extra would show up now

    per_event = await effects.per_event(durable)
    assert set(per_event) == set(written)
    assert max(per_event.values()) == 1
    assert await effects.in_order(durable) == written  # outbox seq order survives the trip
    stats = consumer.processed()
    assert (stats.handled, stats.duplicates, stats.dead_lettered) == (len(written), 0, 0)
    async with database.transaction() as session:
        unpublished = await session.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
        claimed = await session.scalar(
            sa.select(sa.func.count())
            .select_from(processed_events)
            .where(processed_events.c.consumer == durable)
        )
    assert unpublished == 0
    assert claimed == len(written)
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == len(written)


async def test_republished_and_redelivered_duplicates_are_not_handled_again(
    bus: EventBus, sqlite_db: Database, sqlite_effects: Effects, until: Until
) -> None:
    effects = sqlite_effects
    durable = f"dup_{uuid.uuid4().hex[:8]}"
    events = [make_event(CLAIM_SUBMITTED, n) for n in range(20)]
    items = [(subject_for(e.type), e.SerializeToString(), e.event_id) for e in events]
    assert await bus.publish_raw_many(items) == 20
    # Same Nats-Msg-Id within the duplicate window: JetStream keeps one copy.
    assert await bus.publish_raw_many(items) == 20
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 20
    # Past the window (simulated by fresh msg ids), copies reach the stream...
    await bus.publish_raw_many([(s, d, f"late-{m}") for s, d, m in items[:5]])
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 25

    seen: list[str] = []
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=["seisan.claim.>"],
        handler=recording_handler(effects, durable, seen),
        batch=100,
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: consumer.processed().handled + consumer.processed().duplicates >= 25)
    # ...and processed_events stops them.
    assert consumer.processed().handled == 20
    assert consumer.processed().duplicates == 5
    assert sorted(seen) == sorted(e.event_id for e in events)
    assert max((await effects.per_event(durable)).values()) == 1


async def test_consumer_sees_only_its_filter_subjects(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    seen: list[str] = []

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        seen.append(envelope.type)

    await bus.publish(make_event(RECEIPT_CAPTURED))
    await bus.publish(make_event(CLAIM_SUBMITTED))
    await bus.publish(make_event("payout.paid"))
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=f"f_{uuid.uuid4().hex[:8]}",
        filter_subjects=[subject_for(RECEIPT_CAPTURED), subject_for("payout.paid")],
        handler=handle,
        fetch_timeout=0.5,
    )
    async with running(consumer):
        await until(lambda: len(seen) >= 2)
        await asyncio.sleep(0.3)
    assert sorted(seen) == ["payout.paid", "receipt.captured"]


async def test_ensure_streams_creates_then_restores_configuration(bus: EventBus) -> None:
    info = await bus.js.stream_info(EVENTS_STREAM)
    assert info.config.subjects == ["seisan.>"]
    assert info.config.duplicate_window == 600
    assert info.config.storage == StorageType.FILE
    assert (await bus.js.stream_info(DLQ_STREAM)).config.subjects == ["dlq.>"]
    # Someone changed the stream by hand; provisioning brings it back.
    drifted = StreamConfig.from_response(info.config.as_dict())
    drifted.max_age = 3600
    await bus.js.update_stream(drifted)
    assert (await bus.js.stream_info(EVENTS_STREAM)).config.max_age == 3600
    await bus.ensure_streams()
    await bus.ensure_streams()  # idempotent
    assert not (await bus.js.stream_info(EVENTS_STREAM)).config.max_age


async def test_publish_raw_many_raises_when_not_all_acknowledged(bus: EventBus) -> None:
    good = make_event()
    items = [
        (subject_for(good.type), good.SerializeToString(), good.event_id),
        ("nowhere.no_stream", b"x", str(uuid.uuid4())),  # no stream listens: no ack
    ]
    with pytest.raises(PublishError) as caught:
        await bus.publish_raw_many(items)
    assert caught.value.failed == 1
    assert caught.value.acked == 1


async def test_relay_keeps_rows_when_the_bus_fails_and_publishes_later(
    bus: EventBus, sqlite_db: Database
) -> None:
    async with sqlite_db.transaction() as session:
        await add_events(session, [make_event(n=i) for i in range(3)])
    await bus.js.delete_stream(EVENTS_STREAM)  # publishes now get no ack
    relay = OutboxRelay(sqlite_db, bus)
    bus.ack_timeout = 1
    with pytest.raises(PublishError):
        await relay.publish_pending()
    async with sqlite_db.transaction() as session:
        left = await session.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    assert left == 3
    await bus.ensure_streams()
    assert await relay.publish_pending() == 3
    assert await relay.publish_pending() == 0
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 3


async def test_prune_deletes_only_old_published_rows(bus: EventBus, database: Database) -> None:
    old, recent, pending = make_event(n=1), make_event(n=2), make_event(n=3)
    async with database.transaction() as session:
        await add_events(session, [old, recent, pending])
        now = datetime.now(UTC)
        for env, at in ((old, now - timedelta(days=8)), (recent, now - timedelta(days=1))):
            await session.execute(
                sa.update(outbox).where(outbox.c.event_id == env.event_id).values(published_at=at)
            )
    relay = OutboxRelay(database, bus, keep_published=timedelta(days=7))
    assert await relay.prune() == 1
    async with database.transaction() as session:
        left = set((await session.execute(sa.select(outbox.c.event_id))).scalars())
    assert left == {recent.event_id, pending.event_id}


@pytest.mark.postgres
async def test_only_one_relay_publishes_a_postgres_outbox_at_a_time(
    bus: EventBus, pg_db: Database
) -> None:
    async with pg_db.transaction() as session:
        await add_events(session, [make_event(n=i) for i in range(10)])
    relay = OutboxRelay(pg_db, bus)
    async with pg_db.transaction() as other_relay:
        # Another replica's pass holds the relay lock...
        await other_relay.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": 0x5E15A0})
        assert await relay.publish_pending() == 0
    # ...and once it is gone, this relay takes over.
    assert await relay.publish_pending() == 10
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == 10


async def test_stop_ends_an_idle_consumer_promptly(bus: EventBus, sqlite_db: Database) -> None:
    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        pass

    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=f"st_{uuid.uuid4().hex[:8]}",
        filter_subjects=["seisan.>"],
        handler=handle,
        fetch_timeout=30,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0.3)  # now waiting in a 30 s pull request
    consumer.stop()
    await asyncio.wait_for(task, 2)


async def test_a_consumer_stopped_while_provisioning_does_not_start_a_long_pull(
    bus: EventBus, sqlite_db: Database
) -> None:
    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        pass

    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=f"sp_{uuid.uuid4().hex[:8]}",
        filter_subjects=["seisan.>"],
        handler=handle,
        fetch_timeout=30,
    )
    task = asyncio.create_task(consumer.run())
    await asyncio.sleep(0)  # run() is now inside provision(): no puller yet to interrupt
    consumer.stop()
    await asyncio.wait_for(task, 5)  # a 30 s pull would have been asked for otherwise


async def test_stop_relay_lets_the_pass_finish_then_flushes_the_rest(
    bus: EventBus, database: Database
) -> None:
    first = [make_event(n=i) for i in range(250)]
    async with database.transaction() as session:
        await add_events(session, first)
    relay = OutboxRelay(database, bus, batch_size=100, poll_interval=0.05)
    task = asyncio.create_task(relay.run())
    await asyncio.sleep(0)  # the first pass has begun
    relay.stop()
    # A call committed after stop() but before the relay is gone must still go out.
    late = [make_event(n=1000 + i) for i in range(5)]
    async with database.transaction() as session:
        await add_events(session, late)
    await stop_relay(relay, task)
    async with database.transaction() as session:
        unpublished = await session.scalar(
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
        )
    assert unpublished == 0
    assert (await bus.js.stream_info(EVENTS_STREAM)).state.messages == len(first) + len(late)
