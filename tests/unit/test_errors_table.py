"""The one table from domain-error kinds to gRPC codes, and the interceptor that applies it."""

from __future__ import annotations

import asyncio
import logging
import re
import threading
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, NoReturn

import grpc
import pytest

from seisan_shared import errors
from seisan_shared.errors import STATUS_BY_KIND, DomainError, status_for
from seisan_shared.grpc.interceptors import ErrorInterceptor

EXPECTED = {
    errors.InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    errors.NotFound: grpc.StatusCode.NOT_FOUND,
    errors.AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    errors.FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    errors.PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    errors.Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    errors.ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    errors.Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def test_every_kind_is_in_the_table() -> None:
    # the kinds are the direct subclasses defined in shared (services root their own there too)
    kinds = {k for k in DomainError.__subclasses__() if k.__module__ == DomainError.__module__}
    assert kinds == set(STATUS_BY_KIND) == set(EXPECTED)


@pytest.mark.parametrize(
    ("kind", "code"), EXPECTED.items(), ids=lambda v: getattr(v, "__name__", "")
)
def test_each_kind_maps_to_its_code(kind: type[DomainError], code: grpc.StatusCode) -> None:
    assert status_for(kind("x")) is code


def test_a_service_hierarchy_maps_through_its_kind() -> None:
    class IntakeError(DomainError): ...

    class ReceiptNotFound(IntakeError, errors.NotFound): ...

    class ReceiptLocked(IntakeError, errors.FailedPrecondition): ...

    assert status_for(ReceiptNotFound("r1")) is grpc.StatusCode.NOT_FOUND
    assert status_for(ReceiptLocked("r1")) is grpc.StatusCode.FAILED_PRECONDITION
    assert status_for(IntakeError("no kind")) is grpc.StatusCode.INTERNAL


@pytest.mark.parametrize("error", [DomainError("bare"), RuntimeError("x"), KeyError("k")])
def test_anything_without_a_kind_is_internal(error: BaseException) -> None:
    assert status_for(error) is grpc.StatusCode.INTERNAL


# --- ErrorInterceptor against a fake ServicerContext (the framework seam) -------------------------


class Aborted(Exception):
    pass


@dataclass
class CallDetails:
    method: str
    invocation_metadata: tuple[tuple[str, str], ...]


class FakeContext:
    def __init__(self) -> None:
        self.aborted: tuple[grpc.StatusCode, str] | None = None

    async def abort(self, code: grpc.StatusCode, details: str = "") -> NoReturn:
        self.aborted = (code, details)
        raise Aborted


async def _intercepted(behavior: Any, *, streaming: bool = False) -> Any:
    handler = (
        grpc.unary_stream_rpc_method_handler(behavior)
        if streaming
        else grpc.unary_unary_rpc_method_handler(behavior)
    )

    async def continuation(_: Any) -> Any:
        return handler

    details = CallDetails("/seisan.test.v1.Fake/Call", ())
    return await ErrorInterceptor().intercept_service(continuation, details)


async def test_domain_error_aborts_with_its_code_and_message() -> None:
    async def behavior(request: Any, context: Any) -> Any:
        raise errors.AlreadyExists("receipt r1 exists")

    wrapped = await _intercepted(behavior)
    ctx = FakeContext()
    with pytest.raises(Aborted):
        await wrapped.unary_unary(b"", ctx)
    assert ctx.aborted == (grpc.StatusCode.ALREADY_EXISTS, "receipt r1 exists")


async def test_unexpected_error_is_internal_with_a_logged_ref(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def behavior(request: Any, context: Any) -> AsyncIterator[bytes]:
        yield b"first"
        raise ZeroDivisionError("secret detail")

    wrapped = await _intercepted(behavior, streaming=True)
    ctx = FakeContext()
    received = []
    with caplog.at_level(logging.ERROR, logger="seisan.grpc.errors"), pytest.raises(Aborted):
        async for item in wrapped.unary_stream(b"", ctx):
            received.append(item)
    assert received == [b"first"]
    assert ctx.aborted is not None
    code, details = ctx.aborted
    assert code is grpc.StatusCode.INTERNAL
    assert "secret" not in details
    match = re.fullmatch(r"internal error \(see server log, ref ([0-9a-f]{12})\)", details)
    assert match is not None
    logged = [r for r in caplog.records if r.name == "seisan.grpc.errors"]
    assert len(logged) == 1
    assert match.group(1) in logged[0].getMessage()
    assert logged[0].exc_info is not None and logged[0].exc_info[0] is ZeroDivisionError


def test_plain_function_servicers_run_in_a_worker_thread() -> None:
    # Generated servicer base methods are plain functions raising NotImplementedError.
    caller = threading.get_ident()
    ran_in: list[int] = []

    def behavior(request: Any, context: Any) -> Any:
        ran_in.append(threading.get_ident())
        raise NotImplementedError("Method not implemented!")

    async def run() -> FakeContext:
        wrapped = await _intercepted(behavior)
        ctx = FakeContext()
        with pytest.raises(Aborted):
            await wrapped.unary_unary(b"", ctx)
        return ctx

    ctx = asyncio.run(run())
    assert ctx.aborted == (
        grpc.StatusCode.UNIMPLEMENTED,
        "/seisan.test.v1.Fake/Call is not implemented",
    )
    assert ran_in and ran_in[0] != caller


async def test_success_passes_through() -> None:
    async def behavior(request: bytes, context: Any) -> bytes:
        return request + b"!"

    wrapped = await _intercepted(behavior)
    ctx = FakeContext()
    assert await wrapped.unary_unary(b"ok", ctx) == b"ok!"
    assert ctx.aborted is None
