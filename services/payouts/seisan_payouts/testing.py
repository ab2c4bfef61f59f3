"""Helpers for tests, demos and the chaos run: receipts known to payouts, approved claims.

In production receipts arrive as intake's events; these helpers record the same
facts through the same handler, so what follows (claims, policy, payouts) runs
the real code.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
import stripe

from seisan_payouts import handlers
from seisan_payouts.adapters import tables
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.domain.model import Actor, Claim, PaidWith, ReceiptState
from seisan_payouts.domain.payouts import PayoutStatus
from seisan_payouts.domain.policy import ClaimRequestItem
from seisan_shared import events, subjects
from seisan_shared.money import Money
from seisan_shared.storage import Database
from seisan_shared.storage.tables import outbox


async def seed_receipt(
    ports: handlers.PayoutsPorts,
    submitter: str,
    total: Money,
    *,
    paid_with: PaidWith = PaidWith.PERSONAL,
    day: date | None = None,
    merchant: str = "Blue Bottle Coffee",
    state: ReceiptState = ReceiptState.EXTRACTED,
    receipt_id: str | None = None,
) -> str:
    """Record a receipt as if intake had announced it; its id."""
    rid = receipt_id or str(uuid.uuid4())
    async with ports.uow() as uow:
        await handlers.record_receipt(
            handlers.ReceiptFacts(
                receipt_id=rid,
                submitter=submitter,
                paid_with=paid_with,
                state=state,
                total=total,
                transaction_date=day or ports.clock().date(),
                merchant=merchant,
                occurred_at=datetime.now(UTC),
            ),
            uow,
        )
        await uow.commit()
    return rid


async def approved_claim(
    ports: handlers.PayoutsPorts,
    claimant: str,
    amounts: list[Money],
    *,
    approver: str = "chika",
    category: str = "travel",
) -> Claim:
    """Receipts, a claim of them by ``claimant``, approved by ``approver``."""
    ids = [await seed_receipt(ports, claimant, amount) for amount in amounts]
    claim = await handlers.submit_claim(
        handlers.SubmitClaim(
            Actor(claimant, frozenset({"staff"})),
            [ClaimRequestItem(rid, category) for rid in ids],
        ),
        ports,
    )
    return await handlers.approve_claim(
        claim.claim_id, "ok", Actor(approver, frozenset({"approver"})), ports
    )


# -- checking payouts against Stripe's own records --------------------------------------------


@dataclass
class StripeAudit:
    """Every payout compared with Stripe: ``duplicates`` and ``lost`` must be 0.

    * duplicate — Stripe holds more than one live transfer or paid payout for it,
      money paid although we say failed, or more than one paid/failed event;
    * lost — paid here but not at Stripe, failed here with money still out at
      Stripe, or not settled (neither paid nor failed) at all.
    """

    n: int = 0
    paid: int = 0
    failed: int = 0
    duplicates: int = 0
    lost: int = 0
    problems: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"payouts: n={self.n} paid={self.paid} failed={self.failed} "
            f"duplicates={self.duplicates} lost={self.lost}"
        )


async def _all_pages(fetch: Any) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": 100}
    while True:
        page = await fetch(dict(params))
        data = [obj.to_dict() for obj in page.data]
        items += data
        if not page.has_more or not data:
            return items
        params["starting_after"] = data[-1]["id"]


async def audit_against_stripe(
    db: Database, client: stripe.StripeClient, payout_ids: list[str] | None = None
) -> StripeAudit:
    """Compare the payouts in ``db`` (all, or ``payout_ids``) with what Stripe recorded."""
    async with db.transaction() as session:
        uow = SqlUnitOfWork.joining(session)
        rows = await session.execute(sa.select(tables.payouts.c.payout_id))
        ids = payout_ids or [r[0] for r in rows]
        payouts = [p for p in [await uow.payouts.get(i) for i in ids] if p is not None]
        outbox_rows = (
            await session.execute(
                sa.select(outbox.c.payload).where(
                    outbox.c.subject.in_(
                        [
                            subjects.subject_for(subjects.PAYOUT_PAID),
                            subjects.subject_for(subjects.PAYOUT_FAILED),
                        ]
                    )
                )
            )
        ).all()
    settled_events: Counter[str] = Counter(events.decode(r[0]).aggregate_id for r in outbox_rows)
    transfers: dict[str, list[dict[str, Any]]] = {}
    for t in await _all_pages(lambda q: client.v1.transfers.list_async(q)):
        transfers.setdefault(str(t.get("transfer_group") or ""), []).append(t)
    stripe_payouts: dict[str, list[dict[str, Any]]] = {}
    for account in sorted({p.destination_account for p in payouts if p.destination_account}):
        found = await _all_pages(
            lambda q, a=account: client.v1.payouts.list_async(q, {"stripe_account": a})
        )
        for po in found:
            key = str((po.get("metadata") or {}).get("payout_id") or "")
            stripe_payouts.setdefault(key, []).append(po)

    audit = StripeAudit(n=len(payouts))
    for p in payouts:
        live = [
            t
            for t in transfers.get(p.payout_id, [])
            if int(t.get("amount_reversed") or 0) < int(t["amount"])
        ]
        paid_out = [x for x in stripe_payouts.get(p.payout_id, []) if x["status"] == "paid"]
        pending = [
            x
            for x in stripe_payouts.get(p.payout_id, [])
            if x["status"] in ("pending", "in_transit")
        ]
        problem = ""
        kind = ""
        if settled_events[p.payout_id] > 1:
            kind, problem = "duplicate", f"{settled_events[p.payout_id]} paid/failed events"
        elif len(live) > 1 or len(paid_out) > 1:
            kind, problem = "duplicate", f"{len(live)} transfers, {len(paid_out)} paid payouts"
        elif p.status is PayoutStatus.PAID:
            if not (live and paid_out and paid_out[0]["id"] == p.stripe_payout_id):
                kind, problem = "lost", "paid here, not at Stripe"
            elif live[0]["amount"] != p.amount.minor_units:
                kind, problem = "lost", f"Stripe moved {live[0]['amount']}, not {p.amount}"
            elif settled_events[p.payout_id] != 1:
                kind, problem = "lost", "no payout.paid event"
        elif p.status is PayoutStatus.FAILED:
            if paid_out:
                kind, problem = "duplicate", "failed here but paid at Stripe"
            elif live or pending:
                kind, problem = "lost", "failed here but money still out at Stripe"
            elif not p.failure_reason:
                kind, problem = "lost", "failed without a reason"
            elif settled_events[p.payout_id] != 1:
                kind, problem = "lost", "no payout.failed event"
        else:
            kind, problem = "lost", f"still {p.status.value}"
        if kind == "duplicate":
            audit.duplicates += 1
        elif kind == "lost":
            audit.lost += 1
        elif p.status is PayoutStatus.PAID:
            audit.paid += 1
        else:
            audit.failed += 1
        if problem:
            audit.problems.append(f"{p.payout_id} ({p.status.value}): {problem}")
    return audit
