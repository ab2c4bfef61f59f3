"""`python -m seisan_cards`: CardReconciliation over gRPC, the receipt-event consumer, the
Stripe Issuing webhook and the outbox relay, in one process.

Built inside one AsyncExitStack, so SIGTERM unwinds in reverse: stop taking gRPC calls
and webhooks (in-flight ones get the grace period), stop the consumer after the batch in
hand, flush the outbox, close the bus, close the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from seisan.cards.v1 import cards_pb2_grpc
from seisan_cards import bootstrap, config
from seisan_cards.adapters.metrics import MATCH_STATUSES, match_counts
from seisan_cards.entrypoints.grpc_servicer import CardReconciliationServicer
from seisan_cards.entrypoints.receipt_consumer import receipt_consumer
from seisan_cards.entrypoints.webhook import StripeIssuingWebhook, WebhookServer
from seisan_shared import observability
from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.outbox import OutboxRelay, stop_relay
from seisan_shared.faults import Faults
from seisan_shared.grpc.server import (
    ServiceRegistration,
    start_server,
    wait_for_termination_signal,
)
from seisan_shared.storage import Database, run_migrations
from seisan_shared.transport import load_transport

log = logging.getLogger("seisan.cards")


async def serve() -> None:
    cfg = config.load()
    transport = load_transport("cards")
    faults = Faults.from_env()
    async with AsyncExitStack() as stack:
        metrics = observability.start("cards", stack, log_level=cfg.log_level)
        db = await Database(cfg.resolved_database_url).open()
        stack.push_async_callback(db.close)
        await run_migrations(db, bootstrap.MIGRATIONS)

        bus = EventBus(cfg.nats_url, name="cards", **transport.bus_options())
        await bus.connect()
        stack.push_async_callback(bus.close)
        await bus.ensure_streams(transport.stream_replicas)

        relay = OutboxRelay(db, bus, faults=faults)
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        metrics.watch(relay)

        stack.push_async_callback(stop_relay, relay, relay_task)
        ports = bootstrap.build_ports(cfg, db, relay.wake)

        consumer = receipt_consumer(bus, db, ports, faults=faults)
        await consumer.provision()
        consumer_task = asyncio.create_task(consumer.run(), name="receipt-consumer")
        metrics.watch(consumer)
        metrics.track_states(
            stack,
            "seisan_matches",
            "Receipt-charge matches by status (proposed, confirmed, rejected, unmatched).",
            match_counts(db),
            known=MATCH_STATUSES,
        )

        async def stop_consumer() -> None:
            consumer.stop()  # finish the batch in hand
            try:
                await asyncio.wait_for(consumer_task, cfg.shutdown_grace_seconds + 6)
            except TimeoutError:
                consumer_task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer_task

        stack.push_async_callback(stop_consumer)

        server = await start_server(
            [
                ServiceRegistration(
                    full_name="seisan.cards.v1.CardReconciliation",
                    servicer=CardReconciliationServicer(ports),
                    add_to_server=cards_pb2_grpc.add_CardReconciliationServicer_to_server,
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
        log.info("CardReconciliation serving on %s", server.address)

        if cfg.stripe_webhook_secret:
            webhook = await WebhookServer(
                StripeIssuingWebhook(ports, cfg.stripe_webhook_secret),
                host=cfg.webhook_host,
                port=cfg.webhook_port,
                path=cfg.webhook_path,
            ).start()
            stack.push_async_callback(webhook.stop, cfg.shutdown_grace_seconds)
        else:
            log.info("no SEISAN_CARDS_STRIPE_WEBHOOK_SECRET: the Stripe Issuing webhook is off")

        await wait_for_termination_signal()
        log.info("stopping: draining calls and webhooks, the consumer, the outbox; closing")


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
