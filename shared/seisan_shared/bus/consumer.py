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
outside the handler (begin, the ``processed_events`` insert, a commit that
fails on a lost connection or a locked database) are infrastructure trouble:
nak'ed with backoff, never dead-lettered. A commit that refuses what the
handler wrote (a deferred constraint, an autoflushed row) counts as that
handler's failure.

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
import json
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import nats.errors
import nats.js.errors
from google.protobuf.message import DecodeError
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from sqlalchemy import Insert
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared import context, subjects, tracing
from seisan_shared.bus.client import MSG_ID, BusError, EventBus
from seisan_shared.events import Envelope, decode
from seisan_shared.faults import NO_FAULTS, Faults
from seisan_shared.storage.db import Database
from seisan_shared.storage.tables import processed_events

log = logging.getLogger("seisan.bus.consumer")

Handler = Callable[[Envelope, AsyncSession], Awaitable[None]]
# Slow work (OCR, a remote call) done before the transaction opens; its result is
# passed to the handler as a third argument. A prepare that raises counts as a
# handler failure (retried, then dead-lettered).
Prepare = Callable[[Envelope], Awaitable[Any]]
PreparedHandler = Callable[[Envelope, AsyncSession, Any], Awaitable[None]]

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
    batches: int = 0  # fetches that returned messages (handled+duplicates / batches = batch fill)


@dataclass(frozen=True)
class _Failure:
    handler_index: int | None  # the handler that raised, if one did
    error: Exception
    refused_at_commit: bool  # the commit rejected what the handlers wrote


def _is_infrastructure(exc: Exception) -> bool:
    """The database or network failed (retry later), as opposed to refusing the data."""
    if isinstance(exc, OperationalError | InterfaceError | OSError | TimeoutError):
        return True
    return isinstance(exc, DBAPIError) and exc.connection_invalidated


