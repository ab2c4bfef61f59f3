"""`seisan receipts …`: upload, list, show, correct, delete receipts from the terminal."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import typer
from rich.console import Console
from rich.table import Table

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.cli.context import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_USAGE,
    address_of,
    fail,
    require_token,
    rpc_failure,
)
from seisan_shared.cli.exitcodes import EXIT_DENIED, EXIT_UNAVAILABLE, exit_code_for
from seisan_shared.cli.output import emit_json, money_text, progress_bar
from seisan_shared.grpc.client import sync_channel
from seisan_shared.money import MoneyError, parse_minor_units

app = typer.Typer(
    help=(
        "Receipts (staff): upload photos or whole folders, see what OCR read, fix a field, "
        "download the image, delete. Approvers, treasury and admins may read everyone's."
    ),
    no_args_is_help=True,
)
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".heic", ".heif"}
CHUNK = 256 * 1024
STATUS_NAMES = {
    "processing": receipts_pb2.RECEIPT_STATUS_PROCESSING,
    "extracted": receipts_pb2.RECEIPT_STATUS_EXTRACTED,
    "needs_review": receipts_pb2.RECEIPT_STATUS_NEEDS_REVIEW,
    "matched": receipts_pb2.RECEIPT_STATUS_MATCHED,
    "claimed": receipts_pb2.RECEIPT_STATUS_CLAIMED,
}
TokenOpt = typer.Option(None, "--token", help="Bearer token (default: SEISAN_TOKEN).")
JsonOpt = typer.Option(False, "--json", help="Machine-readable output.")


def _stub(token: str | None) -> tuple[grpc.Channel, receipts_pb2_grpc.ReceiptIntakeStub]:
    channel = sync_channel(address_of("intake"), require_token(token))
    return channel, receipts_pb2_grpc.ReceiptIntakeStub(channel)


def _files(paths: list[Path]) -> list[Path]:
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
        elif path.exists():
            found.append(path)
        else:
            raise fail(f"{path}: no such file or folder", EXIT_USAGE)
    return found


def _requests(path: Path, paid_with: Any, note: str) -> Iterator[receipts_pb2.UploadReceiptRequest]:
    yield receipts_pb2.UploadReceiptRequest(
        metadata=receipts_pb2.UploadMetadata(paid_with=paid_with, note=note, filename=path.name)
    )
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            yield receipts_pb2.UploadReceiptRequest(chunk=chunk)


def _short_status(value: Any) -> str:
    return receipts_pb2.ReceiptStatus.Name(value).removeprefix("RECEIPT_STATUS_").lower()


@app.command()
def upload(
    paths: list[Path] = typer.Argument(..., help="Image files and/or folders of images."),
    personal: bool = typer.Option(
        False, "--personal", help="Paid with your own money (to claim it back)."
    ),
    company_card: bool = typer.Option(False, "--company-card", help="Paid with a company card."),
    note: str = typer.Option("", help="A note kept with the receipt."),
    wait: float = typer.Option(
        0.0, help="Then wait up to this many seconds for OCR and show what it read."
    ),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Upload receipt photos (JPEG, PNG, WebP, HEIC); folders are walked, with a progress bar.

    Exit 0 when every file was accepted, 1 when any was refused (each refusal is listed);
    an upload of bytes already uploaded returns the first receipt (duplicate: true).

    With --wait, each row also carries the receipt as OCR read it (status, merchant, total).

    Example: seisan receipts upload ~/receipts/ --company-card --wait 30

    Who: staff (any signed-in person; the receipts are yours).
    """
    paid_with = receipts_pb2.PAID_WITH_UNSPECIFIED
    if personal and company_card:
        raise fail("choose one of --personal and --company-card", EXIT_USAGE)
    if personal:
        paid_with = receipts_pb2.PAID_WITH_PERSONAL
    elif company_card:
        paid_with = receipts_pb2.PAID_WITH_COMPANY_CARD
    files = _files(paths)
    if not files:
        raise fail("no images found (JPEG, PNG, WebP, HEIC)", EXIT_USAGE)
    results: list[dict[str, object]] = []
    channel, stub = _stub(token)
    with channel, progress_bar(as_json or len(files) < 2) as progress:
        task = progress.add_task("uploading", total=len(files))
        for path in files:
            try:
                reply = stub.UploadReceipt(_requests(path, paid_with, note), timeout=60)
                results.append(
                    {
                        "file": str(path),
                        "receipt_id": reply.receipt_id,
                        "duplicate": reply.duplicate,
                        "error": None,
                        "receipt": None,
                    }
                )
            except grpc.RpcError as exc:
                code = exc.code()
                if exit_code_for(code) in (
                    EXIT_DENIED,
                    EXIT_UNAVAILABLE,
                ):  # the rest would fail too
                    raise rpc_failure(exc, "upload") from None
                results.append(
                    {
                        "file": str(path),
                        "receipt_id": None,
                        "duplicate": False,
                        "error": {"code": code.name, "message": exc.details()},
                        "receipt": None,
                    }
                )
            progress.advance(task)
    failed = [r for r in results if r["error"]]
    read: dict[str, receipts_pb2.Receipt] = {}
    if wait > 0:
        ids = [str(r["receipt_id"]) for r in results if r["receipt_id"]]
        read = _wait_for_ocr(token, ids, wait, as_json)
        for r in results:
            r["receipt"] = read.get(str(r["receipt_id"]))
    if as_json:
        emit_json(results)
    else:
        for r in results:
            if r["error"]:
                error: Any = r["error"]
                typer.secho(f"refused  {r['file']}: {error['code']}: {error['message']}", fg="red")
            else:
                dup = "  (already uploaded)" if r["duplicate"] else ""
                typer.echo(f"{r['receipt_id']}  {r['file']}{dup}")
        if read:
            Console().print(_receipts_table(list(read.values())))
        elif not failed:
            typer.echo("next: seisan receipts show RECEIPT_ID --wait 10", err=True)
    raise typer.Exit(EXIT_FAILURE if failed else EXIT_OK)


