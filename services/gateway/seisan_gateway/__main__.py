"""``python -m seisan_gateway``: the web app on SEISAN_GATEWAY_HTTP_ADDRESS (default :8080).

SIGTERM (or Ctrl-C) drains: /healthz turns 503, live feeds end, the server
stops taking connections and finishes the requests in flight (up to
``grace_seconds``), then the gRPC channels and the NATS connection close.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import sys
from contextlib import AsyncExitStack

import uvicorn

from seisan_gateway.bootstrap import build
from seisan_gateway.config import GatewayConfig, load_config
from seisan_shared import observability
from seisan_shared.auth import TokenFileError
from seisan_shared.config import ConfigError
from seisan_shared.grpc import wait_for_termination_signal
from seisan_shared.transport import TransportConfig, load_transport

log = logging.getLogger("seisan.gateway")


def listening_socket(host: str, port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


class _Server(uvicorn.Server):
    def install_signal_handlers(self) -> None:  # the service's own handler decides when to stop
        return None


async def run(config: GatewayConfig, transport: TransportConfig) -> None:
    host, port = config.listen()
    sock = listening_socket(host, port)  # first: a busy port fails before anything connects
    async with AsyncExitStack() as stack:
        stack.callback(sock.close)
        observability.start("gateway", stack)  # logs, tracing, /metrics when asked
        app, deps = await build(config, stack, transport)
        bound = sock.getsockname()[1]
        server = _Server(
            uvicorn.Config(
                app,
                log_level="warning",
                access_log=False,
                timeout_graceful_shutdown=int(config.grace_seconds) or 1,
                lifespan="off",
                proxy_headers=False,
            )
        )
        serving = asyncio.create_task(server.serve(sockets=[sock]))
        log.info("gateway: web app on http://%s:%d/", host, bound)
        stop = asyncio.create_task(wait_for_termination_signal())
        done, _ = await asyncio.wait({serving, stop}, return_when=asyncio.FIRST_COMPLETED)
        deps.stopping.set()
        server.should_exit = True
        await serving
        stop.cancel()
        if serving in done and serving.exception():
            raise serving.exception()  # type: ignore[misc]
        log.info("gateway: stopped")


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        config.listen()
        transport = load_transport("gateway")
    except ConfigError as exc:
        log.error("gateway: %s", exc)
        return 2
    try:
        asyncio.run(run(config, transport))
    except TokenFileError as exc:
        log.error("gateway: %s", exc)
        return 2
    except OSError as exc:
        if exc.errno not in (errno.EADDRINUSE, errno.EADDRNOTAVAIL, errno.EACCES):
            raise
        log.error("gateway: cannot listen on %s: %s", config.http_address, exc.strerror)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
