"""The audit service's settings, read once in ``main`` (``SEISAN_AUDIT_*`` or ``SEISAN_*``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seisan_shared.config import load
from seisan_shared.storage.db import normalize_url, sqlite_url_for


@dataclass(frozen=True, kw_only=True)
class StorageConfig:
    """Where the chain and its checkpoints live; all the CLI needs (no NATS)."""

    # Empty: the SQLite file <var_dir>/audit.db.
    database_url: str = ""
    var_dir: Path = Path("var")
    # Empty: <var_dir>/audit-checkpoints.jsonl. Put it where the database's owner cannot write.
    checkpoint_path: Path | None = None

    def database(self) -> str:
        """The database URL, creating the SQLite file's folder for the embedded default."""
        if self.database_url:
            return normalize_url(self.database_url)
        return sqlite_url_for(self.var_dir / "audit.db")

    def checkpoints(self) -> Path:
        return self.checkpoint_path or self.var_dir / "audit-checkpoints.jsonl"


@dataclass(frozen=True, kw_only=True)
class AuditConfig(StorageConfig):
    nats_url: str
    stream_replicas: int = 1  # SEISAN_STREAM_REPLICAS: 3 on a three-node NATS cluster
    grpc_address: str = "127.0.0.1:50704"
    # Empty: <var_dir>/tokens.toml (what `seisan up` seeds).
    tokens_file: Path | None = None
    # Seconds between checkpoints (verify what is new, copy the head out); 0: never.
    checkpoint_interval: float = 60.0
    durable: str = "audit"
    max_deliver: int = 5
    grace_seconds: float = 5.0

    def tokens(self) -> Path:
        return self.tokens_file or self.var_dir / "tokens.toml"


def load_config() -> AuditConfig:
    return load(AuditConfig, service="audit")


def load_storage_config() -> StorageConfig:
    return load(StorageConfig, service="audit")
