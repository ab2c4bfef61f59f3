"""Channels to Seisan services that send the bearer token and a correlation id on every call.

Plaintext is meant for loopback only. Pass ``tls`` (a
:class:`~seisan_shared.transport.ClientTls`: the CA, and a client certificate
for mutual TLS; ``TransportConfig.client_tls()`` builds it from
``SEISAN_TLS_*``) or just ``root_certificates`` (PEM bytes) for TLS.

The correlation id sent is, in order: the one given to :func:`channel`,
``SEISAN_CORRELATION_ID`` from the environment (so a person can tie CLI
commands to a receipt's thread), the one bound to the current context (so a
servicer calling another service passes its caller's id along), or none (the
server then makes one up). With tracing on, ``traceparent`` goes too. An
``x-correlation-id`` or ``authorization`` the caller puts in a call's own
metadata wins over the channel's.
"""

from __future__ import annotations

import collections
import os
from collections.abc import Callable, Iterable
from typing import Any

import grpc

from seisan_shared import tracing
from seisan_shared.context import CORRELATION_ID_HEADER, correlation_id_or_none
from seisan_shared.grpc.server import DEFAULT_MAX_MESSAGE_BYTES
from seisan_shared.transport import ClientTls

#: A client-side setting: the correlation id every channel built here sends.
CORRELATION_ID_ENV = "SEISAN_CORRELATION_ID"

_AUTHORIZATION = "authorization"


def _credentials(
    tls: ClientTls | None, root_certificates: bytes | None
) -> grpc.ChannelCredentials | None:
    if tls is not None:
        return tls.credentials()
    if root_certificates is not None:
        return grpc.ssl_channel_credentials(root_certificates)
    return None


def _options(max_message_bytes: int) -> list[tuple[str, int]]:
    return [
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.max_send_message_length", max_message_bytes),
    ]


class _CallMetadata:
    """Adds ``authorization`` and ``x-correlation-id`` to a call's metadata."""

    def __init__(self, token: str | None, correlation_id: str | None) -> None:
        self._token = token
        self._correlation_id = correlation_id

    def extend(self, metadata: Iterable[tuple[str, Any]] | None) -> list[tuple[str, Any]]:
        pairs = list(metadata or ())
        present = {key.lower() for key, _ in pairs}
        if self._token and _AUTHORIZATION not in present:
            pairs.append((_AUTHORIZATION, f"Bearer {self._token}"))
        cid = self._correlation_id or correlation_id_or_none()
        if cid and CORRELATION_ID_HEADER not in present:
            pairs.append((CORRELATION_ID_HEADER, cid))
        tracing.inject_metadata(pairs)
        return pairs


class _AioInterceptor:
    def __init__(self, metadata: _CallMetadata) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return grpc.aio.ClientCallDetails(
            details.method,
            details.timeout,
            grpc.aio.Metadata(*self._metadata.extend(details.metadata)),
            details.credentials,
            details.wait_for_ready,
        )

    async def _call(self, continuation: Any, details: Any, request: Any) -> Any:
        return await continuation(self._details(details), request)


# grpc.aio files an interceptor under the first of the four kinds it is an instance of
# (an if/elif chain), so one class per kind, not one class for all four.
class _AioUnaryUnary(_AioInterceptor, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    intercept_unary_unary = _AioInterceptor._call


class _AioUnaryStream(_AioInterceptor, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    intercept_unary_stream = _AioInterceptor._call


class _AioStreamUnary(_AioInterceptor, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    intercept_stream_unary = _AioInterceptor._call


class _AioStreamStream(_AioInterceptor, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    intercept_stream_stream = _AioInterceptor._call


def channel(
    address: str,
    token: str | None,
    *,
    correlation_id: str | None = None,
    root_certificates: bytes | None = None,
    tls: ClientTls | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.aio.Channel:
    """A grpc.aio channel to ``address`` (``host:port``) sending ``token`` as a bearer token.

    Use as ``async with channel(addr, token) as ch: stub = FooStub(ch)``.
    """
    metadata = _CallMetadata(token, correlation_id or os.environ.get(CORRELATION_ID_ENV))
    interceptors = [
        kind(metadata)
        for kind in (_AioUnaryUnary, _AioUnaryStream, _AioStreamUnary, _AioStreamStream)
    ]
    credentials = _credentials(tls, root_certificates)
    if credentials is not None:
        return grpc.aio.secure_channel(
            address,
            credentials,
            options=_options(max_message_bytes),
            interceptors=interceptors,
        )
    return grpc.aio.insecure_channel(
        address, options=_options(max_message_bytes), interceptors=interceptors
    )


class _SyncCallDetails(
    collections.namedtuple(
        "_SyncCallDetails",
        ("method", "timeout", "metadata", "credentials", "wait_for_ready", "compression"),
    ),
    grpc.ClientCallDetails,
):  # type: ignore[misc]
    pass


class _SyncMetadataInterceptor(
    grpc.UnaryUnaryClientInterceptor,
    grpc.UnaryStreamClientInterceptor,
    grpc.StreamUnaryClientInterceptor,
    grpc.StreamStreamClientInterceptor,
):  # type: ignore[misc]
    def __init__(self, metadata: _CallMetadata) -> None:
        self._metadata = metadata

    def _details(self, details: Any) -> Any:
        return _SyncCallDetails(
            details.method,
            details.timeout,
            self._metadata.extend(details.metadata),
            details.credentials,
            getattr(details, "wait_for_ready", None),
            getattr(details, "compression", None),
        )

    def _call(self, continuation: Callable[..., Any], details: Any, request: Any) -> Any:
        return continuation(self._details(details), request)

    intercept_unary_unary = _call
    intercept_unary_stream = _call
    intercept_stream_unary = _call
    intercept_stream_stream = _call


def sync_channel(
    address: str,
    token: str | None,
    *,
    correlation_id: str | None = None,
    root_certificates: bytes | None = None,
    tls: ClientTls | None = None,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
) -> grpc.Channel:
    """The blocking counterpart of :func:`channel`, for the CLI. Close it (or use ``with``)."""
    credentials = _credentials(tls, root_certificates)
    if credentials is not None:
        base = grpc.secure_channel(address, credentials, options=_options(max_message_bytes))
    else:
        base = grpc.insecure_channel(address, options=_options(max_message_bytes))
    interceptor = _SyncMetadataInterceptor(
        _CallMetadata(token, correlation_id or os.environ.get(CORRELATION_ID_ENV))
    )
    return grpc.intercept_channel(base, interceptor)
