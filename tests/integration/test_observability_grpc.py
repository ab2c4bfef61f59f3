"""The shared interceptors on a real grpc.aio server: every call counted and timed by method
and code (refused and failing ones too), and traced as a child of the caller's span."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import grpc
import pytest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_grpc_bootstrap import INTAKE, FakeIntake, _upload_parts

from seisan.receipts.v1 import receipts_pb2 as pb
from seisan.receipts.v1 import receipts_pb2_grpc as pb_grpc
from seisan_shared import metrics, tracing
from seisan_shared.auth import STAFF, TokenStore
from seisan_shared.grpc import RunningServer, ServiceRegistration, channel, start_server
from support.spans import in_memory_spans

LABELS = {"grpc_service": INTAKE, "grpc_method": "GetReceipt"}


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    yield from in_memory_spans()


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[RunningServer, metrics.Metrics, str]]:
    token_file = tmp_path / "tokens.toml"
    token = TokenStore.issue(token_file, "aiko", [STAFF])
    registry = metrics.Metrics()
    running = await start_server(
        [ServiceRegistration(INTAKE, FakeIntake(), pb_grpc.add_ReceiptIntakeServicer_to_server)],
        tokens=TokenStore.load(token_file),
        metrics=registry.rpc,
    )
    try:
        yield running, registry, token
    finally:
        await running.stop(0)


async def test_calls_are_counted_by_method_and_code(served) -> None:
    running, registry, token = served
    async with channel(running.address, token) as ch:
        stub = pb_grpc.ReceiptIntakeStub(ch)
        for receipt_id in ("r1", "r2", "missing", "boom"):
            try:
                await stub.GetReceipt(pb.GetReceiptRequest(receipt_id=receipt_id))
            except grpc.aio.AioRpcError:
                pass
    async with channel(running.address, None) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError):
            await pb_grpc.ReceiptIntakeStub(anonymous).GetReceipt(pb.GetReceiptRequest())

    def handled(code: str) -> float | None:
        return registry.value("seisan_grpc_server_handled_total", {**LABELS, "grpc_code": code})

    assert handled("OK") == 2
    assert handled("NOT_FOUND") == 1
    assert handled("INTERNAL") == 1
    assert handled("UNAUTHENTICATED") == 1
    assert registry.value("seisan_grpc_server_handling_seconds_count", LABELS) == 5
    assert (
        registry.value("seisan_grpc_server_handling_seconds_bucket", {**LABELS, "le": "+Inf"}) == 5
    )


async def test_a_call_is_a_server_span_under_the_callers_span(served, spans) -> None:
    running, _registry, token = served
    with tracing.tracer().start_as_current_span("cli upload") as caller:
        async with channel(running.address, token, correlation_id="corr-span") as ch:
            stub = pb_grpc.ReceiptIntakeStub(ch)
            await stub.GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
            with pytest.raises(grpc.aio.AioRpcError):
                await stub.GetReceipt(pb.GetReceiptRequest(receipt_id="boom"))
    server_spans = [s for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER]
    ok, failed = sorted(server_spans, key=lambda s: s.start_time or 0)
    for span in (ok, failed):
        assert span.name == f"{INTAKE}/GetReceipt"
        assert span.context.trace_id == caller.get_span_context().trace_id
        assert span.parent is not None
        assert span.parent.span_id == caller.get_span_context().span_id
        assert span.attributes is not None
        assert span.attributes["seisan.correlation_id"] == "corr-span"
    assert ok.attributes is not None and ok.attributes["rpc.grpc.status_code"] == "OK"
    assert failed.status.status_code is StatusCode.ERROR


async def test_a_client_sends_the_correlation_id_from_its_environment(
    served, monkeypatch: pytest.MonkeyPatch
) -> None:
    running, _registry, token = served
    monkeypatch.setenv("SEISAN_CORRELATION_ID", "corr-from-env")
    async with channel(running.address, token) as ch:
        reply = await pb_grpc.ReceiptIntakeStub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r"))
    assert reply.receipt.note == "corr-from-env"  # FakeIntake echoes the bound id
    async with channel(running.address, token, correlation_id="explicit") as ch:
        reply = await pb_grpc.ReceiptIntakeStub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r"))
    assert reply.receipt.note == "explicit"


async def test_streaming_calls_are_traced_and_counted_cleanly(
    served, spans, caplog: pytest.LogCaptureFixture
) -> None:
    running, registry, token = served
    with caplog.at_level(logging.ERROR, logger="opentelemetry"):
        async with channel(running.address, token) as ch:
            stub = pb_grpc.ReceiptIntakeStub(ch)
            assert (await stub.UploadReceipt(_upload_parts())).receipt_id == "aiko:3000"
            image = [
                part.chunk
                async for part in stub.GetReceiptImage(pb.GetReceiptImageRequest(receipt_id="r1"))
            ]
            assert image == [b"\xff\xd8", b"aiko"]
            with pytest.raises(grpc.aio.AioRpcError):
                _ = [
                    p
                    async for p in stub.GetReceiptImage(
                        pb.GetReceiptImageRequest(receipt_id="boom")
                    )
                ]
    names = sorted(
        s.name.rsplit("/", 1)[1] for s in spans.get_finished_spans() if s.kind is SpanKind.SERVER
    )
    assert names == ["GetReceiptImage", "GetReceiptImage", "UploadReceipt"]
    assert not [r for r in caplog.records if r.name.startswith("opentelemetry")]
    for method, code in (
        ("UploadReceipt", "OK"),
        ("GetReceiptImage", "OK"),
        ("GetReceiptImage", "INTERNAL"),
    ):
        labels = {"grpc_service": INTAKE, "grpc_method": method, "grpc_code": code}
        assert registry.value("seisan_grpc_server_handled_total", labels) == 1