def _wait_for_ocr(
    token: str | None, receipt_ids: list[str], wait: float, as_json: bool
) -> dict[str, receipts_pb2.Receipt]:
    """Each receipt once OCR is done with it (or as it stands when ``wait`` runs out)."""
    deadline = time.monotonic() + wait
    found: dict[str, receipts_pb2.Receipt] = {}
    channel, stub = _stub(token)
    with channel, progress_bar(as_json) as progress:
        task = progress.add_task("reading", total=len(receipt_ids))
        while True:
            for receipt_id in receipt_ids:
                if receipt_id in found:
                    continue
                try:
                    got = stub.GetReceipt(
                        receipts_pb2.GetReceiptRequest(receipt_id=receipt_id), timeout=10
                    ).receipt
                except grpc.RpcError as exc:
                    raise rpc_failure(exc, "upload --wait") from None
                if got.status != receipts_pb2.RECEIPT_STATUS_PROCESSING:
                    found[receipt_id] = got
            progress.update(task, completed=len(found))
            if len(found) == len(receipt_ids) or time.monotonic() >= deadline:
                break
            time.sleep(0.3)
        for receipt_id in receipt_ids:  # still processing when time ran out
            if receipt_id not in found:
                found[receipt_id] = stub.GetReceipt(
                    receipts_pb2.GetReceiptRequest(receipt_id=receipt_id), timeout=10
                ).receipt
    return {r: found[r] for r in receipt_ids}


def _money_text(field: receipts_pb2.ExtractedMoney) -> str:
    return money_text(field.amount.minor_units, field.amount.currency)


