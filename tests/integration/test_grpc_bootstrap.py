"""A real grpc.aio server on port 0 through start_server: auth, roles, error mapping, health,
reflection, streaming in both directions, and the call log."""

from __future__ import annotations

import asyncio
import logging
import os
import re
import signal
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pb2, descriptor_pool, empty_pb2
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)

from seisan.common.v1 import common_pb2
from seisan.receipts.v1 import receipts_pb2 as pb
from seisan.receipts.v1 import receipts_pb2_grpc as pb_grpc
from seisan_shared.auth import ADMIN, STAFF, TokenStore
from seisan_shared.context import correlation_id, current_principal
from seisan_shared.errors import InvalidArgument, NotFound
from seisan_shared.grpc import (
    RunningServer,
    ServiceRegistration,
    channel,
    start_server,
    sync_channel,
    wait_for_termination_signal,
)

INTAKE = pb.DESCRIPTOR.services_by_name["ReceiptIntake"].full_name
ADMIN_ONLY = "seisan.testauth.v1.AdminOnly"  # declared below with allowed_roles = [ADMIN]
UNLISTED = "seisan.testauth.v1.Unlisted"  # in no descriptor pool: no allowed_roles at all
SECRET = "db password=hunter2"


class FakeIntake(pb_grpc.ReceiptIntakeServicer):
    async def GetReceipt(
        self, request: pb.GetReceiptRequest, context: Any
    ) -> pb.GetReceiptResponse:
        if request.receipt_id == "missing":
            raise NotFound(f"receipt {request.receipt_id} not found")
        if request.receipt_id == "boom":
            raise RuntimeError(SECRET)
        receipt = pb.Receipt(
            receipt_id=request.receipt_id, submitter=current_principal().name, note=correlation_id()
        )
        return pb.GetReceiptResponse(receipt=receipt)

    async def UploadReceipt(self, request_iterator: Any, context: Any) -> pb.UploadReceiptResponse:
        metadata, size = None, 0
        async for part in request_iterator:
            if part.HasField("metadata"):
                metadata = part.metadata
            else:
                size += len(part.chunk)
        if metadata is None:
            raise InvalidArgument("the first message must carry the upload metadata")
        return pb.UploadReceiptResponse(receipt_id=f"{current_principal().name}:{size}")

    async def GetReceiptImage(
        self, request: pb.GetReceiptImageRequest, context: Any
    ) -> AsyncIterator[pb.GetReceiptImageResponse]:
        if request.receipt_id == "missing":
            raise NotFound(f"receipt {request.receipt_id} not found")
        yield pb.GetReceiptImageResponse(content_type="image/jpeg", chunk=b"\xff\xd8")
        if request.receipt_id == "boom":
            raise RuntimeError(SECRET)
        yield pb.GetReceiptImageResponse(chunk=current_principal().name.encode())

    async def ListReceipts(self, request: Any, context: Any) -> pb.ListReceiptsResponse:
        return pb.ListReceiptsResponse()

    async def CorrectReceipt(self, request: Any, context: Any) -> pb.CorrectReceiptResponse:
        return pb.CorrectReceiptResponse()

    async def DeleteReceipt(self, request: Any, context: Any) -> pb.DeleteReceiptResponse:
        return pb.DeleteReceiptResponse()


def _declare_admin_only_service() -> None:
    """Put seisan.testauth.v1.AdminOnly/Purge (allowed_roles = [ADMIN]) in the default pool."""
    pool = descriptor_pool.Default()
    try:
        pool.FindServiceByName(ADMIN_ONLY)
        return
    except KeyError:
        pass
    file = descriptor_pb2.FileDescriptorProto(
        name="seisan_test/testauth.proto",
        package="seisan.testauth.v1",
        syntax="proto3",
        dependency=[empty_pb2.DESCRIPTOR.name],
    )
    method = file.service.add(name="AdminOnly").method.add(
        name="Purge", input_type=".google.protobuf.Empty", output_type=".google.protobuf.Empty"
    )
    method.options.Extensions[common_pb2.allowed_roles].append(common_pb2.ROLE_ADMIN)
    pool.Add(file)


async def _echo_principal(request: bytes, context: Any) -> bytes:
    return current_principal().name.encode()


