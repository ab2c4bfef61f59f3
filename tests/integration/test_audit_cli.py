"""`seisan audit verify|show|tail|checkpoint` against a real chain on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from seisan_audit.adapters.repository import SqlAuditLog
from seisan_audit.bootstrap import MIGRATIONS
from seisan_audit.domain.chain import AuditRecord, ChainEntry
from seisan_audit.entrypoints.cli import app
from seisan_audit.handlers import append_record
from seisan_shared.storage import Database, run_migrations, sqlite_url_for

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


@pytest.fixture
async def audit_db(database: Database) -> AsyncIterator[Database]:
    await run_migrations(database, MIGRATIONS)
    yield database


async def invoke(*args: str) -> Result:
    """Run the CLI as a user would (it runs its own event loop, so: in a thread)."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def fill(db: Database, n: int) -> list[ChainEntry]:
    entries = []
    for i in range(1, n + 1):
        async with db.transaction() as session:
            entry = await append_record(
                SqlAuditLog(session),
                AuditRecord.create(
                    record_id=f"rec-{i}",
                    source_service="intake",
                    actor="aiko",
                    action="receipt.corrected",
                    entity_type="receipt",
                    entity_id=f"r-{i % 2}",
                    before_json=f'{{"total": {1000 + i}, "merchant": "ローソン"}}',
                    after_json=f'{{"total": {2000 + i}, "merchant": "ローソン"}}',
                    reason=f"fix {i}",
                    occurred_at=T0 + timedelta(minutes=i),
                ),
            )
        assert entry is not None
        entries.append(entry)
    return entries


async def tamper(db: Database, sql: str) -> None:
    async with db.transaction() as session:
        if db.is_sqlite:
            await session.execute(sa.text("DROP TRIGGER audit_entries_no_update"))
        else:
            await session.execute(
                sa.text("DROP TRIGGER audit_entries_append_only ON audit_entries")
            )
        await session.execute(sa.text(sql))


async def test_verify_prints_count_and_head_when_intact(audit_db: Database, tmp_path: Path) -> None:
    entries = await fill(audit_db, 4)
    result = await invoke(
        "verify", "--database-url", audit_db.url, "--checkpoints", str(tmp_path / "cp.jsonl")
    )
    assert result.exit_code == 0, result.output
    assert result.output.strip() == f"audit: records=4 head={entries[-1].entry_hash[:12]} ok"


async def test_verify_names_the_edited_entry_and_exits_1(
    audit_db: Database, tmp_path: Path
) -> None:
    await fill(audit_db, 5)
    await tamper(audit_db, "UPDATE audit_entries SET reason = 'nothing to see' WHERE seq = 3")
    result = await invoke(
        "verify", "--database-url", audit_db.url, "--checkpoints", str(tmp_path / "cp.jsonl")
    )
    assert result.exit_code == 1
    assert "TAMPERED: 1 problem(s)" in result.output
    assert "edited at seq 3" in result.output


async def test_checkpoint_then_verify_against_it(audit_db: Database, tmp_path: Path) -> None:
    cp_file = tmp_path / "elsewhere" / "audit-checkpoints.jsonl"
    entries = await fill(audit_db, 3)
    first = await invoke(
        "checkpoint", "--database-url", audit_db.url, "--checkpoints", str(cp_file)
    )
    assert first.exit_code == 0, first.output
    assert f"records=3 head={entries[-1].entry_hash[:12]}" in first.output
    lines = cp_file.read_text().splitlines()
    assert len(lines) == 1
    assert json.loads(lines[0])["head_hash"] == entries[-1].entry_hash
    again = await invoke(
        "checkpoint", "--database-url", audit_db.url, "--checkpoints", str(cp_file)
    )
    assert again.exit_code == 0
    assert "nothing new" in again.output
    verified = await invoke("verify", "--database-url", audit_db.url, "--checkpoints", str(cp_file))
    assert verified.exit_code == 0, verified.output
    assert "(and 1 checkpoint(s))" in verified.output


async def test_damaged_checkpoint_file_fails_verify(audit_db: Database, tmp_path: Path) -> None:
    await fill(audit_db, 1)
    cp_file = tmp_path / "cp.jsonl"
    cp_file.write_text('{"records": "three"}\n')
    result = await invoke("verify", "--database-url", audit_db.url, "--checkpoints", str(cp_file))
    assert result.exit_code == 1
    assert "not a checkpoint" in result.output


async def test_tail_lists_the_latest_entries_oldest_first(audit_db: Database) -> None:
    await fill(audit_db, 5)
    result = await invoke("tail", "-n", "3", "--database-url", audit_db.url)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert [line.split()[0] for line in lines] == ["#3", "#4", "#5"]
    assert "receipt.corrected" in lines[0]
    assert "receipt/r-1" in lines[0]


async def test_show_one_entry_with_its_changes(audit_db: Database) -> None:
    await fill(audit_db, 2)
    result = await invoke("show", "2", "--database-url", audit_db.url)
    assert result.exit_code == 0, result.output
    assert result.output.startswith("#2")
    assert "total: 1002 → 2002" in result.output
    changes = [line.strip() for line in result.output.splitlines() if "→" in line]
    assert changes == ["total: 1002 → 2002"]  # the unchanged merchant is not listed


async def test_show_filters_as_json_lines(audit_db: Database) -> None:
    await fill(audit_db, 5)
    result = await invoke(
        "show", "--entity-type", "receipt", "--entity-id", "r-0", "--json", "--database-url",
        audit_db.url,
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.output.splitlines()]
    assert [r["seq"] for r in rows] == [2, 4]
    assert rows[0]["after"] == {"total": 2002, "merchant": "ローソン"}
    missing = await invoke("show", "99", "--database-url", audit_db.url)
    assert missing.exit_code == 3  # not found


async def test_missing_or_unmigrated_database_exits_6(tmp_path: Path) -> None:
    absent = await invoke("verify", "--database-url", f"sqlite:///{tmp_path / 'nope.db'}")
    assert absent.exit_code == 6  # unavailable
    assert "no audit database" in absent.output
    assert not (tmp_path / "nope.db").exists()  # verify never creates one

    empty = Database(sqlite_url_for(tmp_path / "empty.db"))
    await empty.open()
    async with empty.transaction() as session:
        await session.execute(sa.text("CREATE TABLE unrelated (x INTEGER)"))
    await empty.close()
    unmigrated = await invoke("verify", "--database-url", f"sqlite:///{tmp_path / 'empty.db'}")
    assert unmigrated.exit_code == 6
    assert "cannot read the audit chain" in unmigrated.output
