"""The event bus client every service holds: one NATS connection, JetStream, the two streams.

Streams are provisioned in code (:meth:`EventBus.ensure_streams`), so a fresh
server, a restarted one and a three-node cluster all end up with the same
configuration. Every published message carries ``Nats-Msg-Id`` = the event id,
so JetStream drops a republished duplicate within the 10-minute window.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Awaitable, Callable, Mapping, Sequence
from types import TracebackType
from typing import TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.api import (
    ConsumerConfig,
    DeliverPolicy,
    PubAck,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from seisan_shared import subjects, tracing
from seisan_shared.events import Envelope

log = logging.getLogger("seisan.bus")

MSG_ID = "Nats-Msg-Id"
DUPLICATE_WINDOW_S = 600.0
_STREAM_NAME_IN_USE = 10058
T = TypeVar("T")
# What a JetStream API request meets while a node is down or a leader is being elected.
_TRANSIENT = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.js.errors.ServiceUnavailableError,
    nats.js.errors.ServerError,
    TimeoutError,
)


class BusError(RuntimeError):
    """The bus could not do what was asked (not connected, no ack, stream misconfigured)."""


class PublishError(BusError):
    """At least one publish of a batch was not acknowledged; nothing may be marked published."""

    def __init__(self, message: str, *, acked: int, failed: int) -> None:
        super().__init__(message)
        self.acked = acked
        self.failed = failed


def events_stream_config(replicas: int = 1) -> StreamConfig:
    """``SEISAN_EVENTS``: every ``seisan.>`` event, fsynced file storage, 10-minute dedup window."""
    return StreamConfig(
        name=subjects.EVENTS_STREAM,
        description="Seisan domain events (Envelope protobuf, Nats-Msg-Id = event_id)",
        subjects=list(subjects.EVENTS_SUBJECTS),
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


def dlq_stream_config(replicas: int = 1) -> StreamConfig:
    """``SEISAN_DLQ``: ``dlq.<durable>``, the events a consumer gave up on, kept for a person."""
    return StreamConfig(
        name=subjects.DLQ_STREAM,
        description="Dead letters: events a durable consumer could not handle",
        subjects=[f"{subjects.DLQ_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW_S,
    )


class EventBus:
    """A NATS connection that reconnects forever, with JetStream and Seisan's streams.

    ``url`` may list several servers, comma-separated (the seeds of a cluster).
    ``user``/``password`` and ``tls`` (an SSL context, used when the server
    requires TLS or the URL says ``tls://``) come from
    :meth:`seisan_shared.transport.TransportConfig.bus_options`.
    ``window`` bounds the publishes in flight in :meth:`publish_raw_many`;
    ``ack_timeout`` bounds how long any publish waits for JetStream's ack.
    """

    def __init__(
        self,
        url: str,
        *,
        name: str,
        connect_timeout: float | None = 30.0,
        reconnect_wait: float = 0.5,
        ack_timeout: float = 10.0,
        window: int = 500,
        user: str | None = None,
        password: str | None = None,
        tls: ssl.SSLContext | None = None,
        inbox_prefix: str | None = None,
        provision_timeout: float = 60.0,
    ) -> None:
        self.url = url
        self.provision_timeout = provision_timeout
        self.name = name
        self._user = user
        self._password = password
        self._tls = tls
        self._inbox_prefix = inbox_prefix or subjects.INBOX_PREFIX
        self._connect_timeout = connect_timeout
        self._reconnect_wait = reconnect_wait
        self.ack_timeout = ack_timeout
        self.window = window
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._pipeline: _AckPipeline | None = None
        self._closing = False

    # -- connection ------------------------------------------------------------------------

    async def connect(self) -> EventBus:
        """Connect (retrying until ``connect_timeout``); later drops reconnect forever."""
        nc = Client()
        try:
            await asyncio.wait_for(
                nc.connect(
                    # "nats://a:4222,nats://b:4222": every server of a cluster, to fail over
                    servers=[u.strip() for u in self.url.split(",") if u.strip()],
                    name=self.name,
                    user=self._user,
                    password=self._password,
                    tls=self._tls,
                    inbox_prefix=self._inbox_prefix,
                    allow_reconnect=True,
                    max_reconnect_attempts=-1,
                    reconnect_time_wait=self._reconnect_wait,  # type: ignore[arg-type]
                    connect_timeout=2,
                    ping_interval=10,
                    max_outstanding_pings=3,
                    drain_timeout=5,
                    error_cb=self._on_error,
                    disconnected_cb=self._on_disconnected,
                    reconnected_cb=self._on_reconnected,
                ),
                timeout=self._connect_timeout,
            )
        except TimeoutError:
            await nc.close()
            raise BusError(
                f"could not connect to NATS at {self.url} within {self._connect_timeout}s"
            ) from None
        self._nc = nc
        self._pipeline = None
        self._closing = False
        self._js = nc.jetstream(timeout=self.ack_timeout, publish_async_max_pending=self.window)
        return self

    async def close(self) -> None:
        """Drain (finish in-flight work, flush) and close."""
        nc, self._nc, self._js = self._nc, None, None
        self._closing = True
        if nc is None or nc.is_closed:
            return
        try:
            await nc.drain()
        except (nats.errors.Error, TimeoutError, OSError) as exc:
            log.warning("bus %s: drain failed (%s); closing", self.name, exc)
            # With the server gone, close's own flush fails too; the connection is shut
            # either way, and a stopping service must not exit non-zero for it.
            with contextlib.suppress(nats.errors.Error, TimeoutError, OSError):
                await nc.close()

    async def __aenter__(self) -> EventBus:
        return await self.connect()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    @property
    def nc(self) -> Client:
        if self._nc is None:
            raise BusError("EventBus.connect() has not been called")
        return self._nc

    @property
    def js(self) -> JetStreamContext:
        if self._js is None:
            raise BusError("EventBus.connect() has not been called")
        return self._js

    @property
    def is_connected(self) -> bool:
        return self._nc is not None and self._nc.is_connected

    async def _on_error(self, exc: Exception) -> None:
        log.warning("bus %s: %s", self.name, exc or type(exc).__name__)

    async def _on_disconnected(self) -> None:
        if self._closing:
            return
        log.warning("bus %s: disconnected from %s, reconnecting", self.name, self.url)

    async def _on_reconnected(self) -> None:
        log.info("bus %s: reconnected", self.name)

    # -- streams ---------------------------------------------------------------------------

    async def ensure_streams(self, replicas: int = 1) -> None:
        """Create or update ``SEISAN_EVENTS`` and ``SEISAN_DLQ``; safe from every replica."""
        for config in (events_stream_config(replicas), dlq_stream_config(replicas)):
            await self.ensure_stream(config)

    async def ensure_stream(self, config: StreamConfig) -> None:
        """Create ``config.name``, or bring an existing stream to ``config`` (idempotent)."""

        async def ensure() -> None:
            js = self.js
            try:
                await js.add_stream(config)
                return
            except nats.js.errors.BadRequestError as exc:
                if exc.err_code != _STREAM_NAME_IN_USE:
                    raise
            await js.update_stream(config)

        await self.until_available(f"stream {config.name}", ensure)

    async def until_available(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()`` (a JetStream API request), again while JetStream is briefly unavailable.

        A process that starts while a cluster node is down, or while a stream or the
        meta group elects a leader, gets timeouts, no responders or 503s for a few
        seconds; it waits that out (up to ``provision_timeout``) instead of dying.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.provision_timeout
        delay = 0.2
        while True:
            try:
                return await call()
            except _TRANSIENT as exc:
                if loop.time() + delay > deadline:
                    raise BusError(
                        f"{what}: JetStream unavailable for {self.provision_timeout:.0f}s ({exc!r})"
                    ) from exc
                log.warning(
                    "bus %s: %s: JetStream unavailable (%r); retrying", self.name, what, exc
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 2.0)

    # -- publishing ------------------------------------------------------------------------

    async def publish(self, envelope: Envelope) -> int:
        """Publish one event and await its ack; its stream seq (the original's if a duplicate)."""
        ack: PubAck = await self.js.publish(
            subjects.subject_for(envelope.type),
            envelope.SerializeToString(),
            timeout=self.ack_timeout,
            headers={
                **tracing.message_headers(
                    subjects.subject_for(envelope.type), envelope.correlation_id
                ),
                MSG_ID: envelope.event_id,
            },
        )
        return ack.seq

    async def publish_raw_many(
        self,
        items: Sequence[tuple[str, bytes, str]],
        *,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> int:
        """Publish ``(subject, data, msg_id)`` items, ``window`` in flight; wait for every ack.

        ``headers``, if given, holds extra NATS headers for each item (same
        order): the correlation id and trace context the outbox stored.
        Returns the number acknowledged (duplicates included: JetStream already
        holds them). Raises :class:`PublishError` if any was not acknowledged,
        so the caller must not record any of them as published.
        """
        if not items:
            return 0
        if headers is not None and len(headers) != len(items):
            raise ValueError(f"{len(headers)} header sets for {len(items)} items")
        if self._pipeline is None:
            self._pipeline = _AckPipeline(self.nc, self.window)
        return await self._pipeline.publish(items, self.ack_timeout, headers)


class _AckPipeline:
    """Pipelined JetStream publishes, the way ``js.publish_async`` does it but leaner.

    Every publish of one batch carries the same reply subject; one wildcard
    subscription counts the acks (and spots errors) as they come back. This
    spares, per message, the future, the token, the JSON parse and the PubAck
    object of ``publish_async`` — about half the client's cost — and publishes
    never yield to the loop until the window is full, so they leave in large
    writes. One batch at a time per connection; ordering is NATS's (per
    connection, in order).
    """

    def __init__(self, nc: Client, window: int) -> None:
        self._nc = nc
        self._window = window
        self._prefix = nc.new_inbox()
        self._sub: Subscription | None = None
        self._lock = asyncio.Lock()
        self._batch = 0
        self._reply = ""
        self._answered = 0
        self._errors: list[bytes] = []
        self._wake_at = 0
        self._waiter: asyncio.Future[None] | None = None

    async def publish(
        self,
        items: Sequence[tuple[str, bytes, str]],
        ack_timeout: float,
        headers: Sequence[Mapping[str, str]] | None = None,
    ) -> int:
        async with self._lock:
            if self._sub is None:
                self._sub = await self._nc.subscribe(f"{self._prefix}.*", cb=self._on_ack)
            self._batch += 1
            self._reply = reply = f"{self._prefix}.{self._batch}"
            self._answered = 0
            self._errors = []
            sent = 0
            publish = self._nc.publish
            try:
                for index, (subject, data, msg_id) in enumerate(items):
                    if sent - self._answered >= self._window:
                        await self._until(sent - self._window // 2, ack_timeout)
                    extra = headers[index] if headers is not None else None
                    await publish(
                        subject,
                        data,
                        reply=reply,
                        headers={**extra, MSG_ID: msg_id} if extra else {MSG_ID: msg_id},
                    )
                    sent += 1
                await self._until(sent, ack_timeout)
            except TimeoutError:
                pass  # counted below
            except (nats.errors.Error, OSError) as exc:
                raise PublishError(
                    f"publish failed after {sent} of {len(items)}: {exc!r}",
                    acked=0,
                    failed=len(items),
                ) from exc
            finally:
                self._reply = ""  # late acks of this batch are ignored from now on
            acked = self._answered - len(self._errors)
            if acked != len(items):
                first = self._errors[0][:200].decode(errors="replace") if self._errors else None
                raise PublishError(
                    f"{len(items) - acked} of {len(items)} publishes not acknowledged "
                    f"(first error: {first or 'no ack in time'})",
                    acked=acked,
                    failed=len(items) - acked,
                )
            return acked

    async def _until(self, answered: int, ack_timeout: float) -> None:
        """Wait until ``answered`` acks are in; TimeoutError if they stop coming."""
        while self._answered < answered:
            before = self._answered
            self._wake_at = answered
            self._waiter = asyncio.get_running_loop().create_future()
            try:
                await asyncio.wait_for(self._waiter, ack_timeout)
            except TimeoutError:
                if self._answered == before:
                    raise
            finally:
                self._waiter = None

    async def _on_ack(self, msg: Msg) -> None:
        if msg.subject != self._reply:
            return
        self._answered += 1
        # An ack is a JSON PubAck; failures are {"error": ...} or a bare 503 (no stream).
        if not msg.data or b'"error"' in msg.data:
            self._errors.append(msg.data or b"no stream for this subject (503)")
        if self._answered >= self._wake_at and self._waiter is not None:
            if not self._waiter.done():
                self._waiter.set_result(None)


async def stored_messages(
    js: JetStreamContext,
    subject: str,
    *,
    stream: str = subjects.EVENTS_STREAM,
    within: float = 60.0,
) -> list[bytes]:
    """Every message stored on ``subject`` right now, oldest first (for checks and audits).

    Reads exactly the count the server reports pending for a fresh ephemeral
    consumer — a fetch that times out proves nothing on a busy machine — and
    gives up with TimeoutError after ``within`` seconds.
    """
    sub = await js.pull_subscribe(
        subject,
        durable=None,
        stream=stream,
        config=ConsumerConfig(deliver_policy=DeliverPolicy.ALL),
    )
    try:
        remaining = (await sub.consumer_info()).num_pending or 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        found: list[bytes] = []
        while remaining > 0:
            if loop.time() > deadline:
                raise TimeoutError(f"{remaining} stored messages on {subject} not read")
            try:
                msgs = await sub.fetch(min(500, remaining), timeout=5)
            except (TimeoutError, nats.errors.TimeoutError):
                continue
            for msg in msgs:
                found.append(msg.data)
                await msg.ack()
            remaining -= len(msgs)
        return found
    finally:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