def _generic(service: str, method: str) -> ServiceRegistration:
    handler = grpc.method_handlers_generic_handler(
        service, {method: grpc.unary_unary_rpc_method_handler(_echo_principal)}
    )
    return ServiceRegistration(
        service, handler, lambda servicer, server: server.add_generic_rpc_handlers((servicer,))
    )


@dataclass
class Stack:
    running: RunningServer
    tokens: dict[str, str]

    @property
    def address(self) -> str:
        return self.running.address

    def stub(self, ch: grpc.aio.Channel) -> Any:
        return pb_grpc.ReceiptIntakeStub(ch)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    _declare_admin_only_service()
    token_file = tmp_path / "tokens.toml"
    tokens = {
        "aiko": TokenStore.issue(token_file, "aiko", [STAFF]),
        "root": TokenStore.issue(token_file, "root", [ADMIN]),
        "nobody": TokenStore.issue(token_file, "nobody", []),
    }
    running = await start_server(
        [
            ServiceRegistration(INTAKE, FakeIntake(), pb_grpc.add_ReceiptIntakeServicer_to_server),
            _generic(ADMIN_ONLY, "Purge"),
            _generic(UNLISTED, "Do"),
        ],
        tokens=TokenStore.load(token_file),
    )
    try:
        yield Stack(running, tokens)
    finally:
        await running.stop(0)


def _raw(ch: grpc.aio.Channel, service: str, method: str) -> Any:
    return ch.unary_unary(f"/{service}/{method}")


# --- authentication ---------------------------------------------------------------------------


async def test_port_zero_reports_the_bound_port(stack: Stack) -> None:
    assert stack.running.port > 0
    assert stack.address == f"127.0.0.1:{stack.running.port}"


