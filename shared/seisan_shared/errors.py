"""Domain error kinds shared by every service, and the one table mapping them to gRPC codes.

Each service roots its own hierarchy in one base class that derives from
:class:`DomainError` and mixes in a kind, e.g.::

    class IntakeError(DomainError): ...
    class ReceiptNotFound(IntakeError, NotFound): ...

The gRPC bootstrap catches DomainError and maps it with :data:`STATUS_BY_KIND`
(first match along the exception's MRO), so servicers never pick codes by hand.
"""

from __future__ import annotations

import grpc


class DomainError(Exception):
    """Base of every expected, explainable failure. ``str(err)`` is shown to the caller."""


class InvalidArgument(DomainError):
    """The request itself is wrong (bad field, bad file); retrying it unchanged will fail again."""


class NotFound(DomainError):
    """The named thing does not exist, or the caller may not know that it does."""


class AlreadyExists(DomainError):
    """Creating something that exists already."""


class FailedPrecondition(DomainError):
    """The request is valid but the current state forbids it (delete a matched receipt)."""


class PermissionDenied(DomainError):
    """The caller is known but may not do this."""


class Unauthenticated(DomainError):
    """No valid credentials."""


class ResourceExhausted(DomainError):
    """A configured limit was hit (upload size)."""


class Unavailable(DomainError):
    """A dependency is down; retry later."""


STATUS_BY_KIND: dict[type[DomainError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    PermissionDenied: grpc.StatusCode.PERMISSION_DENIED,
    Unauthenticated: grpc.StatusCode.UNAUTHENTICATED,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}


def status_for(error: BaseException) -> grpc.StatusCode:
    """The gRPC status for ``error``: its kind's code, INTERNAL for anything unexpected."""
    for cls in type(error).__mro__:
        code = STATUS_BY_KIND.get(cls)  # type: ignore[call-overload]
        if code is not None:
            return code
    return grpc.StatusCode.INTERNAL
