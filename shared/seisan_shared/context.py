"""Who is calling and which request this is, for the duration of one call.

The gRPC interceptors bind both before a servicer runs (grpc.aio gives every
RPC its own :mod:`contextvars` context, shared by the interceptors and the
handler, so nothing leaks between calls). Handlers and anything they call read
them with :func:`current_principal` and :func:`correlation_id`; tests and bus
consumers bind them with :func:`bound`.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from seisan_shared.auth import Principal
from seisan_shared.errors import Unauthenticated

CORRELATION_ID_HEADER = "x-correlation-id"
_MAX_CORRELATION_ID = 128

_principal: ContextVar[Principal | None] = ContextVar("seisan_principal", default=None)
_correlation_id: ContextVar[str | None] = ContextVar("seisan_correlation_id", default=None)


def current_principal() -> Principal:
    """The authenticated caller; raises :class:`~seisan_shared.errors.Unauthenticated` if none."""
    principal = _principal.get()
    if principal is None:
        raise Unauthenticated("no authenticated principal for this call")
    return principal


def principal_or_none() -> Principal | None:
    """The authenticated caller, or None (open endpoints, background work)."""
    return _principal.get()


def correlation_id() -> str:
    """The id tying this call's log lines and events together; a new uuid4 if none is bound."""
    value = _correlation_id.get()
    if value is None:
        value = new_correlation_id()
        _correlation_id.set(value)
    return value


def correlation_id_or_none() -> str | None:
    """The bound correlation id, without generating one (for propagating it downstream)."""
    return _correlation_id.get()


def new_correlation_id() -> str:
    return str(uuid.uuid4())


def bind_principal(principal: Principal | None) -> None:
    """Set the caller for the rest of the current context (used by the auth interceptor)."""
    _principal.set(principal)


def bind_correlation_id(value: str) -> None:
    """Set the correlation id for the rest of the current context."""
    _correlation_id.set(value)


def correlation_id_from_metadata(metadata: Iterable[tuple[str, str | bytes]] | None) -> str:
    """The caller's ``x-correlation-id`` if it sent a sane one, else a new uuid4.

    A client-supplied id is trimmed to 128 printable characters so it cannot
    flood or forge log lines.
    """
    for key, value in metadata or ():
        if key.lower() == CORRELATION_ID_HEADER and isinstance(value, str):
            value = value.strip()[:_MAX_CORRELATION_ID]
            if value and value.isprintable():
                return value
    return new_correlation_id()


@contextmanager
def bound(principal: Principal | None = None, correlation: str | None = None) -> Iterator[None]:
    """Bind a principal and/or correlation id for a block, restoring the previous values after.

    For tests and bus consumers::

        with bound(Principal("aiko", frozenset({"staff"}))):
            await handlers.upload(...)
    """
    principal_token = _principal.set(principal)
    correlation_token = _correlation_id.set(correlation)
    try:
        yield
    finally:
        _correlation_id.reset(correlation_token)
        _principal.reset(principal_token)


@contextmanager
def correlated(value: str) -> Iterator[None]:
    """Bind only the correlation id for a block (an event being handled), then restore it."""
    token = _correlation_id.set(value)
    try:
        yield
    finally:
        _correlation_id.reset(token)
