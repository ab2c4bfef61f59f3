"""Durable, idempotent event consumers: exactly-once effects on top of at-least-once delivery.

For each delivered message the consumer, in ONE database transaction, inserts
``(durable, event_id)`` into ``processed_events`` and calls the handler with
that session. Only after the commit is the message acked. So:

* a redelivery after a crash between commit and ack finds the row and is acked
  without calling the handler again (and a republished duplicate likewise);
* a handler that raises rolls everything back (the ``processed_events`` row
  too) and the message is nak'ed with a growing delay; once it has been
  delivered ``max_deliver`` times it is published to ``dlq.<durable>`` (stream
  ``SEISAN_DLQ``) with the error in headers and then terminated. Bytes that
  are not an Envelope go there at once. Nothing is dropped silently.

``max_deliver`` is enforced here, not by the server: the JetStream consumer is
created with unlimited deliveries, because a server-side limit would drop a
message without trace when the last delivery is lost (process crash, ack
timeout) or when the database — not the handler — was failing. Failures
outside the handler (begin, the ``processed_events`` insert, commit) are
treated as infrastructure trouble: nak'ed with backoff, never dead-lettered.

Processes that run a consumer with the same ``durable`` share its messages
(a pull consumer hands each message to one fetcher at a time).

With ``transaction_per_batch`` (the default) a fetched batch runs in one
transaction: one multi-row insert claims all event ids, the handlers run in
order, one commit, then all acks. If a handler raises, the transaction rolls
back, that event alone is nak'ed (or dead-lettered) and the rest of the batch
is tried again without it. The outcome is the one per-message transactions
give — each failing event costs one handler call per delivery, the others
commit exactly once — at a fraction of the commits. Handlers must therefore
keep their effects inside the session (or be idempotent themselves): one that
ran before a failing neighbour is rolled back and run again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared import subjects
from seisan_shared.bus.client import MSG_ID, EventBus
from seisan_shared.events import Envelope, decode
from seisan_shared.faults import NO_FAULTS, Faults
from seisan_shared.storage.db import Database
from seisan_shared.storage.tables import processed_events

log = logging.getLogger("seisan.bus.consumer")

Handler = Callable[[Envelope, AsyncSession], Awaitable[None]]

ERROR_HEADER = "Seisan-Error"
ORIGINAL_SUBJECT_HEADER = "Seisan-Original-Subject"
DELIVERIES_HEADER = "Seisan-Deliveries"
CONSUMER_HEADER = "Seisan-Consumer"
STREAM_SEQ_HEADER = "Seisan-Stream-Seq"
_MAX_ERROR_LEN = 1000
_MAX_NAK_DELAY_S = 30.0


@dataclass
class ConsumerStats:
    """What a consumer has done since it started (for metrics)."""

    handled: int = 0  # handler ran and its transaction committed
    duplicates: int = 0  # already in processed_events: acked without the handler
    dead_lettered: int = 0  # published to dlq.<durable> and terminated
    redelivered: int = 0  # deliveries with num_delivered > 1
    retried: int = 0  # nak'ed for a later retry (handler or database failure)


class EventConsumer:
    """A durable pull consumer on ``SEISAN_EVENTS`` feeding ``handler`` exactly once per event."""

    def __init__(
        self,
        bus: EventBus,
        db: Database,
        *,
        durable: str,
        filter_subjects: Sequence[str],
        handler: Handler,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        batch: int = 100,
        nak_delay: float = 0.5,
        fetch_timeout: float = 5.0,
        transaction_per_batch: bool = True,
        faults: Faults = NO_FAULTS,
    ) -> None:
        if not filter_subjects:
            raise ValueError("filter_subjects must name at least one subject")
        if max_deliver < 1:
            raise ValueError("max_deliver must be at least 1")
        self.bus = bus
        self.db = db
        self.durable = durable
        self.filter_subjects = list(filter_subjects)
        self.handler = handler
        self.max_deliver = max_deliver
        self.ack_wait = ack_wait
        self.batch = batch
        self.nak_delay = nak_delay
        self.fetch_timeout = fetch_timeout
        self.transaction_per_batch = transaction_per_batch
        self.faults = faults
        self._stats = ConsumerStats()
        self._sub: JetStreamContext.PullSubscription | None = None
        self._stopping = False

    def processed(self) -> ConsumerStats:
        """A snapshot of the counters."""
        return replace(self._stats)

    def consumer_config(self) -> ConsumerConfig:
        return ConsumerConfig(
            name=self.durable,
            durable_name=self.durable,
            deliver_policy=DeliverPolicy.ALL,
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=self.ack_wait,
            max_deliver=-1,  # enforced by this class, see the module docstring
            filter_subjects=self.filter_subjects,
            max_ack_pending=max(1000, self.batch * 10),
        )

    async def provision(self) -> None:
        """Create or update the durable consumer and bind a pull subscription to it."""
        js = self.bus.js
        await js.add_consumer(subjects.EVENTS_STREAM, config=self.consumer_config())
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await self._sub.unsubscribe()
        self._sub = await js.pull_subscribe_bind(
            durable=self.durable, stream=subjects.EVENTS_STREAM
        )

    def stop(self) -> None:
        """Finish the batch in hand, then make :meth:`run` return."""
        self._stopping = True

    async def run(self) -> None:
        """Fetch and handle until cancelled or :meth:`stop` is called."""
        if self._sub is None:
            await self.provision()
        try:
            await self._fetch_loop()
        finally:
            # Messages fetched but not handled stay unacked and go to another fetcher after
            # ack_wait; an unsubscribed inbox also lets the connection drain without waiting.
            sub, self._sub = self._sub, None
            if sub is not None:
                with contextlib.suppress(nats.errors.Error, OSError):
                    await sub.unsubscribe()

    async def _fetch_loop(self) -> None:
        backoff = self.nak_delay
        while not self._stopping:
            if self._sub is None:
                await self.provision()
            assert self._sub is not None
            try:
                msgs = await self._sub.fetch(self.batch, timeout=self.fetch_timeout)
            except (nats.errors.TimeoutError, nats.js.errors.FetchTimeoutError):
                continue
            except (nats.errors.Error, OSError) as exc:
                log.warning(
                    "consumer %s: fetch failed (%r); retrying in %.1fs", self.durable, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_NAK_DELAY_S)
                with contextlib.suppress(nats.errors.Error, OSError):
                    await self.provision()  # the consumer may have been lost with the server
                continue
            backoff = self.nak_delay
            await self.handle_batch(msgs)

    # -- one fetched batch -----------------------------------------------------------------

    async def handle_batch(self, msgs: Sequence[Msg]) -> None:
        """Handle, commit and ack (or nak / dead-letter) every message of one fetch."""
        good: list[tuple[Msg, Envelope]] = []
        for msg in msgs:
            if msg.metadata.num_delivered > 1:
                self._stats.redelivered += 1
            envelope = _decode(msg.data)
            if envelope is None:
                await self._dead_letter(msg, None, "undecodable: not a seisan.events.v1.Envelope")
            else:
                good.append((msg, envelope))
        if good:
            async with self._keep_alive([m for m, _ in good]):
                await self._handle(good)

    async def _handle(self, items: list[tuple[Msg, Envelope]]) -> None:
        """Commit ``items`` in as few transactions as failures allow.

        A handler that raises aborts its transaction; it alone is nak'ed (or
        dead-lettered) and the others are tried again without it, so each
        failing event costs exactly one handler call per delivery.
        """
        todo = items
        while todo:
            chunk = todo if self.transaction_per_batch else todo[:1]
            failure = await self._attempt(chunk)
            if failure is None:
                todo = todo[len(chunk) :]
                continue
            failed_at, exc = failure
            if failed_at is None:  # the database failed, not a handler: all of it later
                log.warning(
                    "consumer %s: database failed on %d event(s) (%r); retrying later",
                    self.durable,
                    len(chunk),
                    exc,
                )
                for msg, _ in chunk:
                    await self._retry(msg)
                todo = todo[len(chunk) :]
                continue
            msg, envelope = chunk[failed_at]
            await self._handler_failed(msg, envelope, exc)
            todo = todo[:failed_at] + todo[failed_at + 1 :]

    async def _attempt(
        self, chunk: list[tuple[Msg, Envelope]]
    ) -> tuple[int | None, Exception] | None:
        """One transaction: claim, handle, commit, ack. On failure everything is rolled back and
        the result names the index whose handler raised (None: the database failed)."""
        in_handler: int | None = None
        handled = duplicates = 0
        try:
            async with self.db.transaction() as session:
                fresh = await self._claim(session, [env.event_id for _, env in chunk])
                for index, (_, envelope) in enumerate(chunk):
                    if envelope.event_id not in fresh:
                        duplicates += 1
                        continue
                    fresh.discard(envelope.event_id)  # a twin later in the chunk is a duplicate
                    in_handler = index
                    await self.handler(envelope, session)
                    in_handler = None
                    handled += 1
        except Exception as exc:
            return in_handler, exc
        self._stats.handled += handled
        self._stats.duplicates += duplicates
        self.faults.hit("consumer.after_handle")
        for msg, _ in chunk:
            await msg.ack()
        return None

    async def _handler_failed(self, msg: Msg, envelope: Envelope, exc: Exception) -> None:
        deliveries = msg.metadata.num_delivered
        if deliveries >= self.max_deliver:
            await self._dead_letter(msg, envelope, f"{type(exc).__name__}: {exc}")
            return
        log.info(
            "consumer %s: handler failed on %s (delivery %d of %d): %r",
            self.durable,
            envelope.event_id,
            deliveries,
            self.max_deliver,
            exc,
        )
        await self._retry(msg)

    async def _claim(self, session: AsyncSession, event_ids: list[str]) -> set[str]:
        """Insert the processed_events rows; the ids that were not there before."""
        now = datetime.now(UTC)
        rows = [{"consumer": self.durable, "event_id": e, "processed_at": now} for e in event_ids]
        dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
        stmt = (
            dialect_insert(processed_events)
            .values(rows)
            .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
            .returning(processed_events.c.event_id)
        )
        result = await session.execute(stmt)
        return set(result.scalars().all())

    async def _retry(self, msg: Msg) -> None:
        """Nak with a delay that doubles with every delivery (capped)."""
        self._stats.retried += 1
        deliveries = msg.metadata.num_delivered
        delay = min(self.nak_delay * 2 ** max(deliveries - 1, 0), _MAX_NAK_DELAY_S)
        with contextlib.suppress(nats.errors.Error):
            await msg.nak(delay=delay)

    async def _dead_letter(self, msg: Msg, envelope: Envelope | None, error: str) -> None:
        """Publish the raw message to ``dlq.<durable>``, then terminate it (nak if that fails)."""
        meta = msg.metadata
        original_id = (
            envelope.event_id
            if envelope is not None and envelope.event_id
            else ((msg.headers or {}).get(MSG_ID) or f"seq-{meta.sequence.stream}")
        )
        headers = {
            MSG_ID: f"{original_id}:{self.durable}",
            ERROR_HEADER: _header_safe(error)[:_MAX_ERROR_LEN],
            ORIGINAL_SUBJECT_HEADER: msg.subject,
            DELIVERIES_HEADER: str(meta.num_delivered),
            CONSUMER_HEADER: self.durable,
            STREAM_SEQ_HEADER: str(meta.sequence.stream),
        }
        try:
            await self.bus.js.publish(
                subjects.dlq_subject(self.durable),
                msg.data,
                headers=headers,
                timeout=self.bus.ack_timeout,
            )
        except (nats.errors.Error, OSError) as exc:
            log.error(
                "consumer %s: dead-lettering stream seq %d failed (%r); will retry",
                self.durable,
                meta.sequence.stream,
                exc,
            )
            await self._retry(msg)
            return
        log.error(
            "consumer %s: dead-lettered %s after %d deliveries: %s",
            self.durable,
            original_id,
            meta.num_delivered,
            error,
        )
        self._stats.dead_lettered += 1
        with contextlib.suppress(nats.errors.Error):
            await msg.term()

    @contextlib.asynccontextmanager
    async def _keep_alive(self, msgs: list[Msg]) -> AsyncIterator[None]:
        """While a batch is worked on, tell the server every ack_wait/3 that it still is."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.ack_wait / 3)
                for msg in msgs:
                    if not msg._ackd:
                        with contextlib.suppress(nats.errors.Error):
                            await msg.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def _decode(data: bytes) -> Envelope | None:
    try:
        envelope = decode(data)
    except DecodeError:
        return None
    if not envelope.event_id or not envelope.type:
        return None
    return envelope


def _header_safe(text: str) -> str:
    """NATS headers are one line of printable text."""
    return " ".join(text.split())
