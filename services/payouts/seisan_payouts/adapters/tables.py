"""SQLAlchemy Core descriptions of the payout service's tables (created by its migrations)."""

from __future__ import annotations

import sqlalchemy as sa

metadata = sa.MetaData()
_TZ = sa.DateTime(timezone=True)

receipt_refs = sa.Table(
    "receipt_refs",
    metadata,
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("submitter", sa.String(100)),
    sa.Column("paid_with", sa.String(20)),
    sa.Column("state", sa.String(20)),
    sa.Column("total_minor", sa.BigInteger()),
    sa.Column("currency", sa.String(3)),
    sa.Column("transaction_date", sa.Date()),
    sa.Column("merchant", sa.String(300)),
    sa.Column("match_id", sa.String(64)),
    sa.Column("matched_charge_ids", sa.Text()),
    sa.Column("last_event_at", _TZ),
)

claims = sa.Table(
    "claims",
    metadata,
    sa.Column("claim_id", sa.String(40), primary_key=True),
    sa.Column("claimant", sa.String(100)),
    sa.Column("status", sa.String(20)),
    sa.Column("currency", sa.String(3)),
    sa.Column("total_minor", sa.BigInteger()),
    sa.Column("description", sa.Text()),
    sa.Column("lines_json", sa.Text()),
    sa.Column("findings_json", sa.Text()),
    sa.Column("submitted_at", _TZ),
    sa.Column("decided_by", sa.String(100)),
    sa.Column("decided_at", _TZ),
    sa.Column("rejection_reason", sa.Text()),
    sa.Column("payout_id", sa.String(40)),
    sa.Column("payout_failure_reason", sa.Text()),
    sa.Column("version", sa.Integer()),
)

claimed_receipts = sa.Table(
    "claimed_receipts",
    metadata,
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("claim_id", sa.String(40)),
)

payout_runs = sa.Table(
    "payout_runs",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("rail", sa.String(20)),
    sa.Column("bank_file_format", sa.String(20)),
    sa.Column("execution_date", sa.Date()),
    sa.Column("currency", sa.String(3)),
    sa.Column("created_by", sa.String(100)),
    sa.Column("created_at", _TZ),
    sa.Column("request_id", sa.String(100)),
    sa.Column("payout_ids_json", sa.Text()),
    sa.Column("notes_json", sa.Text()),
)

payouts = sa.Table(
    "payouts",
    metadata,
    sa.Column("payout_id", sa.String(40), primary_key=True),
    sa.Column("run_id", sa.String(40)),
    sa.Column("employee", sa.String(100)),
    sa.Column("currency", sa.String(3)),
    sa.Column("amount_minor", sa.BigInteger()),
    sa.Column("rail", sa.String(20)),
    sa.Column("status", sa.String(20)),
    sa.Column("claim_ids_json", sa.Text()),
    sa.Column("attempt", sa.Integer()),
    sa.Column("attempt_started_at", _TZ),
    sa.Column("destination_account", sa.String(100)),
    sa.Column("transfer_id", sa.String(100)),
    sa.Column("stripe_payout_id", sa.String(100)),
    sa.Column("reversal_id", sa.String(100)),
    sa.Column("failure_reason", sa.Text()),
    sa.Column("bank_reference", sa.String(100)),
    sa.Column("created_at", _TZ),
    sa.Column("sent_at", _TZ),
    sa.Column("settled_at", _TZ),
    sa.Column("next_try_at", _TZ),
    sa.Column("checked_at", _TZ),
    sa.Column("version", sa.Integer()),
)

payee_accounts = sa.Table(
    "payee_accounts",
    metadata,
    sa.Column("employee", sa.String(100), primary_key=True),
    sa.Column("stripe_account_id", sa.String(100)),
    sa.Column("bank_json", sa.Text()),
    sa.Column("updated_by", sa.String(100)),
    sa.Column("updated_at", _TZ),
)

stripe_events = sa.Table(
    "stripe_events",
    metadata,
    sa.Column("event_id", sa.String(100), primary_key=True),
    sa.Column("type", sa.String(100)),
    sa.Column("payout_id", sa.String(40)),
    sa.Column("received_at", _TZ),
)

bank_files = sa.Table(
    "bank_files",
    metadata,
    sa.Column("run_id", sa.String(40), primary_key=True),
    sa.Column("format", sa.String(40)),
    sa.Column("filename", sa.String(200)),
    sa.Column("content", sa.LargeBinary()),
    sa.Column("sha256", sa.String(64)),
    sa.Column("created_at", _TZ),
)

ledger_transactions = sa.Table(
    "ledger_transactions",
    metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(30)),
    sa.Column("reference", sa.String(100)),
    sa.Column("currency", sa.String(3)),
    sa.Column("description", sa.Text()),
    sa.Column("posted_at", _TZ),
)

ledger_legs = sa.Table(
    "ledger_legs",
    metadata,
    sa.Column(
        "id",
        sa.BigInteger().with_variant(sa.Integer, "sqlite"),
        primary_key=True,
        autoincrement=True,
    ),
    sa.Column("transaction_id", sa.String(40)),
    sa.Column("account", sa.String(200)),
    sa.Column("amount", sa.BigInteger()),
)
