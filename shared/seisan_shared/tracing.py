"""OpenTelemetry tracing: gRPC server spans, event producer and consumer spans, W3C context
carried in gRPC metadata and NATS headers (``traceparent``), next to the correlation id.

Off by default: with ``SEISAN_TRACING=none`` no SDK is installed, spans are the API's
no-ops and nothing leaves the process. ``console`` prints finished spans on stdout;
``otlp`` sends them over OTLP/HTTP (needs the optional ``seisan[otlp]`` extra; the
endpoint comes from the SDK's own ``OTEL_EXPORTER_OTLP_*`` variables). The tracer
provider is process-global, as OpenTelemetry has it: :func:`configure` sets it once in
``main``.

Where spans come from:

* the shared gRPC logging interceptor opens a SERVER span per call
  (:func:`server_span`), a child of the caller's ``traceparent`` if it sent one;
  :func:`inject_metadata` adds ours to outgoing calls;
* :func:`message_headers` — used when an event is put in the outbox or published —
  opens a short PRODUCER span ``<subject> send`` and returns the NATS headers carrying
  its context and the correlation id; the relay publishes them with the event;
* the event consumer opens a CONSUMER span ``<subject> process`` per event
  (:func:`consumer_span`), a child of that producer span, so a receipt's upload,
  extraction and matching form one trace across processes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import NoOpTracerProvider, ProxyTracerProvider, Span, SpanKind, Status
from opentelemetry.trace import StatusCode as SpanStatus

from seisan_shared.config import ConfigError

log = logging.getLogger("seisan.tracing")

#: NATS header carrying the correlation id (also inside the Envelope, for consumers that
#: read only the body).
CORRELATION_HEADER = "Seisan-Correlation-Id"
TRACEPARENT = "traceparent"
EXPORTERS = ("none", "console", "otlp")
_TRACER_NAME = "seisan"


def enabled() -> bool:
    """Whether a real tracer provider is installed (else spans are no-ops and skipped)."""
    return not isinstance(trace.get_tracer_provider(), ProxyTracerProvider | NoOpTracerProvider)


def tracer() -> trace.Tracer:
    return trace.get_tracer(_TRACER_NAME)


def configure(service: str, exporter: str) -> Callable[[], None]:
    """Install the SDK tracer provider for this process; returns the flush-and-shutdown call.

    ``exporter`` is ``none`` (nothing installed), ``console`` or ``otlp``.
    """
    choice = exporter.strip().lower() or "none"
    if choice not in EXPORTERS:
        raise ConfigError(f"SEISAN_TRACING: one of {', '.join(EXPORTERS)}, not {exporter!r}")
    if choice == "none":
        return lambda: None
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter, SpanExporter

    span_exporter: SpanExporter
    if choice == "console":
        span_exporter = ConsoleSpanExporter()
    else:
        try:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[import-not-found,unused-ignore]
                OTLPSpanExporter,
            )
        except ImportError:
            raise ConfigError(
                "SEISAN_TRACING=otlp needs opentelemetry-exporter-otlp-proto-http "
                "(pip install 'seisan[otlp]')"
            ) from None
        span_exporter = OTLPSpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": f"seisan-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(span_exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing on: %s exporter, service.name seisan-%s", choice, service)
    return provider.shutdown


# --- carrying context -----------------------------------------------------------------------


def _extract(carrier: Mapping[str, str]) -> otel_context.Context:
    return propagate.extract(dict(carrier))


def message_headers(subject: str, correlation_id: str) -> dict[str, str]:
    """NATS headers for one event: the correlation id and, when tracing, the trace context of
    a PRODUCER span ``<subject> send`` opened (and ended) here under the current span."""
    headers: dict[str, str] = {}
    if correlation_id:
        headers[CORRELATION_HEADER] = " ".join(correlation_id.split())  # one header line
    if enabled():
        with tracer().start_as_current_span(
            f"{subject} send",
            kind=SpanKind.PRODUCER,
            attributes={
                "messaging.system": "nats",
                "messaging.destination.name": subject,
                "seisan.correlation_id": correlation_id,
            },
        ):
            propagate.inject(headers)
    return headers


def inject_metadata(pairs: list[tuple[str, Any]]) -> None:
    """Add the current trace context (``traceparent``) to outgoing gRPC metadata."""
    if not enabled():
        return
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    present = {key.lower() for key, _ in pairs}
    pairs.extend((k, v) for k, v in carrier.items() if k not in present)


@contextmanager
def server_span(
    method: str, metadata: Iterable[tuple[str, str | bytes]] | None, correlation_id: str
) -> Iterator[Span | None]:
    """A SERVER span for one gRPC call, current for its duration; None when tracing is off."""
    if not enabled():
        yield None
        return
    carrier = {k.lower(): v for k, v in metadata or () if isinstance(v, str)}
    service, _, name = method.lstrip("/").partition("/")
    with tracer().start_as_current_span(
        method.lstrip("/"),
        context=_extract(carrier),
        kind=SpanKind.SERVER,
        attributes={
            "rpc.system": "grpc",
            "rpc.service": service,
            "rpc.method": name,
            "seisan.correlation_id": correlation_id,
        },
        record_exception=False,
        set_status_on_exception=False,
    ) as span:
        yield span


def end_call(span: Span | None, code_name: str, server_fault: bool) -> None:
    """Record the call's status code on its span (ERROR for server faults only)."""
    if span is None:
        return
    span.set_attribute("rpc.grpc.status_code", code_name)
    if server_fault:
        span.set_status(Status(SpanStatus.ERROR, code_name))


@contextmanager
def consumer_span(
    headers: Mapping[str, str] | None,
    *,
    subject: str,
    consumer: str,
    event_id: str,
    correlation_id: str,
    operation: str = "process",
) -> Iterator[Span | None]:
    """A CONSUMER span ``<subject> <operation>`` for one event (``process``, or ``prepare``
    for the slow work done before the transaction), a child of its producer span."""
    if not enabled():
        yield None
        return
    with tracer().start_as_current_span(
        f"{subject} {operation}",
        context=_extract(headers or {}),
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "nats",
            "messaging.destination.name": subject,
            "messaging.consumer.group.name": consumer,
            "messaging.message.id": event_id,
            "seisan.correlation_id": correlation_id,
        },
    ) as span:
        yield span


def current_ids() -> tuple[str, str] | None:
    """(trace id, span id) of the current span in hex, for log lines; None outside a span."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid:
        return None
    return format(context.trace_id, "032x"), format(context.span_id, "016x")
