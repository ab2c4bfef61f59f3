"""Transactional outbox: an event commits with the state change, a relay publishes it afterwards.

A handler calls :func:`add_event` inside its own transaction; the event row
commits or rolls back with the business rows. :class:`OutboxRelay` then reads
unpublished rows in ``seq`` order, publishes them pipelined with
``Nats-Msg-Id`` = event id, and only after every ack marks them published.

Invariant (money depends on it): a row is marked published only after
JetStream acknowledged it. A crash between the ack and the mark republishes the
row on the next pass; JetStream drops it (same ``Nats-Msg-Id`` within the
10-minute duplicate window) and consumers' ``processed_events`` drop it after
that. So events are delivered at least once and handled exactly once.

One publisher per database:

* PostgreSQL — each pass runs in one transaction that first takes
  ``pg_try_advisory_xact_lock``; a second relay (another replica) finds the lock
  taken and skips its pass. We prefer this to ``FOR UPDATE SKIP LOCKED``,
  which would let two relays publish disjoint batches at once and so reorder
  events. The lock is transaction-scoped: a relay that dies releases it with
  its connection. The pass holds no row locks while publishing (the SELECT
  locks nothing), so writers are never blocked.
* SQLite — one process owns the file (the embedded default). The pass reads in
  one short transaction, publishes outside any transaction (so writers are not
  held on the database lock meanwhile) and marks in a second one. Should two
  relays ever race, the duplicates are dropped as above.

Rows are marked by their exact ``seq`` list, never by a range: on PostgreSQL a
transaction holding a lower ``seq`` may commit after a higher one was read.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import Row, delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_shared import tracing
from seisan_shared.bus.client import EventBus
from seisan_shared.events import Envelope
from seisan_shared.faults import NO_FAULTS, Faults
from seisan_shared.storage.db import Database
from seisan_shared.storage.tables import outbox
from seisan_shared.subjects import subject_for

log = logging.getLogger("seisan.bus.outbox")

_RELAY_LOCK_KEY = 0x5E15A0  # pg advisory lock id for "publishing the outbox"
_MAX_BACKOFF_S = 5.0
_OutboxRow = Row[int, str, str, bytes, str]  # seq, event_id, subject, payload, headers


def _row(envelope: Envelope, now: datetime) -> dict[str, object]:
    subject = subject_for(envelope.type)
    return {
        "event_id": envelope.event_id,
        "subject": subject,
        "payload": envelope.SerializeToString(),
        "headers": json.dumps(tracing.message_headers(subject, envelope.correlation_id)),
        "created_at": now,
    }


def _headers(raw: str) -> dict[str, str]:
    """The NATS headers stored with a row (correlation id, trace context); {} if unreadable."""
    try:
        loaded = json.loads(raw or "{}")
    except ValueError:
        return {}
    if not isinstance(loaded, dict):
        return {}
    return {str(k): str(v) for k, v in loaded.items()}


async def add_event(session: AsyncSession, envelope: Envelope) -> None:
    """Record ``envelope`` in the outbox, in the caller's transaction (commits with it)."""
    await session.execute(insert(outbox).values(_row(envelope, datetime.now(UTC))))


async def add_events(session: AsyncSession, envelopes: Iterable[Envelope]) -> None:
    """:func:`add_event` for many envelopes in one statement."""
    now = datetime.now(UTC)
    rows = [_row(env, now) for env in envelopes]
    if rows:
        await session.execute(insert(outbox), rows)


@dataclass
class RelayStats:
    """What a relay has done since it started (read by :mod:`seisan_shared.metrics`)."""

    published: int = 0
    passes: int = 0
    errors: int = 0
    pruned: int = 0
    published_by_subject: Counter[str] = field(default_factory=Counter)
    # As of the last lag sample: unpublished rows and the oldest one's creation time.
    pending: int = 0
    oldest_pending_at: datetime | None = None


