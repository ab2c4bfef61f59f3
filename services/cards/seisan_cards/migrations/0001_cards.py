"""Card reconciliation: statements, charges, matches, receipt refs, declarations.

Money is BIGINT minor units next to its ISO 4217 code. Invariants held by the database
as well as the domain:

* ``card_charges.issuer_transaction_id`` is unique: importing a line twice creates nothing.
* A charge, and a receipt, is in at most one live (proposed or confirmed) match: partial
  unique indexes over the ``live`` parts of matches. A split is one match with several
  receipts (or several charges), so it needs no exception.
* ``(charge_id, receipt_id)`` pairs a person turned down are kept, never proposed again.

Revision ID: cards_0001
Branch labels: cards
"""

import sqlalchemy as sa
from alembic import op

revision = "cards_0001"
down_revision = None
branch_labels = ("cards",)
depends_on = None

CHARGE_STATUSES = "('unmatched', 'suggested', 'matched', 'declared_missing')"
MATCH_STATUSES = "('proposed', 'confirmed', 'rejected', 'unmatched')"
RECEIPT_STATES = "('open', 'suggested', 'matched', 'deleted')"


def upgrade() -> None:
    op.create_table(
        "card_statements",
        sa.Column("statement_id", sa.String(40), primary_key=True),
        sa.Column("format", sa.String(20), nullable=False),
        sa.Column("filename", sa.String(300), nullable=False, server_default=""),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=True),
        sa.Column("period_end", sa.Date(), nullable=True),
        sa.Column("charge_count", sa.Integer(), nullable=False),
        sa.Column("imported_by", sa.String(200), nullable=False),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sha256", name="uq_card_statements_sha256"),
    )
    op.create_table(
        "card_statement_totals",
        sa.Column(
            "statement_id",
            sa.String(40),
            sa.ForeignKey("card_statements.statement_id"),
            primary_key=True,
        ),
        sa.Column("currency", sa.String(3), primary_key=True),
        sa.Column("total_minor", sa.BigInteger(), nullable=False),
    )
    op.create_table(
        "card_charges",
        sa.Column("charge_id", sa.String(140), primary_key=True),
        sa.Column("issuer_transaction_id", sa.String(200), nullable=False),
        sa.Column(
            "statement_id",
            sa.String(40),
            sa.ForeignKey("card_statements.statement_id"),
            nullable=True,
        ),
        sa.Column("source_format", sa.String(20), nullable=False),
        sa.Column("source_line", sa.Integer(), nullable=False),
        sa.Column("card_last4", sa.String(4), nullable=False),
        sa.Column("cardholder", sa.String(200), nullable=False, server_default=""),
        sa.Column("cardholder_name", sa.String(200), nullable=False, server_default=""),
        sa.Column("transaction_date", sa.Date(), nullable=False),
        sa.Column("posting_date", sa.Date(), nullable=True),
        sa.Column("merchant", sa.String(500), nullable=False),
        sa.Column("mcc", sa.String(4), nullable=False, server_default=""),
        sa.Column("amount_minor", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("original_minor", sa.BigInteger(), nullable=True),
        sa.Column("original_currency", sa.String(3), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("match_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("imported_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("issuer_transaction_id", name="uq_card_charges_issuer_tx"),
        sa.CheckConstraint(f"status IN {CHARGE_STATUSES}", name="ck_card_charges_status"),
        sa.CheckConstraint("length(card_last4) = 4", name="ck_card_charges_last4"),
        sa.CheckConstraint(
            "(original_minor IS NULL AND original_currency IS NULL) OR "
            "(original_minor IS NOT NULL AND original_currency IS NOT NULL "
            "AND original_currency <> currency)",
            name="ck_card_charges_original",
        ),
    )
    op.create_index("ix_card_charges_status_date", "card_charges", ["status", "transaction_date"])
    op.create_index(
        "ix_card_charges_cardholder", "card_charges", ["cardholder", "transaction_date"]
    )
    op.create_index("ix_card_charges_posting", "card_charges", ["posting_date"])
    # Incremental matching looks a receipt's charges up by amount, person or card.
    op.create_index("ix_card_charges_amount", "card_charges", ["amount_minor"])
    op.create_index("ix_card_charges_original", "card_charges", ["original_minor"])
    op.create_index("ix_card_charges_card", "card_charges", ["card_last4", "transaction_date"])
    op.create_index("ix_card_charges_transaction", "card_charges", ["transaction_date"])

    op.create_table(
        "card_statement_lines",
        sa.Column(
            "statement_id",
            sa.String(40),
            sa.ForeignKey("card_statements.statement_id"),
            primary_key=True,
        ),
        sa.Column(
            "charge_id", sa.String(140), sa.ForeignKey("card_charges.charge_id"), primary_key=True
        ),
        sa.Column("line", sa.Integer(), nullable=False),
    )
    op.create_index("ix_card_statement_lines_charge", "card_statement_lines", ["charge_id"])

    op.create_table(
        "receipt_refs",
        sa.Column("receipt_id", sa.String(64), primary_key=True),
        sa.Column("submitter", sa.String(200), nullable=False),
        sa.Column("merchant", sa.String(500), nullable=False, server_default=""),
        sa.Column("receipt_date", sa.Date(), nullable=True),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("tip_minor", sa.BigInteger(), nullable=True),
        sa.Column("card_last4", sa.String(4), nullable=True),
        sa.Column("paid_with", sa.String(20), nullable=False),
        sa.Column("state", sa.String(12), nullable=False),
        sa.Column("match_id", sa.String(40), nullable=False, server_default=""),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(f"state IN {RECEIPT_STATES}", name="ck_receipt_refs_state"),
        sa.CheckConstraint(
            "(total_minor IS NULL) = (currency IS NULL)", name="ck_receipt_refs_money"
        ),
    )
    op.create_index("ix_receipt_refs_state_date", "receipt_refs", ["state", "receipt_date"])
    op.create_index("ix_receipt_refs_submitter", "receipt_refs", ["submitter", "receipt_date"])
    op.create_index("ix_receipt_refs_total", "receipt_refs", ["total_minor"])
    op.create_index("ix_receipt_refs_card", "receipt_refs", ["card_last4", "receipt_date"])

    op.create_table(
        "card_matches",
        sa.Column("match_id", sa.String(40), primary_key=True),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("origin", sa.String(10), nullable=False),
        # A likeness measure in 0..1, never an amount.
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("signals_json", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("reasons_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("threshold_version", sa.String(40), nullable=False),
        sa.Column("cardholder", sa.String(200), nullable=False, server_default=""),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=False, server_default=""),
        sa.Column("proposed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("decision_reason", sa.Text(), nullable=False, server_default=""),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.CheckConstraint(f"status IN {MATCH_STATUSES}", name="ck_card_matches_status"),
        sa.CheckConstraint("origin IN ('engine', 'manual')", name="ck_card_matches_origin"),
    )
    op.create_index("ix_card_matches_status_score", "card_matches", ["status", "score"])
    for side, column, target, length in (
        ("match_charges", "charge_id", "card_charges.charge_id", 140),
        ("match_receipts", "receipt_id", "receipt_refs.receipt_id", 64),
    ):
        op.create_table(
            side,
            sa.Column(
                "match_id",
                sa.String(40),
                sa.ForeignKey("card_matches.match_id"),
                primary_key=True,
            ),
            sa.Column(column, sa.String(length), sa.ForeignKey(target), primary_key=True),
            # True while the match is proposed or confirmed; kept with the match's status.
            sa.Column("live", sa.Boolean(), nullable=False),
        )
        op.create_index(
            f"uq_{side}_live",
            side,
            [column],
            unique=True,
            sqlite_where=sa.text("live"),
            postgresql_where=sa.text("live"),
        )
    op.create_table(
        "rejected_pairs",
        sa.Column("charge_id", sa.String(140), primary_key=True),
        sa.Column("receipt_id", sa.String(64), primary_key=True),
        sa.Column("match_id", sa.String(40), nullable=False),
    )
    op.create_index("ix_rejected_pairs_receipt", "rejected_pairs", ["receipt_id"])
    op.create_table(
        "missing_receipt_declarations",
        sa.Column("declaration_id", sa.String(40), primary_key=True),
        sa.Column(
            "charge_id", sa.String(140), sa.ForeignKey("card_charges.charge_id"), nullable=False
        ),
        sa.Column("cardholder", sa.String(200), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("business_purpose", sa.Text(), nullable=False),
        sa.Column("attestation", sa.Text(), nullable=False),
        sa.Column("declared_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("charge_id", name="uq_declarations_charge"),
    )


def downgrade() -> None:
    for table in (
        "missing_receipt_declarations",
        "rejected_pairs",
        "match_receipts",
        "match_charges",
        "card_matches",
        "receipt_refs",
        "card_statement_lines",
        "card_charges",
        "card_statement_totals",
        "card_statements",
    ):
        op.drop_table(table)