class EventConsumer:
    """A durable pull consumer on ``SEISAN_EVENTS`` feeding ``handler`` exactly once per event.

    ``handler(envelope, session)`` writes through ``session`` and must not
    commit; see the module docstring for what happens when it raises.
    ``batch`` is the most messages one fetch takes: large for quick handlers,
    small (even 1) for slow ones such as OCR, so that work spreads over every
    process sharing the ``durable``. While a batch is worked on, the server is
    told every ``ack_wait / 3`` seconds that it still is, so slow batches are
    not redelivered elsewhere. ``fetch_timeout`` is how long one pull request
    waits when the stream is idle (a new event still arrives at once).
    """

    def __init__(
        self,
        bus: EventBus,
        db: Database,
        *,
        durable: str,
        filter_subjects: Sequence[str],
        handler: Handler | PreparedHandler,
        max_deliver: int = 5,
        ack_wait: float = 30.0,
        batch: int = 100,
        nak_delay: float = 0.5,
        fetch_timeout: float = 5.0,
        transaction_per_batch: bool = True,
        faults: Faults = NO_FAULTS,
        prepare: Prepare | None = None,
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
        self.prepare = prepare
        self._prepared: dict[str, Any] = {}
        self._stats = ConsumerStats()
        self._puller: _Puller | None = None
        self._claim_stmt: Insert | None = None
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
        """Create or update the durable consumer (idempotent) and start pulling from it."""
        await self.bus.until_available(
            f"consumer {self.durable}",
            lambda: self.bus.js.add_consumer(subjects.EVENTS_STREAM, config=self.consumer_config()),
        )
        if self._puller is None:
            self._puller = _Puller(self.bus, subjects.EVENTS_STREAM, self.durable)
            await self._puller.start()
            if self._stopping:  # stop() came while provisioning
                self._puller.interrupt()

    def stop(self) -> None:
        """Finish the batch in hand, then make :meth:`run` return (an idle fetch ends at once)."""
        self._stopping = True
        if self._puller is not None:
            self._puller.interrupt()

    async def run(self) -> None:
        """Fetch and handle until cancelled or :meth:`stop` is called."""
        try:
            await self._fetch_loop()
        finally:
            # Messages fetched but not handled stay unacked: the server hands them to another
            # fetcher after ack_wait.
            puller, self._puller = self._puller, None
            if puller is not None:
                await puller.stop()

    async def _fetch_loop(self) -> None:
        backoff = self.nak_delay
        while not self._stopping:
            try:
                if self._puller is None:
                    await self.provision()
                assert self._puller is not None
                msgs = await self._puller.fetch(self.batch, self.fetch_timeout)
            except (nats.errors.Error, OSError, BusError) as exc:
                log.warning(
                    "consumer %s: fetch failed (%r); retrying in %.1fs", self.durable, exc, backoff
                )
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_NAK_DELAY_S)
                with contextlib.suppress(nats.errors.Error, OSError, BusError):
                    await self.provision()  # the consumer may have been lost with the server
                continue
            backoff = self.nak_delay
            if msgs:
                await self.handle_batch(msgs)

    # -- one fetched batch -----------------------------------------------------------------

    async def handle_batch(self, msgs: Sequence[Msg]) -> None:
        """Handle, commit and ack (or nak / dead-letter) every message of one fetch."""
        self._stats.batches += 1
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
                try:
                    ready = await self._prepare_all(good) if self.prepare else good
                    await self._handle(ready)
                finally:
                    self._prepared.clear()

    async def _prepare_all(self, items: list[tuple[Msg, Envelope]]) -> list[tuple[Msg, Envelope]]:
        """Run ``prepare`` for each message outside any transaction (no lock held meanwhile)."""
        assert self.prepare is not None
        ready: list[tuple[Msg, Envelope]] = []
        for msg, envelope in items:
            try:
                with self._event_scope(msg, envelope, "prepare"):
                    self._prepared[envelope.event_id] = await self.prepare(envelope)
            except Exception as exc:
                await self._handler_failed(msg, envelope, exc)
                continue
            ready.append((msg, envelope))
        return ready

    async def _handle(self, items: list[tuple[Msg, Envelope]]) -> None:
        """Commit ``items`` in as few transactions as failures allow.

        A handler that raises aborts its transaction; it alone is nak'ed (or
        dead-lettered) and the others are tried again without it, so each
        failing event costs exactly one handler call per delivery. If the
        commit itself refuses the handlers' writes (a deferred constraint, say),
        the batch is redone one event per transaction to find the culprit.
        """
        todo = items
        one_by_one = not self.transaction_per_batch
        while todo:
            chunk = todo[:1] if one_by_one else todo
            failure = await self._attempt(chunk)
            if failure is None:
                todo = todo[len(chunk) :]
            elif failure.handler_index is not None:
                msg, envelope = chunk[failure.handler_index]
                await self._handler_failed(msg, envelope, failure.error)
                todo = todo[: failure.handler_index] + todo[failure.handler_index + 1 :]
            elif failure.refused_at_commit and len(chunk) > 1:
                one_by_one = True
            elif failure.refused_at_commit:
                await self._handler_failed(chunk[0][0], chunk[0][1], failure.error)
                todo = todo[1:]
            else:  # the database failed, not a handler: all of it later
                log.warning(
                    "consumer %s: database failed on %d event(s) (%r); retrying later",
                    self.durable,
                    len(chunk),
                    failure.error,
                )
                for msg, _ in chunk:
                    await self._retry(msg)
                todo = todo[len(chunk) :]

    async def _attempt(self, chunk: list[tuple[Msg, Envelope]]) -> _Failure | None:
        """One transaction: claim, handle, commit, then ack. None if it all went through;
        otherwise everything was rolled back and the failure says where it happened."""
        in_handler: int | None = None
        committing = False
        handled = duplicates = 0
        try:
            async with self.db.transaction() as session:
                fresh = await self._claim(session, [env.event_id for _, env in chunk])
                for index, (msg, envelope) in enumerate(chunk):
                    if envelope.event_id not in fresh:
                        duplicates += 1
                        continue
                    fresh.discard(envelope.event_id)  # a twin later in the chunk is a duplicate
                    in_handler = index
                    with self._event_scope(msg, envelope, "process"):
                        if self.prepare is not None:
                            prepared = self._prepared.get(envelope.event_id)
                            await self.handler(envelope, session, prepared)  # type: ignore[call-arg]
                        else:
                            await self.handler(envelope, session)  # type: ignore[call-arg]
                    in_handler = None
                    handled += 1
                committing = True
        except Exception as exc:
            refused = committing and handled > 0 and not _is_infrastructure(exc)
            return _Failure(in_handler, exc, refused)
        self._stats.handled += handled
        self._stats.duplicates += duplicates
        self.faults.hit("consumer.after_handle")
        # A lost ack only means a redelivery, which processed_events turns into a no-op.
        with contextlib.suppress(nats.errors.Error, OSError):
            for msg, _ in chunk:
                await msg.ack()
        return None

    @contextlib.contextmanager
    def _event_scope(self, msg: Msg, envelope: Envelope, operation: str) -> Iterator[None]:
        """Bind the event's correlation id (log lines, events the handler emits) and open its
        consumer span (a child of the producer's, from the ``traceparent`` header)."""
        headers = msg.headers or {}
        cid = (
            envelope.correlation_id
            or headers.get(tracing.CORRELATION_HEADER)
            or envelope.event_id  # an event from before correlation ids: still one thread
        )
        with (
            context.correlated(cid),
            tracing.consumer_span(
                headers,
                subject=msg.subject,
                consumer=self.durable,
                event_id=envelope.event_id,
                correlation_id=cid,
                operation=operation,
            ),
        ):
            yield

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
        if self._claim_stmt is None:
            dialect_insert = sqlite.insert if self.db.is_sqlite else postgresql.insert
            self._claim_stmt = (
                dialect_insert(processed_events)
                .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
                .returning(processed_events.c.event_id)
            )
        now = datetime.now(UTC)
        rows = [{"consumer": self.durable, "event_id": e, "processed_at": now} for e in event_ids]
        result = await session.execute(self._claim_stmt, rows)
        return set(result.scalars().all())

    async def _retry(self, msg: Msg) -> None:
        """Nak with a delay that doubles with every delivery (capped)."""
        self._stats.retried += 1
        deliveries = msg.metadata.num_delivered
        delay = min(self.nak_delay * 2 ** max(deliveries - 1, 0), _MAX_NAK_DELAY_S)
        with contextlib.suppress(nats.errors.Error, OSError):
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
        cid = (envelope.correlation_id if envelope else "") or (msg.headers or {}).get(
            tracing.CORRELATION_HEADER, ""
        )
        if cid:
            headers[tracing.CORRELATION_HEADER] = _header_safe(cid)
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
        with contextlib.suppress(nats.errors.Error, OSError):
            await msg.term()

    @contextlib.asynccontextmanager
    async def _keep_alive(self, msgs: list[Msg]) -> AsyncIterator[None]:
        """While a batch is worked on, tell the server every ack_wait/3 that it still is."""

        async def beat() -> None:
            while True:
                await asyncio.sleep(self.ack_wait / 3)
                for msg in msgs:
                    if not msg.is_acked:
                        with contextlib.suppress(nats.errors.Error):
                            await msg.in_progress()

        task = asyncio.create_task(beat())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


