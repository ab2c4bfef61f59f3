"""Receipt events over a real JetStream into the cards consumer, and its events back out.

intake's ``receipt.extracted`` arrives on the bus → the durable consumer keeps the receipt
ref and matches it against open charges → ``match.confirmed`` / ``match.proposed`` are in
the outbox of the same transaction, and the outbox relay publishes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date

import pytest
from nats.aio.msg import Msg

from seisan.cards.v1 import cards_pb2
from seisan_cards.entrypoints.receipt_consumer import receipt_consumer
from seisan_shared import events, subjects
from seisan_shared.bus import EventBus, OutboxRelay
from seisan_shared.storage import Database
from support.cards import CardsHarness, csv_statement, running_cards

STATEMENT = csv_statement(
    "tx-1,4242,aiko,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
    "tx-2,4242,aiko,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,",
)


@pytest.fixture
async def cards(database: Database) -> AsyncIterator[CardsHarness]:
    async with running_cards(database) as harness:
        yield harness


@contextlib.asynccontextmanager
async def consuming(cards: CardsHarness, bus: EventBus) -> AsyncIterator[None]:
    consumer = receipt_consumer(
        bus, cards.db, cards.ports, durable=f"cards-t-{uuid.uuid4().hex[:8]}", fetch_timeout=0.5
    )
    await consumer.provision()
    task = asyncio.create_task(consumer.run())
    try:
        yield
    finally:
        consumer.stop()
        await asyncio.wait_for(task, 10)


async def test_receipt_extracted_is_matched_incrementally(
    cards: CardsHarness, bus: EventBus, until: Callable[..., Awaitable[None]]
):
    await cards.import_file("t-daichi", STATEMENT)
    assert await cards.count("card_matches") == 0

    exact = await cards.receipt_event(
        subjects.RECEIPT_EXTRACTED,
        "r1",
        "aiko",
        merchant="Blue Bottle",
        day=date(2026, 11, 2),
        total=1112,
    )
    other = await cards.receipt_event(
        subjects.RECEIPT_EXTRACTED,
        "r2",
        "ben",
        merchant="Starbucks",
        day=date(2026, 11, 10),
        total=480,
    )
    async with consuming(cards, bus):
        for envelope in (exact, other, exact):  # a republished duplicate changes nothing
            await bus.publish(envelope)

        async def both_matched() -> bool:
            return (
                len(await cards.outbox_events(subjects.MATCH_CONFIRMED, subjects.MATCH_PROPOSED))
                >= 2
            )

        await until(both_matched)
        await asyncio.sleep(0.3)

    (confirmed,) = await cards.payloads(subjects.MATCH_CONFIRMED)
    assert list(confirmed.match.charge_ids) == ["tx-1"] and list(confirmed.match.receipt_ids) == [
        "r1"
    ]
    assert confirmed.match.automatic and confirmed.match.score >= 0.85
    (proposed,) = await cards.payloads(subjects.MATCH_PROPOSED)
    assert list(proposed.match.charge_ids) == ["tx-2"] and list(proposed.match.receipt_ids) == [
        "r2"
    ]
    assert await cards.count("card_matches") == 2
    assert await cards.count("receipt_refs") == 2
    listed = await cards.stub("t-daichi").ListCharges(cards_pb2.ListChargesRequest())
    assert {c.charge_id: c.status for c in listed.charges} == {
        "tx-1": cards_pb2.CHARGE_STATUS_MATCHED,
        "tx-2": cards_pb2.CHARGE_STATUS_SUGGESTED,
    }


async def test_receipt_deleted_withdraws_its_proposal(
    cards: CardsHarness, bus: EventBus, until: Callable[..., Awaitable[None]]
):
    await cards.import_file("t-daichi", STATEMENT)
    async with consuming(cards, bus):
        await bus.publish(
            await cards.receipt_event(
                subjects.RECEIPT_EXTRACTED,
                "r2",
                "ben",
                merchant="Starbucks",
                day=date(2026, 11, 10),
                total=480,
            )
        )

        async def proposed() -> bool:
            return bool(await cards.outbox_events(subjects.MATCH_PROPOSED))

        await until(proposed)
        await bus.publish(await cards.receipt_event(subjects.RECEIPT_DELETED, "r2", "ben"))

        async def withdrawn() -> bool:
            return bool(await cards.outbox_events(subjects.MATCH_REJECTED))

        await until(withdrawn)
    (rejected,) = await cards.payloads(subjects.MATCH_REJECTED)
    assert rejected.match.status == cards_pb2.MATCH_STATUS_REJECTED
    assert "deleted" in rejected.match.decision_reason
    listed = await cards.stub("t-daichi").ListCharges(cards_pb2.ListChargesRequest())
    assert {c.charge_id: c.status for c in listed.charges}[
        "tx-2"
    ] == cards_pb2.CHARGE_STATUS_UNMATCHED
    # A late re-extraction of a deleted receipt changes nothing.
    await cards.receipt("r2", "ben", merchant="Starbucks", day=date(2026, 11, 10), total=480)
    assert len(await cards.outbox_events(subjects.MATCH_PROPOSED)) == 1


async def test_the_relay_publishes_match_events_to_jetstream(
    cards: CardsHarness, bus: EventBus, until: Callable[..., Awaitable[None]]
):
    await cards.receipt("r1", "aiko", merchant="Blue Bottle", day=date(2026, 11, 2), total=1112)
    await cards.import_file("t-daichi", STATEMENT)
    seen: list[events.Envelope] = []

    async def collect(msg: Msg) -> None:
        seen.append(events.decode(msg.data))

    sub = await bus.nc.subscribe(subjects.subject_for(subjects.MATCH_CONFIRMED), cb=collect)
    relay = OutboxRelay(cards.db, bus)
    await relay.publish_pending()
    await until(lambda: len(seen) == 1)
    await sub.unsubscribe()
    payload = events.unpack_payload(seen[0])
    assert list(payload.match.receipt_ids) == ["r1"]  # type: ignore[attr-defined]
