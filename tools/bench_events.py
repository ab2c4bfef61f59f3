"""`make bench-events`: N events through outbox → relay → JetStream → durable consumer → handler.

Starts its own nats-server (temp store, ``sync_interval: always``) and SQLite
databases under a temp dir: the producing service's (outbox) and the
consuming service's (``processed_events``) — services never share a database.
The producer writes envelopes into the outbox in transactions of ``--chunk``
and wakes the relay; the consumer runs in a second process (so the two sides
use both cores, as two services would). The clock runs from the first outbox
write to the last event handled. For scale it also measures raw nats-py
JetStream publishing (``publish_async``, 500 in flight, same payload size, a
separate stream) on the same server — half before the run, half after — and
checks every event was handled exactly once. The last line is::

    events: n=<N> seconds=<S> rate=<R>/s raw_rate=<R0>/s ratio=<R/R0>
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import nats
import sqlalchemy as sa
from nats.js.api import StorageType, StreamConfig
from sqlalchemy.ext.asyncio import AsyncSession

from seisan.receipts.v1 import events_pb2
from seisan_shared import subjects
from seisan_shared.bus import EventBus, EventConsumer, NatsServer, OutboxRelay, add_events
from seisan_shared.events import Envelope, new_event
from seisan_shared.storage import Database, run_migrations, sqlite_url_for
from seisan_shared.storage.tables import outbox, processed_events

DURABLE = "bench_consumer"
RAW_STREAM = "BENCH_RAW"
RAW_WINDOW = 500


def bench_event(n: int) -> Envelope:
    payload = events_pb2.ReceiptCaptured(
        receipt_id=f"rcpt-{n:08d}",
        submitter="employee-0042",
        note="taxi from Nagoya station",
        sha256="9f2c" * 16,
        image_ref=f"receipts/2026/11/{n:08d}.jpg",
        original_ref=f"originals/2026/11/{n:08d}.heic",
        content_type="image/jpeg",
        size_bytes=812_345,
    )
    return new_event(
        subjects.RECEIPT_CAPTURED,
        source="intake",
        aggregate_id=payload.receipt_id,
        payload=payload,
        correlation_id=f"corr-{n}",
        actor="employee-0042",
    )


async def raw_publish_seconds(url: str, count: int, payload_size: int) -> float:
    """Plain nats-py pipelined JetStream publishing: the ceiling the bus is compared to."""
    nc = await nats.connect(url, name="bench-raw")
    js = nc.jetstream(publish_async_max_pending=RAW_WINDOW)
    await js.add_stream(
        StreamConfig(name=RAW_STREAM, subjects=["bench.raw.>"], storage=StorageType.FILE)
    )
    payload = b"x" * payload_size
    start = time.perf_counter()
    futures = [await js.publish_async("bench.raw.receipt", payload) for _ in range(count)]
    await asyncio.gather(*futures)
    elapsed = time.perf_counter() - start
    assert (await js.stream_info(RAW_STREAM)).state.messages == count
    await js.delete_stream(RAW_STREAM)
    await nc.close()
    return elapsed


def process_cpu_seconds(pid: int | None) -> float:
    """User + system CPU seconds of a process so far (Linux /proc), 0 if unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


# -- the consuming service (a subprocess) ---------------------------------------------------


async def consumer_process(nats_url: str, db_url: str, n: int, batch: int) -> None:
    db = await Database(db_url).open()
    bus = await EventBus(nats_url, name="bench-consumer").connect()
    calls: Counter[str] = Counter()

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        calls[envelope.event_id] += 1  # idempotency comes from processed_events

    consumer = EventConsumer(
        bus,
        db,
        durable=DURABLE,
        filter_subjects=[subjects.subject_for(subjects.RECEIPT_CAPTURED)],
        handler=handle,
        batch=batch,
        ack_wait=30.0,
    )
    await consumer.provision()
    print("ready", flush=True)
    task = asyncio.create_task(consumer.run())
    # Poll the consumer's counters (they move after each commit): cheap at 2 ms.
    while (s := consumer.processed()).handled + s.duplicates < n and not task.done():  # noqa: ASYNC110
        await asyncio.sleep(0.002)
    finished = time.time()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    stats = consumer.processed()
    report = {
        "finished": finished,
        "handled": stats.handled,
        "duplicates": stats.duplicates,
        "dead_lettered": stats.dead_lettered,
        "calls": sum(calls.values()),
        "distinct": len(calls),
        "cpu": time.process_time(),
        "batches": stats.batches,
    }
    print("done " + json.dumps(report), flush=True)
    await bus.close()
    await db.close()


# -- the producing service and the clock ---------------------------------------------------


async def count(db: Database, stmt: sa.Select[int]) -> int:
    async with db.transaction() as session:
        return int(await session.scalar(stmt) or 0)


