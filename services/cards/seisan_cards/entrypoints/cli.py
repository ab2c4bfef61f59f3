"""`seisan statements …` and `seisan reconcile …`: card statements and their receipts.

    seisan statements import nov.csv                 # any supported format, recognised
    seisan statements list                           # every statement and whether it closes
    seisan reconcile report                          # close check per statement
    seisan reconcile suggestions                     # what waits for a person
    seisan reconcile confirm MATCH_ID | reject MATCH_ID --reason "…"
    seisan reconcile charges --status unmatched      # staff: your own, what is missing
    seisan reconcile declare CHARGE_ID --reason "client dinner"
    seisan reconcile journal --from 2026-11-01 --to 2026-11-30 --format csv
    seisan reconcile files --charges c.csv --receipts r.jsonl --out matches.csv  # offline

Exit codes: those of :mod:`seisan_shared.cli.exitcodes` (0 done, 1 failed or a statement
that does not close, 2 usage, 3 not found, 4 not allowed, 5 invalid input, 6 unavailable,
7 conflict).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import Progress
from rich.table import Table

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.common.v1 import common_pb2
from seisan_shared.cli.context import (
    EXIT_FAILURE,
    EXIT_INVALID,
    EXIT_OK,
    EXIT_USAGE,
    fail,
    require_token,
    resolve,
    rpc_failure,
)
from seisan_shared.cli.output import emit_json, money_text, progress_bar
from seisan_shared.grpc.client import sync_channel

statements_app = typer.Typer(
    help="Card statements (treasury): import issuer files; then `seisan reconcile report`.",
    no_args_is_help=True,
)
reconcile_app = typer.Typer(no_args_is_help=True)
CHUNK = 256 * 1024
DEFAULT_ADDRESS = "127.0.0.1:50702"
FORMATS = {
    "auto": cards_pb2.STATEMENT_FORMAT_UNSPECIFIED,
    "csv": cards_pb2.STATEMENT_FORMAT_GENERIC_CSV,
    "ofx": cards_pb2.STATEMENT_FORMAT_OFX,
    "vcf": cards_pb2.STATEMENT_FORMAT_VISA_VCF,
    "cdf": cards_pb2.STATEMENT_FORMAT_MASTERCARD_CDF,
    "amex": cards_pb2.STATEMENT_FORMAT_AMEX_GL1025,
}
STATUSES = {
    "unmatched": cards_pb2.CHARGE_STATUS_UNMATCHED,
    "suggested": cards_pb2.CHARGE_STATUS_SUGGESTED,
    "matched": cards_pb2.CHARGE_STATUS_MATCHED,
    "declared": cards_pb2.CHARGE_STATUS_DECLARED_MISSING,
}


@statements_app.callback()
def _statements() -> None:
    """Card statements (treasury): import issuer files; then `seisan reconcile report`."""


@reconcile_app.callback(invoke_without_command=True)
def _reconcile(
    ctx: typer.Context,
    charges: Path = typer.Option(None, "--charges", help="Offline: charges CSV (as `files`)."),
    receipts: Path = typer.Option(None, "--receipts", help="Offline: receipts JSONL."),
    out: Path = typer.Option(None, "--out", help="Offline: matches.csv to write."),
) -> None:
    """Reconcile card charges with receipts: report, decide, declare, journal.

    Treasury reads the report and the engine's suggestions (score and reasons), confirms,
    rejects or matches by hand, asks for missing receipts and exports the journal. Staff
    list their charges that need a receipt (`seisan reconcile missing`) and declare a
    missing one. `seisan reconcile --charges C --receipts R --out M` runs offline.
    """
    offline = (charges, receipts, out)
    if ctx.invoked_subcommand is not None:
        if any(offline):
            raise fail("--charges/--receipts/--out go without a subcommand (or after `files`)", 2)
        return
    if not all(offline):
        raise fail("offline reconciliation needs --charges, --receipts and --out", EXIT_USAGE)
    _run_offline(charges, receipts, out, as_json=False)


TokenOpt = typer.Option(None, "--token", help="Bearer token (default: SEISAN_TOKEN).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _address() -> str:
    explicit = os.environ.get("SEISAN_CARDS_ADDRESS")
    if explicit:
        return explicit
    return resolve().addresses.get("cards", DEFAULT_ADDRESS)


def _stub(token: str | None) -> tuple[grpc.Channel, cards_pb2_grpc.CardReconciliationStub]:
    channel = sync_channel(_address(), require_token(token))
    return channel, cards_pb2_grpc.CardReconciliationStub(channel)


def _call(token: str | None, what: str, method: str, request: Message, timeout: float = 30) -> Any:
    channel, stub = _stub(token)
    with channel:
        try:
            return getattr(stub, method)(request, timeout=timeout)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, what) from None


def _day(text: str | None, name: str) -> common_pb2.Date | None:
    if not text:
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise fail(f"{name}: expected YYYY-MM-DD, got {text!r}", EXIT_USAGE) from None
    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


def _show_day(d: common_pb2.Date) -> str:
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}" if d.year else ""


def _money(m: common_pb2.Money) -> str:
    return money_text(m.minor_units, m.currency) if m.currency else "0"


def _emit_json(value: Any) -> None:
    emit_json(value)


# --- statements ---------------------------------------------------------------------------


def _import_requests(
    path: Path, fmt: int, progress: Progress, task: Any
) -> Iterator[cards_pb2.ImportStatementRequest]:
    yield cards_pb2.ImportStatementRequest(
        metadata=cards_pb2.ImportStatementMetadata(format=fmt, filename=path.name)  # type: ignore[arg-type]
    )
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            progress.advance(task, len(chunk))
            yield cards_pb2.ImportStatementRequest(chunk=chunk)


@statements_app.command("import")
def import_(
    path: Path = typer.Argument(..., exists=True, dir_okay=False, help="The statement file."),
    fmt: str = typer.Option("auto", "--format", help=f"One of: {', '.join(FORMATS)}."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Import a statement (generic CSV, OFX/QFX, Visa VCF, Mastercard CDF, Amex GL1025).

    Whole or nothing: a bad file is refused naming its line and field (exit 5). Importing
    the same file again, or lines already imported, creates nothing new. The charges are
    matched against receipts right away; see `seisan reconcile report`.

    Example: seisan statements import november.csv

    Who: treasury.
    """
    if fmt not in FORMATS:
        raise fail(f"--format must be one of {', '.join(FORMATS)}", EXIT_USAGE)
    channel, stub = _stub(token)
    with channel, progress_bar(as_json, transfer=True) as progress:
        task = progress.add_task(f"importing {path.name}", total=path.stat().st_size)
        try:
            reply = stub.ImportStatement(
                _import_requests(path, FORMATS[fmt], progress, task), timeout=300
            )
        except grpc.RpcError as exc:
            raise rpc_failure(exc, f"import {path}") from None
    if as_json:
        _emit_json(reply)
        return
    s = reply.statement
    if reply.already_imported:
        typer.echo(f"{path}: already imported as statement {s.statement_id}; nothing new")
        return
    typer.echo(
        f"statement {s.statement_id}: {s.charge_count} lines, {reply.imported_count} new "
        f"charges, {reply.duplicate_count} already known; total {_money(s.total)}"
    )
    typer.echo("next: seisan reconcile report --statement " + s.statement_id)


