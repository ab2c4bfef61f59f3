"""The gateway's settings, read once in ``main`` (``SEISAN_GATEWAY_*`` or ``SEISAN_*``)."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from seisan_shared.config import ConfigError, load


def split_address(address: str, name: str) -> tuple[str, int]:
    """'127.0.0.1:8080' → ('127.0.0.1', 8080); ':8080' listens on loopback; port 0 picks one."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        raise ConfigError(f"{name}: expected host:port, got {address!r}")
    return host or "127.0.0.1", int(port)


@dataclass(frozen=True, kw_only=True)
class GatewayConfig:
    # Where the web app listens; port 0 picks a free one (tests). Loopback unless told.
    http_address: str = "127.0.0.1:8080"
    # The services it calls (what `seisan up` sets for everyone).
    intake_address: str = "127.0.0.1:50701"
    cards_address: str = "127.0.0.1:50702"
    payouts_address: str = "127.0.0.1:50703"
    # Receipt events for live updates; empty: no live updates (pages still work).
    nats_url: str = ""
    var_dir: Path = Path("var")
    # Empty: <var_dir>/tokens.toml (what `seisan up` seeds).
    tokens_file: Path | None = None
    # Idle sessions end after this many seconds.
    session_idle_seconds: int = 8 * 3600
    # Set the Secure flag on cookies (behind HTTPS); off for plain http on loopback.
    secure_cookies: bool = False
    # Largest upload per file (the intake service has its own, authoritative limit).
    max_upload_bytes: int = 20 * 1024 * 1024
    grace_seconds: float = 5.0

    def tokens(self) -> Path:
        return self.tokens_file or self.var_dir / "tokens.toml"

    def listen(self) -> tuple[str, int]:
        return split_address(self.http_address, "SEISAN_GATEWAY_HTTP_ADDRESS")


def load_config() -> GatewayConfig:
    """SEISAN_GATEWAY_* settings; a service's address also follows SEISAN_<SVC>_GRPC_ADDRESS
    (what `seisan up` sets for every process) unless SEISAN_GATEWAY_<SVC>_ADDRESS says otherwise."""
    config = load(GatewayConfig, service="gateway")
    followed: dict[str, Any] = {}
    for service in ("intake", "cards", "payouts"):
        field = f"{service}_address"
        shared = os.environ.get(f"SEISAN_{service.upper()}_GRPC_ADDRESS")
        if shared and f"SEISAN_GATEWAY_{field.upper()}" not in os.environ:
            followed[field] = shared
    return dataclasses.replace(config, **followed)
