"""`seisan claims …` and `seisan payouts …`: claim personal spend back, decide, pay out.

Two command groups from one module (entry points ``claims`` and ``payouts``).
Every command takes ``--token`` (default ``SEISAN_TOKEN``) and ``--json``; exit
codes are those of :mod:`seisan_shared.cli.exitcodes` (0 ok, 1 failed, 2 usage,
3 not found, 4 not allowed, 5 invalid input, 6 unavailable, 7 conflict).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from datetime import date
from pathlib import Path
from typing import Any, TypeVar

import grpc
import typer
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from seisan.common.v1 import common_pb2
from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan_shared.cli.context import (
    EXIT_FAILURE,
    EXIT_USAGE,
    CliError,
    fail,
    require_token,
    resolve,
    rpc_failure,
)
from seisan_shared.cli.output import emit_json, money_text, progress_bar
from seisan_shared.grpc.client import sync_channel

claims_app = typer.Typer(
    help=(
        "Claims: staff claim personal spend back and follow it; approvers work the queue "
        "(policy findings shown) and approve or reject with a reason."
    ),
    no_args_is_help=True,
)
payouts_app = typer.Typer(
    help="Payouts: run, follow, retry or cancel payouts; bank files; payee accounts (treasury).",
    no_args_is_help=True,
)
TokenOpt = typer.Option(None, "--token", help="Bearer token (default: SEISAN_TOKEN).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")
DEFAULT_ADDRESS = "127.0.0.1:50703"
T = TypeVar("T")

CLAIM_STATUSES = {
    "submitted": payouts_pb2.CLAIM_STATUS_SUBMITTED,
    "approved": payouts_pb2.CLAIM_STATUS_APPROVED,
    "rejected": payouts_pb2.CLAIM_STATUS_REJECTED,
    "payout_pending": payouts_pb2.CLAIM_STATUS_PAYOUT_PENDING,
    "paid": payouts_pb2.CLAIM_STATUS_PAID,
}
PAYOUT_STATUSES = {
    "created": payouts_pb2.PAYOUT_STATUS_CREATED,
    "sending": payouts_pb2.PAYOUT_STATUS_SENDING,
    "sent": payouts_pb2.PAYOUT_STATUS_SENT,
    "returning": payouts_pb2.PAYOUT_STATUS_RETURNING,
    "paid": payouts_pb2.PAYOUT_STATUS_PAID,
    "failed": payouts_pb2.PAYOUT_STATUS_FAILED,
    "cancelled": payouts_pb2.PAYOUT_STATUS_CANCELLED,
}
RAILS = {"stripe": payouts_pb2.PAYOUT_RAIL_STRIPE, "bank-file": payouts_pb2.PAYOUT_RAIL_BANK_FILE}
FORMATS = {
    "zengin": payouts_pb2.BANK_FILE_FORMAT_ZENGIN,
    "pain001": payouts_pb2.BANK_FILE_FORMAT_PAIN_001,
}


def _console() -> Console:
    return Console()  # built per call, so COLUMNS and the terminal are read when printing


def _address() -> str:
    env = os.environ.get("SEISAN_PAYOUTS_ADDRESS")
    if env:
        return env
    return resolve().addresses.get("payouts", DEFAULT_ADDRESS)


def _call(
    token: str | None, what: str, fn: Callable[[payouts_pb2_grpc.ReimbursementPayoutStub], T]
) -> T:
    try:
        bearer = require_token(token)
    except CliError as exc:
        raise fail(str(exc), exc.exit_code) from None
    with sync_channel(_address(), bearer) as channel:
        try:
            return fn(payouts_pb2_grpc.ReimbursementPayoutStub(channel))
        except grpc.RpcError as exc:
            raise rpc_failure(exc, what) from None


def _json(value: Any) -> None:
    emit_json(value if isinstance(value, Message | dict) else list(value))


def _money(m: common_pb2.Money) -> str:
    return money_text(m.minor_units, m.currency)


def _name(enum: Any, value: int, prefix: str) -> str:
    return str(enum.Name(value)).removeprefix(prefix).lower()


def _choice(value: str | None, table: dict[str, int], what: str) -> int:
    if value is None:
        return 0
    if value not in table:
        raise fail(f"{what} must be one of {', '.join(table)}", EXIT_USAGE)
    return table[value]


# -- claims -----------------------------------------------------------------------------------


def _claim_status(claim: payouts_pb2.Claim) -> str:
    return _name(payouts_pb2.ClaimStatus, claim.status, "CLAIM_STATUS_")


def _print_claim(claim: payouts_pb2.Claim) -> None:
    table = Table(title=f"claim {claim.claim_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    table.add_row("status", _claim_status(claim))
    table.add_row("claimant", claim.claimant)
    table.add_row("total", _money(claim.total))
    if claim.description:
        table.add_row("description", claim.description)
    for line in claim.lines:
        table.add_row(
            f"receipt {line.receipt_id}", f"{_money(line.amount)}  {line.category}  {line.merchant}"
        )
    for finding in claim.findings:
        severity = _name(payouts_pb2.FindingSeverity, finding.severity, "FINDING_SEVERITY_")
        table.add_row(severity, finding.message)
    if claim.decided_by:
        table.add_row("decided by", claim.decided_by)
    if claim.rejection_reason:
        table.add_row("rejected because", claim.rejection_reason)
    if claim.payout_id:
        table.add_row("payout", claim.payout_id)
    if claim.payout_failure_reason:
        table.add_row("last payout failed", claim.payout_failure_reason)
    _console().print(table)


@claims_app.command("submit")
def claims_submit(
    receipt_ids: list[str] = typer.Argument(..., help="Your receipts paid personally."),
    category: str = typer.Option("other", help="Expense category (limits are per category)."),
    description: str = typer.Option("", help="What the spend was for."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Claim personally paid receipts back. Policy findings are shown; blocking ones refuse.

    The receipts must be yours, extracted, paid personally and not matched to a card
    charge (exit 7 otherwise). Follow it with `seisan claims follow CLAIM_ID`.

    Example: seisan claims submit RECEIPT_ID --category supplies --description "toner"

    Who: staff (the claimant).
    """
    request = payouts_pb2.SubmitClaimRequest(
        items=[payouts_pb2.ClaimItem(receipt_id=r, category=category) for r in receipt_ids],
        description=description,
    )
    claim = _call(token, "submit", lambda s: s.SubmitClaim(request, timeout=30)).claim
    if as_json:
        _json(claim)
    else:
        _print_claim(claim)


