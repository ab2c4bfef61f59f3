"""Metrics, correlation ids and trace context over a real JetStream: outbox → relay → consumer.

One event committed under a correlation id is published with it in a NATS header; the
consumer binds it while its handler runs, so the handler's log lines and the event it emits
carry the same id; /metrics (scraped over HTTP) counts what happened; and with an SDK
tracer provider the consumer's span is a child of the producer's.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import urllib.request
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from google.protobuf.struct_pb2 import Value
from nats.aio.msg import Msg
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared import context, logs, metrics, tracing
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import EventConsumer
from seisan_shared.bus.outbox import OutboxRelay, add_event
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database
from seisan_shared.subjects import CLAIM_SUBMITTED, RECEIPT_CAPTURED, subject_for
from support.spans import in_memory_spans

Until = Callable[..., Awaitable[None]]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from in_memory_spans()


def scrape(server: metrics.MetricsServer) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """GET /metrics and parse it: (sample name, sorted labels) → value."""
    with urllib.request.urlopen(server.url, timeout=10) as reply:
        assert reply.status == 200
        text = reply.read().decode()
    samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


@asynccontextmanager
async def running(*workers: OutboxRelay | EventConsumer) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(w.run()) for w in workers]
    try:
        yield
    finally:
        for worker in workers:
            worker.stop()
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 15)


def event(event_type: str, n: int, correlation_id: str = "") -> Envelope:
    return new_event(
        event_type,
        source="test",
        aggregate_id=f"agg-{n}",
        payload=Value(number_value=n),
        correlation_id=correlation_id,
    )


class Capture(logging.Handler):
    """JSON lines of the records it sees, through the production filter and formatter."""

    def __init__(self) -> None:
        super().__init__()
        self.stream = io.StringIO()
        self.inner = logs.handler("json", "test", self.stream)

    def emit(self, record: logging.LogRecord) -> None:
        self.inner.handle(record)

    def lines(self) -> list[dict[str, object]]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]


async def test_correlation_id_follows_an_event_into_the_next_and_metrics_count_it(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    db = sqlite_db
    durable = f"obs_{uuid.uuid4().hex[:8]}"
    cid = f"corr-{uuid.uuid4().hex[:8]}"
    handler_log = logging.getLogger(f"test.obs.{durable}")
    capture = Capture()
    handler_log.addHandler(capture)
    handler_log.setLevel(logging.INFO)

    relay = OutboxRelay(db, bus, poll_interval=0.05)
    seen: list[tuple[str, str | None]] = []

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        # What any service handler does: log, then emit the next event in the same transaction.
        seen.append((envelope.event_id, context.correlation_id_or_none()))
        handler_log.info("handling %s", envelope.type)
        await add_event(
            session,
            new_event(
                CLAIM_SUBMITTED,
                source="test",
                aggregate_id=envelope.aggregate_id,
                payload=Value(string_value="next"),
                correlation_id=context.correlation_id(),
            ),
        )

    consumer = EventConsumer(
        bus,
        db,
        durable=durable,
        filter_subjects=[subject_for(RECEIPT_CAPTURED)],
        handler=handle,
        fetch_timeout=0.5,
    )
    registry = metrics.Metrics()
    registry.watch(relay, consumer)
    server = metrics.serve(registry.registry, "127.0.0.1:0")
    assert server is not None and server.port > 0

    downstream: list[Msg] = []
    sub = await bus.nc.subscribe(subject_for(CLAIM_SUBMITTED), cb=_append(downstream))
    try:
        before = scrape(server)
        consumed = ("seisan_events_consumed_total", (("consumer", durable),))
        assert before[consumed] == 0
        async with db.transaction() as session:
            await add_event(session, event(RECEIPT_CAPTURED, 1, cid))
            await add_event(session, event(RECEIPT_CAPTURED, 2))  # an event without an id
        async with running(relay, consumer):
            await until(lambda: len(downstream) == 2)
            await until(
                lambda: (
                    registry.value(
                        "seisan_events_published_total", {"subject": subject_for(CLAIM_SUBMITTED)}
                    )
                    == 2
                )
            )
            after = scrape(server)
    finally:
        await sub.unsubscribe()
        server.close()
        handler_log.removeHandler(capture)

    # The consumer bound the event's id; the one without falls back to its own event id.
    first, second = seen
    assert first[1] == cid
    assert second[1] == second[0]
    # Downstream: the id is in the envelope and in the NATS header.
    by_cid = {Envelope.FromString(m.data).correlation_id: m for m in downstream}
    assert set(by_cid) == {cid, second[0]}
    assert (by_cid[cid].headers or {})[tracing.CORRELATION_HEADER] == cid
    # Every line logged inside the handler carries its event's id.
    lines = capture.lines()
    assert [line["correlation_id"] for line in lines] == [cid, second[0]]
    assert all(line["service"] == "test" and line["level"] == "INFO" for line in lines)
    # The scrape moved.
    assert after[consumed] == 2
    assert after[("seisan_events_published_total", (("subject", "seisan.receipt.captured"),))] == 2
    assert after[("seisan_events_published_total", (("subject", "seisan.claim.submitted"),))] == 2
    assert after[("seisan_events_dead_lettered_total", (("consumer", durable),))] == 0
    assert ("seisan_outbox_oldest_pending_age_seconds", ()) in after


def _append(into: list[Msg]) -> Callable[[Msg], Awaitable[None]]:
    async def cb(msg: Msg) -> None:
        into.append(msg)

    return cb


async def test_redeliveries_and_dead_letters_are_counted(
    bus: EventBus, sqlite_db: Database, until: Until
) -> None:
    durable = f"obs_dlq_{uuid.uuid4().hex[:8]}"

    async def always_fails(envelope: Envelope, session: AsyncSession) -> None:
        raise ValueError("cannot handle this")

    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=[subject_for(RECEIPT_CAPTURED)],
        handler=always_fails,
        max_deliver=2,
        nak_delay=0.05,
        fetch_timeout=0.5,
    )
    registry = metrics.Metrics()
    registry.watch(consumer)
    await bus.publish(event(RECEIPT_CAPTURED, 7, "corr-dead"))
    async with running(consumer):
        await until(
            lambda: registry.value("seisan_events_dead_lettered_total", {"consumer": durable}) == 1
        )
    labels = {"consumer": durable}
    assert registry.value("seisan_events_redelivered_total", labels) == 1
    assert registry.value("seisan_events_retried_total", labels) == 1
    assert registry.value("seisan_events_consumed_total", labels) == 0
    dead = await bus.js.get_last_msg("SEISAN_DLQ", f"dlq.{durable}")
    assert (dead.headers or {})[tracing.CORRELATION_HEADER] == "corr-dead"


async def test_outbox_lag_is_the_age_and_count_of_unpublished_rows(
    bus: EventBus, sqlite_db: Database
) -> None:
    relay = OutboxRelay(sqlite_db, bus)
    registry = metrics.Metrics()
    registry.watch(relay)
    assert await relay.sample_lag() == (0, None)
    async with sqlite_db.transaction() as session:
        for n in range(3):
            await add_event(session, event(RECEIPT_CAPTURED, n))
    pending, oldest = await relay.sample_lag()
    assert pending == 3 and oldest is not None
    assert registry.value("seisan_outbox_pending_events") == 3
    age = registry.value("seisan_outbox_oldest_pending_age_seconds")
    assert age is not None and age >= 0
    await relay.publish_pending()
    assert await relay.sample_lag() == (0, None)
    assert registry.value("seisan_outbox_oldest_pending_age_seconds") == 0


async def test_a_consumed_event_is_traced_as_a_child_of_its_producer(
    bus: EventBus, sqlite_db: Database, spans: InMemorySpanExporter, until: Until
) -> None:
    durable = f"obs_trace_{uuid.uuid4().hex[:8]}"
    relay = OutboxRelay(sqlite_db, bus, poll_interval=0.05)
    handled: list[str] = []

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        handled.append(envelope.event_id)
        await add_event(session, event(CLAIM_SUBMITTED, 2, context.correlation_id()))

    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=durable,
        filter_subjects=[subject_for(RECEIPT_CAPTURED)],
        handler=handle,
        fetch_timeout=0.5,
    )
    with tracing.tracer().start_as_current_span("upload", kind=SpanKind.SERVER) as upload:
        async with sqlite_db.transaction() as session:
            await add_event(session, event(RECEIPT_CAPTURED, 1, "corr-traced"))
    async with running(relay, consumer):
        await until(lambda: handled and relay.stats.published >= 2)

    finished = {s.name: s for s in spans.get_finished_spans()}
    send = finished["seisan.receipt.captured send"]
    process = finished["seisan.receipt.captured process"]
    next_send = finished["seisan.claim.submitted send"]
    trace_id = upload.get_span_context().trace_id
    assert {s.context.trace_id for s in (send, process, next_send)} == {trace_id}
    assert send.kind is SpanKind.PRODUCER and process.kind is SpanKind.CONSUMER
    assert send.parent is not None and send.parent.span_id == upload.get_span_context().span_id
    assert process.parent is not None and process.parent.span_id == send.context.span_id
    assert next_send.parent is not None and next_send.parent.span_id == process.context.span_id
    assert process.attributes is not None
    assert process.attributes["seisan.correlation_id"] == "corr-traced"
    assert process.attributes["messaging.consumer.group.name"] == durable
