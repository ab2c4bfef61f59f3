"""The SQL chain on SQLite and PostgreSQL: round trip, append-only triggers, tamper detection."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from seisan_audit.adapters.repository import (
    AnchorMissing,
    SqlAuditLog,
    SqlAuditReader,
    audit_entries,
    entry_row,
)
from seisan_audit.bootstrap import MIGRATIONS
from seisan_audit.domain.chain import (
    AuditRecord,
    ChainEntry,
    ChainHead,
    ProblemKind,
    next_entry,
)
from seisan_audit.domain.ports import RecordQuery
from seisan_audit.handlers import append_record, verify
from seisan_shared.storage import Database, run_migrations

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def audit_db(database: Database) -> AsyncIterator[Database]:
    await run_migrations(database, MIGRATIONS)
    yield database


def record(n: int, **overrides: str) -> AuditRecord:
    fields = {
        "record_id": f"rec-{n}",
        "source_service": "cards",
        "actor": "aiko" if n % 2 else "hiro",
        "action": "match.confirmed",
        "entity_type": "match",
        "entity_id": f"m-{n % 3}",
        "before_json": '{"state": "proposed", "score": 0.82}',
        "after_json": '{"state": "confirmed", "merchant": "ローソン 春日井店"}',
        "reason": "確認済み" if n % 2 else "",
        "correlation_id": f"corr-{n}",
    }
    fields.update(overrides)
    return AuditRecord.create(occurred_at=T0 + timedelta(seconds=n), **fields)


async def append(db: Database, n: int) -> ChainEntry | None:
    async with db.transaction() as session:
        return await append_record(SqlAuditLog(session), record(n))


async def fill(db: Database, n: int) -> list[ChainEntry]:
    out = []
    for i in range(1, n + 1):
        entry = await append(db, i)
        assert entry is not None
        out.append(entry)
    return out


async def drop_guards(db: Database) -> None:
    """What a tamperer with owner rights does first (entries only; the anchor stays guarded)."""
    async with db.transaction() as session:
        if db.is_sqlite:
            await session.execute(sa.text("DROP TRIGGER audit_entries_no_update"))
            await session.execute(sa.text("DROP TRIGGER audit_entries_no_delete"))
        else:
            await session.execute(
                sa.text("DROP TRIGGER audit_entries_append_only ON audit_entries")
            )


async def raw(db: Database, sql: str, **params: object) -> None:
    async with db.transaction() as session:
        await session.execute(sa.text(sql), params)


# --- round trip ----------------------------------------------------------------------------------


async def test_appended_entries_read_back_exactly_and_verify(audit_db: Database) -> None:
    written = await fill(audit_db, 7)
    reader = SqlAuditReader(audit_db, batch=3)  # several batches
    read = [e async for e in reader.entries()]
    assert read == written
    assert await reader.anchor() == ChainHead(7, written[-1].entry_hash)
    report = await verify(reader)
    assert report.ok, report.problems
    assert report.records == 7


async def test_redelivered_record_is_not_appended_twice(audit_db: Database) -> None:
    await fill(audit_db, 2)
    assert await append(audit_db, 2) is None
    reader = SqlAuditReader(audit_db)
    assert (await reader.anchor()).records == 2
    with pytest.raises(IntegrityError):  # and the table itself refuses a second copy
        async with audit_db.transaction() as session:
            log = SqlAuditLog(session)
            head = await log.head()
            await log.append(next_entry(head, record(2), T0))


async def test_concurrent_appenders_are_serialised_into_one_chain(audit_db: Database) -> None:
    await asyncio.gather(*(append(audit_db, i) for i in range(1, 21)))
    reader = SqlAuditReader(audit_db)
    report = await verify(reader)
    assert report.ok, report.problems
    assert report.records == 20
    ids = {
        e.record.record_id for e in [x async for x in reader.entries()] if isinstance(e, ChainEntry)
    }
    assert ids == {f"rec-{i}" for i in range(1, 21)}


async def test_find_latest_and_get(audit_db: Database) -> None:
    await fill(audit_db, 9)
    reader = SqlAuditReader(audit_db)
    by_entity = await reader.find(RecordQuery(entity_type="match", entity_id="m-1"))
    assert [e.seq for e in by_entity] == [1, 4, 7]
    by_actor = await reader.find(RecordQuery(actor="hiro", after_seq=4, limit=2))
    assert [e.seq for e in by_actor] == [6, 8]
    assert [e.seq for e in await reader.latest(3)] == [7, 8, 9]
    got = await reader.get(5)
    assert isinstance(got, ChainEntry)
    assert got.record.reason == "確認済み"
    assert await reader.get(99) is None


# --- the guards ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sql",
    [
        "UPDATE audit_entries SET actor = 'mallory' WHERE seq = 2",
        "DELETE FROM audit_entries WHERE seq = 3",
        "DELETE FROM audit_entries",
        "UPDATE audit_anchor SET records = 1",
        "UPDATE audit_anchor SET records = 4, head_hash = '" + "a" * 64 + "'",
        "DELETE FROM audit_anchor",
        "INSERT INTO audit_anchor (id, records, head_hash, updated_at) "
        "VALUES (2, 0, 'x', CURRENT_TIMESTAMP)",
    ],
)
async def test_triggers_refuse_changing_the_trail(audit_db: Database, sql: str) -> None:
    await fill(audit_db, 3)
    with pytest.raises(DBAPIError):
        await raw(audit_db, sql)
    assert (await verify(SqlAuditReader(audit_db))).ok


async def test_truncate_is_refused_on_postgres(audit_db: Database) -> None:
    if audit_db.is_sqlite:
        pytest.skip("SQLite has no TRUNCATE (DELETE is guarded instead)")
    await fill(audit_db, 2)
    for table in ("audit_entries", "audit_anchor"):
        with pytest.raises(DBAPIError, match="append-only"):
            await raw(audit_db, f"TRUNCATE {table}")


# --- tampering behind the triggers' back ---------------------------------------------------------


async def test_edited_row_is_reported(audit_db: Database) -> None:
    await fill(audit_db, 6)
    await drop_guards(audit_db)
    await raw(
        audit_db,
        "UPDATE audit_entries SET after_json = :a WHERE seq = 4",
        a='{"state":"rejected"}',
    )
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 4)]


async def test_deleted_middle_row_is_reported(audit_db: Database) -> None:
    await fill(audit_db, 6)
    await drop_guards(audit_db)
    await raw(audit_db, "DELETE FROM audit_entries WHERE seq = 2")
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.MISSING, 3)]


async def test_deleted_tail_is_reported_against_the_anchor(audit_db: Database) -> None:
    await fill(audit_db, 6)
    await drop_guards(audit_db)
    await raw(audit_db, "DELETE FROM audit_entries WHERE seq > 4")
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 5)]


async def test_respelled_time_is_reported_as_an_edit(audit_db: Database) -> None:
    await fill(audit_db, 3)
    await drop_guards(audit_db)
    await raw(
        audit_db,
        "UPDATE audit_entries SET occurred_at = :t WHERE seq = 2",
        t="2026-11-03T09:00:02.0Z",  # the same instant, spelled differently
    )
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 2)]
    assert "chain's form" in report.problems[0].detail


async def test_rows_inserted_past_the_anchor_are_reported(audit_db: Database) -> None:
    entries = await fill(audit_db, 3)
    forged = next_entry(ChainHead(3, entries[-1].entry_hash), record(4, actor="mallory"), T0)
    async with audit_db.transaction() as session:
        await session.execute(sa.insert(audit_entries).values(**entry_row(forged)))
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.ANCHOR_MISMATCH, 4)]


async def test_deleted_anchor_is_reported_and_stops_appends(audit_db: Database) -> None:
    await fill(audit_db, 2)
    async with audit_db.transaction() as session:
        if audit_db.is_sqlite:
            await session.execute(sa.text("DROP TRIGGER audit_anchor_no_delete"))
        else:
            await session.execute(sa.text("DROP TRIGGER audit_anchor_no_delete ON audit_anchor"))
        await session.execute(sa.text("DELETE FROM audit_anchor"))
    report = await verify(SqlAuditReader(audit_db))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.ANCHOR_MISMATCH, 0)]
    assert "anchor is missing" in report.problems[0].detail
    with pytest.raises(AnchorMissing):
        await append(audit_db, 3)
