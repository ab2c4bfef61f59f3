"""Wiring: the audit service's database, bus consumer, checkpointer and gRPC server.

Everything is built inside the caller's :class:`~contextlib.AsyncExitStack`, so
shutdown unwinds in reverse: gRPC stops taking calls, the checkpointer and the
consumer stop, the bus drains, the database closes.
"""

from __future__ import annotations

import asyncio
import contextlib
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path

from seisan.audit.v1 import audit_pb2, audit_pb2_grpc
from seisan_audit.adapters.checkpoints import CheckpointFile
from seisan_audit.adapters.repository import SqlAuditReader
from seisan_audit.config import AuditConfig
from seisan_audit.entrypoints.checkpointer import run_checkpoints
from seisan_audit.entrypoints.consumer import audit_consumer
from seisan_audit.entrypoints.servicer import AuditTrailServicer
from seisan_shared.auth import TokenStore
from seisan_shared.bus import EventBus, EventConsumer
from seisan_shared.faults import NO_FAULTS, Faults
from seisan_shared.grpc import RunningServer, ServiceRegistration, start_server
from seisan_shared.metrics import Metrics
from seisan_shared.storage import Database, run_migrations
from seisan_shared.transport import TransportConfig

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SERVICE_NAME: str = audit_pb2.DESCRIPTOR.services_by_name["AuditTrail"].full_name


async def open_database(url: str, *, migrate: bool = True) -> Database:
    """An open database; migrated to the shared and audit heads unless ``migrate`` is False."""
    db = Database(url)
    await db.open()
    if migrate:
        try:
            await run_migrations(db, MIGRATIONS)
        except BaseException:
            await db.close()
            raise
    return db


@dataclass
class AuditService:
    db: Database
    bus: EventBus
    consumer: EventConsumer
    reader: SqlAuditReader
    checkpoints: CheckpointFile
    server: RunningServer


async def _stop_task(task: asyncio.Task[None], grace: float) -> None:
    with contextlib.suppress(TimeoutError, asyncio.CancelledError):
        await asyncio.wait_for(asyncio.shield(task), grace)
    if not task.done():
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def start(
    config: AuditConfig,
    stack: AsyncExitStack,
    *,
    faults: Faults = NO_FAULTS,
    transport: TransportConfig | None = None,
    metrics: Metrics | None = None,
) -> AuditService:
    """Start everything; ``stack`` stops it all (in reverse) when it closes. With
    ``metrics`` the consumer and the gRPC calls are reported on it."""
    transport = transport or TransportConfig()
    db = await open_database(config.database())
    stack.push_async_callback(db.close)

    bus = EventBus(config.nats_url, name="audit", **transport.bus_options())
    await bus.connect()
    stack.push_async_callback(bus.close)
    await bus.ensure_streams(transport.stream_replicas)

    consumer = audit_consumer(
        bus,
        db,
        durable=config.durable,
        max_deliver=config.max_deliver,
        fetch_timeout=1.0,
        faults=faults,
    )
    await consumer.provision()
    consuming = asyncio.create_task(consumer.run(), name="audit-consumer")
    if metrics is not None:
        metrics.watch(consumer)

    async def stop_consumer() -> None:
        consumer.stop()
        await _stop_task(consuming, config.grace_seconds)

    stack.push_async_callback(stop_consumer)

    reader = SqlAuditReader(db)
    checkpoints = CheckpointFile(config.checkpoints())
    if config.checkpoint_interval > 0:
        checkpointing = asyncio.create_task(
            run_checkpoints(reader, checkpoints, config.checkpoint_interval),
            name="audit-checkpoints",
        )
        stack.push_async_callback(_stop_task, checkpointing, 0)

    server = await start_server(
        [
            ServiceRegistration(
                SERVICE_NAME,
                AuditTrailServicer(reader, checkpoints),
                audit_pb2_grpc.add_AuditTrailServicer_to_server,
            )
        ],
        address=config.grpc_address,
        tokens=TokenStore.load(config.tokens()),
        tls=transport.server_tls(),
        health_address=transport.health_address or None,
        metrics=metrics.rpc if metrics is not None else None,
    )
    stack.push_async_callback(server.stop, config.grace_seconds)
    return AuditService(db, bus, consumer, reader, checkpoints, server)
