"""A consumer's ``prepare`` step: slow work outside the transaction, its result to the handler."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from test_bus_flow import make_event, running

from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import EventConsumer
from seisan_shared.bus.outbox import OutboxRelay, add_event
from seisan_shared.events import Envelope
from seisan_shared.storage import Database
from seisan_shared.subjects import CLAIM_SUBMITTED, RECEIPT_CAPTURED, subject_for

Until = Callable[..., Awaitable[None]]


async def test_prepare_runs_outside_the_transaction_and_feeds_the_handler(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    durable = f"prep_{uuid.uuid4().hex[:8]}"
    events = [make_event(n=i) for i in range(5)]
    async with sqlite_db.transaction() as session:
        for env in events:
            await add_event(session, env)
    calls: list[str] = []
    received: dict[str, str] = {}

    async def prepare(envelope: Envelope) -> str:
        # BEGIN IMMEDIATE on another connection: this would wait out the busy timeout if the
        # consumer held SQLite's write lock while preparing.
        async with sqlite_db.transaction() as other:
            await other.execute(sa.text("select 1"))
        calls.append(envelope.event_id)
        return f"read:{envelope.aggregate_id}"

    async def handle(envelope: Envelope, session: AsyncSession, prepared: str) -> None:
        received[envelope.event_id] = prepared

    relay = OutboxRelay(sqlite_db, bus)
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=[subject_for(RECEIPT_CAPTURED)],
        handler=handle,
        prepare=prepare,
        batch=1,
        ack_wait=2.0,
    )
    async with running(relay, consumer):
        await until(lambda: len(received) == 5)
    assert received == {e.event_id: f"read:{e.aggregate_id}" for e in events}
    assert sorted(calls) == sorted(e.event_id for e in events)


async def test_failing_prepare_is_retried_then_dead_lettered(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    durable = f"prepfail_{uuid.uuid4().hex[:8]}"
    good, poison = make_event(CLAIM_SUBMITTED, 1), make_event(CLAIM_SUBMITTED, 2)
    async with sqlite_db.transaction() as session:
        await add_event(session, poison)
        await add_event(session, good)
    attempts: list[str] = []
    handled: list[str] = []

    async def prepare(envelope: Envelope) -> None:
        attempts.append(envelope.event_id)
        if envelope.event_id == poison.event_id:
            raise RuntimeError("engine cannot read this image")

    async def handle(envelope: Envelope, session: AsyncSession, prepared: None) -> None:
        handled.append(envelope.event_id)

    relay = OutboxRelay(sqlite_db, bus)
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=[subject_for(CLAIM_SUBMITTED)],
        handler=handle,
        prepare=prepare,
        max_deliver=3,
        nak_delay=0.05,
        ack_wait=2.0,
    )
    async with running(relay, consumer):
        await until(lambda: consumer.processed().dead_lettered == 1, within=20)
    assert handled == [good.event_id]
    assert attempts.count(poison.event_id) == 3


async def test_stored_messages_reads_exactly_what_the_stream_holds(bus: EventBus) -> None:
    from seisan_shared.bus.client import stored_messages

    events = [make_event(CLAIM_SUBMITTED, n) for n in range(7)]
    for env in events:
        await bus.publish(env)
    await bus.publish(make_event(RECEIPT_CAPTURED, 99))  # another subject
    data = await stored_messages(bus.js, subject_for(CLAIM_SUBMITTED))
    assert [Envelope.FromString(d).event_id for d in data] == [e.event_id for e in events]
    assert await stored_messages(bus.js, subject_for("payout.paid")) == []
