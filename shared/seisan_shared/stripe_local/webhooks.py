"""Signed webhook delivery with retries, duplicates and reordering on request.

Each event goes to every endpoint whose ``enabled_events`` match, as Stripe
sends it: a JSON body and a ``Stripe-Signature: t=<unix time>,v1=<hex>`` header,
where ``v1 = HMAC-SHA256(secret, f"{t}.{body}")`` — what
``stripe.Webhook.construct_event(body, header, secret)`` verifies. The
timestamp is wall time at each attempt (not the server's test clock), because
receivers check it against their own clock.

An attempt succeeds on any 2xx answer. Otherwise (other status, refused
connection, no answer within ``timeout``) it is retried after
``first_retry * backoff**(n-1)`` seconds (at most ``max_retry``), up to
``max_attempts`` attempts in all; then the delivery is given up and counted.
With ``concurrency=1`` (the default) deliveries to an endpoint leave in event
order unless a retry or a fault reorders them — Stripe itself promises no order.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from seisan_shared.stripe_local import wire
from seisan_shared.stripe_local.faults import FaultPlan

log = logging.getLogger(__name__)


def signature_header(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The ``Stripe-Signature`` value for ``payload`` signed with ``secret``."""
    t = int(time.time()) if timestamp is None else timestamp
    mac = hmac.new(secret.encode(), f"{t}.{payload}".encode(), hashlib.sha256)
    return f"t={t},v1={mac.hexdigest()}"


@dataclass(frozen=True)
class WebhookEndpoint:
    url: str
    secret: str
    enabled_events: tuple[str, ...] = ("*",)

    def wants(self, event_type: str) -> bool:
        return any(fnmatch.fnmatchcase(event_type, p) for p in self.enabled_events)


@dataclass(frozen=True)
class DeliveryPolicy:
    max_attempts: int = 8
    first_retry: float = 0.1
    backoff: float = 2.0
    max_retry: float = 5.0
    timeout: float = 10.0
    concurrency: int = 1
    duplicate_delay: float = 0.05
    hold_limit: float = 2.0  # an out-of-order event waits at most this long for a later one

    def retry_delay(self, attempt: int) -> float:
        return float(min(self.first_retry * self.backoff ** (attempt - 1), self.max_retry))


@dataclass
class Attempt:
    event_id: str
    event_type: str
    url: str
    attempt: int
    status: int | None  # None: no answer (refused, reset, timeout)
    duplicate: bool


@dataclass(eq=False)
class _Delivery:
    endpoint: WebhookEndpoint
    event_id: str
    seq: int  # publication order, to tell a later event from an earlier one
    attempt: int = 1
    duplicate: bool = False


@dataclass
class DeliveryStats:
    attempts: int = 0
    delivered: int = 0
    failed_attempts: int = 0
    given_up: int = 0
    duplicates: int = 0
    reordered: int = 0
    log: list[Attempt] = field(default_factory=list)

    def to_json(self) -> dict[str, int]:
        return {
            "attempts": self.attempts,
            "delivered": self.delivered,
            "failed_attempts": self.failed_attempts,
            "given_up": self.given_up,
            "duplicates": self.duplicates,
            "reordered": self.reordered,
        }


