"""`python -m seisan_intake`: the ReceiptIntake gRPC service with its outbox relay."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from seisan.receipts.v1 import receipts_pb2_grpc
from seisan_intake import bootstrap, config
from seisan_intake.entrypoints import status_consumer
from seisan_intake.entrypoints.grpc_servicer import ReceiptIntakeServicer
from seisan_shared import catalogue, observability
from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import EventConsumer, stop_consumer
from seisan_shared.bus.outbox import OutboxRelay, stop_relay
from seisan_shared.faults import Faults
from seisan_shared.grpc.server import (
    ServiceRegistration,
    start_server,
    wait_for_termination_signal,
)
from seisan_shared.storage import Database, run_migrations
from seisan_shared.transport import load_transport

log = logging.getLogger("seisan.intake")


async def serve() -> None:
    cfg = config.load()
    transport = load_transport("intake")
    faults = Faults.from_env()
    # The status consumer decodes cards' and payouts' events: their payload types must be
    # in the descriptor pool, or every match.confirmed / claim.submitted is dead-lettered.
    catalogue.import_all()
    async with AsyncExitStack() as stack:
        metrics = observability.start("intake", stack, log_level=cfg.log_level)
        db = await Database(cfg.resolved_database_url).open()
        stack.push_async_callback(db.close)
        await run_migrations(db, bootstrap.MIGRATIONS)

        bus = EventBus(cfg.nats_url, name="intake", **transport.bus_options())
        await bus.connect()
        stack.push_async_callback(bus.close)
        await bus.ensure_streams(transport.stream_replicas)

        relay = OutboxRelay(db, bus, faults=faults)
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        metrics.watch(relay)

        stack.push_async_callback(stop_relay, relay, relay_task)

        status = EventConsumer(
            bus,
            db,
            durable=status_consumer.DURABLE,
            filter_subjects=status_consumer.FILTER,
            handler=status_consumer.handle,
            faults=faults,
        )
        status_task = asyncio.create_task(status.run(), name="status-consumer")
        metrics.watch(status)

        stack.push_async_callback(stop_consumer, status, status_task)

        blobs = await bus.until_available("blob store", lambda: bootstrap.build_blobs(cfg, bus.js))
        ports = bootstrap.build_ports(cfg, db, relay.wake, blobs)
        servicer = ReceiptIntakeServicer(ports, max_upload_bytes=cfg.max_upload_bytes)
        server = await start_server(
            [
                ServiceRegistration(
                    full_name="seisan.receipts.v1.ReceiptIntake",
                    servicer=servicer,
                    add_to_server=receipts_pb2_grpc.add_ReceiptIntakeServicer_to_server,
                )
            ],
            address=cfg.grpc_address,
            tokens=TokenStore.load(cfg.tokens_file),
            tls=transport.server_tls(),
            health_address=transport.health_address or None,
            max_message_bytes=4 * 1024 * 1024,
            metrics=metrics.rpc,
        )
        stack.push_async_callback(server.stop, cfg.shutdown_grace_seconds)
        log.info("ReceiptIntake serving on %s", server.address)
        await wait_for_termination_signal()
        log.info("stopping: draining RPCs, flushing the outbox, closing bus and database")


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
