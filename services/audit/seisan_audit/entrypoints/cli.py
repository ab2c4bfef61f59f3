"""`seisan audit`: verify the hash chain, show and tail its records, take a checkpoint.

Reads the audit database directly (``--database-url``, else
``SEISAN_AUDIT_DATABASE_URL`` / ``SEISAN_DATABASE_URL``, else ``var/audit.db``);
never migrates or writes it.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy.exc
import typer
from sqlalchemy.engine import make_url

from seisan_audit.adapters.checkpoints import CheckpointFile
from seisan_audit.adapters.repository import SqlAuditReader
from seisan_audit.bootstrap import open_database
from seisan_audit.config import StorageConfig, load_storage_config
from seisan_audit.domain.chain import ChainEntry, ChainReport, DamagedEntry, format_instant
from seisan_audit.domain.errors import AuditError
from seisan_audit.domain.ports import RecordQuery
from seisan_audit.handlers import take_checkpoint, verify
from seisan_shared.cli.exitcodes import EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_UNAVAILABLE
from seisan_shared.cli.output import emit_json
from seisan_shared.storage import Database

app = typer.Typer(
    help=(
        "The audit trail: every decision (who, what, when, before → after) in one "
        "append-only hash chain. `seisan audit verify` detects any edit or deletion."
    ),
    no_args_is_help=True,
)

T = TypeVar("T")

DATABASE_HELP = "Audit database URL (default: SEISAN_AUDIT_DATABASE_URL, else var/audit.db)."
CHECKPOINTS_HELP = "Checkpoint file (default: SEISAN_AUDIT_CHECKPOINT_PATH, else var/…)."


class _Unavailable(Exception):
    """The database cannot be read as an audit chain (shown as one line, exit 6)."""


def _storage(database_url: str | None, checkpoints: Path | None) -> StorageConfig:
    base = load_storage_config()
    return StorageConfig(
        database_url=database_url or base.database_url,
        var_dir=base.var_dir,
        checkpoint_path=checkpoints or base.checkpoint_path,
    )


def _fail(message: str, code: int = EXIT_UNAVAILABLE) -> typer.Exit:
    typer.secho(f"seisan audit: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(code)


def _with_reader(config: StorageConfig, work: Callable[[SqlAuditReader], Awaitable[T]]) -> T:
    """Run ``work`` against the chain; unreadable database → exit 6 with one line."""
    url = config.database()
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        if not Path(parsed.database).exists():
            raise _fail(
                f"no audit database at {parsed.database} "
                "(has the audit service run here? else pass --database-url)"
            )

    async def run() -> T:
        db: Database = await open_database(url, migrate=False)
        try:
            return await work(SqlAuditReader(db))
        finally:
            await db.close()

    try:
        return asyncio.run(run())
    except (sqlalchemy.exc.SQLAlchemyError, OSError) as exc:
        detail = str(getattr(exc, "orig", None) or exc).splitlines()[0]
        raise _fail(
            f"cannot read the audit chain at {parsed.render_as_string()}: {detail}"
        ) from None


def _summary(report: ChainReport) -> str:
    return f"audit: records={report.records} head={report.head_hash[:12]}"


@app.command("verify")
def verify_command(
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_HELP),
    checkpoints: Path = typer.Option(None, "--checkpoints", help=CHECKPOINTS_HELP),
    use_checkpoints: bool = typer.Option(
        True, "--use-checkpoints/--no-checkpoints", help="Also hold the chain against them."
    ),
    max_problems: int = typer.Option(10, help="Problems to print (the first ones)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object: ok, records, problems."),
) -> None:
    """Recompute the whole hash chain; exit 1 naming the first problems if anything was changed.

    Detects edited, deleted, reordered and forged entries and a cut-off tail (against the
    anchor in the database and the checkpoint file). Exit 6 when the audit database cannot
    be read.

    Example: seisan audit verify --json

    Who: auditors and admins with read access to the audit database (runs locally).
    """
    config = _storage(database_url, checkpoints)
    store = CheckpointFile(config.checkpoints())
    try:
        witnesses = store.read() if use_checkpoints else []
    except AuditError as exc:
        raise _fail(str(exc), EXIT_FAILURE) from None
    report = _with_reader(config, lambda reader: verify(reader, witnesses))
    if as_json:
        emit_json(
            {
                "ok": report.ok,
                "records": report.records,
                "last_seq": report.last_seq,
                "head_hash": report.head_hash,
                "checkpoints": len(witnesses),
                "problem_count": report.problem_count,
                "problems": [str(p) for p in report.problems[:max_problems]],
            }
        )
        raise typer.Exit(0 if report.ok else EXIT_FAILURE)
    if report.ok:
        note = f" (and {len(witnesses)} checkpoint(s))" if witnesses else ""
        typer.echo(f"{_summary(report)} ok{note}")
        return
    typer.secho(
        f"{_summary(report)} TAMPERED: {report.problem_count} problem(s)",
        fg=typer.colors.RED,
    )
    for problem in report.problems[:max_problems]:
        typer.echo(f"  {problem}")
    if report.problem_count > max_problems:
        typer.echo(f"  … and {report.problem_count - max_problems} more")
    raise typer.Exit(1)


@app.command()
def checkpoint(
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_HELP),
    checkpoints: Path = typer.Option(None, "--checkpoints", help=CHECKPOINTS_HELP),
) -> None:
    """Verify what is new since the last checkpoint and append the current head to the file."""
    config = _storage(database_url, checkpoints)
    store = CheckpointFile(config.checkpoints())
    try:
        outcome = _with_reader(config, lambda reader: take_checkpoint(reader, store))
    except AuditError as exc:
        raise _fail(str(exc), 1) from None
    if outcome.report is not None and not outcome.report.ok:
        typer.secho("audit: NOT checkpointed, the chain has problems:", fg=typer.colors.RED)
        for problem in outcome.report.problems[:10]:
            typer.echo(f"  {problem}")
        raise typer.Exit(1)
    if outcome.checkpoint is None:
        typer.echo(f"audit: nothing new since the last checkpoint in {store.path}")
        return
    cp = outcome.checkpoint
    typer.echo(f"audit: checkpoint records={cp.records} head={cp.head_hash[:12]} → {store.path}")


@app.command()
def show(
    seq: int = typer.Argument(None, help="One entry by its position; omit to list by filters."),
    entity_type: str = typer.Option("", "--entity-type", "-t", help="e.g. receipt"),
    entity_id: str = typer.Option("", "--entity-id", "-e"),
    actor: str = typer.Option("", "--actor", "-a"),
    action: str = typer.Option("", "--action"),
    source: str = typer.Option("", "--source", help="Service that decided, e.g. intake."),
    after: int = typer.Option(0, "--after", help="Only entries after this position."),
    limit: int = typer.Option(50, "--limit", "-n"),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_HELP),
) -> None:
    """Show entries in full (before → after): one by SEQ, or those matching the filters.

    Example: `seisan audit show -t receipt -e 7f3c…` — the history of one receipt.
    """
    config = _storage(database_url, None)
    if seq is not None:
        found = _with_reader(config, lambda reader: reader.get(seq))
        if found is None:
            raise _fail(f"no entry {seq}", EXIT_NOT_FOUND)
        entries: list[ChainEntry | DamagedEntry] = [found]
    else:
        query = RecordQuery(
            entity_type=entity_type,
            entity_id=entity_id,
            actor=actor,
            source_service=source,
            action=action,
            after_seq=after,
            limit=limit,
        )
        entries = _with_reader(config, lambda reader: reader.find(query))
    for entry in entries:
        typer.echo(_json_line(entry) if as_json else _detail(entry))


@app.command()
def tail(
    count: int = typer.Option(20, "--count", "-n", help="How many of the latest entries."),
    as_json: bool = typer.Option(False, "--json", help="One JSON object per line."),
    database_url: str = typer.Option(None, "--database-url", help=DATABASE_HELP),
) -> None:
    """The latest entries, one line each, oldest first."""
    config = _storage(database_url, None)
    entries = _with_reader(config, lambda reader: reader.latest(count))
    for entry in entries:
        typer.echo(_json_line(entry) if as_json else _line(entry))


# --- rendering -------------------------------------------------------------------------------


def _as_dict(entry: ChainEntry | DamagedEntry) -> dict[str, Any]:
    base: dict[str, Any] = {
        "seq": entry.seq,
        "prev_hash": entry.prev_hash,
        "entry_hash": entry.entry_hash,
    }
    if isinstance(entry, DamagedEntry):
        return {**base, "damaged": entry.reason}
    r = entry.record
    return {
        **base,
        "record_id": r.record_id,
        "recorded_at": format_instant(entry.recorded_at),
        "occurred_at": format_instant(r.occurred_at),
        "source_service": r.source_service,
        "actor": r.actor,
        "action": r.action,
        "entity_type": r.entity_type,
        "entity_id": r.entity_id,
        "before": _state(r.before_json),
        "after": _state(r.after_json),
        "reason": r.reason,
        "correlation_id": r.correlation_id,
    }


def _state(text: str) -> Any:
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError:
        return text


def _json_line(entry: ChainEntry | DamagedEntry) -> str:
    return json.dumps(_as_dict(entry), ensure_ascii=False, sort_keys=True)


def _line(entry: ChainEntry | DamagedEntry) -> str:
    if isinstance(entry, DamagedEntry):
        return f"#{entry.seq:<6} (unreadable: {entry.reason})"
    r = entry.record
    when = format_instant(r.occurred_at)[:19] + "Z"
    thing = f"{r.entity_type}/{r.entity_id}" if r.entity_type else r.entity_id
    why = f"  “{r.reason}”" if r.reason else ""
    return f"#{entry.seq:<6} {when} {r.source_service:<8} {r.actor:<12} {r.action:<22} {thing}{why}"


def _detail(entry: ChainEntry | DamagedEntry) -> str:
    if isinstance(entry, DamagedEntry):
        return _line(entry)
    r = entry.record
    lines = [
        _line(entry),
        f"    record    {r.record_id}  correlation {r.correlation_id or '-'}",
        f"    recorded  {format_instant(entry.recorded_at)}  hash {entry.entry_hash[:16]}…",
        f"    before    {r.before_json or '(none)'}",
        f"    after     {r.after_json or '(none)'}",
    ]
    for key, old, new in _changes(r.before_json, r.after_json):
        lines.append(f"      {key}: {old} → {new}")
    return "\n".join(lines)


def _changes(before: str, after: str) -> list[tuple[str, str, str]]:
    """Top-level keys whose values differ, as compact JSON (for `show`)."""
    old, new = _state(before), _state(after)
    if not isinstance(old, dict) or not isinstance(new, dict):
        return []
    changed = []
    for key in sorted(set(old) | set(new)):
        if old.get(key) != new.get(key):
            show_old = json.dumps(old.get(key), ensure_ascii=False) if key in old else "(absent)"
            show_new = json.dumps(new.get(key), ensure_ascii=False) if key in new else "(absent)"
            changed.append((key, show_old, show_new))
    return changed