def _fields_table(receipt: receipts_pb2.Receipt) -> Table:
    table = Table(title=f"receipt {receipt.receipt_id}", show_header=True)
    table.add_column("field")
    table.add_column("value")
    table.add_column("confidence", justify="right")
    f = receipt.fields
    table.add_row("status", _short_status(receipt.status), "")
    table.add_row("submitter", receipt.submitter, "")
    for name in ("merchant", "currency", "card_last4", "invoice_number", "address"):
        if f.HasField(name):  # type: ignore[arg-type]
            item = getattr(f, name)
            table.add_row(name, item.value, f"{item.confidence:.2f}")
    if f.HasField("transaction_date"):
        d = f.transaction_date
        text = f"{d.date.year:04d}-{d.date.month:02d}-{d.date.day:02d} {d.time}".strip()
        table.add_row("transaction_date", text, f"{d.confidence:.2f}")
    for name in ("total", "subtotal", "tax", "tip"):
        if f.HasField(name):  # type: ignore[arg-type]
            item = getattr(f, name)
            table.add_row(name, _money_text(item), f"{item.confidence:.2f}")
    if f.payment_method:
        method = receipts_pb2.PaymentMethod.Name(f.payment_method).removeprefix("PAYMENT_METHOD_")
        table.add_row("payment_method", method.lower(), f"{f.payment_method_confidence:.2f}")
    if receipt.possible_duplicate_of:
        table.add_row("possible_duplicate_of", receipt.possible_duplicate_of, "")
    for reason in receipt.review_reasons:
        table.add_row("needs review", reason, "")
    return table


