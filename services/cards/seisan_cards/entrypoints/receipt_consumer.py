"""The bus consumer of receipt events: keep what reconciliation needs, match as receipts arrive.

``receipt.extracted`` and ``receipt.corrected`` carry the receipt's fields: the receipt ref
is stored (or updated) and, while open, matched at once against open charges
(``match.proposed`` or ``match.confirmed`` in the same transaction). ``receipt.deleted``
withdraws its proposal. Everything runs in the consumer's transaction together with the
processed-event record, so a redelivered event changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, date
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from seisan.receipts.v1 import events_pb2, receipts_pb2
from seisan_cards import handlers, messages
from seisan_cards.adapters.uow import SqlUnitOfWork
from seisan_cards.domain.model import PaidWith, ReceiptRef
from seisan_shared import subjects
from seisan_shared.bus import EventBus, EventConsumer, Handler
from seisan_shared.events import Envelope
from seisan_shared.money import Money, MoneyError
from seisan_shared.protoconv import date_from_pb
from seisan_shared.storage import Database

log = logging.getLogger("seisan.cards.receipts")
DURABLE = "cards-receipts"
FILTER = tuple(
    subjects.subject_for(t)
    for t in (subjects.RECEIPT_EXTRACTED, subjects.RECEIPT_CORRECTED, subjects.RECEIPT_DELETED)
)


def _money(field: receipts_pb2.ExtractedMoney) -> Money | None:
    try:
        return Money(int(field.amount.minor_units), field.amount.currency)
    except MoneyError:
        return None


def ref_from_fields(
    receipt_id: str,
    submitter: str,
    paid_with: receipts_pb2.PaidWith.ValueType,
    fields: receipts_pb2.ReceiptFields,
    envelope: Envelope,
) -> ReceiptRef:
    """What reconciliation keeps of a receipt's extracted (or corrected) fields."""
    total = _money(fields.total) if fields.HasField("total") else None
    tip = _money(fields.tip) if fields.HasField("tip") else None
    day: date | None = None
    if fields.HasField("transaction_date"):
        try:
            day = date_from_pb(fields.transaction_date.date)
        except ValueError:
            day = None
    last4 = fields.card_last4.value if fields.HasField("card_last4") else ""
    return ReceiptRef(
        receipt_id=receipt_id,
        submitter=submitter,
        merchant=fields.merchant.value if fields.HasField("merchant") else "",
        receipt_date=day,
        total=total,
        tip_minor=tip.minor_units if tip and total and tip.currency == total.currency else None,
        card_last4=last4 if len(last4) == 4 and last4.isdigit() else None,
        paid_with=messages.PAID_WITH_FROM_PB.get(paid_with, PaidWith.UNSPECIFIED),
        updated_at=envelope.occurred_at.ToDatetime(tzinfo=UTC),
    )


def make_handler(ports: handlers.CardsPorts) -> Handler:
    """The consumer's handler: every effect inside the consumer's transaction."""

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        uow = SqlUnitOfWork.joining(session)
        payload: Any
        if envelope.type == subjects.RECEIPT_DELETED:
            payload = events_pb2.ReceiptDeleted()
            envelope.payload.Unpack(payload)
            await handlers.receipt_deleted(
                payload.receipt_id, payload.submitter, payload.deleted_by, uow, ports
            )
            return
        if envelope.type == subjects.RECEIPT_EXTRACTED:
            payload = events_pb2.ReceiptExtracted()
        elif envelope.type == subjects.RECEIPT_CORRECTED:
            payload = events_pb2.ReceiptCorrected()
        else:
            log.debug("ignoring %s", envelope.type)
            return
        if not envelope.payload.Unpack(payload) or not payload.receipt_id:
            raise ValueError(f"event {envelope.event_id} carries no {envelope.type} payload")
        ref = ref_from_fields(
            payload.receipt_id, payload.submitter, payload.paid_with, payload.fields, envelope
        )
        match = await handlers.receipt_seen(ref, uow, ports)
        if match is not None:
            log.info(
                "receipt %s → match %s (%s, score %.3f)",
                ref.receipt_id,
                match.match_id,
                match.status.value,
                match.score,
            )

    return handle


def receipt_consumer(
    bus: EventBus,
    db: Database,
    ports: handlers.CardsPorts,
    *,
    durable: str = DURABLE,
    **options: Any,
) -> EventConsumer:
    """The durable consumer of receipt events feeding incremental matching."""
    return EventConsumer(
        bus,
        db,
        durable=durable,
        filter_subjects=list(FILTER),
        handler=make_handler(ports),
        **options,
    )
