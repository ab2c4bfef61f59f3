"""`python -m seisan_payouts`: the ReimbursementPayout service.

One process runs: migrations, the outbox relay, the receipt/match consumer, the
Stripe rail's driver (whose first pass resumes every payout left in flight —
the recovery loop), the Stripe webhook endpoint and the gRPC server. With no
Stripe key and no API base configured it also runs the local Stripe-compatible
server (the embedded demo). SIGTERM drains in reverse order: gRPC calls, then
webhooks, then the driver's steps in progress, the consumer, the outbox.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import AsyncExitStack

from seisan.payouts.v1 import payouts_pb2_grpc
from seisan_payouts import bootstrap, config
from seisan_payouts.adapters.metrics import (
    CLAIM_STATUSES,
    PAYOUT_STATUSES,
    claim_counts,
    payout_counts,
)
from seisan_payouts.entrypoints import consumers
from seisan_payouts.entrypoints.grpc_servicer import ReimbursementPayoutServicer
from seisan_payouts.entrypoints.webhook import PATH, StripeWebhook, WebhookServer
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

log = logging.getLogger("seisan.payouts")


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


async def _embedded_stripe(cfg: config.PayoutsConfig, stack: AsyncExitStack) -> str:
    """The local Stripe-compatible server, for the embedded demo; its API base."""
    from seisan_shared.stripe_local import LocalStripe

    funding: dict[str, int] = {}
    for item in cfg.stripe_local_funding:
        currency, _, amount_text = item.partition(":")
        funding[currency.lower()] = int(amount_text)
    server = LocalStripe(
        port=cfg.stripe_local_port,
        webhook_url=f"http://{cfg.webhook_host}:{cfg.webhook_port}{PATH}",
        webhook_secret=cfg.resolved_webhook_secret,
        country="JP",
        state_file=cfg.var_dir / "stripe-local.json",
        payout_delay=2.0,
    )
    fresh = not (cfg.var_dir / "stripe-local.json").exists()
    await server.start()
    if fresh:
        for currency, amount in funding.items():
            server.fund(amount, currency)
    stack.push_async_callback(server.stop)
    log.info("local Stripe-compatible server (embedded) on %s", server.api_base)
    return server.api_base


async def serve() -> None:
    cfg = config.load()
    transport = load_transport("payouts")
    faults = Faults.from_env()
    catalogue.import_all()
    async with AsyncExitStack() as stack:
        metrics = observability.start("payouts", stack, log_level=cfg.log_level)
        bootstrap.quiet_http_loggers()
        db = await Database(cfg.resolved_database_url).open()
        stack.push_async_callback(db.close)
        await run_migrations(db, bootstrap.MIGRATIONS)

        bus = EventBus(cfg.nats_url, name="payouts", **transport.bus_options())
        await bus.connect()
        stack.push_async_callback(bus.close)
        await bus.ensure_streams(transport.stream_replicas)

        relay = OutboxRelay(db, bus, faults=faults)
        relay_task = asyncio.create_task(relay.run(), name="outbox-relay")
        metrics.watch(relay)

        stack.push_async_callback(stop_relay, relay, relay_task)

        api_base = cfg.stripe_api_base
        if cfg.stripe_mode == "embedded":
            api_base = await _embedded_stripe(cfg, stack)
        gateway = bootstrap.build_gateway(cfg, api_base)
        ports = bootstrap.build_ports(cfg, db, relay.wake, gateway)
        rail, bank = bootstrap.build_rails(cfg, ports, gateway, faults, db)

        consumer = EventConsumer(
            bus,
            db,
            durable=consumers.DURABLE,
            filter_subjects=consumers.FILTER,
            handler=consumers.handle,
            faults=faults,
        )
        consumer_task = asyncio.create_task(consumer.run(), name="receipt-consumer")
        metrics.watch(consumer)
        metrics.track_states(
            stack,
            "seisan_payouts",
            "Payouts by status (created, sending, sent, paid, failed, …).",
            payout_counts(db),
            known=PAYOUT_STATUSES,
        )
        metrics.track_states(
            stack,
            "seisan_claims",
            "Claims by status (submitted, approved, rejected, payout_pending, paid).",
            claim_counts(db),
            known=CLAIM_STATUSES,
        )

        stack.push_async_callback(stop_consumer, consumer, consumer_task)

        rail_task = asyncio.create_task(rail.run(), name="stripe-rail")

        async def stop_rail() -> None:
            await rail.stop(cfg.shutdown_grace_seconds)
            await _cancel(rail_task)

        stack.push_async_callback(stop_rail)

        webhook = WebhookServer(
            StripeWebhook(rail.handle_event, cfg.resolved_webhook_secret),
            cfg.webhook_host,
            cfg.webhook_port,
        )
        await webhook.start()
        stack.push_async_callback(webhook.stop, cfg.shutdown_grace_seconds)

        server = await start_server(
            [
                ServiceRegistration(
                    full_name="seisan.payouts.v1.ReimbursementPayout",
                    servicer=ReimbursementPayoutServicer(ports, bank),
                    add_to_server=payouts_pb2_grpc.add_ReimbursementPayoutServicer_to_server,
                )
            ],
            address=cfg.grpc_address,
            tokens=TokenStore.load(cfg.tokens_file),
            tls=transport.server_tls(),
            health_address=transport.health_address or None,
            metrics=metrics.rpc,
        )
        stack.push_async_callback(server.stop, cfg.shutdown_grace_seconds)
        log.info(
            "ReimbursementPayout serving on %s; Stripe %s (%s); webhooks on %s",
            server.address,
            api_base or "https://api.stripe.com",
            cfg.stripe_mode,
            webhook.url,
        )
        await wait_for_termination_signal()
        log.info("stopping: draining RPCs, webhooks, rail steps, consumer, outbox")


def main() -> None:
    asyncio.run(serve())


if __name__ == "__main__":
    main()