async def bench(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="seisan-bench-", dir=args.dir))
    server = NatsServer(work / "nats", name="bench")
    consumer_proc: asyncio.subprocess.Process | None = None
    try:
        await asyncio.to_thread(server.start)
        sample = bench_event(0).SerializeToString()
        # Half the raw baseline before the run and half after, so that a disk or CPU that is
        # busier at one moment than another weighs on both figures alike.
        raw_half = max(args.raw_n // 2, 1)
        raw_seconds = await raw_publish_seconds(server.url, raw_half, len(sample))

        producer_db = await Database(sqlite_url_for(work / "intake.sqlite")).open()
        consumer_db = Database(sqlite_url_for(work / "consumer.sqlite"))
        await run_migrations(producer_db)
        async with consumer_db:
            await run_migrations(consumer_db)
        bus = await EventBus(server.url, name="bench-producer").connect()
        await bus.ensure_streams()

        consumer_proc = await asyncio.create_subprocess_exec(
            sys.executable,
            __file__,
            "--role",
            "consumer",
            "--nats-url",
            server.url,
            "--db-url",
            consumer_db.url,
            "--n",
            str(args.n),
            "--consumer-batch",
            str(args.consumer_batch),
            stdout=asyncio.subprocess.PIPE,
        )
        assert consumer_proc.stdout is not None
        if (await consumer_proc.stdout.readline()).strip() != b"ready":
            raise RuntimeError("consumer process did not start")

        relay = OutboxRelay(producer_db, bus, batch_size=args.relay_batch, poll_interval=0.05)
        relay_task = asyncio.create_task(relay.run())
        server_cpu, own_cpu = process_cpu_seconds(server.pid), time.process_time()
        started = time.time()
        for first in range(0, args.n, args.chunk):
            envelopes = [bench_event(i) for i in range(first, min(first + args.chunk, args.n))]
            async with producer_db.transaction() as session:
                await add_events(session, envelopes)
            relay.wake()
            await asyncio.sleep(0)  # let the relay take its turn
        written = time.time()
        line = await asyncio.wait_for(consumer_proc.stdout.readline(), timeout=args.timeout)
        if not line.startswith(b"done "):
            raise RuntimeError(f"consumer process failed: {line!r}")
        report = json.loads(line[5:])
        server_cpu = process_cpu_seconds(server.pid) - server_cpu
        own_cpu = time.process_time() - own_cpu
        relay.stop()  # the last pass may still be marking rows the consumer already handled
        await relay_task
        raw_seconds += await raw_publish_seconds(server.url, raw_half, len(sample))
        raw_rate = 2 * raw_half / raw_seconds
        print(f"raw: {2 * raw_half} publishes of {len(sample)} B at {raw_rate:,.0f}/s", flush=True)

        seconds = report["finished"] - started
        unpublished = await count(
            producer_db,
            sa.select(sa.func.count()).select_from(outbox).where(outbox.c.published_at.is_(None)),
        )
        stream_msgs = (await bus.js.stream_info(subjects.EVENTS_STREAM)).state.messages
        await bus.close()
        await producer_db.close()
        async with consumer_db:
            claimed = await count(
                consumer_db,
                sa.select(sa.func.count())
                .select_from(processed_events)
                .where(processed_events.c.consumer == DURABLE),
            )
        problems = [
            f"{name}={got} (expected {want})"
            for name, got, want in (
                ("handled", report["handled"], args.n),
                ("handler_calls", report["calls"], args.n),
                ("distinct_events", report["distinct"], args.n),
                ("duplicates", report["duplicates"], 0),
                ("dead_lettered", report["dead_lettered"], 0),
                ("processed_events", claimed, args.n),
                ("stream_messages", stream_msgs, args.n),
                ("unpublished", unpublished, 0),
            )
            if got != want
        ]
        print(
            f"outbox written in {written - started:.2f}s; relay published "
            f"{relay.stats.published} in {relay.stats.passes} passes; consumer: "
            f"{report['handled']} handled, {report['duplicates']} duplicates, "
            f"{report['handled'] / max(report['batches'], 1):.0f} per fetch",
            flush=True,
        )
        print(
            f"cpu seconds: producer+relay {own_cpu:.2f}, consumer {report['cpu']:.2f}, "
            f"nats-server {server_cpu:.2f}",
            flush=True,
        )
        if problems:
            print("NOT exactly once: " + ", ".join(problems), flush=True)
            return 1
        print("verified: every event handled exactly once", flush=True)
        rate = args.n / seconds
        print(
            f"events: n={args.n} seconds={seconds:.2f} rate={rate:.0f}/s "
            f"raw_rate={raw_rate:.0f}/s ratio={rate / raw_rate:.2f}",
            flush=True,
        )
        return 0
    finally:
        if consumer_proc is not None and consumer_proc.returncode is None:
            consumer_proc.kill()
            await consumer_proc.wait()
        await asyncio.to_thread(server.stop)
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--n", type=int, default=100_000, help="events to move (default 100000)")
    parser.add_argument("--chunk", type=int, default=1000, help="envelopes per outbox transaction")
    parser.add_argument("--relay-batch", type=int, default=1000, help="rows per relay pass")
    parser.add_argument("--consumer-batch", type=int, default=500, help="messages per fetch")
    parser.add_argument("--raw-n", type=int, default=20_000, help="raw publishes for the baseline")
    parser.add_argument("--timeout", type=float, default=600.0, help="give up after seconds")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir")
    parser.add_argument("--dir", help="parent of the temp dir (default: the system's temp dir)")
    parser.add_argument(
        "--role", choices=["bench", "consumer"], default="bench", help=argparse.SUPPRESS
    )
    parser.add_argument("--nats-url", help=argparse.SUPPRESS)
    parser.add_argument("--db-url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.role == "consumer":
        asyncio.run(consumer_process(args.nats_url, args.db_url, args.n, args.consumer_batch))
        return 0
    return asyncio.run(bench(args))


if __name__ == "__main__":
    sys.exit(main())
