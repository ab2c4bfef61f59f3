"""The gateway's errors: what a service said, in terms of what the browser should get."""

from __future__ import annotations


class GatewayError(Exception):
    """Root of the gateway's exceptions; ``status`` is the HTTP status to answer with."""

    status = 500


class NotSignedIn(GatewayError):
    status = 401


class Forbidden(GatewayError):
    status = 403


class NotFound(GatewayError):
    status = 404


class Refused(GatewayError):
    """The service refused the input (bad argument, wrong state); the message says why."""

    status = 400


class Unavailable(GatewayError):
    status = 503


class CsrfFailed(Forbidden):
    """A POST without the session's CSRF token."""
