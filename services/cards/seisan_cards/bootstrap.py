"""Wiring: build the card reconciliation service's adapters and ports (called by main only)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from seisan_cards.adapters.directory import StaticCardDirectory
from seisan_cards.adapters.uow import SqlUnitOfWork
from seisan_cards.config import CardsConfig
from seisan_cards.handlers import CardsPorts
from seisan_shared.storage import Database

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def build_ports(cfg: CardsConfig, db: Database, wake: Callable[[], None] | None) -> CardsPorts:
    return CardsPorts(
        uow=lambda: SqlUnitOfWork(db, wake),
        directory=StaticCardDirectory.load(cfg.resolved_card_directory),
        max_statement_bytes=cfg.max_statement_bytes,
    )
