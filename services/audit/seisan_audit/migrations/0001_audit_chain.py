"""The audit chain: append-only entries and their anchor, guarded by triggers.

Revision ID: audit_0001
Branch labels: audit

``audit_entries`` refuses UPDATE and DELETE (and TRUNCATE on PostgreSQL).
``audit_anchor`` holds one row, the chain's head (entry count and hash); it
may only move forward, onto an entry that exists with that hash, and cannot
be deleted. Verification still recomputes everything: triggers can be
dropped by whoever owns the database.
"""

import sqlalchemy as sa
from alembic import op

revision = "audit_0001"
down_revision = None
branch_labels = ("audit",)
depends_on = None

GENESIS_HASH = "0" * 64

SQLITE_TRIGGERS = (
    """
    CREATE TRIGGER audit_entries_no_update BEFORE UPDATE ON audit_entries
    BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: UPDATE refused'); END
    """,
    """
    CREATE TRIGGER audit_entries_no_delete BEFORE DELETE ON audit_entries
    BEGIN SELECT RAISE(ABORT, 'audit_entries is append-only: DELETE refused'); END
    """,
    """
    CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE ON audit_anchor
    WHEN NEW.id IS NOT OLD.id
      OR NEW.records <= OLD.records
      OR NEW.head_hash IS NOT (SELECT entry_hash FROM audit_entries WHERE seq = NEW.records)
    BEGIN SELECT RAISE(ABORT, 'audit_anchor only moves forward onto a stored entry'); END
    """,
    """
    CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
    BEGIN SELECT RAISE(ABORT, 'audit_anchor cannot be deleted'); END
    """,
)

POSTGRES_TRIGGERS = (
    """
    CREATE FUNCTION audit_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      RAISE EXCEPTION '% is append-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'integrity_constraint_violation';
    END
    $$
    """,
    """
    CREATE FUNCTION audit_anchor_forward_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
      IF NEW.id IS DISTINCT FROM OLD.id
         OR NEW.records <= OLD.records
         OR NEW.head_hash IS DISTINCT FROM
            (SELECT entry_hash FROM audit_entries WHERE seq = NEW.records) THEN
        RAISE EXCEPTION 'audit_anchor only moves forward onto a stored entry'
          USING ERRCODE = 'integrity_constraint_violation';
      END IF;
      RETURN NEW;
    END
    $$
    """,
    """
    CREATE TRIGGER audit_entries_append_only BEFORE UPDATE OR DELETE ON audit_entries
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_entries_no_truncate BEFORE TRUNCATE ON audit_entries
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_anchor_forward_only BEFORE UPDATE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_anchor_forward_only()
    """,
    """
    CREATE TRIGGER audit_anchor_no_delete BEFORE DELETE ON audit_anchor
    FOR EACH ROW EXECUTE FUNCTION audit_refuse_change()
    """,
    """
    CREATE TRIGGER audit_anchor_no_truncate BEFORE TRUNCATE ON audit_anchor
    FOR EACH STATEMENT EXECUTE FUNCTION audit_refuse_change()
    """,
)


def upgrade() -> None:
    op.create_table(
        "audit_entries",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer, "sqlite"),
            primary_key=True,
            autoincrement=False,
        ),
        sa.Column("record_id", sa.String(200), nullable=False, unique=True),
        sa.Column("source_service", sa.Text(), nullable=False),
        sa.Column("actor", sa.Text(), nullable=False),
        sa.Column("action", sa.Text(), nullable=False),
        sa.Column("entity_type", sa.Text(), nullable=False),
        sa.Column("entity_id", sa.Text(), nullable=False),
        sa.Column("before_json", sa.Text(), nullable=False),
        sa.Column("after_json", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("occurred_at", sa.String(32), nullable=False),
        sa.Column("correlation_id", sa.Text(), nullable=False),
        sa.Column("recorded_at", sa.String(32), nullable=False),
        # Unique: two entries can never follow the same one (no forks).
        sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
        sa.Column("entry_hash", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_entries_entity", "audit_entries", ["entity_type", "entity_id"])
    op.create_index("ix_audit_entries_actor", "audit_entries", ["actor"])
    op.create_table(
        "audit_anchor",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("records", sa.BigInteger(), nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint("id = 1", name="ck_audit_anchor_single_row"),
    )
    op.execute(
        sa.text(
            "INSERT INTO audit_anchor (id, records, head_hash, updated_at) "
            "VALUES (1, 0, :genesis, CURRENT_TIMESTAMP)"
        ).bindparams(genesis=GENESIS_HASH)
    )
    triggers = SQLITE_TRIGGERS if op.get_bind().dialect.name == "sqlite" else POSTGRES_TRIGGERS
    for statement in triggers:
        op.execute(statement)


def downgrade() -> None:
    # The trail is evidence: its tables are never dropped by a migration.
    raise RuntimeError("the audit chain cannot be downgraded")