@app.command()
def show(
    receipt_id: str,
    wait: float = typer.Option(0.0, help="Wait up to this many seconds for extraction to finish."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Show one receipt: status, the fields read from it with confidences, review reasons.

    Example: seisan receipts show RECEIPT_ID --wait 10 --json

    Who: the submitter; approvers, treasury and admins. Exit 3 if there is no such receipt.
    """
    channel, stub = _stub(token)
    deadline = time.monotonic() + wait
    with channel:
        while True:
            try:
                receipt = stub.GetReceipt(
                    receipts_pb2.GetReceiptRequest(receipt_id=receipt_id), timeout=10
                ).receipt
            except grpc.RpcError as exc:
                raise rpc_failure(exc, "show") from None
            if receipt.status != receipts_pb2.RECEIPT_STATUS_PROCESSING:
                break
            if time.monotonic() >= deadline:
                break
            time.sleep(0.3)
    if as_json:
        emit_json(receipt)
    else:
        Console().print(_fields_table(receipt))


def _parse_day(text: str | None, name: str) -> receipts_pb2.common__pb2.Date | None:  # type: ignore[name-defined]
    if not text:
        return None
    try:
        d = date.fromisoformat(text)
    except ValueError:
        raise fail(f"{name}: expected YYYY-MM-DD, got {text!r}", EXIT_USAGE) from None
    from seisan.common.v1 import common_pb2

    return common_pb2.Date(year=d.year, month=d.month, day=d.day)


@app.command("list")
def list_(
    status: str = typer.Option(None, help=f"One of: {', '.join(STATUS_NAMES)}."),
    date_from: str = typer.Option(None, "--from", help="Transaction date from (YYYY-MM-DD)."),
    date_to: str = typer.Option(None, "--to", help="Transaction date to (YYYY-MM-DD)."),
    currency: str = typer.Option(None, help="ISO 4217 code, needed with --min/--max."),
    amount_min: str = typer.Option(None, "--min", help="Smallest total, e.g. 1,000 or 10.59."),
    amount_max: str = typer.Option(None, "--max", help="Largest total."),
    merchant: str = typer.Option(None, help="Merchant name contains this text."),
    submitter: str = typer.Option(None, help="Only this submitter (approver/treasury/admin)."),
    limit: int = typer.Option(50, help="At most this many."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """List receipts, newest first; search by status, date, amount and merchant.

    Example: seisan receipts list --merchant coffee --from 2026-11-01 --currency JPY --min 500

    Who: staff see their own; approvers, treasury and admins everyone's (--submitter).
    """
    request = receipts_pb2.ListReceiptsRequest(page_size=limit)
    if status:
        if status not in STATUS_NAMES:
            raise fail(f"--status must be one of {', '.join(STATUS_NAMES)}", EXIT_USAGE)
        request.status = STATUS_NAMES[status]
    for name, text, target in (("--from", date_from, "date_from"), ("--to", date_to, "date_to")):
        parsed = _parse_day(text, name)
        if parsed is not None:
            getattr(request, target).CopyFrom(parsed)
    if (amount_min or amount_max) and not currency:
        raise fail(
            "--min/--max need --currency (amounts are exact minor units of a currency)",
            EXIT_USAGE,
        )
    try:
        if amount_min:
            request.amount_min = parse_minor_units(amount_min, currency.upper())
        if amount_max:
            request.amount_max = parse_minor_units(amount_max, currency.upper())
    except MoneyError as exc:
        raise fail(str(exc), EXIT_USAGE) from None
    if currency:
        request.currency = currency.upper()
    request.merchant = merchant or ""
    request.submitter = submitter or ""
    channel, stub = _stub(token)
    with channel:
        try:
            reply = stub.ListReceipts(request, timeout=15)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, "list") from None
    if as_json:
        emit_json(list(reply.receipts))
        return
    Console().print(_receipts_table(list(reply.receipts)))


def _receipts_table(receipts: list[receipts_pb2.Receipt]) -> Table:
    table = Table(show_header=True)
    for col in ("receipt", "status", "submitter", "date", "merchant", "total"):
        table.add_column(col, no_wrap=col in ("receipt", "date"))
    for r in receipts:
        f = r.fields
        day = ""
        if f.HasField("transaction_date"):
            d = f.transaction_date.date
            day = f"{d.year:04d}-{d.month:02d}-{d.day:02d}"
        table.add_row(
            r.receipt_id,
            _short_status(r.status),
            r.submitter,
            day,
            f.merchant.value,
            _money_text(f.total) if f.HasField("total") else "",
        )
    return table


@app.command()
def correct(
    receipt_id: str,
    merchant: str = typer.Option(None, help="Merchant name."),
    day: str = typer.Option(None, "--date", help="Transaction date YYYY-MM-DD."),
    total: str = typer.Option(None, help="Total as printed, e.g. 1,112 or 10.59."),
    currency: str = typer.Option(None, help="ISO 4217 code for --total (default: the receipt's)."),
    reason: str = typer.Option("", help="Why (kept in the audit trail)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Fix fields the OCR got wrong; audited (who, when, old → new).

    Example: seisan receipts correct RECEIPT_ID --total 1,112 --currency JPY --reason "misread"

    Who: the submitter only. Exit 7 once the receipt is matched or claimed.
    """
    request = receipts_pb2.CorrectReceiptRequest(receipt_id=receipt_id, reason=reason)
    if merchant:
        request.fields.merchant.value = merchant
    parsed = _parse_day(day, "--date")
    if parsed is not None:
        request.fields.transaction_date.date.CopyFrom(parsed)
    channel, stub = _stub(token)
    with channel:
        try:
            if total:
                code = (currency or "").upper()
                if not code:
                    current = stub.GetReceipt(
                        receipts_pb2.GetReceiptRequest(receipt_id=receipt_id), timeout=10
                    ).receipt
                    code = current.fields.total.amount.currency or current.fields.currency.value
                if not code:
                    raise fail("--currency is needed: the receipt has none yet", EXIT_USAGE)
                try:
                    request.fields.total.amount.minor_units = parse_minor_units(total, code)
                except MoneyError as exc:
                    raise fail(str(exc), EXIT_USAGE) from None
                request.fields.total.amount.currency = code
            reply = stub.CorrectReceipt(request, timeout=10)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, "correct") from None
    if as_json:
        emit_json(reply.receipt)
    else:
        Console().print(_fields_table(reply.receipt))


@app.command()
def delete(
    receipt_id: str,
    reason: str = typer.Option("", help="Why (kept in the audit trail)."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Delete a receipt that is neither matched nor claimed (audited).

    Example: seisan receipts delete RECEIPT_ID --reason "uploaded twice"

    Who: the submitter. Exit 7 when the receipt is matched or claimed.
    """
    channel, stub = _stub(token)
    with channel:
        try:
            stub.DeleteReceipt(
                receipts_pb2.DeleteReceiptRequest(receipt_id=receipt_id, reason=reason), timeout=10
            )
        except grpc.RpcError as exc:
            raise rpc_failure(exc, "delete") from None
    if as_json:
        emit_json({"receipt_id": receipt_id, "deleted": True})
    else:
        typer.echo(f"deleted {receipt_id}")


@app.command()
def image(
    receipt_id: str,
    out: Path = typer.Option(..., "--out", "-o", help="File to write."),
    original: bool = typer.Option(False, help="The bytes as uploaded (evidence) instead."),
    token: str = TokenOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Download a receipt's image (normalised by default; --original for the evidence bytes).

    Example: seisan receipts image RECEIPT_ID -o receipt.jpg

    Who: the submitter; approvers, treasury and admins.
    """
    variant = (
        receipts_pb2.IMAGE_VARIANT_ORIGINAL if original else (receipts_pb2.IMAGE_VARIANT_NORMALIZED)
    )
    channel, stub = _stub(token)
    with channel:
        try:
            parts = stub.GetReceiptImage(
                receipts_pb2.GetReceiptImageRequest(receipt_id=receipt_id, variant=variant),
                timeout=30,
            )
            data = b"".join(p.chunk for p in parts)
        except grpc.RpcError as exc:
            raise rpc_failure(exc, "image") from None
    out.write_bytes(data)
    if as_json:
        emit_json({"receipt_id": receipt_id, "file": str(out), "bytes": len(data)})
    else:
        typer.echo(f"wrote {len(data):,} bytes to {out}")


eval_app = typer.Typer(help="Measure how well Seisan reads receipts.", no_args_is_help=True)


@eval_app.command("receipts")
def eval_receipts(
    images: Path = typer.Option(..., help="Folder of receipt images."),
    labels: Path = typer.Option(..., help="SROIE-style labels: <stem>.txt or .json per image."),
    currency: str = typer.Option(None, help="Currency when a receipt names none (e.g. MYR)."),
    limit: int = typer.Option(None, help="Only the first N images."),
    verbose: bool = typer.Option(False, help="Print every miss."),
) -> None:
    """Run the real pipeline (normalise → OCR → extract) over labelled images; per-field accuracy.

    Example: seisan eval receipts --images ../shared/data/sroie-dev/images
    --labels ../shared/data/sroie-dev/labels

    Who: developers (runs locally; no service or token needed).

    Dates compare as calendar dates, totals as amounts, company after folding case and
    white space. The last line reads
    `receipts: n=<N> total=<acc> date=<acc> company=<acc> seconds_per_receipt=<s>`.
    """
    from seisan_intake.adapters.images import ImagePipeline
    from seisan_intake.adapters.ocr_ppocr import PpOcrV5Engine
    from seisan_intake.entrypoints.eval import evaluate, print_report

    if not images.is_dir() or not labels.is_dir():
        raise fail(f"--images and --labels must be folders ({images}, {labels})", EXIT_USAGE)
    pipeline = ImagePipeline()

    def normalised(path: Path):  # type: ignore[no-untyped-def]
        return pipeline.normalize(path.read_bytes()).working

    report = evaluate(
        images,
        labels,
        PpOcrV5Engine(),
        default_currency=currency.upper() if currency else None,
        prepare=normalised,
        limit=limit,
    )
    print_report(report, verbose=verbose)
    raise typer.Exit(0 if report.n else 1)
