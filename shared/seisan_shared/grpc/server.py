"""Start a Seisan grpc.aio server: interceptors, health, reflection, graceful stop.

A service's ``main`` builds everything inside one :class:`~contextlib.AsyncExitStack`,
so shutdown unwinds in reverse order of construction — stop taking calls
first, then drain the bus, then close the database::

    async def main() -> None:
        config = load(IntakeConfig, service="intake")
        async with AsyncExitStack() as stack:
            db = Database(config.database_url)
            await db.open()
            stack.push_async_callback(db.close)            # runs last
            bus = await connect_bus(config.nats_url)
            stack.push_async_callback(bus.drain)           # runs second
            running = await start_server(
                [ServiceRegistration(
                    receipts_pb2.DESCRIPTOR.services_by_name["ReceiptIntake"].full_name,
                    ReceiptIntakeServicer(bus, db),
                    receipts_pb2_grpc.add_ReceiptIntakeServicer_to_server,
                )],
                address=config.grpc_address,
                tokens=TokenStore.load(config.tokens_file),
            )
            stack.push_async_callback(running.stop, config.grace_seconds)  # runs first
            await wait_for_termination_signal()

:meth:`RunningServer.stop` marks every service NOT_SERVING before
``server.stop(grace)``, so health watchers (load balancers, ``seisan up``)
stop routing while in-flight calls get ``grace`` seconds to finish.
"""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from seisan_shared.auth import TokenStore
from seisan_shared.grpc.interceptors import server_interceptors
from seisan_shared.metrics import RpcMetrics
from seisan_shared.transport import ServerTls

_log = logging.getLogger("seisan.grpc.server")

DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024
HEALTH_SERVICE_NAME: str = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name


@dataclass
class ServiceRegistration:
    """One service to serve: full proto name, servicer, and the generated ``add_…_to_server``."""

    full_name: str
    servicer: object
    add_to_server: Callable[[Any, Any], None]


@dataclass
class RunningServer:
    """A started server. ``port`` is the bound port (useful with ``address="…:0"``)."""

    server: grpc.aio.Server
    health: health.aio.HealthServicer
    port: int
    address: str
    service_names: tuple[str, ...]
    # The plaintext health-only server (``health_address``), if one was asked for.
    health_server: grpc.aio.Server | None = None
    health_port: int | None = None

    async def mark_not_serving(self) -> None:
        """Report NOT_SERVING for every service from now on (health cannot go back)."""
        await self.health.enter_graceful_shutdown()

    async def stop(self, grace: float) -> None:
        """NOT_SERVING on health, then stop: new calls refused, in-flight ones get ``grace`` s."""
        await self.mark_not_serving()
        await self.server.stop(grace)
        if self.health_server is not None:
            await self.health_server.stop(0)
        _log.info("grpc server on %s stopped", self.address)


async def start_server(
    registrations: Sequence[ServiceRegistration],
    *,
    address: str = "127.0.0.1:0",
    tokens: TokenStore,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    tls: ServerTls | None = None,
    health_address: str | None = None,
    metrics: RpcMetrics | None = None,
) -> RunningServer:
    """Build, bind and start a grpc.aio server with Seisan's interceptors, health and reflection.

    ``address`` is ``host:port``; port 0 picks a free port, reported in
    :attr:`RunningServer.port`. Health reports SERVING for every registered
    service and for ``""`` once started. Reflection lists the registered
    services plus health and reflection, so ``grpcurl -plaintext host:port
    list`` works without a token.

    ``tls`` (see :meth:`seisan_shared.transport.TransportConfig.server_tls`)
    makes the port TLS-only, mutual when it carries a client CA. Kubernetes
    ``grpc:`` probes cannot speak TLS, so ``health_address`` adds a second,
    plaintext port that serves nothing but ``grpc.health.v1.Health`` (the same
    statuses). With ``metrics`` every call is counted and timed
    (``seisan_grpc_server_*``).
    """
    server = grpc.aio.server(
        interceptors=server_interceptors(tokens, metrics=metrics),
        options=[
            ("grpc.max_receive_message_length", max_message_bytes),
            ("grpc.max_send_message_length", max_message_bytes),
            # A fixed port already in use must fail, not be silently shared.
            ("grpc.so_reuseport", 0),
        ],
    )
    for registration in registrations:
        registration.add_to_server(registration.servicer, server)
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = tuple(r.full_name for r in registrations)
    reflection.enable_server_reflection(
        (*names, HEALTH_SERVICE_NAME, reflection.SERVICE_NAME), server
    )

    port = _bind(server, address, tls)
    host = address.rsplit(":", 1)[0]
    health_server = health_port = None
    if health_address:
        health_server = grpc.aio.server(options=[("grpc.so_reuseport", 0)])
        health_pb2_grpc.add_HealthServicer_to_server(health_servicer, health_server)
        health_port = _bind(health_server, health_address, None)
        await health_server.start()
    await server.start()
    for name in ("", *names):
        await health_servicer.set(name, health_pb2.HealthCheckResponse.SERVING)
    running = RunningServer(
        server, health_servicer, port, f"{host}:{port}", names, health_server, health_port
    )
    _log.info(
        "grpc server listening on %s (%s) serving %s",
        running.address,
        "plaintext" if tls is None else "mTLS" if tls.client_ca else "TLS",
        ", ".join(names) or "-",
    )
    return running


def _bind(server: grpc.aio.Server, address: str, tls: ServerTls | None) -> int:
    try:
        if tls is None:
            port = server.add_insecure_port(address)
        else:
            port = server.add_secure_port(address, tls.credentials())
    except RuntimeError as err:
        raise OSError(f"cannot bind gRPC server to {address}: {err}") from err
    if not port:
        raise OSError(f"cannot bind gRPC server to {address}")
    return port


async def wait_for_termination_signal(watchdog_seconds: float = 10.0) -> None:
    """Return when the process gets SIGTERM or SIGINT (handlers removed again afterwards).

    A shutdown still running ``watchdog_seconds`` later writes every thread's stack
    to stderr (faulthandler), so a hung drain says where it hangs before a
    supervisor's SIGKILL ends it.
    """
    loop = asyncio.get_running_loop()
    received: asyncio.Future[signal.Signals] = loop.create_future()

    def on_signal(sig: signal.Signals) -> None:
        if not received.done():
            received.set_result(sig)

    signals = (signal.SIGTERM, signal.SIGINT)
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)
    try:
        got = await received
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
    _log.info("%s received; shutting down", got.name)
    if watchdog_seconds > 0:
        faulthandler.dump_traceback_later(watchdog_seconds, exit=False)
        loop.call_later(watchdog_seconds, _dump_tasks)


def _dump_tasks() -> None:
    """Write every pending asyncio task's stack to stderr: where a hung shutdown awaits."""
    for task in asyncio.all_tasks():
        if not task.done():
            print(f"-- asyncio task {task.get_name()}:", file=sys.stderr)
            task.print_stack(file=sys.stderr)
