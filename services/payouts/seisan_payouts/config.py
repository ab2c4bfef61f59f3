"""Payout configuration (``SEISAN_PAYOUTS_*`` or ``SEISAN_*``), read once in main.

Stripe, in three modes:

* ``SEISAN_PAYOUTS_STRIPE_API_KEY`` set (``sk_test_…`` for test mode) and no API
  base: the real Stripe API; ``SEISAN_PAYOUTS_STRIPE_WEBHOOK_SECRET`` must then be
  the endpoint's ``whsec_…`` secret from the Stripe dashboard (or ``stripe listen``).
* ``SEISAN_PAYOUTS_STRIPE_API_BASE`` set: that server (the local Stripe-compatible
  server of tests and chaos runs), with the given or a local test key.
* neither: the service starts the local Stripe-compatible server itself
  (``stripe_local_port``; its state kept in ``var/stripe-local.json``), for the
  embedded demo stack.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from seisan_payouts.domain.bank_transfer import Debtor
from seisan_payouts.domain.policy import PolicyConfig
from seisan_shared import config
from seisan_shared.stack import var_dir

LOCAL_KEY = "sk_test_seisan_local"
LOCAL_WEBHOOK_SECRET = "whsec_seisan_local_demo"


@dataclass(frozen=True)
class PayoutsConfig:
    nats_url: str
    tokens_file: Path
    stream_replicas: int = 1  # SEISAN_STREAM_REPLICAS: 3 on a three-node NATS cluster
    var_dir: Path = Path("var")
    database_url: str = ""
    grpc_address: str = "127.0.0.1:50703"
    webhook_host: str = "127.0.0.1"
    webhook_port: int = 50713
    shutdown_grace_seconds: float = 5.0
    log_level: str = "INFO"
    # Stripe
    stripe_api_key: str = ""
    stripe_api_base: str = ""
    stripe_webhook_secret: str = ""
    stripe_timeout_seconds: float = 10.0
    stripe_retries: int = 4
    stripe_local_port: int = 50723
    stripe_local_funding: tuple[str, ...] = ("jpy:100000000", "usd:10000000", "eur:10000000")
    # The driver
    rail_concurrency: int = 8
    rail_poll_seconds: float = 2.0
    rail_retry_after_seconds: float = 3.0
    reconcile_after_seconds: float = 60.0
    # Policy
    payout_currencies: tuple[str, ...] = ("JPY", "USD", "EUR")
    max_receipt_age_days: int = 90
    category_limits: tuple[str, ...] = (
        "meals:JPY:10000",
        "meals:USD:100",
        "meals:EUR:100",
        "travel:JPY:200000",
        "supplies:JPY:30000",
    )
    categories: tuple[str, ...] = ()
    blocking_rules: tuple[str, ...] = (
        "matched_to_card",
        "duplicate_claim",
        "currency_not_supported",
        "receipt_not_eligible",
    )
    # The company paying, for bank files
    debtor_name: str = "Seisan Demo KK"
    debtor_name_kana: str = "ｾｲｻﾝﾃﾞﾓ(ｶ)"
    debtor_zengin_client_code: str = "1234567890"
    debtor_bank_code: str = "0001"
    debtor_bank_name_kana: str = "ﾐｽﾞﾎ"
    debtor_branch_code: str = "001"
    debtor_branch_name_kana: str = "ﾎﾝﾃﾝ"
    debtor_account_number: str = "1234567"
    debtor_iban: str = "DE89370400440532013000"
    debtor_bic: str = "COBADEFFXXX"

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        path = (self.var_dir / "payouts.db").resolve()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite+aiosqlite:///{path}"

    @property
    def stripe_mode(self) -> str:
        """'live' (real Stripe), 'external' (a given API base) or 'embedded' (local server)."""
        if self.stripe_api_base:
            return "external"
        if self.stripe_api_key:
            return "live"
        return "embedded"

    @property
    def resolved_stripe_key(self) -> str:
        return self.stripe_api_key or LOCAL_KEY

    @property
    def resolved_webhook_secret(self) -> str:
        return self.stripe_webhook_secret or LOCAL_WEBHOOK_SECRET

    @property
    def stripe_test_mode(self) -> bool:
        return not self.resolved_stripe_key.startswith(("sk_live_", "rk_live_"))

    def policy(self) -> PolicyConfig:
        return PolicyConfig.from_settings(
            payout_currencies=[c.upper() for c in self.payout_currencies],
            max_receipt_age_days=self.max_receipt_age_days,
            category_limits=self.category_limits,
            blocking_rules=self.blocking_rules,
            categories=self.categories,
        )

    def debtor(self) -> Debtor:
        return Debtor(
            name=self.debtor_name,
            name_kana=self.debtor_name_kana,
            zengin_client_code=self.debtor_zengin_client_code,
            bank_code=self.debtor_bank_code,
            bank_name_kana=self.debtor_bank_name_kana,
            branch_code=self.debtor_branch_code,
            branch_name_kana=self.debtor_branch_name_kana,
            account_number=self.debtor_account_number,
            iban=self.debtor_iban,
            bic=self.debtor_bic,
        )


def load() -> PayoutsConfig:
    cfg = config.load(PayoutsConfig, service="payouts")
    if cfg.var_dir == Path("var"):
        return PayoutsConfig(**{**cfg.__dict__, "var_dir": var_dir()})
    return cfg
