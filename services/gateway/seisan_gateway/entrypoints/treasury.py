"""Treasury pages: statements and their close check, match review, payout runs, charts."""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from datetime import UTC, datetime

from starlette.datastructures import UploadFile
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from seisan.cards.v1 import cards_pb2
from seisan.payouts.v1 import payouts_pb2
from seisan.receipts.v1 import receipts_pb2
from seisan_gateway.domain import charts, display, errors, i18n
from seisan_gateway.domain.sessions import Session
from seisan_gateway.entrypoints.web import (
    TREASURY_ROLES,
    deps,
    form_of,
    language,
    local_path,
    page,
    render,
    text_field,
)
from seisan_shared.protoconv import date_from_pb

_MATCHABLE = (receipts_pb2.RECEIPT_STATUS_EXTRACTED, receipts_pb2.RECEIPT_STATUS_NEEDS_REVIEW)


@page(*TREASURY_ROLES)
async def statements(request: Request, session: Session) -> Response:
    report = await deps(request).services.reconciliation_report(session.token)
    rows = sorted(
        report.statements,
        key=lambda s: date_from_pb(s.statement.period_end) or datetime.min.date(),
        reverse=True,
    )
    return render(request, "statements.html", {"statements": rows})


@page(*TREASURY_ROLES)
async def import_statement(request: Request, session: Session) -> Response:
    form = await form_of(request)
    upload = form.get("file")
    if not isinstance(upload, UploadFile) or not upload.filename:
        raise errors.Refused("choose a statement file")
    data = await upload.read()
    reply = await deps(request).services.import_statement(session.token, data, upload.filename)
    sid = reply.statement.statement_id
    return RedirectResponse(f"/statements/{sid}?msg=imported", status_code=303)


@page(*TREASURY_ROLES)
async def request_missing(request: Request, session: Session) -> Response:
    sid = request.path_params["sid"]
    await deps(request).services.request_missing(session.token, sid)
    return RedirectResponse(f"/statements/{sid}?msg=requested", status_code=303)


@page(*TREASURY_ROLES)
async def statement(request: Request, session: Session) -> Response:
    sid = request.path_params["sid"]
    services = deps(request).services
    report, listed = await asyncio.gather(
        services.reconciliation_report(session.token, sid),
        services.list_charges(session.token, statement_id=sid),
    )
    matches = {m.match_id: m for m in listed.matches}
    suggested = [
        (c, matches[c.match_id])
        for c in listed.charges
        if c.status == cards_pb2.CHARGE_STATUS_SUGGESTED and c.match_id in matches
    ]
    unmatched = [c for c in listed.charges if c.status == cards_pb2.CHARGE_STATUS_UNMATCHED]
    holders = sorted({c.cardholder for c in unmatched if c.cardholder})
    found = await asyncio.gather(
        *(services.list_receipts(session.token, submitter=h) for h in holders)
    )
    candidates = {
        holder: [r for r in receipts if r.status in _MATCHABLE]
        for holder, receipts in zip(holders, found, strict=True)
    }
    entry = report.statements[0] if report.statements else None
    return render(
        request,
        "statement.html",
        {
            "entry": entry,
            "sid": sid,
            "suggested": suggested,
            "unmatched": unmatched,
            "candidates": candidates,
            "others": len(listed.charges) - len(suggested) - len(unmatched),
        },
    )


def _back(form_next: str, msg: str) -> Response:
    target = local_path(form_next, "/statements")
    joiner = "&" if "?" in target else "?"
    return RedirectResponse(f"{target}{joiner}msg={msg}", status_code=303)


@page(*TREASURY_ROLES)
async def confirm(request: Request, session: Session) -> Response:
    form = await form_of(request)
    await deps(request).services.confirm_match(session.token, request.path_params["mid"])
    return _back(text_field(form, "next"), "confirmed")


@page(*TREASURY_ROLES)
async def reject(request: Request, session: Session) -> Response:
    form = await form_of(request)
    reason = text_field(form, "reason")
    if not reason:
        raise errors.Refused("a reason is required to reject a match")
    await deps(request).services.reject_match(session.token, request.path_params["mid"], reason)
    return _back(text_field(form, "next"), "rejected")


@page(*TREASURY_ROLES)
async def manual(request: Request, session: Session) -> Response:
    form = await form_of(request)
    charge_id, receipt_id = text_field(form, "charge_id"), text_field(form, "receipt_id")
    if not charge_id or not receipt_id:
        raise errors.Refused("choose a receipt for the charge")
    await deps(request).services.manual_match(
        session.token, [charge_id], [receipt_id], text_field(form, "reason")
    )
    return _back(text_field(form, "next"), "matched")


