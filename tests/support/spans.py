"""One in-memory span exporter for the whole test session.

OpenTelemetry's tracer provider is process-global and can be set once, so every test that
looks at spans shares this exporter. It records only while a ``spans`` fixture is live, so
later tests do not pile spans up in memory.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

EXPORTER = InMemorySpanExporter()


class _WhileRecording(SpanProcessor):
    def __init__(self) -> None:
        self.recording = False
        self._inner = SimpleSpanProcessor(EXPORTER)

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            self._inner.on_end(span)


_switch: list[_WhileRecording] = []


def in_memory_spans() -> Iterator[InMemorySpanExporter]:
    """Body of a ``spans`` fixture: install the provider once, record during the test."""
    if not _switch:
        if not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
            pytest.skip("another tracer provider is installed in this process")
        provider = TracerProvider()
        switch = _WhileRecording()
        provider.add_span_processor(switch)
        trace.set_tracer_provider(provider)
        _switch.append(switch)
    EXPORTER.clear()
    _switch[0].recording = True
    try:
        yield EXPORTER
    finally:
        _switch[0].recording = False
        EXPORTER.clear()