@claims_app.command("list")
def claims_list(
    status: str = typer.Option(None, help=f"One of {', '.join(CLAIM_STATUSES)}."),
    claimant: str = typer.Option("", help="Approvers and treasury: one person's claims."),
    limit: int = typer.Option(50, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Claims, newest first, with their status and policy findings.

    Example: seisan claims list --status approved

    Who: staff see their own; approvers and treasury everyone's (--claimant).
    """
    request = payouts_pb2.ListClaimsRequest(
        status=_choice(status, CLAIM_STATUSES, "--status"),  # type: ignore[arg-type]
        claimant=claimant,
        page_size=limit,
    )
    claims = _call(token, "list", lambda s: s.ListClaims(request, timeout=30)).claims
    if as_json:
        _json(claims)
        return
    table = Table()
    table.add_column("claim", no_wrap=True)
    for column in ("claimant", "status", "total", "receipts", "findings"):
        table.add_column(column)
    for c in claims:
        blocking = sum(f.severity == payouts_pb2.FINDING_SEVERITY_BLOCKING for f in c.findings)
        table.add_row(
            c.claim_id,
            c.claimant,
            _claim_status(c),
            _money(c.total),
            str(len(c.lines)),
            f"{len(c.findings)} ({blocking} blocking)" if c.findings else "",
        )
    _console().print(table)


@claims_app.command("show")
def claims_show(claim_id: str, token: str = TokenOpt, as_json: bool = JsonOpt) -> None:
    """One claim: lines, policy findings, decision, payout.

    Example: seisan claims show CLAIM_ID --json

    Who: the claimant; approvers and treasury. Exit 3 if there is no such claim.
    """
    request = payouts_pb2.GetClaimRequest(claim_id=claim_id)
    claim = _call(token, "show", lambda s: s.GetClaim(request, timeout=30)).claim
    if as_json:
        _json(claim)
    else:
        _print_claim(claim)


@claims_app.command("approve")
def claims_approve(
    claim_id: str,
    note: str = typer.Option("", help="A note kept with the approval."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Approve a submitted claim (audited).

    Example: seisan claims approve CLAIM_ID --note "ok" --token demo-chika

    Who: approvers, never for their own claim (exit 4). Exit 7 when already decided.
    """
    request = payouts_pb2.ApproveClaimRequest(claim_id=claim_id, note=note)
    claim = _call(token, "approve", lambda s: s.ApproveClaim(request, timeout=30)).claim
    if as_json:
        _json(claim)
    else:
        typer.echo(f"{claim.claim_id} approved ({_money(claim.total)})")


@claims_app.command("reject")
def claims_reject(
    claim_id: str,
    reason: str = typer.Option(..., help="Why (required; the claimant sees it)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Reject a submitted claim with a reason the claimant sees (audited).

    Example: seisan claims reject CLAIM_ID --reason "personal purchase" --token demo-chika

    Who: approvers, never for their own claim. Exit 7 when already decided.
    """
    request = payouts_pb2.RejectClaimRequest(claim_id=claim_id, reason=reason)
    claim = _call(token, "reject", lambda s: s.RejectClaim(request, timeout=30)).claim
    if as_json:
        _json(claim)
    else:
        typer.echo(f"{claim.claim_id} rejected: {claim.rejection_reason}")


CLAIM_FINAL = {
    payouts_pb2.CLAIM_STATUS_PAID,
    payouts_pb2.CLAIM_STATUS_REJECTED,
}


@claims_app.command("queue")
def claims_queue(
    limit: int = typer.Option(50, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """The approver's queue: submitted claims waiting for a decision, with their findings.

    Example: seisan claims queue --token demo-chika

    Who: approvers (and treasury).
    """
    claims_list(status="submitted", claimant="", limit=limit, token=token, as_json=as_json)


@claims_app.command("follow")
def claims_follow(
    claim_id: str,
    timeout: float = typer.Option(300.0, help="Give up after this many seconds (exit 1)."),
    interval: float = typer.Option(1.0, help="Seconds between looks."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Follow a claim until it is paid or rejected, printing each change of status.

    Example: seisan claims follow CLAIM_ID

    Who: the claimant; approvers and treasury.
    """
    request = payouts_pb2.GetClaimRequest(claim_id=claim_id)
    deadline = time.monotonic() + timeout
    seen = ""
    while True:
        claim = _call(token, "follow", lambda s: s.GetClaim(request, timeout=30)).claim
        status = _claim_status(claim)
        if status != seen and not as_json:
            note = f" ({claim.payout_id})" if claim.payout_id else ""
            if claim.rejection_reason:
                note = f": {claim.rejection_reason}"
            typer.echo(f"{time.strftime('%H:%M:%S')}  {claim.claim_id}  {status}{note}")
        seen = status
        if claim.status in CLAIM_FINAL:
            break
        if time.monotonic() >= deadline:
            if as_json:
                _json(claim)
            raise fail(f"{claim_id} still {status} after {timeout:.0f}s", EXIT_FAILURE)
        time.sleep(interval)
    if as_json:
        _json(claim)


# -- payouts ----------------------------------------------------------------------------------


def _payout_status(p: payouts_pb2.Payout) -> str:
    return _name(payouts_pb2.PayoutStatus, p.status, "PAYOUT_STATUS_")


def _payout_table(payouts: Iterable[payouts_pb2.Payout]) -> Table:
    table = Table()
    table.add_column("payout", no_wrap=True)
    for column in ("employee", "amount", "rail", "status", "attempts", "reference"):
        table.add_column(column)
    for p in payouts:
        table.add_row(
            p.payout_id,
            p.employee,
            _money(p.amount),
            _name(payouts_pb2.PayoutRail, p.rail, "PAYOUT_RAIL_"),
            _payout_status(p),
            str(p.attempts),
            p.external_reference or p.failure_reason,
        )
    return table


def _print_payout(p: payouts_pb2.Payout) -> None:
    table = Table(title=f"payout {p.payout_id}", show_header=False)
    table.add_column("field")
    table.add_column("value")
    for name, value in (
        ("status", _payout_status(p)),
        ("employee", p.employee),
        ("amount", _money(p.amount)),
        ("rail", _name(payouts_pb2.PayoutRail, p.rail, "PAYOUT_RAIL_")),
        ("run", p.run_id),
        ("claims", ", ".join(p.claim_ids)),
        ("attempts", str(p.attempts)),
        ("connected account", p.destination_account),
        ("stripe transfer", p.stripe_transfer_id),
        ("stripe payout", p.stripe_payout_id),
        ("reference", p.external_reference),
        ("failure", p.failure_reason),
    ):
        if value:
            table.add_row(name, value)
    _console().print(table)


@payouts_app.command("run")
def payouts_run(
    rail: str = typer.Option("stripe", help="stripe or bank-file."),
    fmt: str = typer.Option(None, "--format", help="Bank file: zengin or pain001."),
    currency: str = typer.Option("", help="Only claims in this currency."),
    execution_date: str = typer.Option("", help="Bank file: execution date (YYYY-MM-DD)."),
    request_id: str = typer.Option("", help="Repeat-safe: the same id returns the same run."),
    wait: float = typer.Option(
        0.0, help="Stripe: wait up to this many seconds for every payout to be paid or fail."
    ),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Create a payout run: approved, unpaid claims, one payout per employee and currency.

    On the Stripe rail money moves at once (transfer, then payout to the bank); --wait
    follows the run with a progress bar until each payout is paid or failed (exit 1 if any
    failed or is still open). On the bank-file rail, download the file next.

    Example: seisan payouts run --wait 60 | seisan payouts run --rail bank-file --format zengin

    Who: treasury.
    """
    request = payouts_pb2.CreatePayoutRunRequest(
        rail=_choice(rail, RAILS, "--rail"),  # type: ignore[arg-type]
        bank_file_format=_choice(fmt, FORMATS, "--format"),  # type: ignore[arg-type]
        currency=currency.upper(),
        request_id=request_id,
    )
    if rail == "bank-file" and fmt is None:
        request.bank_file_format = payouts_pb2.BANK_FILE_FORMAT_ZENGIN
    if execution_date:
        try:
            day = date.fromisoformat(execution_date)
        except ValueError:
            raise fail("--execution-date must be YYYY-MM-DD", EXIT_USAGE) from None
        request.execution_date.CopyFrom(
            common_pb2.Date(year=day.year, month=day.month, day=day.day)
        )
    run = _call(token, "run", lambda s: s.CreatePayoutRun(request, timeout=60)).run
    if wait > 0 and run.payouts and run.rail == payouts_pb2.PAYOUT_RAIL_STRIPE:
        final = _wait_for_run(token, run, wait, as_json)
        del run.payouts[:]
        run.payouts.extend(final)
        open_or_failed = [p for p in final if p.status != payouts_pb2.PAYOUT_STATUS_PAID]
        if as_json:
            _json(run)
        else:
            _console().print(_payout_table(run.payouts))
        if open_or_failed:
            raise fail(f"{len(open_or_failed)} payout(s) not paid", EXIT_FAILURE)
        return
    if as_json:
        _json(run)
        return
    typer.echo(f"run {run.run_id}: {len(run.payouts)} payout(s)")
    _console().print(_payout_table(run.payouts))
    for note in run.notes:
        typer.secho(f"left out: {note}", fg="yellow")
    if run.rail == payouts_pb2.PAYOUT_RAIL_BANK_FILE:
        typer.echo(f"next: seisan payouts bank-file {run.run_id} --out FILE")


PAYOUT_FINAL = {
    payouts_pb2.PAYOUT_STATUS_PAID,
    payouts_pb2.PAYOUT_STATUS_FAILED,
    payouts_pb2.PAYOUT_STATUS_CANCELLED,
}


def _wait_for_run(
    token: str | None, run: payouts_pb2.PayoutRun, wait: float, as_json: bool
) -> list[payouts_pb2.Payout]:
    """Poll the run's payouts until each is final or ``wait`` seconds passed."""
    request = payouts_pb2.ListPayoutsRequest(run_id=run.run_id, page_size=1000)
    deadline = time.monotonic() + wait
    with progress_bar(as_json) as progress:
        task = progress.add_task(f"paying run {run.run_id}", total=len(run.payouts))
        while True:
            payouts = list(
                _call(token, "run", lambda s: s.ListPayouts(request, timeout=30)).payouts
            )
            done = sum(p.status in PAYOUT_FINAL for p in payouts)
            progress.update(task, completed=done)
            if done >= len(payouts) or time.monotonic() >= deadline:
                return payouts
            time.sleep(0.5)


@payouts_app.command("list")
def payouts_list(
    status: str = typer.Option(None, help=f"One of {', '.join(PAYOUT_STATUSES)}."),
    employee: str = typer.Option("", help="Treasury: one person's payouts."),
    run: str = typer.Option("", "--run", help="Only this run's payouts."),
    limit: int = typer.Option(50, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Payouts, newest first: created → sent → paid (or failed, with the reason).

    Example: seisan payouts list --status failed

    Who: staff see their own; treasury everyone's.
    """
    request = payouts_pb2.ListPayoutsRequest(
        status=_choice(status, PAYOUT_STATUSES, "--status"),  # type: ignore[arg-type]
        employee=employee,
        run_id=run,
        page_size=limit,
    )
    payouts = _call(token, "list", lambda s: s.ListPayouts(request, timeout=30)).payouts
    if as_json:
        _json(payouts)
    else:
        _console().print(_payout_table(payouts))


@payouts_app.command("show")
def payouts_show(payout_id: str, token: str = TokenOpt, as_json: bool = JsonOpt) -> None:
    """One payout: status, attempts, Stripe references, why it failed.

    Example: seisan payouts show PAYOUT_ID --json

    Who: the employee paid; treasury. Exit 3 if there is no such payout.
    """
    request = payouts_pb2.GetPayoutRequest(payout_id=payout_id)
    payout = _call(token, "show", lambda s: s.GetPayout(request, timeout=30)).payout
    if as_json:
        _json(payout)
    else:
        _print_payout(payout)


@payouts_app.command("retry")
def payouts_retry(payout_id: str, token: str = TokenOpt, as_json: bool = JsonOpt) -> None:
    """Send a failed payout again (a new attempt; never pays twice).

    Example: seisan payouts retry PAYOUT_ID

    Who: treasury. Exit 7 unless the payout failed.
    """
    request = payouts_pb2.RetryPayoutRequest(payout_id=payout_id)
    payout = _call(token, "retry", lambda s: s.RetryPayout(request, timeout=30)).payout
    if as_json:
        _json(payout)
    else:
        typer.echo(f"{payout.payout_id} queued again")


@payouts_app.command("cancel")
def payouts_cancel(
    payout_id: str,
    reason: str = typer.Option("", help="Why."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Cancel a payout before any money moved; its claims return to approved.

    Example: seisan payouts cancel PAYOUT_ID --reason "wrong account"

    Who: treasury. Exit 7 once money has moved.
    """
    request = payouts_pb2.CancelPayoutRequest(payout_id=payout_id, reason=reason)
    payout = _call(token, "cancel", lambda s: s.CancelPayout(request, timeout=30)).payout
    if as_json:
        _json(payout)
    else:
        typer.echo(f"{payout.payout_id} cancelled")


@payouts_app.command("bank-file")
def payouts_bank_file(
    run_id: str,
    out: Path = typer.Option(..., "--out", help="Where to write the file."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Download a bank-file run's transfer file (the same bytes every time).

    Example: seisan payouts bank-file RUN_ID --out transfers.txt

    Who: treasury.
    """

    def fetch(stub: payouts_pb2_grpc.ReimbursementPayoutStub) -> tuple[str, str, bytes]:
        parts = list(stub.GetBankFile(payouts_pb2.GetBankFileRequest(run_id=run_id), timeout=60))
        first = parts[0] if parts else payouts_pb2.GetBankFileResponse()
        return first.filename, first.content_type, b"".join(p.chunk for p in parts)

    filename, content_type, data = _call(token, "bank-file", fetch)
    out.write_bytes(data)
    if as_json:
        info = {"file": str(out), "filename": filename, "content_type": content_type}
        _json({**info, "bytes": len(data)})
    else:
        typer.echo(f"wrote {out} ({len(data):,} bytes, {content_type}); upload it to the bank")


@payouts_app.command("confirm-paid")
def payouts_confirm_paid(
    run_id: str,
    payout: list[str] = typer.Option([], "--payout", help="Executed (default: all others)."),
    reject: list[str] = typer.Option(
        [], "--reject", help="PAYOUT_ID:REASON the bank refused (repeatable)."
    ),
    bank_reference: str = typer.Option("", help="The bank's reference for the batch."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Confirm what the bank did with a run's file: paid, or rejected with the reason.

    Example: seisan payouts confirm-paid RUN_ID --reject PAYOUT_ID:"account closed"

    Who: treasury.
    """
    rejections = []
    for item in reject:
        payout_id, sep, reason = item.partition(":")
        if not sep or not reason.strip():
            raise fail(f"--reject {item!r}: write PAYOUT_ID:REASON", EXIT_USAGE)
        rejections.append(payouts_pb2.BankFileRejection(payout_id=payout_id, reason=reason))
    request = payouts_pb2.ConfirmBankFilePaidRequest(
        run_id=run_id, payout_ids=payout, rejections=rejections, bank_reference=bank_reference
    )
    reply = _call(token, "confirm-paid", lambda s: s.ConfirmBankFilePaid(request, timeout=60))
    if as_json:
        _json(reply.payouts)
    else:
        _console().print(_payout_table(reply.payouts))


@payouts_app.command("link-account")
def payouts_link_account(
    employee: str,
    account_id: str = typer.Argument("", help="Stripe connected account (acct_…)."),
    create_test_account: bool = typer.Option(
        False, "--create-test-account", help="Test mode: create a connected account and link it."
    ),
    currency: str = typer.Option("JPY", help="Test account's bank currency."),
    name: str = typer.Option("", help="Bank account holder's name."),
    kana: str = typer.Option("", help="Holder's name in half-width kana (Zengin)."),
    bank_code: str = typer.Option("", help="4-digit bank code."),
    branch_code: str = typer.Option("", help="3-digit branch code."),
    account_type: str = typer.Option("ordinary", help="ordinary, current, savings or other."),
    account_number: str = typer.Option("", help="Account number (1-7 digits)."),
    iban: str = typer.Option("", help="IBAN (pain.001)."),
    bic: str = typer.Option("", help="BIC (pain.001)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Set where EMPLOYEE is paid: a Stripe connected account and/or a bank account.

    Example: seisan payouts link-account aiko --create-test-account

    Who: treasury.
    """
    request = payouts_pb2.LinkPayeeAccountRequest(
        employee=employee,
        stripe_account_id=account_id,
        create_test_account=create_test_account,
        currency=currency.upper(),
    )
    if bank_code or account_number or iban:
        request.bank_account.CopyFrom(
            payouts_pb2.BankAccountDetails(
                payee_name=name or employee,
                payee_name_kana=kana,
                bank_code=bank_code,
                branch_code=branch_code,
                account_type=account_type,
                account_number=account_number,
                iban=iban,
                bic=bic,
            )
        )
    account = _call(token, "link-account", lambda s: s.LinkPayeeAccount(request, timeout=30))
    if as_json:
        _json(account.account)
        return
    a = account.account
    bank = a.bank_account
    where = [f"Stripe {a.stripe_account_id}"] if a.stripe_account_id else []
    if bank.account_number or bank.iban:
        where.append(f"bank {bank.bank_code}-{bank.branch_code} {bank.account_number or bank.iban}")
    typer.echo(f"{a.employee} is paid through: {'; '.join(where)}")