class OutboxRelay:
    """Publishes the outbox of one database to JetStream; see the module docstring.

    ``wake()`` after a commit that added events publishes them without waiting
    for the next poll (the poll covers other processes writing the database).
    """

    def __init__(
        self,
        db: Database,
        bus: EventBus,
        *,
        batch_size: int = 1000,
        poll_interval: float = 0.25,
        keep_published: timedelta = timedelta(days=7),
        prune_every: float = 3600.0,
        lag_sample_every: float = 5.0,
        faults: Faults = NO_FAULTS,
    ) -> None:
        self.db = db
        self.bus = bus
        self.batch_size = batch_size
        self.poll_interval = poll_interval
        self.keep_published = keep_published
        self.prune_every = prune_every
        self.lag_sample_every = lag_sample_every
        self.faults = faults
        self.stats = RelayStats()
        self._wake = asyncio.Event()
        self._stopping = False

    def wake(self) -> None:
        """Nudge the relay (from the event loop's thread) to publish now."""
        self._wake.set()

    def stop(self) -> None:
        """Let :meth:`run` finish the batch in hand (publish and mark), then return."""
        self._stopping = True
        self._wake.set()

    async def flush(self) -> int:
        """Publish every unpublished row, even after :meth:`stop`; the number published."""
        total = 0
        while True:
            count = await self._publish_batch()
            total += count
            if count < self.batch_size:
                return total

    async def publish_pending(self) -> int:
        """Publish every unpublished row, batch by batch; the number published."""
        total = 0
        while True:
            count = await self._publish_batch()
            total += count
            if count < self.batch_size or self._stopping:
                return total

    async def _publish_batch(self) -> int:
        if self.db.is_sqlite:
            async with self.db.transaction() as session:
                rows = await self._unpublished(session)
            if rows:
                await self._publish(rows)
                async with self.db.transaction() as session:
                    await self._mark(session, rows)
            return len(rows)
        async with self.db.transaction() as session:
            locked = await session.scalar(
                text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": _RELAY_LOCK_KEY}
            )
            if not locked:
                return 0  # another relay is publishing this database
            rows = await self._unpublished(session)
            if rows:
                await self._publish(rows)
                await self._mark(session, rows)
            return len(rows)

    async def _unpublished(self, session: AsyncSession) -> Sequence[_OutboxRow]:
        result = await session.execute(
            select(
                outbox.c.seq,
                outbox.c.event_id,
                outbox.c.subject,
                outbox.c.payload,
                outbox.c.headers,
            )
            .where(outbox.c.published_at.is_(None))
            .order_by(outbox.c.seq)
            .limit(self.batch_size)
        )
        return result.all()

    async def _publish(self, rows: Sequence[_OutboxRow]) -> None:
        self.faults.hit("outbox.before_publish")
        await self.bus.publish_raw_many(
            [(r.subject, r.payload, r.event_id) for r in rows],
            headers=[_headers(r.headers) for r in rows],
        )
        self.faults.hit("outbox.after_publish")

    async def _mark(self, session: AsyncSession, rows: Sequence[_OutboxRow]) -> None:
        await session.execute(
            update(outbox)
            .where(outbox.c.seq.in_([r.seq for r in rows]))
            .values(published_at=datetime.now(UTC))
        )
        self.stats.published += len(rows)
        self.stats.published_by_subject.update(r.subject for r in rows)

    async def sample_lag(self) -> tuple[int, datetime | None]:
        """Count the unpublished rows and find the oldest one's time (both use the
        ``published_at, seq`` index); kept in :attr:`stats` for the metrics."""
        async with self.db.transaction() as session:
            pending = int(
                await session.scalar(
                    select(func.count()).select_from(outbox).where(outbox.c.published_at.is_(None))
                )
                or 0
            )
            oldest = await session.scalar(
                select(outbox.c.created_at)
                .where(outbox.c.published_at.is_(None))
                .order_by(outbox.c.seq)
                .limit(1)
            )
        if oldest is not None and oldest.tzinfo is None:
            oldest = oldest.replace(tzinfo=UTC)  # SQLite hands back naive datetimes
        self.stats.pending, self.stats.oldest_pending_at = pending, oldest
        return pending, oldest

    async def prune(self) -> int:
        """Delete rows published more than ``keep_published`` ago; the number deleted."""
        cutoff = datetime.now(UTC) - self.keep_published
        async with self.db.transaction() as session:
            result = await session.execute(
                delete(outbox).where(
                    outbox.c.published_at.is_not(None), outbox.c.published_at < cutoff
                )
            )
        deleted = int(getattr(result, "rowcount", 0) or 0)
        self.stats.pruned += deleted
        return deleted

    async def run(self) -> None:
        """Publish until cancelled or stopped: after every wake, else every ``poll_interval``.

        Errors (bus down, database busy) are logged and retried with backoff;
        unpublished rows simply stay in the outbox until a pass succeeds.
        """
        backoff = self.poll_interval
        next_prune = next_lag_sample = time.monotonic()
        while not self._stopping:
            self._wake.clear()
            try:
                if time.monotonic() >= next_lag_sample:
                    # Before publishing: a relay that cannot publish still reports its lag.
                    next_lag_sample = time.monotonic() + self.lag_sample_every
                    await self.sample_lag()
                if await self.publish_pending():
                    # Drained what it saw; rows committed meanwhile show at the next sample.
                    self.stats.pending, self.stats.oldest_pending_at = 0, None
                if time.monotonic() >= next_prune:
                    await self.prune()
                    next_prune = time.monotonic() + self.prune_every
            except Exception as exc:  # the relay must outlive any one failure
                self.stats.errors += 1
                log.warning("outbox relay: pass failed, retrying in %.1fs: %r", backoff, exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, _MAX_BACKOFF_S)
                continue
            finally:
                self.stats.passes += 1
            backoff = self.poll_interval
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)


async def stop_relay(
    relay: OutboxRelay, task: asyncio.Task[None], grace: float = 10.0, flush_timeout: float = 10.0
) -> None:
    """Stop ``relay`` running in ``task``, then publish what the last calls committed.

    The relay is asked to stop and finishes the batch in hand; only past ``grace``
    seconds is its task cancelled. Cancelling at once could cut a pass short inside
    its database transaction, and the final flush would then wait on that
    transaction's lock. A flush that cannot finish within ``flush_timeout`` (bus
    gone) is given up: the rows stay in the outbox and the next start publishes
    them.
    """
    relay.stop()
    done, _ = await asyncio.wait({task}, timeout=grace)
    if not done:
        log.warning("outbox relay: still busy after %.1fs; cancelling", grace)
        task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    try:
        await asyncio.wait_for(relay.flush(), flush_timeout)
    except Exception as exc:  # shutting down: leave the rows for the next start
        log.warning("outbox relay: final flush failed (%r); rows stay for the next start", exc)
