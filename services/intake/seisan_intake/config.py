"""Intake configuration (``SEISAN_INTAKE_*`` or ``SEISAN_*``), read once in main."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seisan_shared import config
from seisan_shared.stack import var_dir


@dataclass(frozen=True)
class IntakeConfig:
    nats_url: str
    tokens_file: Path
    stream_replicas: int = 1  # SEISAN_STREAM_REPLICAS: 3 on a three-node NATS cluster
    var_dir: Path = Path("var")
    database_url: str = ""
    grpc_address: str = "127.0.0.1:50701"
    blob_dir: Path | None = None
    # "filesystem" (under var/blobs) or "nats" (JetStream Object Store: the cluster option)
    blob_store: str = "filesystem"
    blob_replicas: int = 1
    max_upload_bytes: int = 20 * 1024 * 1024
    max_image_pixels: int = 50_000_000
    working_long_side: int = 2000
    shutdown_grace_seconds: float = 5.0
    # OCR worker
    ocr_threads: int = 0  # 0: one per usable core, at most 4
    review_threshold: float = 0.6
    ocr_max_deliver: int = 3
    log_level: str = "INFO"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = (self.var_dir / "intake.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"

    @property
    def resolved_blob_dir(self) -> Path:
        return self.blob_dir or self.var_dir / "blobs"


def load() -> IntakeConfig:
    cfg = config.load(IntakeConfig, service="intake")
    if cfg.var_dir == Path("var"):
        return IntakeConfig(**{**cfg.__dict__, "var_dir": var_dir()})
    return cfg