async def _payouts_page(
    request: Request, session: Session, notes: list[str] | None = None
) -> Response:
    listed = await deps(request).services.list_payouts(session.token)
    runs: dict[str, list[payouts_pb2.Payout]] = defaultdict(list)
    for payout in listed:
        runs[payout.run_id].append(payout)
    ordered = sorted(
        runs.items(), key=lambda kv: max(p.created_at.seconds for p in kv[1]), reverse=True
    )
    return render(
        request,
        "payouts.html",
        {"runs": ordered, "request_id": str(uuid.uuid4()), "notes": notes or []},
    )


@page(*TREASURY_ROLES)
async def payouts(request: Request, session: Session) -> Response:
    return await _payouts_page(request, session)


@page(*TREASURY_ROLES)
async def run_payouts(request: Request, session: Session) -> Response:
    form = await form_of(request)
    request_id = text_field(form, "request_id") or str(uuid.uuid4())
    run = await deps(request).services.create_payout_run(session.token, request_id)
    # The run's notes (who was left out and why) are shown once, on the page answering the run.
    return await _payouts_page(request, session, list(run.notes))


@page(*TREASURY_ROLES)
async def link_account(request: Request, session: Session) -> Response:
    form = await form_of(request)
    employee = text_field(form, "employee")
    if not employee:
        raise errors.Refused("name the employee to link")
    await deps(request).services.link_test_account(session.token, employee)
    return RedirectResponse("/payouts?msg=linked", status_code=303)


@page(*TREASURY_ROLES)
async def charts_page(request: Request, session: Session) -> Response:
    lang = language(request)

    def t(text: str) -> str:
        return i18n.translate(lang, text)

    services = deps(request).services
    report, listed = await asyncio.gather(
        services.reconciliation_report(session.token), services.list_charges(session.token)
    )
    ordered = sorted(
        report.statements,
        key=lambda s: date_from_pb(s.statement.period_end) or datetime.min.date(),
    )
    points = []
    for entry in ordered:
        count = entry.statement.charge_count or 1
        ratio = entry.totals.matched_count / count
        name = display.day(date_from_pb(entry.statement.period_end)) or entry.statement.filename
        points.append(
            charts.Point(
                name, ratio, f"{round(100 * ratio)}% ({entry.totals.matched_count}/{count})"
            )
        )
    rate_svg = charts.ratio_line(points, title=t("Match rate per statement"))

    spend: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for charge in listed.charges:
        spend[charge.amount.currency][charts.category_of_mcc(charge.mcc)] += (
            charge.amount.minor_units
        )
    spend_svgs = []
    for n, (currency, by_category) in enumerate(sorted(spend.items())):
        bars = [
            charts.Bar(t(category), amount, display.money(amount, currency))
            for category, amount in sorted(by_category.items(), key=lambda kv: -kv[1])
        ]
        title = f"{t('Spend by category')} ({currency})"
        spend_svgs.append(charts.horizontal_bars(bars, title=title, colour=n + 1))

    today = datetime.now(UTC).date()
    missing = [
        day
        for c in listed.charges
        if c.status == cards_pb2.CHARGE_STATUS_UNMATCHED
        and (day := date_from_pb(c.transaction_date)) is not None
    ]
    age_bars = [
        charts.Bar(f"{label} {t('days')}", count, f"{count} {t('charges')}")
        for label, count in charts.age_buckets(missing, today)
    ]
    age_svg = charts.horizontal_bars(age_bars, title=t("Age of missing receipts"), colour=3)
    return render(
        request,
        "charts.html",
        {
            "rate_svg": rate_svg,
            "spend_svgs": spend_svgs,
            "age_svg": age_svg,
            "missing": len(missing),
        },
    )


def routes() -> list[BaseRoute]:
    return [
        Route("/statements", statements),
        Route("/statements", import_statement, methods=["POST"]),
        Route("/statements/{sid}", statement),
        Route("/statements/{sid}/request-missing", request_missing, methods=["POST"]),
        Route("/matches/manual", manual, methods=["POST"]),
        Route("/matches/{mid}/confirm", confirm, methods=["POST"]),
        Route("/matches/{mid}/reject", reject, methods=["POST"]),
        Route("/payouts", payouts),
        Route("/payouts/run", run_payouts, methods=["POST"]),
        Route("/payouts/link", link_account, methods=["POST"]),
        Route("/charts", charts_page),
    ]
