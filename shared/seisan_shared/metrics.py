"""Prometheus metrics: one registry per process, metric factories, and the /metrics server.

Nothing is registered at import time. A process builds one :class:`Metrics`
in ``main`` (its own :class:`~prometheus_client.CollectorRegistry`, never the
library's global one, so tests can run many in one interpreter), hands
``metrics.rpc`` to :func:`~seisan_shared.grpc.server.start_server`, and
:meth:`Metrics.watch` s its outbox relays and event consumers. Their counters
are read at scrape time from the stats objects they already keep
(:class:`~seisan_shared.bus.consumer.ConsumerStats`,
:class:`~seisan_shared.bus.outbox.RelayStats`), so the hot paths gain no work.

Names (all prefixed ``seisan_``) are listed in README, "Observability".
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger("seisan.metrics")

#: gRPC handling time buckets (seconds): sub-millisecond lookups to multi-second uploads.
RPC_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
#: OCR buckets (seconds): a small receipt on a fast core to a 12-MP photo on a slow one.
OCR_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0, 8.0, 13.0, 20.0, 30.0, 60.0)


# --- gRPC -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class RpcMetrics:
    """Per-call counters and latencies, observed by the shared logging interceptor."""

    handled: Counter
    handling_seconds: Histogram

    def observe(self, method: str, code: str, seconds: float) -> None:
        """One finished call: ``method`` is ``/pkg.Service/Method``, ``code`` a status name."""
        service, _, name = method.lstrip("/").partition("/")
        self.handled.labels(service, name, code).inc()
        self.handling_seconds.labels(service, name).observe(seconds)


def rpc_metrics(registry: CollectorRegistry) -> RpcMetrics:
    """``seisan_grpc_server_handled_total`` and ``seisan_grpc_server_handling_seconds``."""
    return RpcMetrics(
        handled=Counter(
            "seisan_grpc_server_handled",
            "gRPC calls finished on this server, by method and status code.",
            ["grpc_service", "grpc_method", "grpc_code"],
            registry=registry,
        ),
        handling_seconds=Histogram(
            "seisan_grpc_server_handling_seconds",
            "Time from a call's arrival to its last response, by method.",
            ["grpc_service", "grpc_method"],
            buckets=RPC_BUCKETS,
            registry=registry,
        ),
    )


def ocr_histogram(registry: CollectorRegistry) -> Histogram:
    """``seisan_ocr_seconds``: reading one receipt image (OCR + field extraction)."""
    return Histogram(
        "seisan_ocr_seconds",
        "Time to read one receipt image: OCR and field extraction.",
        buckets=OCR_BUCKETS,
        registry=registry,
    )


def state_gauge(registry: CollectorRegistry, name: str, documentation: str, label: str) -> Gauge:
    """A gauge of how many things are in each state now (set by :func:`sample_every`)."""
    return Gauge(name, documentation, [label], registry=registry)


# --- the bus, read from the stats the relay and consumers keep ------------------------------


class WatchedConsumer(Protocol):
    durable: str

    def processed(self) -> Any: ...


class WatchedRelay(Protocol):
    @property
    def stats(self) -> Any: ...


# (metric suffix, ConsumerStats attribute, help)
_CONSUMER_COUNTERS = (
    ("events_consumed", "handled", "Events a consumer handled and committed."),
    ("events_duplicates", "duplicates", "Deliveries already processed: acked, handler skipped."),
    ("events_redelivered", "redelivered", "Deliveries of an event delivered before."),
    ("events_retried", "retried", "Deliveries nak'ed for a later retry."),
    ("events_dead_lettered", "dead_lettered", "Events given up on and sent to dlq.<consumer>."),
)


class BusCollector(Collector):  # type: ignore[misc]
    """Consumer and outbox metrics computed at scrape time from their stats objects."""

    def __init__(self) -> None:
        self.consumers: list[WatchedConsumer] = []
        self.relays: list[WatchedRelay] = []

    def collect(self) -> Iterator[Metric]:
        for suffix, attribute, doc in _CONSUMER_COUNTERS:
            family = CounterMetricFamily(f"seisan_{suffix}", doc, labels=["consumer"])
            for consumer in self.consumers:
                stats = consumer.processed()
                family.add_metric([consumer.durable], getattr(stats, attribute))
            yield family
        published = CounterMetricFamily(
            "seisan_events_published",
            "Events the outbox relay published and JetStream acknowledged, by subject.",
            labels=["subject"],
        )
        errors = CounterMetricFamily(
            "seisan_outbox_relay_errors", "Outbox relay passes that failed (retried)."
        )
        pending = GaugeMetricFamily(
            "seisan_outbox_pending_events",
            "Outbox rows not yet published (as of the relay's last sample).",
        )
        age = GaugeMetricFamily(
            "seisan_outbox_oldest_pending_age_seconds",
            "Age of the oldest unpublished outbox row; 0 when none is waiting.",
        )
        by_subject: dict[str, int] = {}
        now = datetime.now(UTC)
        total_pending = 0
        oldest: datetime | None = None
        error_count = 0
        for relay in self.relays:
            stats = relay.stats
            for subject, count in dict(stats.published_by_subject).items():
                by_subject[subject] = by_subject.get(subject, 0) + count
            error_count += stats.errors
            total_pending += stats.pending
            if stats.oldest_pending_at is not None:
                oldest = min(oldest or stats.oldest_pending_at, stats.oldest_pending_at)
        for subject, count in sorted(by_subject.items()):
            published.add_metric([subject], count)
        yield published
        if self.relays:
            errors.add_metric([], error_count)
            pending.add_metric([], total_pending)
            age.add_metric([], max((now - oldest).total_seconds(), 0.0) if oldest else 0.0)
            yield errors
            yield pending
            yield age


# --- the process's registry -----------------------------------------------------------------


@dataclass
class Metrics:
    """One process's metrics: its registry, the RPC metrics, and what is watched."""

    registry: CollectorRegistry = field(
        default_factory=lambda: CollectorRegistry(auto_describe=True)
    )
    bus: BusCollector = field(default_factory=BusCollector)
    _rpc: RpcMetrics | None = None

    def __post_init__(self) -> None:
        self.registry.register(self.bus)
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)

    @property
    def rpc(self) -> RpcMetrics:
        """The gRPC metrics (registered on first use, so workers without a server lack them)."""
        if self._rpc is None:
            self._rpc = rpc_metrics(self.registry)
        return self._rpc

    def watch(self, *parts: WatchedConsumer | WatchedRelay) -> None:
        """Report these event consumers and outbox relays on every scrape."""
        for part in parts:
            if hasattr(part, "durable"):
                self.bus.consumers.append(part)  # type: ignore[arg-type]
            else:
                self.bus.relays.append(part)

    def track_states(
        self,
        stack: AsyncExitStack,
        name: str,
        documentation: str,
        sample: Callable[[], Awaitable[Mapping[str, float]]],
        *,
        label: str = "status",
        known: Iterable[str] = (),
        every: float = 15.0,
    ) -> Gauge:
        """A gauge by state, set from ``sample()`` (a database count) every ``every`` seconds
        by a task that ``stack`` cancels. Counted from the database, it is right after a
        restart and never counts a rolled-back change."""
        gauge = state_gauge(self.registry, name, documentation, label)
        task = asyncio.create_task(sample_every(every, sample, gauge, known=known), name=name)

        async def stop() -> None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

        stack.push_async_callback(stop)
        return gauge

    def value(self, name: str, labels: Mapping[str, str] | None = None) -> float | None:
        """A sample's current value (for tests and health checks); None if absent."""
        return self.registry.get_sample_value(name, dict(labels or {}))


