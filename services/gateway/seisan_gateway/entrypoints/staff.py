"""Staff pages: capture and upload receipts, see and correct them, missing receipts, claims."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator

from starlette.datastructures import FormData, UploadFile
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse, Response, StreamingResponse
from starlette.routing import BaseRoute, Route

from seisan.cards.v1 import cards_pb2
from seisan.common.v1 import common_pb2
from seisan.receipts.v1 import receipts_pb2
from seisan_gateway.domain import display, errors, i18n
from seisan_gateway.domain.sessions import Session
from seisan_gateway.entrypoints import labels
from seisan_gateway.entrypoints.web import (
    STAFF_ROLES,
    deps,
    form_of,
    language,
    page,
    render,
    text_field,
)
from seisan_shared.money import MoneyError, check_currency, parse_minor_units
from seisan_shared.protoconv import date_from_pb

CATEGORIES = ("meals", "travel", "lodging", "supplies", "other")
HEARTBEAT_SECONDS = 15.0


def summary(receipt: receipts_pb2.Receipt, t_label: str) -> dict[str, object]:
    """What a receipt row shows, for the live update of a list without a reload."""
    fields = receipt.fields
    total = fields.total.amount if fields.HasField("total") else None
    day = (
        date_from_pb(fields.transaction_date.date) if fields.HasField("transaction_date") else None
    )
    return {
        "receipt_id": receipt.receipt_id,
        "status": labels.name("receipt", receipt.status),
        "status_label": t_label,
        "merchant": fields.merchant.value if fields.HasField("merchant") else "",
        "date": display.day(day),
        "total": display.money(total.minor_units, total.currency) if total else "",
    }


@page(*STAFF_ROLES)
async def receipts(request: Request, session: Session) -> Response:
    mine = await deps(request).services.list_receipts(session.token, submitter=session.principal)
    return render(
        request, "receipts.html", {"receipts": mine, "live": deps(request).feed is not None}
    )


async def _upload_one(
    request: Request, session: Session, upload: UploadFile, personal: bool, note: str
) -> dict[str, object]:
    data = await upload.read()
    if not data:
        raise errors.Refused(f"{upload.filename or 'file'}: empty file")
    if len(data) > deps(request).max_upload_bytes:
        raise errors.Refused(
            f"{upload.filename}: larger than {deps(request).max_upload_bytes} bytes"
        )
    reply = await deps(request).services.upload_receipt(
        session.token, data, filename=upload.filename or "", personal=personal, note=note
    )
    return {
        "receipt_id": reply.receipt_id,
        "duplicate": reply.duplicate,
        "status": labels.name("receipt", reply.status),
        "url": f"/receipts/{reply.receipt_id}",
    }


@page(*STAFF_ROLES)
async def upload(request: Request, session: Session) -> Response:
    form = await form_of(request)
    files = [f for f in form.getlist("file") if isinstance(f, UploadFile) and f.filename]
    if not files:
        raise errors.Refused("no file was chosen")
    personal = text_field(form, "paid_with") == "personal"
    note = text_field(form, "note")
    results = [await _upload_one(request, session, f, personal, note) for f in files]
    if "application/json" in request.headers.get("accept", ""):
        return JSONResponse({"receipts": results})
    if len(results) == 1:
        return RedirectResponse(f"{results[0]['url']}?msg=uploaded", status_code=303)
    return RedirectResponse("/receipts?msg=uploaded", status_code=303)


@page()
async def receipt_detail(request: Request, session: Session) -> Response:
    receipt = await deps(request).services.get_receipt(session.token, request.path_params["rid"])
    return render(
        request,
        "receipt.html",
        {"r": receipt, "f": receipt.fields, "mine": receipt.submitter == session.principal},
    )


@page()
async def receipt_summary(request: Request, session: Session) -> Response:
    receipt = await deps(request).services.get_receipt(session.token, request.path_params["rid"])
    status_label = i18n.translate(language(request), labels.name("receipt", receipt.status))
    return JSONResponse(summary(receipt, status_label))


@page()
async def receipt_image(request: Request, session: Session) -> Response:
    content_type, data = await deps(request).services.receipt_image(
        session.token, request.path_params["rid"]
    )
    return Response(
        data, media_type=content_type, headers={"cache-control": "private, max-age=300"}
    )


def _correction(form: FormData, currency_default: str) -> receipts_pb2.ReceiptFields:
    fields = receipts_pb2.ReceiptFields()
    merchant = text_field(form, "merchant")
    if merchant:
        fields.merchant.value = merchant
    day = text_field(form, "date")
    if day:
        try:
            year, month, dom = (int(x) for x in day.split("-"))
        except ValueError:
            raise errors.Refused(f"date: {day!r} is not YYYY-MM-DD") from None
        fields.transaction_date.date.CopyFrom(common_pb2.Date(year=year, month=month, day=dom))
    total = text_field(form, "total")
    if total:
        currency = (text_field(form, "currency") or currency_default).upper()
        try:
            check_currency(currency)
            minor = parse_minor_units(total, currency)
        except MoneyError as exc:
            raise errors.Refused(f"total: {exc}") from None
        fields.total.amount.CopyFrom(common_pb2.Money(minor_units=minor, currency=currency))
    return fields


@page()
async def correct(request: Request, session: Session) -> Response:
    rid = request.path_params["rid"]
    form = await form_of(request)
    services = deps(request).services
    current = await services.get_receipt(session.token, rid)
    default_currency = (
        current.fields.total.amount.currency if current.fields.HasField("total") else ""
    )
    fields = _correction(form, default_currency)
    await services.correct_receipt(session.token, rid, fields, text_field(form, "reason"))
    return RedirectResponse(f"/receipts/{rid}?msg=saved", status_code=303)


@page()
async def live_receipts(request: Request, session: Session) -> Response:
    """Server-Sent Events: this person's receipts changing state, as they happen."""
    feed = deps(request).feed
    stopping = deps(request).stopping
    if feed is None:
        return Response(status_code=204)  # no bus: the browser stops asking

    async def stream() -> AsyncIterator[str]:
        with feed.listen(session.principal) as queue:
            yield "retry: 3000\n\n"
            while not stopping.is_set() and not feed.closed.is_set():
                getter = asyncio.ensure_future(queue.get())
                stop = asyncio.ensure_future(stopping.wait())
                done, _ = await asyncio.wait(
                    {getter, stop}, timeout=HEARTBEAT_SECONDS, return_when=asyncio.FIRST_COMPLETED
                )
                stop.cancel()
                if getter not in done:
                    getter.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await getter
                    if stop in done:
                        break
                    yield ": keep-alive\n\n"
                    continue
                change = getter.result()
                data = json.dumps(
                    {
                        "receipt_id": change.receipt_id,
                        "event": change.event,
                        "status": labels.name("receipt", change.status) if change.status else "",
                    }
                )
                yield f"event: receipt\ndata: {data}\n\n"

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"cache-control": "no-store", "x-accel-buffering": "no"},
    )


