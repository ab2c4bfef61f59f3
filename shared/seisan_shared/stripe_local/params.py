"""Reading and checking decoded form parameters the way Stripe's API does."""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from typing import Any

from seisan_shared.stripe_local.errors import StripeError, invalid, missing_param, unknown_param

_CURRENCY = re.compile(r"^[A-Za-z]{3}$")
_INTEGER = re.compile(r"^-?\d+$")


def check_names(
    params: Mapping[str, Any],
    allowed: Collection[str],
    unsupported: Collection[str] = (),
    prefix: str = "",
) -> None:
    """Refuse names the endpoint does not take; name the ones Stripe has but we do not."""
    for name in params:
        full = f"{prefix}[{name}]" if prefix else name
        if name in allowed:
            continue
        if name in unsupported:
            raise invalid(
                f"The local Stripe server does not support the parameter {full}.", param=full
            )
        raise unknown_param(full)


def no_expand(params: Mapping[str, Any]) -> None:
    if params.get("expand"):
        raise invalid(
            "The local Stripe server does not expand objects; ask for the ids instead.",
            param="expand",
        )


def string(
    params: Mapping[str, Any], name: str, *, required: bool = False, max_length: int = 5000
) -> str | None:
    """A string parameter; an empty string means "not set", as in Stripe's API."""
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(name)
        return None
    if not isinstance(value, str):
        raise invalid(f"Invalid string: {value!r}", param=name, code="parameter_invalid_string")
    if len(value) > max_length:
        raise invalid(
            f"Invalid string: {value[:20]}...; must be at most {max_length} characters",
            param=name,
            code="parameter_invalid_string",
        )
    return value


def choice(
    params: Mapping[str, Any], name: str, options: Collection[str], default: str | None = None
) -> str | None:
    value = string(params, name)
    if value is None:
        return default
    if value not in options:
        raise invalid(f"Invalid {name}: must be one of {', '.join(sorted(options))}", param=name)
    return value


def integer(params: Mapping[str, Any], name: str, *, required: bool = False) -> int | None:
    value = params.get(name)
    if value is None or value == "":
        if required:
            raise missing_param(name)
        return None
    if not isinstance(value, str) or not _INTEGER.match(value):
        raise invalid(f"Invalid integer: {value}", param=name, code="parameter_invalid_integer")
    return int(value)


def positive_amount(params: Mapping[str, Any], name: str = "amount") -> int:
    value = integer(params, name, required=True)
    assert value is not None
    if value <= 0:
        raise invalid("Invalid positive integer", param=name, code="parameter_invalid_integer")
    return value


def currency(params: Mapping[str, Any], name: str = "currency") -> str:
    value = string(params, name, required=True)
    assert value is not None
    if not _CURRENCY.match(value):
        raise invalid(f"Invalid currency: {value}", param=name)
    return value.lower()


def boolean(value: Any, name: str) -> bool:
    if value in ("true", "false"):
        return bool(value == "true")
    raise invalid(f"Invalid boolean: {value}", param=name)


def metadata(value: Any, current: Mapping[str, str] | None = None) -> dict[str, str]:
    """Stripe's metadata rules: up to 50 keys, keys <= 40 chars, values <= 500; "" unsets."""
    result = dict(current or {})
    if value is None:
        return result
    if value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid hash", param="metadata")
    for key, item in value.items():
        if not isinstance(item, str):
            raise invalid("Invalid hash", param=f"metadata[{key}]")
        if len(key) > 40:
            raise invalid("Metadata keys can have up to 40 characters.", param=f"metadata[{key}]")
        if len(item) > 500:
            raise invalid(
                "Metadata values can have up to 500 characters.", param=f"metadata[{key}]"
            )
        if item == "":
            result.pop(key, None)
        else:
            result[key] = item
    if len(result) > 50:
        raise invalid("Metadata can have up to 50 keys.", param="metadata")
    return result


def dict_param(params: Mapping[str, Any], name: str) -> dict[str, Any]:
    value = params.get(name)
    if value is None or value == "":
        return {}
    if not isinstance(value, dict):
        raise invalid("Invalid hash", param=name)
    return value


def balance_insufficient(message: str) -> StripeError:
    return StripeError(400, message, code="balance_insufficient")