# --- serving /metrics -----------------------------------------------------------------------


@dataclass
class MetricsServer:
    """The running /metrics endpoint (a daemon thread of prometheus_client's WSGI server)."""

    server: WSGIServer
    host: str
    port: int

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/metrics"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_address(address: str) -> tuple[str, int] | None:
    """``host:port`` → (host, port); ``:port`` means 127.0.0.1; "", "off", "0"/"none" → None.

    Raises ValueError naming the problem for anything else.
    """
    text = address.strip()
    if text.lower() in ("", "off", "none", "false", "no"):
        return None
    host, sep, port_text = text.rpartition(":")
    if not sep or not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"metrics address {address!r} is not host:port (port 0 picks a free one)")
    return (host.strip("[]") or "127.0.0.1"), int(port_text)


def serve(registry: CollectorRegistry, address: str) -> MetricsServer | None:
    """Serve ``registry`` at ``http://address/metrics``; None when ``address`` turns it off."""
    parsed = parse_address(address)
    if parsed is None:
        return None
    host, port = parsed
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as err:
        raise OSError(f"cannot serve metrics on {host}:{port}: {err.strerror or err}") from err
    running = MetricsServer(server, host, int(server.server_port))
    log.info("metrics on %s", running.url, extra={"metrics_url": running.url})
    return running


async def sample_every(
    seconds: float,
    sample: Callable[[], Awaitable[Mapping[str, float]]],
    gauge: Gauge,
    *,
    known: Iterable[str] = (),
) -> None:
    """Set ``gauge`` (one label) from ``sample()`` every ``seconds`` until cancelled.

    States in ``known`` are reported as 0 when absent, so a state that empties
    drops to 0 instead of keeping its last value. A failing sample is logged
    and tried again next time.
    """
    states = set(known)
    while True:
        started = time.monotonic()
        try:
            values = await sample()
        except Exception as exc:  # a busy database must not end the sampler
            log.warning("metrics sample failed (tried again in %.0fs): %r", seconds, exc)
        else:
            states |= set(values)
            for state in states:
                gauge.labels(state).set(values.get(state, 0))
        await asyncio.sleep(max(seconds - (time.monotonic() - started), 0.0))
