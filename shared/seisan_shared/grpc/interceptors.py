"""grpc.aio server interceptors: call log, authentication + role check, domain-error mapping.

:func:`server_interceptors` returns them in the order the server must use
(the first wraps the others):

1. :class:`LoggingInterceptor` binds the correlation id and writes one line per
   call (method, principal, status code, duration, correlation id) to the
   ``seisan.grpc`` logger, whatever the outcome.
2. :class:`AuthInterceptor` turns ``authorization: Bearer <token>`` into a
   :class:`~seisan_shared.auth.Principal`, binds it, and checks the roles the
   RPC declares with the ``seisan.common.v1.allowed_roles`` method option. An
   RPC without the option is refused for everyone; health and reflection are
   open.
3. :class:`ErrorInterceptor` turns a :class:`~seisan_shared.errors.DomainError`
   into its status (:func:`~seisan_shared.errors.status_for`) and anything
   unexpected into INTERNAL with a reference to the logged traceback.

All four handler shapes (unary/stream × unary/stream) are wrapped. Servicer
methods should be ``async def`` (or async generators, or coroutines using
``context.write``); plain functions are run in a worker thread.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import AbstractAsyncContextManager, aclosing, asynccontextmanager
from typing import Any

import grpc
from google.protobuf import descriptor_pool
from google.protobuf.descriptor_pool import DescriptorPool

from seisan.common.v1 import common_pb2
from seisan_shared import tracing
from seisan_shared.auth import ROLES, Principal, TokenStore
from seisan_shared.context import (
    bind_correlation_id,
    bind_principal,
    correlation_id,
    correlation_id_from_metadata,
    principal_or_none,
)
from seisan_shared.errors import DomainError, status_for
from seisan_shared.metrics import RpcMetrics

call_log = logging.getLogger("seisan.grpc")
error_log = logging.getLogger("seisan.grpc.errors")

#: Method prefixes callable without a token: load balancers and ``grpcurl list`` must get in.
OPEN_METHOD_PREFIXES: tuple[str, ...] = ("/grpc.health.v1.Health/", "/grpc.reflection.")

_SERVER_FAULTS = frozenset(
    {grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN, grpc.StatusCode.DATA_LOSS}
)
_DONE = object()

Scope = Callable[[Any], AbstractAsyncContextManager[None]]
Continuation = Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler | None]]


def server_interceptors(
    tokens: TokenStore, *, pool: DescriptorPool | None = None, metrics: RpcMetrics | None = None
) -> list[grpc.aio.ServerInterceptor]:
    """The interceptor chain every Seisan server uses, outermost first."""
    return [LoggingInterceptor(metrics), AuthInterceptor(tokens, pool=pool), ErrorInterceptor()]


# --- wrapping any handler shape in an async context manager -------------------------------


def wrap_handler(handler: grpc.RpcMethodHandler, scope: Scope) -> grpc.RpcMethodHandler:
    """A handler of the same shape as ``handler`` whose every call runs inside ``scope(context)``.

    The scope sees the whole call, streamed responses included, and any
    exception the servicer raises.
    """
    if handler.request_streaming and handler.response_streaming:
        behavior, factory = handler.stream_stream, grpc.stream_stream_rpc_method_handler
    elif handler.request_streaming:
        behavior, factory = handler.stream_unary, grpc.stream_unary_rpc_method_handler
    elif handler.response_streaming:
        behavior, factory = handler.unary_stream, grpc.unary_stream_rpc_method_handler
    else:
        behavior, factory = handler.unary_unary, grpc.unary_unary_rpc_method_handler
    wrapped = (
        _wrap_streaming(behavior, scope)
        if handler.response_streaming
        else _wrap_unary(behavior, scope)
    )
    return factory(
        wrapped,
        request_deserializer=handler.request_deserializer,
        response_serializer=handler.response_serializer,
    )


def _wrap_unary(behavior: Callable[..., Any], scope: Scope) -> Callable[..., Any]:
    async def unary(request: Any, context: Any) -> Any:
        async with scope(context):
            if inspect.iscoroutinefunction(behavior):
                return await behavior(request, context)
            return await asyncio.to_thread(behavior, request, context)

    return unary


def _wrap_streaming(behavior: Callable[..., Any], scope: Scope) -> Callable[..., Any]:
    if inspect.iscoroutinefunction(behavior):
        # Responses go out through context.write(); keep the coroutine shape.
        async def written(request: Any, context: Any) -> None:
            async with scope(context):
                await behavior(request, context)

        return written

    async def streamed(request: Any, context: Any) -> AsyncIterator[Any]:
        async with scope(context):
            if inspect.isasyncgenfunction(behavior):
                async with aclosing(behavior(request, context)) as responses:
                    async for response in responses:
                        yield response
            else:
                responses = await asyncio.to_thread(lambda: iter(behavior(request, context)))
                while (response := await asyncio.to_thread(next, responses, _DONE)) is not _DONE:
                    yield response

    return streamed


# --- logging --------------------------------------------------------------------------------


class LoggingInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """One log line per call on ``seisan.grpc``; binds the call's correlation id.

    The line carries ``grpc_method``, ``principal``, ``grpc_code``,
    ``duration_ms`` and ``correlation_id`` both in the message and as record
    attributes (``extra``), for plain and structured formatters alike. With
    ``metrics`` each call is also counted and timed by method and code, and
    when tracing is on it runs inside a SERVER span (child of the caller's
    ``traceparent``).
    """

    def __init__(self, metrics: RpcMetrics | None = None) -> None:
        self._metrics = metrics

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        started = time.perf_counter()
        method = handler_call_details.method
        cid = correlation_id_from_metadata(handler_call_details.invocation_metadata)
        bind_correlation_id(cid)
        bind_principal(None)
        handler = await continuation(handler_call_details)
        # Inner interceptors ran in this same per-call context: the principal is bound now.
        principal = principal_or_none()
        who = principal.name if principal else "-"
        metrics = self._metrics
        if handler is None:
            _log_call(method, who, grpc.StatusCode.UNIMPLEMENTED, started, cid, metrics)
            return None
        metadata = handler_call_details.invocation_metadata

        @asynccontextmanager
        async def logged(context: Any) -> AsyncIterator[None]:
            code = grpc.StatusCode.UNKNOWN
            with tracing.server_span(method, metadata, cid) as span:
                try:
                    yield
                except grpc.aio.AbortError:
                    code = context.code() or grpc.StatusCode.UNKNOWN
                    raise
                except (asyncio.CancelledError, GeneratorExit):
                    code = grpc.StatusCode.CANCELLED
                    raise
                else:
                    code = context.code() or grpc.StatusCode.OK
                finally:
                    code_name = _log_call(method, who, code, started, cid, metrics)
                    tracing.end_call(span, code_name, code in _SERVER_FAULTS)

        return wrap_handler(handler, logged)


def _log_call(
    method: str,
    who: str,
    code: grpc.StatusCode,
    started: float,
    cid: str,
    metrics: RpcMetrics | None = None,
) -> str:
    seconds = time.perf_counter() - started
    duration_ms = round(seconds * 1000, 2)
    code_name = getattr(code, "name", str(code))
    if metrics is not None:
        metrics.observe(method, code_name, seconds)
    level = logging.ERROR if code in _SERVER_FAULTS else logging.INFO
    if level == logging.INFO and method.startswith("/grpc.health."):
        level = logging.DEBUG  # probes every few hundred ms would drown the log
    call_log.log(
        level,
        "grpc call method=%s principal=%s code=%s duration_ms=%.2f correlation_id=%s",
        method,
        who,
        code_name,
        duration_ms,
        cid,
        extra={
            "grpc_method": method,
            "principal": who,
            "grpc_code": code_name,
            "duration_ms": duration_ms,
            "correlation_id": cid,
        },
    )
    return code_name


# --- authentication and roles ---------------------------------------------------------------


def role_name(role: int) -> str | None:
    """``ROLE_STAFF`` → ``"staff"``; None for ROLE_UNSPECIFIED or a value this build lacks."""
    try:
        name = common_pb2.Role.Name(common_pb2.Role.ValueType(role)).removeprefix("ROLE_").lower()
    except ValueError:
        return None
    return name if name in ROLES else None


class AuthInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """Bearer-token authentication and the per-RPC role check (deny by default).

    Allowed roles come from the ``allowed_roles`` option on the method's
    descriptor in ``pool`` (the default pool, which holds every imported
    ``_pb2`` module), cached per method.
    """

    def __init__(self, tokens: TokenStore, *, pool: DescriptorPool | None = None) -> None:
        self._tokens = tokens
        self._pool = pool or descriptor_pool.Default()
        self._roles_by_method: dict[str, frozenset[str]] = {}

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(OPEN_METHOD_PREFIXES):
            return handler
        principal, refusal = self.authenticate(handler_call_details.invocation_metadata)
        if principal is None:
            return _refuse(handler, grpc.StatusCode.UNAUTHENTICATED, refusal)
        bind_principal(principal)
        allowed = self.allowed_roles(method)
        if not allowed:
            return _refuse(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} declares no allowed roles and is refused for everyone",
            )
        if not principal.has_any(allowed):
            held = ", ".join(sorted(principal.roles)) or "no roles"
            return _refuse(
                handler,
                grpc.StatusCode.PERMISSION_DENIED,
                f"{method} needs one of the roles {', '.join(sorted(allowed))}; "
                f"{principal.name} has {held}",
            )
        return handler

    def authenticate(
        self, metadata: Iterable[tuple[str, str | bytes]] | None
    ) -> tuple[Principal | None, str]:
        """The principal named by the ``authorization`` metadata, or None and the reason."""
        values = [v for k, v in metadata or () if k.lower() == "authorization"]
        if not values:
            return None, "missing bearer token: send metadata 'authorization: Bearer <token>'"
        scheme, _, token = str(values[0]).strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return None, "malformed authorization metadata: expected 'Bearer <token>'"
        principal = self._tokens.authenticate(token)
        if principal is None:
            return None, "unknown or revoked bearer token"
        return principal, ""

    def allowed_roles(self, method: str) -> frozenset[str]:
        """Roles the RPC ``/pkg.Service/Method`` allows; empty when it declares none."""
        cached = self._roles_by_method.get(method)
        if cached is not None:
            return cached
        full_name = method.lstrip("/").replace("/", ".")
        try:
            descriptor = self._pool.FindMethodByName(full_name)
        except KeyError:
            roles: frozenset[str] = frozenset()
        else:
            declared = descriptor.GetOptions().Extensions[common_pb2.allowed_roles]
            roles = frozenset(name for r in declared if (name := role_name(r)) is not None)
        self._roles_by_method[method] = roles
        return roles


def _refuse(
    handler: grpc.RpcMethodHandler, code: grpc.StatusCode, message: str
) -> grpc.RpcMethodHandler:
    """A handler of the same shape that aborts with ``code`` before the servicer runs."""

    @asynccontextmanager
    async def refused(context: Any) -> AsyncIterator[None]:
        await context.abort(code, message)
        yield  # never reached: abort() raises

    return wrap_handler(handler, refused)


# --- domain errors --------------------------------------------------------------------------


class ErrorInterceptor(grpc.aio.ServerInterceptor):  # type: ignore[misc]
    """DomainError → its status and message; anything else → INTERNAL with a log reference.

    ``NotImplementedError`` (the generated servicer base class) becomes
    UNIMPLEMENTED. The caller never sees an unexpected exception's text: only
    ``internal error (see server log, ref <id>)``, with the traceback logged
    on ``seisan.grpc.errors`` under the same ref.
    """

    async def intercept_service(
        self, continuation: Continuation, handler_call_details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        method = handler_call_details.method

        @asynccontextmanager
        async def mapped(context: Any) -> AsyncIterator[None]:
            try:
                yield
            except grpc.aio.AbortError:
                raise
            except DomainError as err:
                code = status_for(err)
                if code is grpc.StatusCode.INTERNAL:
                    error_log.warning("%s raised %r, which has no error kind", method, err)
                await context.abort(code, str(err) or type(err).__name__)
            except NotImplementedError:
                # What generated servicer base methods raise for an RPC a service lacks.
                await context.abort(grpc.StatusCode.UNIMPLEMENTED, f"{method} is not implemented")
            except Exception:
                ref = uuid.uuid4().hex[:12]
                error_log.exception(
                    "unexpected error in %s (ref %s, correlation_id %s)",
                    method,
                    ref,
                    correlation_id(),
                    extra={"error_ref": ref, "grpc_method": method},
                )
                await context.abort(
                    grpc.StatusCode.INTERNAL, f"internal error (see server log, ref {ref})"
                )

        return wrap_handler(handler, mapped)
