"""Stripe-shaped API errors: ``{"error": {"type", "code", "message", "param"}}`` plus a status."""

from __future__ import annotations

from typing import Any

DOC_URL = "https://stripe.com/docs/error-codes/"


class StripeError(Exception):
    """An error answer of the API.

    ``saved`` says whether Stripe's idempotency layer keeps this answer for the
    key: it does once the endpoint has begun executing (a missing destination,
    insufficient funds), not when the parameters failed validation first.
    """

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
        saved: bool = True,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.saved = saved
        self.headers = headers or {}

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.type}
        if self.code:
            error["code"] = self.code
            error["doc_url"] = DOC_URL + self.code.replace("_", "-")
        if self.param:
            error["param"] = self.param
        return {"error": error}


def invalid(message: str, *, param: str | None = None, code: str | None = None) -> StripeError:
    """A parameter failed validation: 400, not kept by the idempotency layer."""
    return StripeError(400, message, code=code, param=param, saved=False)


def missing_param(name: str) -> StripeError:
    return invalid(f"Missing required param: {name}.", param=name, code="parameter_missing")


def unknown_param(name: str) -> StripeError:
    return invalid(f"Received unknown parameter: {name}", param=name, code="parameter_unknown")


def no_such(kind: str, ident: str, *, param: str | None = None) -> StripeError:
    status = 400 if param else 404
    return StripeError(status, f"No such {kind}: '{ident}'", code="resource_missing", param=param)