async def test_no_token_is_unauthenticated(stack: Stack) -> None:
    async with channel(stack.address, None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert "missing bearer token" in (err.value.details() or "")


@pytest.mark.parametrize(
    ("header", "fragment"),
    [("Bearer not-a-token", "unknown or revoked"), ("Basic YWlrbzp4", "malformed")],
)
async def test_bad_token_is_unauthenticated(stack: Stack, header: str, fragment: str) -> None:
    async with channel(stack.address, None) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub(ch).GetReceipt(
                pb.GetReceiptRequest(receipt_id="r1"), metadata=(("authorization", header),)
            )
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED
    assert fragment in (err.value.details() or "")


async def test_right_token_reaches_the_handler_with_the_principal(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"], correlation_id="corr-42") as ch:
        reply = await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
    assert reply.receipt.receipt_id == "r1"
    assert reply.receipt.submitter == "aiko"
    assert reply.receipt.note == "corr-42"


async def test_correlation_id_is_generated_when_the_client_sends_none(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"]) as ch:
        first = await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
        second = await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
    assert re.fullmatch(r"[0-9a-f-]{36}", first.receipt.note)
    assert first.receipt.note != second.receipt.note


# --- roles --------------------------------------------------------------------------------------


async def test_principal_without_an_allowed_role_is_denied(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["nobody"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "admin, approver, staff, treasury" in (err.value.details() or "")


async def test_role_declared_on_the_method_decides(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"]) as staff:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _raw(staff, ADMIN_ONLY, "Purge")(b"")
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "needs one of the roles admin; aiko has staff" in (err.value.details() or "")

    async with channel(stack.address, stack.tokens["root"]) as admin:
        assert await _raw(admin, ADMIN_ONLY, "Purge")(b"") == b"root"


async def test_rpc_without_allowed_roles_is_denied_to_everyone(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["root"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _raw(ch, UNLISTED, "Do")(b"")
    assert err.value.code() is grpc.StatusCode.PERMISSION_DENIED
    assert "declares no allowed roles" in (err.value.details() or "")


async def test_unknown_method_is_unimplemented(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["root"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _raw(ch, INTAKE, "NoSuchMethod")(b"")
    assert err.value.code() is grpc.StatusCode.UNIMPLEMENTED


# --- error mapping ------------------------------------------------------------------------------


async def test_domain_error_becomes_its_status_with_the_message(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"]) as ch:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="missing"))
    assert err.value.code() is grpc.StatusCode.NOT_FOUND
    assert err.value.details() == "receipt missing not found"


async def test_unexpected_error_is_internal_and_leaks_nothing(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="seisan.grpc.errors"):
        async with channel(stack.address, stack.tokens["aiko"]) as ch:
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="boom"))
    assert err.value.code() is grpc.StatusCode.INTERNAL
    details = err.value.details() or ""
    assert "hunter2" not in details and "RuntimeError" not in details
    ref = re.fullmatch(r"internal error \(see server log, ref (\w+)\)", details)
    assert ref is not None
    logged = [r for r in caplog.records if r.name == "seisan.grpc.errors"]
    assert len(logged) == 1 and ref.group(1) in logged[0].getMessage()
    assert logged[0].exc_info is not None and SECRET in str(logged[0].exc_info[1])


# --- streaming ----------------------------------------------------------------------------------


def _upload_parts(with_metadata: bool = True) -> Iterator[pb.UploadReceiptRequest]:
    if with_metadata:
        yield pb.UploadReceiptRequest(metadata=pb.UploadMetadata(filename="r.jpg"))
    for _ in range(3):
        yield pb.UploadReceiptRequest(chunk=b"x" * 1000)


async def test_client_streaming_passes_auth_and_error_mapping(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"]) as ch:
        reply = await stack.stub(ch).UploadReceipt(_upload_parts())
        assert reply.receipt_id == "aiko:3000"
        with pytest.raises(grpc.aio.AioRpcError) as bad:
            await stack.stub(ch).UploadReceipt(_upload_parts(with_metadata=False))
    assert bad.value.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert "metadata" in (bad.value.details() or "")

    async with channel(stack.address, None) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stack.stub(anonymous).UploadReceipt(_upload_parts())
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


async def _image(ch: grpc.aio.Channel, receipt_id: str) -> list[pb.GetReceiptImageResponse]:
    stub = pb_grpc.ReceiptIntakeStub(ch)
    call = stub.GetReceiptImage(pb.GetReceiptImageRequest(receipt_id=receipt_id))
    return [message async for message in call]


async def test_server_streaming_passes_auth_and_error_mapping(stack: Stack) -> None:
    async with channel(stack.address, stack.tokens["aiko"]) as ch:
        parts = await _image(ch, "r1")
        assert [p.chunk for p in parts] == [b"\xff\xd8", b"aiko"]
        assert parts[0].content_type == "image/jpeg"

        with pytest.raises(grpc.aio.AioRpcError) as missing:
            await _image(ch, "missing")
        assert missing.value.code() is grpc.StatusCode.NOT_FOUND

        # Fails after the first message: the client still gets INTERNAL, not the text.
        stub = pb_grpc.ReceiptIntakeStub(ch)
        call = stub.GetReceiptImage(pb.GetReceiptImageRequest(receipt_id="boom"))
        received = []
        with pytest.raises(grpc.aio.AioRpcError) as boom:
            async for message in call:
                received.append(message.chunk)
        assert received == [b"\xff\xd8"]
        assert boom.value.code() is grpc.StatusCode.INTERNAL
        assert "hunter2" not in (boom.value.details() or "")

    async with channel(stack.address, None) as anonymous:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _image(anonymous, "r1")
    assert err.value.code() is grpc.StatusCode.UNAUTHENTICATED


# --- health and reflection ----------------------------------------------------------------------


async def _check(ch: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(ch)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service))
    return int(reply.status)


async def test_health_is_open_and_serving_then_not_serving(stack: Stack) -> None:
    serving, not_serving = (
        health_pb2.HealthCheckResponse.SERVING,
        health_pb2.HealthCheckResponse.NOT_SERVING,
    )
    async with channel(stack.address, None) as ch:
        assert await _check(ch, "") == serving
        assert await _check(ch, INTAKE) == serving
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await _check(ch, "seisan.nope.v1.Nothing")
        assert err.value.code() is grpc.StatusCode.NOT_FOUND

        await stack.running.mark_not_serving()
        assert await _check(ch, "") == not_serving
        assert await _check(ch, INTAKE) == not_serving


async def test_stop_turns_health_watchers_not_serving_before_closing(stack: Stack) -> None:
    async with channel(stack.address, None) as ch:
        watch = health_pb2_grpc.HealthStub(ch).Watch(health_pb2.HealthCheckRequest(service=INTAKE))
        first = await watch.read()
        assert first.status == health_pb2.HealthCheckResponse.SERVING

        stopping = asyncio.create_task(stack.running.stop(grace=5))
        second = await asyncio.wait_for(watch.read(), timeout=5)
        assert second.status == health_pb2.HealthCheckResponse.NOT_SERVING
        watch.cancel()
        await stopping


async def test_reflection_lists_the_services_without_a_token(stack: Stack) -> None:
    def list_services() -> list[str]:
        with sync_channel(stack.address, None) as ch:
            return list(ProtoReflectionDescriptorDatabase(ch).get_services())

    services = await asyncio.to_thread(list_services)
    assert INTAKE in services
    assert "grpc.health.v1.Health" in services
    assert "grpc.reflection.v1alpha.ServerReflection" in services


async def test_sync_channel_for_the_cli(stack: Stack) -> None:
    def get() -> str:
        with sync_channel(stack.address, stack.tokens["aiko"], correlation_id="cli-1") as ch:
            reply = pb_grpc.ReceiptIntakeStub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r9"))
            return f"{reply.receipt.submitter}/{reply.receipt.note}"

    assert await asyncio.to_thread(get) == "aiko/cli-1"


# --- call log -----------------------------------------------------------------------------------


async def test_one_log_line_per_call_with_duration(
    stack: Stack, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.DEBUG, logger="seisan.grpc"):
        async with channel(stack.address, stack.tokens["aiko"], correlation_id="log-1") as ch:
            await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
            await _image(ch, "r1")
            await stack.stub(ch).UploadReceipt(_upload_parts())
            with pytest.raises(grpc.aio.AioRpcError):
                await stack.stub(ch).GetReceipt(pb.GetReceiptRequest(receipt_id="missing"))
        async with channel(stack.address, None, correlation_id="log-2") as anonymous:
            with pytest.raises(grpc.aio.AioRpcError):
                await stack.stub(anonymous).GetReceipt(pb.GetReceiptRequest(receipt_id="r1"))
            await _check(anonymous, "")

    lines = [r for r in caplog.records if r.name == "seisan.grpc"]
    seen = [
        (r.grpc_method.rsplit("/", 1)[1], r.principal, r.grpc_code, r.correlation_id)  # type: ignore[attr-defined]
        for r in lines
    ]
    assert seen == [
        ("GetReceipt", "aiko", "OK", "log-1"),
        ("GetReceiptImage", "aiko", "OK", "log-1"),
        ("UploadReceipt", "aiko", "OK", "log-1"),
        ("GetReceipt", "aiko", "NOT_FOUND", "log-1"),
        ("GetReceipt", "-", "UNAUTHENTICATED", "log-2"),
        ("Check", "-", "OK", "log-2"),
    ]
    for record in lines:
        duration = record.duration_ms  # type: ignore[attr-defined]
        assert isinstance(duration, float) and duration >= 0
        assert f"duration_ms={duration:.2f}" in record.getMessage()
    # health probes come every few hundred ms: logged at DEBUG, real calls at INFO
    levels = {r.grpc_method.rsplit("/", 1)[1]: r.levelno for r in lines}  # type: ignore[attr-defined]
    assert levels["Check"] == logging.DEBUG and levels["UploadReceipt"] == logging.INFO


# --- shutdown signal ----------------------------------------------------------------------------


async def test_wait_for_termination_signal_returns_on_sigterm() -> None:
    before = signal.getsignal(signal.SIGTERM)
    waiting = asyncio.create_task(wait_for_termination_signal())
    for _ in range(100):  # until the loop's handler is installed; SIGTERM must not kill pytest
        await asyncio.sleep(0)
        if signal.getsignal(signal.SIGTERM) is not before:
            break
    else:
        pytest.fail("SIGTERM handler was never installed")
    assert not waiting.done()
    os.kill(os.getpid(), signal.SIGTERM)
    await asyncio.wait_for(waiting, timeout=5)
