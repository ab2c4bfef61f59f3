"""What this service hears on the bus: intake's receipts and reconciliation's matches.

Payouts keeps its own copy of what it needs about each receipt (submitter, paid
with, total, date, merchant, state) and whether a card charge is matched to it,
so claims are checked without calling other services. Consumed idempotently
(``processed_events``) in the consumer's transaction.
"""

from __future__ import annotations

from datetime import UTC, date

from sqlalchemy.ext.asyncio import AsyncSession

from seisan.cards.v1 import cards_pb2
from seisan.cards.v1 import events_pb2 as cards_events
from seisan.receipts.v1 import events_pb2 as receipt_events
from seisan.receipts.v1 import receipts_pb2
from seisan_payouts import handlers
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.domain.model import PaidWith, ReceiptState
from seisan_shared import events, subjects
from seisan_shared.events import Envelope
from seisan_shared.money import Money, MoneyError

DURABLE = "payouts-receipts"
FILTER = tuple(
    subjects.subject_for(t)
    for t in (
        subjects.RECEIPT_EXTRACTED,
        subjects.RECEIPT_NEEDS_REVIEW,
        subjects.RECEIPT_CORRECTED,
        subjects.RECEIPT_DELETED,
        subjects.MATCH_CONFIRMED,
        subjects.MATCH_REJECTED,
    )
)
PAID_WITH_FROM_PB = {
    receipts_pb2.PAID_WITH_PERSONAL: PaidWith.PERSONAL,
    receipts_pb2.PAID_WITH_COMPANY_CARD: PaidWith.COMPANY_CARD,
}


def _facts(
    receipt_id: str,
    submitter: str,
    paid_with: int,
    fields: receipts_pb2.ReceiptFields,
    state: ReceiptState,
    envelope: Envelope,
) -> handlers.ReceiptFacts:
    total = None
    if fields.HasField("total") and fields.total.amount.currency:
        try:
            total = Money(int(fields.total.amount.minor_units), fields.total.amount.currency)
        except MoneyError:
            total = None
    day = None
    if fields.HasField("transaction_date") and fields.transaction_date.date.year:
        d = fields.transaction_date.date
        day = date(d.year, d.month, d.day)
    return handlers.ReceiptFacts(
        receipt_id=receipt_id,
        submitter=submitter,
        paid_with=PAID_WITH_FROM_PB.get(paid_with, PaidWith.UNSPECIFIED),  # type: ignore[call-overload]
        state=state,
        total=total,
        transaction_date=day,
        merchant=fields.merchant.value if fields.HasField("merchant") else "",
        occurred_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
    )


# The receipt events that carry fields, and the state each leaves the receipt in. A
# correction is what a person confirmed: its fields are trusted like an extraction.
_RECEIPT_STATE = {
    receipt_events.ReceiptExtracted: ReceiptState.EXTRACTED,
    receipt_events.ReceiptNeedsReview: ReceiptState.NEEDS_REVIEW,
    receipt_events.ReceiptCorrected: ReceiptState.EXTRACTED,
}


async def handle(envelope: Envelope, session: AsyncSession) -> None:
    """One event, inside the consumer's transaction."""
    uow = SqlUnitOfWork.joining(session)
    payload = events.unpack_payload(envelope)
    if isinstance(
        payload,
        receipt_events.ReceiptExtracted
        | receipt_events.ReceiptNeedsReview
        | receipt_events.ReceiptCorrected,
    ):
        await handlers.record_receipt(
            _facts(
                payload.receipt_id,
                payload.submitter,
                payload.paid_with,
                payload.fields,
                _RECEIPT_STATE[type(payload)],
                envelope,
            ),
            uow,
        )
    elif isinstance(payload, receipt_events.ReceiptDeleted):
        await handlers.record_receipt(
            _facts(
                payload.receipt_id,
                payload.submitter,
                0,
                receipts_pb2.ReceiptFields(),
                ReceiptState.DELETED,
                envelope,
            ),
            uow,
        )
    elif isinstance(payload, cards_events.MatchConfirmed | cards_events.MatchRejected):
        match = payload.match
        confirmed = match.status == cards_pb2.MATCH_STATUS_CONFIRMED
        await handlers.record_match(
            match.match_id, list(match.receipt_ids), list(match.charge_ids), confirmed, uow
        )
