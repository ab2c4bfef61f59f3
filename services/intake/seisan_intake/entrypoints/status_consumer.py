"""Mirror card matches and claims onto receipts, so a matched or claimed receipt is locked.

Consumes `match.confirmed`, `match.rejected` (an Unmatch carries status
UNMATCHED), `claim.submitted` and `claim.rejected`.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from seisan.cards.v1 import cards_pb2
from seisan_intake import handlers
from seisan_intake.adapters.uow import SqlUnitOfWork
from seisan_intake.domain.model import Status
from seisan_shared import events, subjects
from seisan_shared.events import Envelope

DURABLE = "intake-status"
FILTER = tuple(
    subjects.subject_for(t)
    for t in (
        subjects.MATCH_CONFIRMED,
        subjects.MATCH_REJECTED,
        subjects.CLAIM_SUBMITTED,
        subjects.CLAIM_REJECTED,
    )
)


async def handle(envelope: Envelope, session: AsyncSession) -> None:
    payload = events.unpack_payload(envelope)
    uow = SqlUnitOfWork.joining(session)
    if envelope.type == subjects.MATCH_CONFIRMED:
        await handlers.link_receipts(list(payload.match.receipt_ids), Status.MATCHED, False, uow)
    elif envelope.type == subjects.MATCH_REJECTED:
        if payload.match.status == cards_pb2.MATCH_STATUS_UNMATCHED:
            await handlers.link_receipts(list(payload.match.receipt_ids), Status.MATCHED, True, uow)
    elif envelope.type == subjects.CLAIM_SUBMITTED:
        ids = [line.receipt_id for line in payload.claim.lines]
        await handlers.link_receipts(ids, Status.CLAIMED, False, uow)
    elif envelope.type == subjects.CLAIM_REJECTED:
        ids = [line.receipt_id for line in payload.claim.lines]
        await handlers.link_receipts(ids, Status.CLAIMED, True, uow)
