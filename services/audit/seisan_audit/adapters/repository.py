"""The chain in SQL: ``audit_entries`` (append-only) and its one-row ``audit_anchor``.

Both tables are guarded by triggers (see the migration): entries refuse
UPDATE and DELETE, the anchor only moves forward and only onto a stored
entry. Verification does not rely on that; it recomputes the chain.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_audit.domain.chain import (
    AuditRecord,
    ChainEntry,
    ChainHead,
    DamagedEntry,
    format_instant,
    parse_instant,
)
from seisan_audit.domain.errors import AuditError
from seisan_audit.domain.ports import AuditLog, AuditReader, RecordQuery
from seisan_shared.storage import Database

metadata = sa.MetaData()

audit_entries = sa.Table(
    "audit_entries",
    metadata,
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
    # Times as the chain's own text form, so what is hashed is what is stored.
    sa.Column("occurred_at", sa.String(32), nullable=False),
    sa.Column("correlation_id", sa.Text(), nullable=False),
    sa.Column("recorded_at", sa.String(32), nullable=False),
    sa.Column("prev_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("entry_hash", sa.String(64), nullable=False),
)

audit_anchor = sa.Table(
    "audit_anchor",
    metadata,
    sa.Column("id", sa.Integer(), primary_key=True, autoincrement=False),
    sa.Column("records", sa.BigInteger(), nullable=False),
    sa.Column("head_hash", sa.String(64), nullable=False),
    sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
)

ANCHOR_ID = 1
READ_BATCH = 500


class AnchorMissing(AuditError):
    """The anchor row was deleted: the chain cannot be extended until someone looks."""


class ConcurrentAppend(AuditError):
    """The anchor moved between reading the head and appending (retry the delivery)."""


def entry_row(entry: ChainEntry) -> dict[str, Any]:
    r = entry.record
    return {
        "seq": entry.seq,
        "record_id": r.record_id,
        "source_service": r.source_service,
        "actor": r.actor,
        "action": r.action,
        "entity_type": r.entity_type,
        "entity_id": r.entity_id,
        "before_json": r.before_json,
        "after_json": r.after_json,
        "reason": r.reason,
        "occurred_at": format_instant(r.occurred_at),
        "correlation_id": r.correlation_id,
        "recorded_at": format_instant(entry.recorded_at),
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }


_TEXT_FIELDS = (
    "record_id",
    "source_service",
    "actor",
    "action",
    "entity_type",
    "entity_id",
    "before_json",
    "after_json",
    "reason",
    "correlation_id",
)


def entry_from_row(row: Mapping[Any, Any]) -> ChainEntry | DamagedEntry:
    """A stored row as an entry; a row that cannot be read (tampered types) as DamagedEntry.

    No normalisation happens here: the record is rebuilt exactly as stored,
    so verification hashes what the table holds.
    """
    raw_seq = row["seq"]
    seq = raw_seq if isinstance(raw_seq, int) else 0
    prev_hash = row["prev_hash"] if isinstance(row["prev_hash"], str) else ""
    stored_hash = row["entry_hash"] if isinstance(row["entry_hash"], str) else ""
    try:
        if not isinstance(raw_seq, int):
            raise ValueError(f"seq is {raw_seq!r}")
        for name in _TEXT_FIELDS:
            if not isinstance(row[name], str):
                raise ValueError(f"{name} is {row[name]!r}")
        record = AuditRecord(
            record_id=row["record_id"],
            source_service=row["source_service"],
            actor=row["actor"],
            action=row["action"],
            entity_type=row["entity_type"],
            entity_id=row["entity_id"],
            before_json=row["before_json"],
            after_json=row["after_json"],
            reason=row["reason"],
            occurred_at=_instant(row["occurred_at"], "occurred_at"),
            correlation_id=row["correlation_id"],
        )
        return ChainEntry(
            seq=seq,
            record=record,
            recorded_at=_instant(row["recorded_at"], "recorded_at"),
            prev_hash=prev_hash,
            entry_hash=stored_hash,
        )
    except ValueError as exc:
        return DamagedEntry(seq, prev_hash, stored_hash, str(exc))


def _instant(value: Any, name: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{name} is {value!r}")
    try:
        parsed = parse_instant(value)
    except ValueError:
        raise ValueError(f"{name} {value!r} is not a chain time") from None
    if format_instant(parsed) != value:
        # Same instant, other spelling: still a change to what was hashed.
        raise ValueError(f"{name} {value!r} is not in the chain's form")
    return parsed


class SqlAuditLog(AuditLog):
    """Appends inside the caller's session (the consumer's transaction)."""

    def __init__(self, session: AsyncSession) -> None:
        self._session = session

    async def head(self) -> ChainHead:
        query = (
            sa.select(audit_anchor.c.records, audit_anchor.c.head_hash)
            .where(audit_anchor.c.id == ANCHOR_ID)
            .with_for_update()  # PostgreSQL: appenders queue here; SQLite: BEGIN IMMEDIATE did it
        )
        row = (await self._session.execute(query)).first()
        if row is None:
            raise AnchorMissing(
                "the audit_anchor row is gone (deleted behind its trigger): "
                "nothing can be appended; run `seisan audit verify`"
            )
        return ChainHead(int(row.records), str(row.head_hash))

    async def has_record(self, record_id: str) -> bool:
        query = sa.select(audit_entries.c.seq).where(audit_entries.c.record_id == record_id)
        return (await self._session.execute(query)).first() is not None

    async def append(self, entry: ChainEntry) -> None:
        await self._session.execute(sa.insert(audit_entries).values(**entry_row(entry)))
        moved = await self._session.execute(
            sa.update(audit_anchor)
            .where(audit_anchor.c.id == ANCHOR_ID, audit_anchor.c.records == entry.seq - 1)
            .values(records=entry.seq, head_hash=entry.entry_hash, updated_at=datetime.now(UTC))
        )
        if moved.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentAppend(f"the anchor moved while appending entry {entry.seq}")


class SqlAuditReader(AuditReader):
    """Reads committed state; every call (every batch) is its own short transaction."""

    def __init__(self, db: Database, *, batch: int = READ_BATCH) -> None:
        self._db = db
        self._batch = batch

    async def anchor(self) -> ChainHead:
        async with self._db.transaction() as session:
            row = (
                await session.execute(
                    sa.select(audit_anchor.c.records, audit_anchor.c.head_hash).where(
                        audit_anchor.c.id == ANCHOR_ID
                    )
                )
            ).first()
        if row is None:  # deleted behind the triggers' back: claim nothing, verify will object
            return ChainHead(0, "")
        return ChainHead(int(row.records), str(row.head_hash))

    async def entries(
        self, after_seq: int = 0, until_seq: int | None = None
    ) -> AsyncIterator[ChainEntry | DamagedEntry]:
        cursor: Any = after_seq
        while True:
            query = sa.select(audit_entries).where(audit_entries.c.seq > cursor)
            if until_seq is not None:
                query = query.where(audit_entries.c.seq <= until_seq)
            query = query.order_by(audit_entries.c.seq).limit(self._batch)
            async with self._db.transaction() as session:
                rows = (await session.execute(query)).mappings().all()
            for row in rows:
                yield entry_from_row(row)
            if len(rows) < self._batch:
                return
            cursor = rows[-1]["seq"]

    async def find(self, query: RecordQuery) -> list[ChainEntry | DamagedEntry]:
        c = audit_entries.c
        select = sa.select(audit_entries).where(c.seq > query.after_seq)
        for column, value in (
            (c.entity_type, query.entity_type),
            (c.entity_id, query.entity_id),
            (c.actor, query.actor),
            (c.source_service, query.source_service),
            (c.action, query.action),
        ):
            if value:
                select = select.where(column == value)
        select = select.order_by(c.seq).limit(query.limit)
        return await self._rows(select)

    async def latest(self, count: int) -> list[ChainEntry | DamagedEntry]:
        select = sa.select(audit_entries).order_by(audit_entries.c.seq.desc()).limit(count)
        return list(reversed(await self._rows(select)))

    async def get(self, seq: int) -> ChainEntry | DamagedEntry | None:
        rows = await self._rows(sa.select(audit_entries).where(audit_entries.c.seq == seq))
        return rows[0] if rows else None

    async def _rows(self, select: sa.Select[Any]) -> list[ChainEntry | DamagedEntry]:
        async with self._db.transaction() as session:
            rows = (await session.execute(select)).mappings().all()
        return [entry_from_row(row) for row in rows]
