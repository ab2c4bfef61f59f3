"""How a process reaches the network beyond loopback: TLS, NATS credentials, stream replicas.

Every service loads one :class:`TransportConfig` in ``main`` next to its own
config (``SEISAN_<SERVICE>_TLS_CERT`` wins over ``SEISAN_TLS_CERT``, as
everywhere). All of it is optional: with nothing set a service listens and
connects in plaintext, as the embedded stack on loopback does.

=============================  ==============================================================
``SEISAN_TLS_CERT`` / ``_KEY``  PEM certificate (chain) and key: the gRPC server speaks TLS, and
                                the same pair is the client certificate for mTLS and NATS
``SEISAN_TLS_CA``               PEM CA bundle: verifies servers (gRPC and NATS) and, with
                                client auth, clients
``SEISAN_TLS_CLIENT_AUTH``      ``require``: the gRPC server refuses clients without a
                                certificate signed by the CA (mutual TLS); empty: no
``SEISAN_HEALTH_ADDRESS``       an extra plaintext port serving only ``grpc.health.v1`` (for
                                Kubernetes ``grpc:`` probes, which cannot speak TLS)
``SEISAN_NATS_USER`` / ``_PASSWORD``  the service's NATS user (deploy/nats accounts)
``SEISAN_STREAM_REPLICAS``      replicas of ``SEISAN_EVENTS``/``SEISAN_DLQ`` (3 on a cluster)
=============================  ==============================================================
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

from seisan_shared.config import ConfigError, load
from seisan_shared.subjects import inbox_prefix

CLIENT_AUTH_REQUIRE = "require"


@dataclass(frozen=True, kw_only=True)
class ServerTls:
    """PEM bytes for a TLS gRPC server; ``client_ca`` set means clients must present a cert."""

    certificate_chain: bytes
    private_key: bytes
    client_ca: bytes | None = None

    def credentials(self) -> grpc.ServerCredentials:
        return grpc.ssl_server_credentials(
            [(self.private_key, self.certificate_chain)],
            root_certificates=self.client_ca,
            require_client_auth=self.client_ca is not None,
        )


@dataclass(frozen=True, kw_only=True)
class ClientTls:
    """PEM bytes for a TLS gRPC client: the CA that signed servers, and our cert for mTLS."""

    root_certificates: bytes | None = None
    certificate_chain: bytes | None = None
    private_key: bytes | None = None

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            root_certificates=self.root_certificates,
            private_key=self.private_key,
            certificate_chain=self.certificate_chain,
        )


def _read(path: Path, name: str) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{name}: cannot read {path}: {exc.strerror or exc}") from None


@dataclass(frozen=True, kw_only=True)
class TransportConfig:
    """TLS, NATS credentials and stream replicas; every field optional (plaintext default)."""

    tls_cert: Path | None = None
    tls_key: Path | None = None
    tls_ca: Path | None = None
    # "require": mutual TLS on the gRPC server; "" (or "none"): server-side TLS only.
    tls_client_auth: str = ""
    # host:port of a plaintext, health-only gRPC port (Kubernetes probes); empty: none.
    health_address: str = ""
    nats_user: str = ""
    nats_password: str = ""
    # Replicas of the event and dead-letter streams: 1 on one server, 3 on a cluster.
    stream_replicas: int = 1

    def __post_init__(self) -> None:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError("SEISAN_TLS_CERT and SEISAN_TLS_KEY go together: set both or none")
        if self.tls_client_auth not in ("", "none", CLIENT_AUTH_REQUIRE):
            raise ConfigError(
                f"SEISAN_TLS_CLIENT_AUTH: expected 'require' or empty, got {self.tls_client_auth!r}"
            )
        if self.tls_client_auth == CLIENT_AUTH_REQUIRE and self.tls_ca is None:
            raise ConfigError("SEISAN_TLS_CLIENT_AUTH=require needs SEISAN_TLS_CA to check clients")
        if self.tls_client_auth == CLIENT_AUTH_REQUIRE and self.tls_cert is None:
            raise ConfigError("SEISAN_TLS_CLIENT_AUTH=require needs SEISAN_TLS_CERT and _KEY")
        if not 1 <= self.stream_replicas <= 5:
            raise ConfigError(
                f"SEISAN_STREAM_REPLICAS: expected 1 to 5, got {self.stream_replicas}"
            )

    def server_tls(self) -> ServerTls | None:
        """The gRPC server's TLS material, or None for plaintext (no cert configured)."""
        if self.tls_cert is None or self.tls_key is None:
            return None
        client_ca = None
        if self.tls_client_auth == CLIENT_AUTH_REQUIRE and self.tls_ca is not None:
            client_ca = _read(self.tls_ca, "SEISAN_TLS_CA")
        return ServerTls(
            certificate_chain=_read(self.tls_cert, "SEISAN_TLS_CERT"),
            private_key=_read(self.tls_key, "SEISAN_TLS_KEY"),
            client_ca=client_ca,
        )

    def client_tls(self) -> ClientTls | None:
        """TLS for gRPC channels to other services: on when a CA is configured."""
        if self.tls_ca is None:
            return None
        chain = key = None
        if self.tls_cert is not None and self.tls_key is not None:
            chain = _read(self.tls_cert, "SEISAN_TLS_CERT")
            key = _read(self.tls_key, "SEISAN_TLS_KEY")
        return ClientTls(
            root_certificates=_read(self.tls_ca, "SEISAN_TLS_CA"),
            certificate_chain=chain,
            private_key=key,
        )

    def nats_tls(self) -> ssl.SSLContext | None:
        """An SSL context for NATS (server verified by the CA, our cert offered), or None.

        nats-py uses it when the server requires TLS or the URL says ``tls://``.
        """
        if self.tls_ca is None:
            return None
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH, cafile=str(self.tls_ca))
        if self.tls_cert is not None and self.tls_key is not None:
            context.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        return context

    def bus_options(self) -> dict[str, Any]:
        """Keyword arguments for :class:`~seisan_shared.bus.EventBus`: credentials, inbox, TLS.

        A signed-in user replies on its own ``_INBOX.<user>`` prefix: the
        accounts in deploy/nats let it subscribe there and nowhere else.
        """
        return {
            "user": self.nats_user or None,
            "password": self.nats_password or None,
            "inbox_prefix": inbox_prefix(self.nats_user) if self.nats_user else None,
            "tls": self.nats_tls(),
        }


def load_transport(service: str = "", environ: dict[str, str] | None = None) -> TransportConfig:
    """Read ``SEISAN_<SERVICE>_*`` / ``SEISAN_*`` transport settings (call once, in ``main``)."""
    return load(TransportConfig, environ, service=service)