@page(*STAFF_ROLES)
async def charges(request: Request, session: Session) -> Response:
    reply = await deps(request).services.list_charges(
        session.token, status=cards_pb2.CHARGE_STATUS_UNMATCHED, cardholder=session.principal
    )
    return render(request, "charges.html", {"charges": list(reply.charges)})


@page(*STAFF_ROLES)
async def declare(request: Request, session: Session) -> Response:
    form = await form_of(request)
    await deps(request).services.declare_missing(
        session.token,
        request.path_params["cid"],
        text_field(form, "description"),
        text_field(form, "purpose"),
        text_field(form, "attest") == "yes",
    )
    return RedirectResponse("/charges?msg=declared", status_code=303)


@page(*STAFF_ROLES)
async def claims(request: Request, session: Session) -> Response:
    services = deps(request).services
    mine, claimable = await asyncio.gather(
        services.list_claims(session.token),
        services.list_receipts(session.token, submitter=session.principal),
    )
    mine = [c for c in mine if c.claimant == session.principal]
    personal = [
        r
        for r in claimable
        if r.paid_with == receipts_pb2.PAID_WITH_PERSONAL
        and r.status
        in (receipts_pb2.RECEIPT_STATUS_EXTRACTED, receipts_pb2.RECEIPT_STATUS_NEEDS_REVIEW)
    ]
    return render(
        request, "claims.html", {"claims": mine, "personal": personal, "categories": CATEGORIES}
    )


@page(*STAFF_ROLES)
async def submit_claim(request: Request, session: Session) -> Response:
    form = await form_of(request)
    chosen = [v for v in form.getlist("receipt") if isinstance(v, str)]
    if not chosen:
        raise errors.Refused("choose at least one receipt")
    items = []
    for rid in chosen:
        category = text_field(form, f"category-{rid}") or "other"
        items.append((rid, category if category in CATEGORIES else "other"))
    claim = await deps(request).services.submit_claim(
        session.token, items, text_field(form, "description")
    )
    return RedirectResponse(f"/claims/{claim.claim_id}?msg=submitted", status_code=303)


@page()
async def claim_detail(request: Request, session: Session) -> Response:
    claim = await deps(request).services.get_claim(session.token, request.path_params["cid"])
    return render(request, "claim.html", {"claim": claim})


def routes() -> list[BaseRoute]:
    return [
        Route("/receipts", receipts),
        Route("/receipts", upload, methods=["POST"]),
        Route("/receipts/{rid}", receipt_detail),
        Route("/receipts/{rid}/summary", receipt_summary),
        Route("/receipts/{rid}/image", receipt_image),
        Route("/receipts/{rid}/correct", correct, methods=["POST"]),
        Route("/live/receipts", live_receipts),
        Route("/charges", charges),
        Route("/charges/{cid}/declare", declare, methods=["POST"]),
        Route("/claims", claims),
        Route("/claims", submit_claim, methods=["POST"]),
        Route("/claims/{cid}", claim_detail),
    ]
