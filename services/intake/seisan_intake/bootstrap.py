"""Wiring: build the intake service's adapters and ports from its config (called by main only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from seisan_intake.adapters.blobstore import FilesystemBlobStore
from seisan_intake.adapters.images import ImagePipeline
from seisan_intake.adapters.uow import SqlUnitOfWork
from seisan_intake.config import IntakeConfig
from seisan_intake.handlers import IntakePorts
from seisan_shared.storage import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def configure_logging(level: str) -> None:
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s %(message)s",
    )


def build_ports(cfg: IntakeConfig, db: Database, wake: Callable[[], None] | None) -> IntakePorts:
    return IntakePorts(
        uow=lambda: SqlUnitOfWork(db, wake),
        blobs=FilesystemBlobStore(cfg.resolved_blob_dir),
        images=ImagePipeline(
            max_pixels=cfg.max_image_pixels, working_long_side=cfg.working_long_side
        ),
    )