class WebhookDispatcher:
    """Queues events for the endpoints and delivers them from ``concurrency`` workers.

    ``events`` looks an event up by id at send time (so ``pending_webhooks`` in the
    body is current); ``on_delivered(event_id)`` is called once per endpoint when
    the first attempt for it succeeds.
    """

    def __init__(
        self,
        endpoints: Sequence[WebhookEndpoint],
        events: Callable[[str], dict[str, Any]],
        on_delivered: Callable[[str], None],
        faults: FaultPlan,
        policy: DeliveryPolicy | None = None,
        keep_log: bool = True,
    ) -> None:
        self.endpoints = list(endpoints)
        self.policy = policy or DeliveryPolicy()
        self.stats = DeliveryStats()
        self._events = events
        self._on_delivered = on_delivered
        self._faults = faults
        self._keep_log = keep_log
        self._queue: asyncio.Queue[_Delivery] = asyncio.Queue()
        self._workers: list[asyncio.Task[None]] = []
        self._timers: set[asyncio.TimerHandle] = set()
        self._held: list[_Delivery] = []
        self._succeeded: set[tuple[str, str]] = set()
        self._outstanding = 0
        self._published = 0
        self._idle = asyncio.Event()
        self._idle.set()

    def endpoints_for(self, event_type: str) -> list[WebhookEndpoint]:
        return [e for e in self.endpoints if e.wants(event_type)]

    def start(self) -> None:
        for i in range(max(1, self.policy.concurrency)):
            self._workers.append(asyncio.create_task(self._work(), name=f"webhook-{i}"))

    async def stop(self) -> None:
        for timer in self._timers:
            timer.cancel()
        self._timers.clear()
        for task in self._workers:
            task.cancel()
        await asyncio.gather(*self._workers, return_exceptions=True)
        self._workers.clear()

    def publish(self, event: dict[str, Any]) -> None:
        """Queue ``event`` for every endpoint that wants it, applying webhook faults."""
        self._published += 1
        for endpoint in self.endpoints_for(event["type"]):
            faults = self._faults.for_event(event["type"])
            delivery = _Delivery(endpoint, event["id"], self._published)
            self._track(+1)
            if "webhook_out_of_order" in faults:
                self.stats.reordered += 1
                self._held.append(delivery)
                self._later(self.policy.hold_limit, functools.partial(self._release, delivery))
            else:
                self._queue.put_nowait(delivery)
            if "webhook_duplicate" in faults:
                self.stats.duplicates += 1
                copy = _Delivery(endpoint, event["id"], self._published, duplicate=True)
                self._track(+1)
                self._later(
                    self.policy.duplicate_delay, functools.partial(self._queue.put_nowait, copy)
                )

    def resend(self, event: dict[str, Any]) -> None:
        """Deliver an event again (like "Resend" in Stripe's dashboard)."""
        for endpoint in self.endpoints_for(event["type"]):
            self._track(+1)
            self._queue.put_nowait(_Delivery(endpoint, event["id"], 0, duplicate=True))

    async def wait_idle(self, wait_seconds: float | None = None) -> bool:
        """True once nothing is queued, held, in flight or waiting to be retried."""
        try:
            await asyncio.wait_for(self._idle.wait(), wait_seconds)
        except TimeoutError:
            return False
        return True

    @property
    def outstanding(self) -> int:
        return self._outstanding

    def _track(self, delta: int) -> None:
        self._outstanding += delta
        if self._outstanding == 0:
            self._idle.set()
        else:
            self._idle.clear()

    def _later(self, delay: float, callback: Callable[[], None]) -> None:
        loop = asyncio.get_running_loop()
        handle: asyncio.TimerHandle

        def run() -> None:
            self._timers.discard(handle)
            callback()

        handle = loop.call_later(delay, run)
        self._timers.add(handle)

    def _release(self, delivery: _Delivery) -> None:
        if delivery in self._held:
            self._held.remove(delivery)
            self._queue.put_nowait(delivery)

    def _release_held(self, after: _Delivery) -> None:
        """Let go of held deliveries to the same endpoint of events published before ``after``."""
        for held in [d for d in self._held if d.endpoint == after.endpoint and d.seq < after.seq]:
            self._release(held)

    async def _work(self) -> None:
        while True:
            delivery = await self._queue.get()
            try:
                await self._attempt(delivery)
            except Exception:
                log.exception("webhook delivery of %s failed unexpectedly", delivery.event_id)
                self._track(-1)

    async def _attempt(self, delivery: _Delivery) -> None:
        event = self._events(delivery.event_id)
        payload = json.dumps(event, indent=2)
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
            "Stripe-Signature": signature_header(payload, delivery.endpoint.secret),
        }
        status: int | None
        try:
            status = await wire.post(
                delivery.endpoint.url, payload.encode(), headers, self.policy.timeout
            )
        except (OSError, TimeoutError, wire.HttpProtocolError, ValueError) as e:
            log.debug("webhook %s to %s: %s", delivery.event_id, delivery.endpoint.url, e)
            status = None
        self.stats.attempts += 1
        if self._keep_log:
            self.stats.log.append(
                Attempt(
                    delivery.event_id,
                    event["type"],
                    delivery.endpoint.url,
                    delivery.attempt,
                    status,
                    delivery.duplicate,
                )
            )
        if not delivery.duplicate:
            self._release_held(delivery)
        if status is not None and 200 <= status < 300:
            self.stats.delivered += 1
            key = (delivery.endpoint.url, delivery.event_id)
            if key not in self._succeeded:
                self._succeeded.add(key)
                self._on_delivered(delivery.event_id)
            self._track(-1)
            return
        self.stats.failed_attempts += 1
        if delivery.attempt >= self.policy.max_attempts:
            self.stats.given_up += 1
            log.warning(
                "webhook %s to %s given up after %d attempts",
                delivery.event_id,
                delivery.endpoint.url,
                delivery.attempt,
            )
            self._track(-1)
            return
        retry = _Delivery(
            delivery.endpoint,
            delivery.event_id,
            delivery.seq,
            delivery.attempt + 1,
            delivery.duplicate,
        )
        self._later(
            self.policy.retry_delay(delivery.attempt), lambda: self._queue.put_nowait(retry)
        )
