"""Claims, receipt references, payouts and runs, payee accounts, Stripe events, bank files,
and the double-entry ledger with its balance constraint.

Revision ID: payouts_0001
Branch labels: payouts

The ledger stores entries hordak-style: a header (``ledger_transactions``) and
its legs (``ledger_legs``, signed amounts, debit positive). The database refuses
an unbalanced entry whatever the code does:

* PostgreSQL — django-hordak's model: a ``DEFERRABLE INITIALLY DEFERRED``
  constraint trigger on the legs checks, at commit, that each touched entry's
  legs sum to zero and number two or more.
* SQLite has no deferred triggers, but it has deferred foreign keys. Legs are
  written first, then the header; the header's ``BEFORE INSERT`` trigger refuses
  it unless its legs sum to zero (two or more), a leg's ``BEFORE INSERT``
  trigger refuses legs for a header that exists (an entry is sealed once
  posted), and the legs' foreign key to the header is deferred, so at commit a
  leg without a header — an entry never sealed — fails the transaction. The
  effect is the same as the PostgreSQL trigger: at commit every entry is
  balanced.

On both, legs and headers are append-only (UPDATE and DELETE raise), amounts
are never zero, and (kind, reference) is unique, so one fact is posted once.
"""

import sqlalchemy as sa
from alembic import op

revision = "payouts_0001"
down_revision = None
branch_labels = ("payouts",)
depends_on = None

_TZ = sa.DateTime(timezone=True)

_SQLITE_LEDGER = (
    """
    CREATE TRIGGER ledger_entry_balanced BEFORE INSERT ON ledger_transactions
    BEGIN
        SELECT RAISE(ABORT, 'ledger: an entry must have two or more legs summing to zero')
        WHERE (SELECT COUNT(*) FROM ledger_legs WHERE transaction_id = NEW.id) < 2
           OR (SELECT SUM(amount) FROM ledger_legs WHERE transaction_id = NEW.id) <> 0;
    END
    """,
    """
    CREATE TRIGGER ledger_entry_sealed BEFORE INSERT ON ledger_legs
    BEGIN
        SELECT RAISE(ABORT, 'ledger: the entry is posted already; legs cannot be added')
        WHERE EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id);
    END
    """,
    *(
        f"""
        CREATE TRIGGER {table}_no_{verb.lower()} BEFORE {verb} ON {table}
        BEGIN
            SELECT RAISE(ABORT, 'ledger: {table} is append-only');
        END
        """
        for table in ("ledger_legs", "ledger_transactions")
        for verb in ("UPDATE", "DELETE")
    ),
)

_PG_LEDGER = (
    """
    CREATE FUNCTION seisan_ledger_check_balance() RETURNS trigger AS $$
    DECLARE
        total bigint;
        legs integer;
    BEGIN
        SELECT COALESCE(SUM(amount), 0), COUNT(*) INTO total, legs
          FROM ledger_legs WHERE transaction_id = NEW.transaction_id;
        IF total <> 0 OR legs < 2 THEN
            RAISE EXCEPTION 'ledger entry % is unbalanced: % legs summing to %',
                NEW.transaction_id, legs, total
                USING ERRCODE = 'check_violation';
        END IF;
        IF NOT EXISTS (SELECT 1 FROM ledger_transactions WHERE id = NEW.transaction_id) THEN
            RAISE EXCEPTION 'ledger entry % has legs but no header', NEW.transaction_id
                USING ERRCODE = 'check_violation';
        END IF;
        RETURN NULL;
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE CONSTRAINT TRIGGER ledger_entry_balanced
        AFTER INSERT ON ledger_legs
        DEFERRABLE INITIALLY DEFERRED
        FOR EACH ROW EXECUTE FUNCTION seisan_ledger_check_balance()
    """,
    """
    CREATE FUNCTION seisan_ledger_append_only() RETURNS trigger AS $$
    BEGIN
        RAISE EXCEPTION 'ledger: % is append-only', TG_TABLE_NAME
            USING ERRCODE = 'restrict_violation';
    END
    $$ LANGUAGE plpgsql
    """,
    """
    CREATE TRIGGER ledger_legs_append_only BEFORE UPDATE OR DELETE ON ledger_legs
        FOR EACH ROW EXECUTE FUNCTION seisan_ledger_append_only()
    """,
    """
    CREATE TRIGGER ledger_transactions_append_only BEFORE UPDATE OR DELETE ON ledger_transactions
        FOR EACH ROW EXECUTE FUNCTION seisan_ledger_append_only()
    """,
)


