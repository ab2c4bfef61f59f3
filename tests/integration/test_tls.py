"""TLS between processes: gRPC (server TLS, mutual TLS, the plaintext health port) and NATS.

Certificates come from ``seisan certs dev`` (its library function) into a temp
folder; servers listen on port 0 on loopback.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import nats
import nats.errors
import pytest
from google.protobuf import empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.certs import make_dev_certs
from seisan_shared.events import new_event
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.server import RunningServer, start_server
from seisan_shared.transport import ClientTls, TransportConfig

SERVING = health_pb2.HealthCheckResponse.SERVING


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("certs")
    make_dev_certs(out, ["intake", "cards", "nats"])
    return out


def transport(certs: Path, name: str, **extra: object) -> TransportConfig:
    return TransportConfig(
        tls_cert=certs / f"{name}.pem",
        tls_key=certs / f"{name}-key.pem",
        tls_ca=certs / "ca.pem",
        **extra,  # type: ignore[arg-type]
    )


async def _start(certs: Path, tmp_path: Path, **extra: object) -> RunningServer:
    tokens = tmp_path / "tokens.toml"
    TokenStore.issue(tokens, "aiko", ["staff"])
    config = transport(certs, "intake", **extra)
    return await start_server(
        [],
        tokens=TokenStore.load(tokens),
        tls=config.server_tls(),
        health_address=config.health_address or None,
    )


async def _health(ch: grpc.aio.Channel) -> int:
    reply = await health_pb2_grpc.HealthStub(ch).Check(
        health_pb2.HealthCheckRequest(service=""), timeout=5
    )
    return reply.status


@pytest.fixture
async def tls_server(certs: Path, tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await _start(certs, tmp_path, health_address="127.0.0.1:0")
    try:
        yield running
    finally:
        await running.stop(0)


@pytest.fixture
async def mtls_server(certs: Path, tmp_path: Path) -> AsyncIterator[RunningServer]:
    running = await _start(certs, tmp_path, tls_client_auth="require")
    try:
        yield running
    finally:
        await running.stop(0)


async def test_client_with_the_ca_reaches_a_tls_server(
    certs: Path, tls_server: RunningServer
) -> None:
    tls = transport(certs, "cards").client_tls()
    assert tls is not None
    # "localhost" is a SAN of the intake certificate; the address goes through DNS name checks.
    async with channel(f"localhost:{tls_server.port}", None, tls=tls) as ch:
        assert await _health(ch) == SERVING


async def test_plaintext_client_cannot_talk_to_a_tls_server(tls_server: RunningServer) -> None:
    async with grpc.aio.insecure_channel(tls_server.address) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_client_with_another_ca_is_refused(tmp_path: Path, tls_server: RunningServer) -> None:
    other = tmp_path / "other-ca"
    make_dev_certs(other, ["cards"])
    tls = ClientTls(root_certificates=(other / "ca.pem").read_bytes())
    async with channel(tls_server.address, None, tls=tls) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_health_port_answers_in_plaintext_and_serves_only_health(
    tls_server: RunningServer,
) -> None:
    assert tls_server.health_port
    async with grpc.aio.insecure_channel(f"127.0.0.1:{tls_server.health_port}") as ch:
        assert await _health(ch) == SERVING
        reflection = ch.unary_unary(
            "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
        )
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await reflection(b"", timeout=5)
    assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_port_follows_the_main_server_into_shutdown(
    certs: Path, tmp_path: Path
) -> None:
    running = await _start(certs, tmp_path, health_address="127.0.0.1:0")
    async with grpc.aio.insecure_channel(f"127.0.0.1:{running.health_port}") as ch:
        await running.mark_not_serving()
        assert await _health(ch) == health_pb2.HealthCheckResponse.NOT_SERVING
    await running.stop(0)


async def test_mutual_tls_refuses_a_client_without_a_certificate(
    certs: Path, mtls_server: RunningServer
) -> None:
    ca_only = ClientTls(root_certificates=(certs / "ca.pem").read_bytes())
    async with channel(mtls_server.address, None, tls=ca_only) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _health(ch)
    assert err.value.code() == grpc.StatusCode.UNAVAILABLE


async def test_mutual_tls_accepts_a_client_with_a_certificate_from_the_ca(
    certs: Path, mtls_server: RunningServer
) -> None:
    tls = transport(certs, "cards").client_tls()
    assert tls is not None and tls.certificate_chain is not None
    async with channel(mtls_server.address, None, tls=tls) as ch:
        assert await _health(ch) == SERVING


# --- NATS ------------------------------------------------------------------------------------


def nats_tls_block(certs: Path, *, verify: bool) -> str:
    return (
        "tls {\n"
        f'  cert_file: "{certs / "nats.pem"}"\n'
        f'  key_file: "{certs / "nats-key.pem"}"\n'
        f'  ca_file: "{certs / "ca.pem"}"\n'
        f"  verify: {'true' if verify else 'false'}\n"
        "  timeout: 5\n"
        "}\n"
    )


async def test_nats_with_mutual_tls_from_the_wheel(certs: Path, tmp_path: Path) -> None:
    server = NatsServer(
        tmp_path / "nats",
        name=f"tls-{uuid.uuid4().hex[:6]}",
        extra_config=nats_tls_block(certs, verify=True),
    )
    await asyncio.to_thread(server.start)
    try:
        # A client with the CA and its own certificate: the services' real path.
        bus = EventBus(
            server.url,
            name="tls-test",
            connect_timeout=10,
            **transport(certs, "cards").bus_options(),
        )
        await bus.connect()
        try:
            assert bus.nc.connected_url is not None
            assert bus.nc._server_info.get("tls_required") is True
            await bus.ensure_streams()
            event = new_event(
                "audit.recorded", source="tls-test", aggregate_id="a-1", payload=empty_pb2.Empty()
            )
            seq = await bus.publish(event)
            assert seq == 1
        finally:
            await bus.close()

        # No client certificate: the server (verify: true) refuses the handshake.
        ca_only = TransportConfig(tls_ca=certs / "ca.pem").nats_tls()
        with pytest.raises((nats.errors.Error, OSError, TimeoutError)):
            await nats.connect(server.url, tls=ca_only, allow_reconnect=False, connect_timeout=3)
        # Plaintext: refused too.
        with pytest.raises((nats.errors.Error, OSError, TimeoutError)):
            await nats.connect(server.url, allow_reconnect=False, connect_timeout=3)
    finally:
        await asyncio.to_thread(server.stop)


async def test_seisan_health_and_the_probe_use_tls_from_the_environment(
    certs: Path, mtls_server: RunningServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from seisan_shared.cli.health import check
    from seisan_shared.grpc.probe import probe

    address = f"localhost:{mtls_server.port}"
    assert (await check(address)).startswith("UNREACHABLE")  # plaintext: refused
    monkeypatch.setenv("SEISAN_TLS_CA", str(certs / "ca.pem"))
    monkeypatch.setenv("SEISAN_TLS_CERT", str(certs / "cards.pem"))
    monkeypatch.setenv("SEISAN_TLS_KEY", str(certs / "cards-key.pem"))
    assert await check(address) == "SERVING"
    assert await probe(address, tls=True) == "SERVING"
