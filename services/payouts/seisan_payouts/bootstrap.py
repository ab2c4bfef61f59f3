"""Wiring: build the payout service's adapters and ports from its config (called by main only)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from seisan_payouts.adapters.bankfiles.bank_directory import ZenginCodeDirectory
from seisan_payouts.adapters.stripe_gateway import REAL_STRIPE_API, SdkStripeGateway
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bank_rail import BankRail
from seisan_payouts.config import PayoutsConfig
from seisan_payouts.handlers import PayoutsPorts
from seisan_payouts.stripe_rail import StripeRail
from seisan_shared.faults import Faults
from seisan_shared.storage import Database
from seisan_shared.storage.lease import Lease

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
DRIVER_LEASE_KEY = 0x5E15A1  # pg advisory lock id for "driving Stripe payouts"


def quiet_http_loggers() -> None:
    """The Stripe SDK and httpx log every request at INFO; the rail logs what matters."""
    logging.getLogger("httpx").setLevel(logging.WARNING)
    logging.getLogger("stripe").setLevel(logging.WARNING)


def build_gateway(cfg: PayoutsConfig, api_base: str) -> SdkStripeGateway:
    return SdkStripeGateway(
        cfg.resolved_stripe_key,
        api_base or REAL_STRIPE_API,
        timeout=cfg.stripe_timeout_seconds,
        retries=cfg.stripe_retries,
    )


def build_ports(
    cfg: PayoutsConfig,
    db: Database,
    wake_outbox: Callable[[], None] | None,
    gateway: SdkStripeGateway | None,
) -> PayoutsPorts:
    return PayoutsPorts(
        uow=lambda: SqlUnitOfWork(db, wake_outbox),
        policy=cfg.policy(),
        stripe=gateway,
        debtor=cfg.debtor(),
        stripe_test_mode=cfg.stripe_test_mode,
    )


def build_rails(
    cfg: PayoutsConfig,
    ports: PayoutsPorts,
    gateway: SdkStripeGateway,
    faults: Faults,
    db: Database | None = None,
) -> tuple[StripeRail, BankRail]:
    """The rails; with ``db``, the Stripe driver runs only in the replica holding its lease."""
    rail = StripeRail(
        ports,
        gateway,
        faults=faults,
        concurrency=cfg.rail_concurrency,
        poll_interval=cfg.rail_poll_seconds,
        retry_after=cfg.rail_retry_after_seconds,
        reconcile_after=cfg.reconcile_after_seconds,
        lease=Lease(db, DRIVER_LEASE_KEY, "stripe-driver") if db is not None else None,
    )
    ports.wake_rail = rail.wake
    bank = BankRail(ports, cfg.debtor(), ZenginCodeDirectory())
    return rail, bank