def upgrade() -> None:
    op.create_table(
        "receipt_refs",
        sa.Column("receipt_id", sa.String(64), primary_key=True),
        sa.Column("submitter", sa.String(100), nullable=False),
        sa.Column("paid_with", sa.String(20), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("transaction_date", sa.Date(), nullable=True),
        sa.Column("merchant", sa.String(300), nullable=False, server_default=""),
        sa.Column("match_id", sa.String(64), nullable=False, server_default=""),
        sa.Column("matched_charge_ids", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("last_event_at", _TZ, nullable=True),
    )
    op.create_index("ix_receipt_refs_match", "receipt_refs", ["match_id"])

    op.create_table(
        "claims",
        sa.Column("claim_id", sa.String(40), primary_key=True),
        sa.Column("claimant", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("lines_json", sa.Text(), nullable=False),
        sa.Column("findings_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("submitted_at", _TZ, nullable=False),
        sa.Column("decided_by", sa.String(100), nullable=False, server_default=""),
        sa.Column("decided_at", _TZ, nullable=True),
        sa.Column("rejection_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("payout_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("payout_failure_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.CheckConstraint("total_minor > 0", name="ck_claims_total_positive"),
    )
    op.create_index("ix_claims_claimant", "claims", ["claimant", "submitted_at"])
    op.create_index("ix_claims_status", "claims", ["status", "currency"])
    # A receipt is in at most one claim that is not rejected (double reimbursement guard).
    op.create_table(
        "claimed_receipts",
        sa.Column("receipt_id", sa.String(64), primary_key=True),
        sa.Column("claim_id", sa.String(40), nullable=False),
    )

    op.create_table(
        "payout_runs",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("rail", sa.String(20), nullable=False),
        sa.Column("bank_file_format", sa.String(20), nullable=True),
        sa.Column("execution_date", sa.Date(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False, server_default=""),
        sa.Column("created_by", sa.String(100), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("request_id", sa.String(100), nullable=True, unique=True),
        sa.Column("payout_ids_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("notes_json", sa.Text(), nullable=False, server_default="[]"),
    )

    op.create_table(
        "payouts",
        sa.Column("payout_id", sa.String(40), primary_key=True),
        sa.Column("run_id", sa.String(40), nullable=False),
        sa.Column("employee", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("rail", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("claim_ids_json", sa.Text(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("attempt_started_at", _TZ, nullable=True),
        sa.Column("destination_account", sa.String(100), nullable=False, server_default=""),
        sa.Column("transfer_id", sa.String(100), nullable=False, server_default=""),
        sa.Column("stripe_payout_id", sa.String(100), nullable=False, server_default=""),
        sa.Column("reversal_id", sa.String(100), nullable=False, server_default=""),
        sa.Column("failure_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("bank_reference", sa.String(100), nullable=False, server_default=""),
        sa.Column("created_at", _TZ, nullable=False),
        sa.Column("sent_at", _TZ, nullable=True),
        sa.Column("settled_at", _TZ, nullable=True),
        sa.Column("next_try_at", _TZ, nullable=True),
        sa.Column("checked_at", _TZ, nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.CheckConstraint("amount_minor > 0", name="ck_payouts_amount_positive"),
    )
    op.create_index("ix_payouts_work", "payouts", ["rail", "status", "next_try_at"])
    op.create_index("ix_payouts_employee", "payouts", ["employee", "created_at"])
    op.create_index("ix_payouts_run", "payouts", ["run_id"])

    op.create_table(
        "payee_accounts",
        sa.Column("employee", sa.String(100), primary_key=True),
        sa.Column("stripe_account_id", sa.String(100), nullable=False, server_default=""),
        sa.Column("bank_json", sa.Text(), nullable=False, server_default=""),
        sa.Column("updated_by", sa.String(100), nullable=False, server_default=""),
        sa.Column("updated_at", _TZ, nullable=True),
    )

    op.create_table(
        "stripe_events",
        sa.Column("event_id", sa.String(100), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("payout_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("received_at", _TZ, nullable=False),
    )

    op.create_table(
        "bank_files",
        sa.Column("run_id", sa.String(40), primary_key=True),
        sa.Column("format", sa.String(40), nullable=False),
        sa.Column("filename", sa.String(200), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("created_at", _TZ, nullable=False),
    )

    op.create_table(
        "ledger_transactions",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("kind", sa.String(30), nullable=False),
        sa.Column("reference", sa.String(100), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text(), nullable=False, server_default=""),
        sa.Column("posted_at", _TZ, nullable=False),
        sa.UniqueConstraint("kind", "reference", name="uq_ledger_fact_once"),
    )
    op.create_table(
        "ledger_legs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column("transaction_id", sa.String(40), nullable=False),
        sa.Column("account", sa.String(200), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_legs_nonzero"),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["ledger_transactions.id"],
            name="fk_ledger_legs_entry",
            deferrable=True,
            initially="DEFERRED",
        ),
    )
    op.create_index("ix_ledger_legs_entry", "ledger_legs", ["transaction_id"])
    op.create_index("ix_ledger_legs_account", "ledger_legs", ["account"])
    statements = _SQLITE_LEDGER if op.get_bind().dialect.name == "sqlite" else _PG_LEDGER
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "sqlite":
        op.execute("DROP TABLE ledger_legs")
        op.execute("DROP TABLE ledger_transactions")
        op.execute("DROP FUNCTION seisan_ledger_check_balance()")
        op.execute("DROP FUNCTION seisan_ledger_append_only()")
    else:
        op.drop_table("ledger_legs")
        op.drop_table("ledger_transactions")
    for table in (
        "bank_files",
        "stripe_events",
        "payee_accounts",
        "payouts",
        "payout_runs",
        "claimed_receipts",
        "claims",
        "receipt_refs",
    ):
        op.drop_table(table)
