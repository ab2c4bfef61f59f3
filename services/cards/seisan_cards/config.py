"""Card reconciliation configuration (``SEISAN_CARDS_*`` or ``SEISAN_*``), read once in main."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seisan_shared import config
from seisan_shared.stack import var_dir


@dataclass(frozen=True)
class CardsConfig:
    nats_url: str
    tokens_file: Path
    stream_replicas: int = 1  # SEISAN_STREAM_REPLICAS: 3 on a three-node NATS cluster
    var_dir: Path = Path("var")
    database_url: str = ""
    grpc_address: str = "127.0.0.1:50702"
    # The Stripe Issuing webhook endpoint (plain HTTP; put TLS in front of it beyond loopback).
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 50712
    webhook_path: str = "/webhooks/stripe-issuing"
    # whsec_…; without it the webhook endpoint is not started.
    stripe_webhook_secret: str = ""
    # TOML file: which principal holds which card (see adapters/directory.py).
    card_directory: Path | None = None
    max_statement_bytes: int = 50 * 1024 * 1024
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = (self.var_dir / "cards.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"

    @property
    def resolved_card_directory(self) -> Path | None:
        if self.card_directory is not None:
            return self.card_directory
        default = self.var_dir / "cards.toml"
        return default if default.exists() else None


def load() -> CardsConfig:
    cfg = config.load(CardsConfig, service="cards")
    if cfg.var_dir == Path("var"):
        return CardsConfig(**{**cfg.__dict__, "var_dir": var_dir()})
    return cfg
