"""Wiring: build the intake service's adapters and ports from its config (called by main only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from seisan_intake.adapters.blobstore import (
    BlobStore,
    FilesystemBlobStore,
    ObjectStoreBlobStore,
)
from seisan_intake.adapters.images import ImagePipeline
from seisan_intake.adapters.uow import SqlUnitOfWork
from seisan_intake.config import IntakeConfig
from seisan_intake.handlers import IntakePorts
from seisan_shared.config import ConfigError
from seisan_shared.storage import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


async def build_blobs(cfg: IntakeConfig, js: Any) -> BlobStore:
    """Blob store: files under var/ by default; JetStream Object Store for clusters."""
    if cfg.blob_store == "filesystem":
        return FilesystemBlobStore(cfg.resolved_blob_dir)
    if cfg.blob_store == "nats":
        return await ObjectStoreBlobStore(js, replicas=cfg.blob_replicas).open()
    raise ConfigError(f"SEISAN_INTAKE_BLOB_STORE: 'filesystem' or 'nats', not {cfg.blob_store!r}")


def build_ports(
    cfg: IntakeConfig, db: Database, wake: Callable[[], None] | None, blobs: BlobStore
) -> IntakePorts:
    return IntakePorts(
        uow=lambda: SqlUnitOfWork(db, wake),
        blobs=blobs,
        images=ImagePipeline(
            max_pixels=cfg.max_image_pixels, working_long_side=cfg.working_long_side
        ),
    )
