"""Receipt events from the bus, fanned out to the browsers of the receipts' owners.

A plain (core NATS) subscription on ``seisan.receipt.>``: JetStream stores the
events for the services' durable consumers, and delivers each one to live
subscribers of its subject too. Live updates need only what happens while a
page is open — a missed event costs a stale badge until the next reload, never
data — so no durable consumer (and no state) is kept for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import defaultdict
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

from google.protobuf import message as pb_message
from nats.aio.msg import Msg

from seisan.events.v1 import envelope_pb2
from seisan.receipts.v1 import events_pb2, receipts_pb2
from seisan_shared.bus.client import EventBus
from seisan_shared.subjects import subject_for

log = logging.getLogger("seisan.gateway.feed")

# Event type → (payload message, receipt status it leaves the receipt in).
_RECEIPT_EVENTS: dict[str, tuple[type[pb_message.Message], int]] = {
    "receipt.captured": (events_pb2.ReceiptCaptured, receipts_pb2.RECEIPT_STATUS_PROCESSING),
    "receipt.extracted": (events_pb2.ReceiptExtracted, receipts_pb2.RECEIPT_STATUS_EXTRACTED),
    "receipt.needs_review": (
        events_pb2.ReceiptNeedsReview,
        receipts_pb2.RECEIPT_STATUS_NEEDS_REVIEW,
    ),
    "receipt.corrected": (events_pb2.ReceiptCorrected, receipts_pb2.RECEIPT_STATUS_UNSPECIFIED),
    "receipt.deleted": (events_pb2.ReceiptDeleted, receipts_pb2.RECEIPT_STATUS_DELETED),
}

QUEUE_LIMIT = 100


@dataclass(frozen=True)
class ReceiptChange:
    """Receipt ``receipt_id`` of ``submitter`` changed (``event``); status 0 when unchanged."""

    receipt_id: str
    submitter: str
    event: str
    status: int


def decode(data: bytes) -> ReceiptChange | None:
    """The change an envelope announces, or None for anything else (never raises)."""
    try:
        envelope = envelope_pb2.Envelope.FromString(data)
        kind = _RECEIPT_EVENTS.get(envelope.type)
        if kind is None:
            return None
        payload = kind[0]()
        if not envelope.payload.Unpack(payload):
            return None
    except pb_message.DecodeError:
        return None
    return ReceiptChange(
        receipt_id=payload.receipt_id,  # type: ignore[attr-defined]
        submitter=payload.submitter,  # type: ignore[attr-defined]
        event=envelope.type,
        status=kind[1],
    )


class ReceiptFeed:
    """Per-principal queues of :class:`ReceiptChange`; a slow browser loses events, not memory."""

    def __init__(self) -> None:
        self._listeners: dict[str, set[asyncio.Queue[ReceiptChange]]] = defaultdict(set)
        self.closed = asyncio.Event()

    def deliver(self, change: ReceiptChange) -> None:
        for queue in list(self._listeners.get(change.submitter, ())):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(change)

    @contextlib.contextmanager
    def listen(self, principal: str) -> Iterator[asyncio.Queue[ReceiptChange]]:
        queue: asyncio.Queue[ReceiptChange] = asyncio.Queue(QUEUE_LIMIT)
        self._listeners[principal].add(queue)
        try:
            yield queue
        finally:
            self._listeners[principal].discard(queue)
            if not self._listeners[principal]:
                del self._listeners[principal]

    def listeners(self) -> int:
        return sum(len(q) for q in self._listeners.values())


@contextlib.asynccontextmanager
async def subscribe(
    nats_url: str, feed: ReceiptFeed, bus_options: dict[str, Any] | None = None
) -> AsyncIterator[EventBus]:
    """Connect to NATS and feed every receipt event into ``feed`` until the block ends.

    ``bus_options`` are the transport's (user, password, inbox prefix, TLS).
    """
    bus = await EventBus(nats_url, name="seisan-gateway", **(bus_options or {})).connect()

    async def on_message(msg: Msg) -> None:
        change = decode(msg.data)
        if change is not None:
            feed.deliver(change)

    subscription = await bus.nc.subscribe(subject_for("receipt.>"), cb=on_message)
    try:
        yield bus
    finally:
        feed.closed.set()
        with contextlib.suppress(Exception):
            await subscription.unsubscribe()
        await bus.close()
