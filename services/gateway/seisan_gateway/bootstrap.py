"""Wiring: the gRPC channels, the token file, the sessions, the live feed and the app."""

from __future__ import annotations

import asyncio
import logging
from contextlib import AsyncExitStack

from starlette.applications import Starlette

from seisan_gateway.adapters.feed import ReceiptFeed, subscribe
from seisan_gateway.adapters.services import Addresses, Services
from seisan_gateway.config import GatewayConfig
from seisan_gateway.domain.sessions import SessionStore
from seisan_gateway.entrypoints.web import Deps, create_app
from seisan_shared.auth import TokenStore
from seisan_shared.transport import TransportConfig

log = logging.getLogger("seisan.gateway")


async def build(
    config: GatewayConfig, stack: AsyncExitStack, transport: TransportConfig | None = None
) -> tuple[Starlette, Deps]:
    """The app and what it stands on; everything opened here closes with ``stack``."""
    tokens = TokenStore.load(config.tokens())
    addresses = Addresses(config.intake_address, config.cards_address, config.payouts_address)
    tls = transport.client_tls() if transport else None
    services = await stack.enter_async_context(Services.connect(addresses, tls))
    feed: ReceiptFeed | None = None
    if config.nats_url:
        feed = ReceiptFeed()
        options = transport.bus_options() if transport else None
        await stack.enter_async_context(subscribe(config.nats_url, feed, options))
    else:
        log.warning("gateway: SEISAN_NATS_URL not set; receipts will not update live")
    dependencies = Deps(
        services=services,
        tokens=tokens,
        sessions=SessionStore(config.session_idle_seconds),
        feed=feed,
        secure_cookies=config.secure_cookies,
        max_upload_bytes=config.max_upload_bytes,
        stopping=asyncio.Event(),
    )
    return create_app(dependencies), dependencies
