"""Receipts table.

Revision ID: intake_0001
Branch labels: intake
"""

import sqlalchemy as sa
from alembic import op

revision = "intake_0001"
down_revision = None
branch_labels = ("intake",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "receipts",
        sa.Column("receipt_id", sa.String(36), primary_key=True),
        sa.Column("submitter", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("paid_with", sa.String(20), nullable=False),
        sa.Column("note", sa.Text(), nullable=False, server_default=""),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("perceptual_hash", sa.String(32), nullable=False),
        sa.Column("original_key", sa.String(200), nullable=False),
        sa.Column("normalized_key", sa.String(200), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("fields_json", sa.Text(), nullable=False, server_default="{}"),
        sa.Column("review_reasons_json", sa.Text(), nullable=False, server_default="[]"),
        sa.Column("possible_duplicate_of", sa.String(36), nullable=False, server_default=""),
        sa.Column("ocr_text", sa.Text(), nullable=False, server_default=""),
        # Search columns kept in step with fields_json (date, amount, counterparty).
        sa.Column("merchant", sa.String(300), nullable=True),
        sa.Column("transaction_date", sa.Date(), nullable=True),
        sa.Column("total_minor", sa.BigInteger(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
        sa.UniqueConstraint("submitter", "sha256", name="uq_receipts_submitter_sha256"),
    )
    op.create_index("ix_receipts_submitter", "receipts", ["submitter", "uploaded_at"])
    op.create_index("ix_receipts_search", "receipts", ["transaction_date", "total_minor"])


def downgrade() -> None:
    op.drop_table("receipts")