@statements_app.command("list")
def list_(
    date_from: str = typer.Option(None, "--from", help="Only statements ending on or after."),
    date_to: str = typer.Option(None, "--to", help="Only statements starting on or before."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Every imported statement, oldest import first, with its lines, total and whether it
    closes (total = matched + declared + open). With --json: a list of
    {statement, totals, close_check}.

    Example: seisan statements list --from 2026-11-01

    Who: treasury.
    """
    request = cards_pb2.GetReconciliationReportRequest()
    for name, text, target in (
        ("--from", date_from, "period_start"),
        ("--to", date_to, "period_end"),
    ):
        parsed = _day(text, name)
        if parsed is not None:
            getattr(request, target).CopyFrom(parsed)
    rep = _call(token, "list statements", "GetReconciliationReport", request).report
    if as_json:
        _emit_json(list(rep.statements))
        return
    table = Table(title="statements", show_header=True)
    for col in ("statement", "file", "format", "period", "lines", "total", "imported by", "closes"):
        table.add_column(
            col,
            justify="right" if col in ("lines", "total") else "left",
            no_wrap=col in ("statement", "period", "total"),
        )
    for entry in rep.statements:
        st = entry.statement
        period = f"{_show_day(st.period_start)} – {_show_day(st.period_end)}"
        table.add_row(
            st.statement_id,
            st.filename,
            cards_pb2.StatementFormat.Name(st.format).removeprefix("STATEMENT_FORMAT_").lower(),
            period,
            str(st.charge_count),
            _money(st.total),
            st.imported_by,
            "[green]yes[/green]" if entry.close_check.balanced else "[red]no[/red]",
        )
    Console().print(table)
    if not rep.statements:
        typer.echo("no statements yet: seisan statements import FILE")


# --- reconcile: reading -------------------------------------------------------------------


@reconcile_app.command()
def report(
    statement: str = typer.Option(None, "--statement", help="One statement id."),
    cardholder: str = typer.Option(None, "--cardholder", help="Only this cardholder."),
    date_from: str = typer.Option(None, "--from", help="Period start (YYYY-MM-DD)."),
    date_to: str = typer.Option(None, "--to", help="Period end (YYYY-MM-DD)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The reconciliation report: matched / suggested / unmatched / declared, per statement
    and cardholder, and each statement's close check (total = matched + declared + open).

    Exit 1 if a statement does not close.

    Example: seisan reconcile report --statement STATEMENT_ID --json

    Who: treasury.
    """
    request = cards_pb2.GetReconciliationReportRequest(
        statement_id=statement or "", cardholder=cardholder or ""
    )
    for name, text, target in (
        ("--from", date_from, "period_start"),
        ("--to", date_to, "period_end"),
    ):
        parsed = _day(text, name)
        if parsed is not None:
            getattr(request, target).CopyFrom(parsed)
    rep = _call(token, "report", "GetReconciliationReport", request).report
    unbalanced = [s for s in rep.statements if not s.close_check.balanced]
    if as_json:
        _emit_json(rep)
    else:
        out = Console()
        table = Table(title="statements", show_header=True)
        for col in ("statement", "file", "total", "matched", "declared", "open", "diff", "closes"):
            table.add_column(col, justify="right" if col not in ("statement", "file") else "left")
        for s in rep.statements:
            c, t = s.close_check, s.totals
            table.add_row(
                s.statement.statement_id,
                s.statement.filename,
                _money(c.statement_total),
                f"{_money(c.matched)} ({t.matched_count})",
                f"{_money(c.declared)} ({t.declared_count})",
                f"{_money(c.open)} ({t.suggested_count}+{t.unmatched_count})",
                _money(c.difference),
                "[green]yes[/green]" if c.balanced else "[red]NO[/red]",
            )
        out.print(table)
        people = Table(title="cardholders", show_header=True)
        for col in ("cardholder", "matched", "suggested", "unmatched", "declared"):
            people.add_column(col)
        for h in rep.cardholders:
            for t in h.totals:
                people.add_row(
                    h.cardholder,
                    f"{t.matched_count} · {_money(t.matched_amount)}",
                    f"{t.suggested_count} · {_money(t.suggested_amount)}",
                    f"{t.unmatched_count} · {_money(t.unmatched_amount)}",
                    f"{t.declared_count} · {_money(t.declared_amount)}",
                )
        out.print(people)
    if unbalanced:
        raise fail(f"{len(unbalanced)} statement(s) do not close", EXIT_FAILURE)


def _list(
    token: str | None, request: cards_pb2.ListChargesRequest
) -> cards_pb2.ListChargesResponse:
    return _call(token, "list charges", "ListCharges", request)  # type: ignore[no-any-return]


@reconcile_app.command()
def charges(
    status: str = typer.Option(None, help=f"One of: {', '.join(STATUSES)}."),
    cardholder: str = typer.Option(None, help="Only this cardholder (treasury)."),
    statement: str = typer.Option(None, help="Only this statement."),
    date_from: str = typer.Option(None, "--from", help="Transaction date from."),
    date_to: str = typer.Option(None, "--to", help="Transaction date to."),
    limit: int = typer.Option(100, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Card charges, newest first, with their status and match.

    Example: seisan reconcile charges --status unmatched --cardholder aiko

    Who: staff see their own; treasury everyone's.
    """
    if status and status not in STATUSES:
        raise fail(f"--status must be one of {', '.join(STATUSES)}", EXIT_USAGE)
    request = cards_pb2.ListChargesRequest(
        status=STATUSES.get(status or "", 0),  # type: ignore[arg-type]
        cardholder=cardholder or "",
        statement_id=statement or "",
        page_size=limit,
    )
    for name, text, target in (
        ("--from", date_from, "period_start"),
        ("--to", date_to, "period_end"),
    ):
        parsed = _day(text, name)
        if parsed is not None:
            getattr(request, target).CopyFrom(parsed)
    reply = _list(token, request)
    if as_json:
        _emit_json(reply)
        return
    _charges_table(reply)


def _charges_table(reply: cards_pb2.ListChargesResponse) -> None:
    scores = {m.match_id: m.score for m in reply.matches}
    table = Table(show_header=True)
    for col in ("charge", "date", "cardholder", "merchant", "amount", "status", "match", "score"):
        table.add_column(col, no_wrap=col in ("charge", "date", "amount", "match"))
    for c in reply.charges:
        table.add_row(
            c.charge_id,
            _show_day(c.transaction_date),
            c.cardholder,
            c.merchant_descriptor,
            _money(c.amount),
            cards_pb2.ChargeStatus.Name(c.status).removeprefix("CHARGE_STATUS_").lower(),
            c.match_id,
            f"{scores[c.match_id]:.3f}" if c.match_id in scores else "",
        )
    Console().print(table)


@reconcile_app.command()
def missing(
    cardholder: str = typer.Option(None, help="Treasury: only this cardholder."),
    limit: int = typer.Option(100, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Card charges that still need a receipt (unmatched, no declaration), newest first.

    Upload the receipt (`seisan receipts upload`) and it is matched on arrival, or declare
    that there is none (`seisan reconcile declare CHARGE_ID --reason ...`).

    Example: seisan reconcile missing --token demo-aiko

    Who: staff see their own; treasury everyone's.
    """
    reply = _list(
        token,
        cards_pb2.ListChargesRequest(
            status=cards_pb2.CHARGE_STATUS_UNMATCHED, cardholder=cardholder or "", page_size=limit
        ),
    )
    if as_json:
        _emit_json(reply)
        return
    if not reply.charges:
        typer.echo("no charge is missing its receipt")
        return
    _charges_table(reply)
    typer.echo("next: seisan receipts upload PHOTO | seisan reconcile declare CHARGE_ID --reason …")


@reconcile_app.command()
def suggestions(
    cardholder: str = typer.Option(None, help="Only this cardholder."),
    limit: int = typer.Option(100, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Proposed matches waiting for a person: score and the engine's reasons in words.

    Example: seisan reconcile suggestions --json

    Who: treasury.
    """
    reply = _list(
        token,
        cards_pb2.ListChargesRequest(
            status=cards_pb2.CHARGE_STATUS_SUGGESTED, cardholder=cardholder or "", page_size=limit
        ),
    )
    by_id = {c.charge_id: c for c in reply.charges}
    proposals = sorted(
        (m for m in reply.matches if m.status == cards_pb2.MATCH_STATUS_SUGGESTED),
        key=lambda m: (-m.score, m.match_id),
    )
    if as_json:
        _emit_json(
            [
                {"match": m, "charges": [by_id[c] for c in m.charge_ids if c in by_id]}
                for m in proposals
            ]
        )
        return
    if not proposals:
        typer.echo("no suggestions waiting")
        return
    for m in proposals:
        charge_text = "; ".join(
            f"{by_id[c].merchant_descriptor} {_money(by_id[c].amount)} "
            f"{_show_day(by_id[c].transaction_date)}"
            for c in m.charge_ids
            if c in by_id
        )
        typer.secho(f"{m.match_id}  score {m.score:.3f}  {m.cardholder}", bold=True)
        typer.echo(f"  charge  {', '.join(m.charge_ids)}: {charge_text}")
        typer.echo(f"  receipt {', '.join(m.receipt_ids)}")
        for reason in m.reasons:
            typer.echo(f"    · {reason}")
    typer.echo("decide: seisan reconcile confirm MATCH_ID | reject MATCH_ID --reason '…'")


# --- reconcile: decisions -----------------------------------------------------------------


def _show_match(m: cards_pb2.Match, as_json: bool) -> None:
    if as_json:
        _emit_json(m)
        return
    status = cards_pb2.MatchStatus.Name(m.status).removeprefix("MATCH_STATUS_").lower()
    typer.echo(
        f"{m.match_id} {status}: charges {', '.join(m.charge_ids)} ↔ receipts "
        f"{', '.join(m.receipt_ids)}" + (f" (by {m.decided_by})" if m.decided_by else "")
    )


@reconcile_app.command()
def confirm(match_id: str, token: str = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Confirm a suggested match (audited).

    Example: seisan reconcile confirm MATCH_ID

    Who: treasury. Exit 3 for no such match, 7 when it is no longer a suggestion.
    """
    reply = _call(
        token, "confirm", "ConfirmMatch", cards_pb2.ConfirmMatchRequest(match_id=match_id)
    )
    _show_match(reply.match, as_json)


@reconcile_app.command()
def reject(
    match_id: str,
    reason: str = typer.Option("", help="Why (kept in the audit trail)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject a suggested match; the pair is never proposed again (audited).

    Example: seisan reconcile reject MATCH_ID --reason "different lunch"

    Who: treasury.
    """
    reply = _call(
        token,
        "reject",
        "RejectMatch",
        cards_pb2.RejectMatchRequest(match_id=match_id, reason=reason),
    )
    _show_match(reply.match, as_json)


@reconcile_app.command()
def unmatch(
    match_id: str,
    reason: str = typer.Option("", help="Why (kept in the audit trail)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Undo a confirmed match (audited); the pair is never proposed again.

    Example: seisan reconcile unmatch MATCH_ID --reason "wrong receipt"

    Who: treasury.
    """
    reply = _call(
        token, "unmatch", "Unmatch", cards_pb2.UnmatchRequest(match_id=match_id, reason=reason)
    )
    _show_match(reply.match, as_json)


@reconcile_app.command()
def manual(
    charge: list[str] = typer.Option(..., "--charge", help="Charge id (repeat for a split)."),
    receipt: list[str] = typer.Option(..., "--receipt", help="Receipt id (repeat for a split)."),
    reason: str = typer.Option("", help="Why (kept in the audit trail)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Match receipts and charges by hand (splits when the amounts sum).

    Example: seisan reconcile manual --charge CHARGE_ID --receipt RECEIPT_ID --reason "..."

    Who: treasury. Exit 5 when the amounts do not add up.
    """
    reply = _call(
        token,
        "manual match",
        "ManualMatch",
        cards_pb2.ManualMatchRequest(charge_ids=charge, receipt_ids=receipt, reason=reason),
    )
    _show_match(reply.match, as_json)


@reconcile_app.command("request-missing")
def request_missing(
    statement: str = typer.Option(None, help="Only this statement's charges."),
    cardholder: str = typer.Option(None, help="Only this cardholder."),
    due: str = typer.Option(None, help="Upload or declare by (YYYY-MM-DD)."),
    message: str = typer.Option("", help="A note to the cardholders."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Ask every cardholder with unmatched charges for their receipts (one request each).

    Each request is a receipt.requested event for the cardholder's inbox.

    Example: seisan reconcile request-missing --due 2026-12-10 --message "month-end close"

    Who: treasury.
    """
    request = cards_pb2.RequestMissingReceiptsRequest(
        statement_id=statement or "", cardholder=cardholder or "", message=message
    )
    parsed = _day(due, "--due")
    if parsed is not None:
        request.due_date.CopyFrom(parsed)
    reply = _call(token, "request missing receipts", "RequestMissingReceipts", request)
    if as_json:
        _emit_json(reply)
        return
    if not reply.requests:
        typer.echo("nothing is missing")
    for r in reply.requests:
        typer.echo(f"{r.request_id}: asked {r.cardholder} for {len(r.charge_ids)} receipt(s)")


@reconcile_app.command()
def declare(
    charge_id: str,
    reason: str = typer.Option(..., "--reason", help="The business purpose."),
    description: str = typer.Option(None, help="What was bought (default: the reason)."),
    yes: bool = typer.Option(False, "--yes", help="Sign the attestation without asking."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Declare, as the cardholder, that a charge of yours has no receipt (signed as you).

    Example: seisan reconcile declare CHARGE_ID --reason "client dinner" --yes

    Who: the cardholder (staff). Exit 7 when the charge is already matched or declared.
    """
    if not yes and not typer.confirm(
        "You declare that this charge has no receipt, was a business expense for the purpose "
        "given, and has not been claimed otherwise. Sign?"
    ):
        raise typer.Exit(EXIT_FAILURE)
    reply = _call(
        token,
        "declare",
        "DeclareMissingReceipt",
        cards_pb2.DeclareMissingReceiptRequest(
            charge_id=charge_id,
            description=description or reason,
            business_purpose=reason,
            attest=True,
        ),
    )
    if as_json:
        _emit_json(reply)
        return
    typer.echo(f"declared {charge_id} ({reply.declaration.declaration_id}):")
    typer.echo(f"  {reply.declaration.attestation}")


@reconcile_app.command()
def journal(
    date_from: str = typer.Option(..., "--from", help="Booking period start (YYYY-MM-DD)."),
    date_to: str = typer.Option(..., "--to", help="Booking period end (YYYY-MM-DD)."),
    fmt: str = typer.Option("csv", "--format", help="csv or json."),
    out: Path = typer.Option(None, "--out", "-o", help="File to write (default: stdout)."),
    token: str = TokenOpt,
) -> None:
    """Export balanced journal lines for the accounting system (same data, same bytes).

    Example: seisan reconcile journal --from 2026-11-01 --to 2026-11-30 --format csv -o nov.csv

    Who: treasury.
    """
    formats = {"csv": cards_pb2.JOURNAL_FORMAT_CSV, "json": cards_pb2.JOURNAL_FORMAT_JSON}
    if fmt not in formats:
        raise fail("--format must be csv or json", EXIT_USAGE)
    request = cards_pb2.ExportJournalRequest(
        period_start=_day(date_from, "--from"),
        period_end=_day(date_to, "--to"),
        format=formats[fmt],
    )
    channel, stub = _stub(token)
    with channel:
        try:
            data = b"".join(p.chunk for p in stub.ExportJournal(request, timeout=120))
        except grpc.RpcError as exc:
            raise rpc_failure(exc, "journal") from None
    if out is None:
        typer.echo(data.decode("utf-8"), nl=False)
    else:
        out.write_bytes(data)
        typer.echo(f"wrote {len(data):,} bytes to {out}", err=True)


@reconcile_app.command()
def files(
    charges: Path = typer.Option(
        ..., "--charges", exists=True, dir_okay=False, help="Charges CSV."
    ),
    receipts: Path = typer.Option(
        ..., "--receipts", exists=True, dir_okay=False, help="Receipts JSONL."
    ),
    out: Path = typer.Option(..., "--out", help="matches.csv to write."),
    as_json: bool = JsonOpt,
) -> None:
    """Offline: run the matching engine on files (no service needed).

    Example: seisan reconcile files --charges c.csv --receipts r.jsonl --out matches.csv

    Who: anyone (local files only).
    """
    _run_offline(charges, receipts, out, as_json=as_json)


def _run_offline(charges: Path, receipts: Path, out: Path, *, as_json: bool) -> None:
    from seisan_cards.entrypoints.reconcile_files import ReconcileInputError, reconcile_files

    for path in (charges, receipts):
        if not path.is_file():
            raise fail(f"{path}: no such file", EXIT_USAGE)
    try:
        summary = reconcile_files(charges, receipts, out)
    except ReconcileInputError as exc:
        raise fail(str(exc), EXIT_INVALID) from None
    if as_json:
        _emit_json(summary.__dict__)
    else:
        typer.echo(f"{out}: {summary}")
    raise typer.Exit(EXIT_OK)
