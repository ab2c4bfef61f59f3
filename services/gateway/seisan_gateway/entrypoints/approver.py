"""Approver pages: the queue of submitted claims, one claim beside its receipts, the decision."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from seisan.payouts.v1 import payouts_pb2
from seisan_gateway.domain import errors
from seisan_gateway.domain.sessions import Session
from seisan_gateway.entrypoints.web import APPROVER_ROLES, deps, form_of, page, render, text_field


@page(*APPROVER_ROLES)
async def queue(request: Request, session: Session) -> Response:
    waiting = await deps(request).services.list_claims(
        session.token, status=payouts_pb2.CLAIM_STATUS_SUBMITTED
    )
    return render(request, "approvals.html", {"claims": waiting})


@page(*APPROVER_ROLES)
async def claim(request: Request, session: Session) -> Response:
    found = await deps(request).services.get_claim(session.token, request.path_params["cid"])
    blocking = any(f.severity == payouts_pb2.FINDING_SEVERITY_BLOCKING for f in found.findings)
    return render(
        request,
        "approval.html",
        {
            "claim": found,
            "own": found.claimant == session.principal,
            "blocking": blocking,
            "decidable": found.status == payouts_pb2.CLAIM_STATUS_SUBMITTED,
        },
    )


@page(*APPROVER_ROLES)
async def approve(request: Request, session: Session) -> Response:
    form = await form_of(request)
    cid = request.path_params["cid"]
    await deps(request).services.approve_claim(session.token, cid, text_field(form, "note"))
    return RedirectResponse("/approvals?msg=approved", status_code=303)


@page(*APPROVER_ROLES)
async def reject(request: Request, session: Session) -> Response:
    form = await form_of(request)
    reason = text_field(form, "reason")
    if not reason:
        raise errors.Refused("a reason is required to reject a claim")
    cid = request.path_params["cid"]
    await deps(request).services.reject_claim(session.token, cid, reason)
    return RedirectResponse("/approvals?msg=rejected", status_code=303)


def routes() -> list[BaseRoute]:
    return [
        Route("/approvals", queue),
        Route("/approvals/{cid}", claim),
        Route("/approvals/{cid}/approve", approve, methods=["POST"]),
        Route("/approvals/{cid}/reject", reject, methods=["POST"]),
    ]
