"""The real service processes, configured the production way, start and serve.

NATS from the wheel with mutual TLS and the generated accounts; each service
started as ``python -m <module>`` with SEISAN_TLS_* (mutual TLS on its gRPC
port), its NATS user, SEISAN_STREAM_REPLICAS and a plaintext health port — the
environment compose and the Kubernetes manifests give it. It must report
SERVING on the health port, answer a client holding a certificate from the CA
over TLS, and refuse a plaintext client; the streams it created must be there.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seisan_shared.auth import TokenStore
from seisan_shared.bus import accounts
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.certs import make_dev_certs
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.probe import probe
from seisan_shared.subjects import EVENTS_STREAM
from seisan_shared.transport import TransportConfig
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow

SERVICES = {
    "audit": "seisan_audit",
    "intake": "seisan_intake",
    "cards": "seisan_cards",
    "payouts": "seisan_payouts",
}


def password(user: str) -> str:
    return f"pw-{user}"


@pytest.fixture
def certs(tmp_path: Path) -> Path:
    out = tmp_path / "certs"
    make_dev_certs(out, ["nats", *SERVICES, "cli"])
    return out


@pytest.fixture
def secure_nats(
    tmp_path: Path, certs: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[NatsServer]:
    for user in accounts.all_users():
        monkeypatch.setenv(accounts.password_variable(user), password(user))
    tls = (
        "tls {\n"
        f'  cert_file: "{certs / "nats.pem"}"\n'
        f'  key_file: "{certs / "nats-key.pem"}"\n'
        f'  ca_file: "{certs / "ca.pem"}"\n'
        "  verify: true\n"
        "}\n"
    )
    server = NatsServer(
        tmp_path / "nats",
        name=f"prod-{uuid.uuid4().hex[:6]}",
        extra_config=tls + accounts.render_accounts(),
    )
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.mark.parametrize("service", sorted(SERVICES))
async def test_service_serves_over_mutual_tls_with_its_nats_account(
    service: str, tmp_path: Path, certs: Path, secure_nats: NatsServer
) -> None:
    tokens = tmp_path / "tokens.toml"
    TokenStore.issue(tokens, "emi", ["admin"])
    grpc_port, health_port = free_port(), free_port()
    upper = service.upper()
    env = {
        "SEISAN_VAR_DIR": str(tmp_path / "var"),
        "SEISAN_TOKENS_FILE": str(tokens),
        "SEISAN_NATS_URL": secure_nats.url,
        "SEISAN_NATS_USER": service,
        "SEISAN_NATS_PASSWORD": password(service),
        "SEISAN_STREAM_REPLICAS": "1",
        "SEISAN_TLS_CERT": str(certs / f"{service}.pem"),
        "SEISAN_TLS_KEY": str(certs / f"{service}-key.pem"),
        "SEISAN_TLS_CA": str(certs / "ca.pem"),
        "SEISAN_TLS_CLIENT_AUTH": "require",
        "SEISAN_HEALTH_ADDRESS": f"127.0.0.1:{health_port}",
        f"SEISAN_{upper}_GRPC_ADDRESS": f"127.0.0.1:{grpc_port}",
        # the payouts service's local Stripe-compatible server and webhook, on free ports
        "SEISAN_PAYOUTS_STRIPE_LOCAL_PORT": str(free_port()),
        "SEISAN_PAYOUTS_WEBHOOK_PORT": str(free_port()),
        # intake keeps receipt images in the JetStream Object Store, as in the cluster
        "SEISAN_INTAKE_BLOB_STORE": "nats",
    }
    process = ServiceProcess(SERVICES[service], env, tmp_path, service).start()
    try:
        await asyncio.to_thread(process.wait_serving, f"127.0.0.1:{health_port}", 60)
        assert await probe(f"127.0.0.1:{health_port}") == "SERVING"

        client = TransportConfig(
            tls_cert=certs / "cli.pem", tls_key=certs / "cli-key.pem", tls_ca=certs / "ca.pem"
        ).client_tls()
        async with channel(f"localhost:{grpc_port}", None, tls=client) as ch:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(), timeout=10
            )
        assert reply.status == health_pb2.HealthCheckResponse.SERVING

        async with grpc.aio.insecure_channel(f"127.0.0.1:{grpc_port}") as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(), timeout=5
                )
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE

        operator = TransportConfig(
            tls_cert=certs / "cli.pem",
            tls_key=certs / "cli-key.pem",
            tls_ca=certs / "ca.pem",
            nats_user=accounts.ADMIN_USER,
            nats_password=password(accounts.ADMIN_USER),
        )
        async with EventBus(secure_nats.url, name="check", **operator.bus_options()) as bus:
            info = await bus.js.stream_info(EVENTS_STREAM)
        assert info.config.num_replicas == 1
    finally:
        code = await asyncio.to_thread(process.terminate, 30)
    assert code == 0, process.log()[-3000:]
    assert "Violation" not in secure_nats.log_path.read_text()  # nothing it did was refused
