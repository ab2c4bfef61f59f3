"""Payouts on the bus: intake's and reconciliation's events become what payouts knows about
receipts, and claims' events leave through the outbox onto JetStream."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import pytest
from google.protobuf.message import Message

from seisan.cards.v1 import cards_pb2
from seisan.cards.v1 import events_pb2 as cards_events
from seisan.receipts.v1 import events_pb2 as receipt_events
from seisan.receipts.v1 import receipts_pb2
from seisan_payouts import handlers
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.domain.errors import PolicyBlocked
from seisan_payouts.domain.model import Actor, PaidWith, ReceiptState
from seisan_payouts.domain.policy import ClaimRequestItem
from seisan_payouts.entrypoints import consumers
from seisan_shared import catalogue, events, subjects
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.consumer import EventConsumer
from seisan_shared.bus.outbox import OutboxRelay
from seisan_shared.storage import Database, run_migrations

AIKO = Actor("aiko", frozenset({"staff"}))
NOW = datetime.now(UTC)


def _fields(minor_units: int, merchant: str = "Tully's Coffee") -> receipts_pb2.ReceiptFields:
    fields = receipts_pb2.ReceiptFields()
    fields.total.amount.minor_units = minor_units
    fields.total.amount.currency = "JPY"
    fields.merchant.value = merchant
    fields.transaction_date.date.year = NOW.year
    fields.transaction_date.date.month = NOW.month
    fields.transaction_date.date.day = NOW.day
    return fields


def _event(event_type: str, aggregate: str, payload: Message, at: datetime) -> events.Envelope:
    return events.new_event(
        event_type, source="test", aggregate_id=aggregate, payload=payload, occurred_at=at
    )


async def test_receipt_and_match_events_shape_what_can_be_claimed(
    bus: EventBus, sqlite_db: Database, until: Callable[..., Awaitable[None]]
) -> None:
    await run_migrations(sqlite_db, MIGRATIONS)
    catalogue.import_all()
    ports = handlers.PayoutsPorts(uow=lambda: SqlUnitOfWork(sqlite_db))
    consumer = EventConsumer(
        bus,
        sqlite_db,
        durable=consumers.DURABLE,
        filter_subjects=consumers.FILTER,
        handler=consumers.handle,
    )
    task = asyncio.create_task(consumer.run())
    personal = receipts_pb2.PAID_WITH_PERSONAL
    extracted = _event(
        subjects.RECEIPT_EXTRACTED,
        "r-1",
        receipt_events.ReceiptExtracted(
            receipt_id="r-1", submitter="aiko", paid_with=personal, fields=_fields(1_000)
        ),
        NOW,
    )
    corrected = _event(
        subjects.RECEIPT_CORRECTED,
        "r-1",
        receipt_events.ReceiptCorrected(
            receipt_id="r-1",
            submitter="aiko",
            paid_with=personal,
            fields=_fields(1_100),
            corrected_by="aiko",
        ),
        NOW + timedelta(seconds=1),
    )
    matched = _event(
        subjects.MATCH_CONFIRMED,
        "m-1",
        cards_events.MatchConfirmed(
            match=cards_pb2.Match(
                match_id="m-1",
                receipt_ids=["r-2"],
                charge_ids=["ch-9"],
                status=cards_pb2.MATCH_STATUS_CONFIRMED,
            )
        ),
        NOW,
    )
    second = _event(
        subjects.RECEIPT_NEEDS_REVIEW,
        "r-2",
        receipt_events.ReceiptNeedsReview(
            receipt_id="r-2", submitter="aiko", paid_with=personal, fields=_fields(2_000)
        ),
        NOW,
    )
    deleted = _event(
        subjects.RECEIPT_DELETED,
        "r-3",
        receipt_events.ReceiptDeleted(receipt_id="r-3", submitter="aiko", deleted_by="aiko"),
        NOW + timedelta(seconds=5),
    )
    late_extraction = _event(  # older than the deletion, delivered after it
        subjects.RECEIPT_EXTRACTED,
        "r-3",
        receipt_events.ReceiptExtracted(
            receipt_id="r-3", submitter="aiko", paid_with=personal, fields=_fields(3_000)
        ),
        NOW,
    )
    try:
        for envelope in (
            corrected,
            extracted,
            matched,
            second,
            deleted,
            late_extraction,
            corrected,
        ):
            await bus.publish(envelope)

        async def known() -> bool:
            async with ports.uow() as uow:
                refs = await uow.receipts.get_many(["r-1", "r-2", "r-3"])
            return len(refs) == 3 and consumer.processed().handled >= 6

        await until(known)
    finally:
        consumer.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async with ports.uow() as uow:
        refs = await uow.receipts.get_many(["r-1", "r-2", "r-3"])
    r1, r2, r3 = refs["r-1"], refs["r-2"], refs["r-3"]
    assert r1.total is not None and r1.total.minor_units == 1_100  # the correction wins
    assert (r1.state, r1.paid_with, r1.merchant) == (
        ReceiptState.EXTRACTED,
        PaidWith.PERSONAL,
        "Tully's Coffee",
    )
    assert (r2.state, r2.match_id, r2.matched_charge_ids) == (
        ReceiptState.NEEDS_REVIEW,
        "m-1",
        ("ch-9",),
    )
    assert r3.state is ReceiptState.DELETED

    claim = await handlers.submit_claim(
        handlers.SubmitClaim(AIKO, [ClaimRequestItem("r-1", "meals")]), ports
    )
    assert claim.total.minor_units == 1_100
    for rid, words in (("r-2", "matched to card charge ch-9"), ("r-3", "was deleted")):
        with pytest.raises(PolicyBlocked, match=words):
            await handlers.submit_claim(
                handlers.SubmitClaim(AIKO, [ClaimRequestItem(rid, "meals")]), ports
            )

    relay = OutboxRelay(sqlite_db, bus)
    assert await relay.publish_pending() >= 2  # claim.submitted + its audit record
    sub = await bus.js.pull_subscribe(
        subjects.subject_for(subjects.CLAIM_SUBMITTED),
        durable=None,
        stream=subjects.EVENTS_STREAM,
    )
    (msg,) = await sub.fetch(1, timeout=5)
    envelope = events.decode(msg.data)
    assert (envelope.source, envelope.aggregate_id) == ("payouts", claim.claim_id)
    assert events.unpack_payload(envelope).claim.total.minor_units == 1_100  # type: ignore[attr-defined]