class _Puller:
    """Pull requests for one durable, without nats-py's per-message task in ``fetch``.

    Each request asks for up to ``batch`` messages with ``no_wait`` and an
    expiry: the server answers at once with what it has, or waits for the
    first message, then ends the request with a status (404/408). Messages are
    collected by one subscription callback; a message arriving for an earlier
    request (after a local timeout) is kept for the next fetch, never lost.
    """

    def __init__(self, bus: EventBus, stream: str, durable: str) -> None:
        self._bus = bus
        self._next_subject = f"$JS.API.CONSUMER.MSG.NEXT.{stream}.{durable}"
        self._prefix = bus.nc.new_inbox()
        self._sub: Subscription | None = None
        self._request = 0
        self._buffer: list[Msg] = []
        self._want = 0
        self._done: asyncio.Future[None] | None = None
        self._error: str | None = None
        self._interrupted = False

    async def start(self) -> None:
        self._sub = await self._bus.nc.subscribe(f"{self._prefix}.*", cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            with contextlib.suppress(nats.errors.Error, OSError):
                await self._sub.unsubscribe()
            self._sub = None

    async def fetch(self, batch: int, expires: float) -> list[Msg]:
        """Up to ``batch`` messages; an empty list if none came within ``expires`` seconds."""
        if len(self._buffer) < batch and not self._interrupted:
            self._request += 1
            self._want = batch
            self._done = asyncio.get_running_loop().create_future()
            request = {"batch": batch - len(self._buffer), "expires": int(expires * 1e9)}
            request["no_wait"] = True
            await self._bus.nc.publish(
                self._next_subject,
                json.dumps(request).encode(),
                reply=f"{self._prefix}.{self._request}",
            )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done, expires + 1.0)
            self._done = None
        msgs, self._buffer = self._buffer[:batch], self._buffer[batch:]
        if not msgs and self._error is not None:
            error, self._error = self._error, None
            raise nats.js.errors.Error(f"pull request failed: {error}")
        return msgs

    async def _on_msg(self, msg: Msg) -> None:
        status = msg.headers.get("Status") if msg.headers else None
        if status is None:
            self._buffer.append(msg)
            if len(self._buffer) >= self._want:
                self._finish()
        elif status == "100":
            return  # idle heartbeat
        elif msg.subject.endswith(f".{self._request}"):
            if status == "409":
                # e.g. "Consumer Deleted": the caller provisions again.
                self._error = (msg.headers or {}).get("Description", "409")
            self._finish()

    def _finish(self) -> None:
        if self._done is not None and not self._done.done():
            self._done.set_result(None)

    def interrupt(self) -> None:
        """End the fetch in progress now with whatever it has; later fetches return at once."""
        self._interrupted = True
        self._finish()


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


async def stop_consumer(
    consumer: EventConsumer, task: asyncio.Task[None], grace: float = 10.0
) -> None:
    """Stop ``consumer`` running in ``task``: finish the batch in hand, unsubscribe, return.

    Only past ``grace`` seconds is the task cancelled. Cancelling at once would cut
    the unsubscribe short and leave a subscription behind that makes the bus's
    drain wait out its whole timeout when the service closes.
    """
    consumer.stop()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
