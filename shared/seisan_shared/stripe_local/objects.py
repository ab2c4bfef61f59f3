"""Pieces every Stripe object shares: ids, list pages, the request behind a change."""

from __future__ import annotations

import secrets
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from seisan_shared.stripe_local import params as p
from seisan_shared.stripe_local.errors import invalid, no_such

API_VERSION = "2023-08-16"
_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """An id like Stripe's: ``tr_`` + 24 letters and digits (``acct_`` uses 16)."""
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


@dataclass(frozen=True)
class RequestInfo:
    """Which API request caused a change (shown in events as ``request``)."""

    id: str | None = None
    idempotency_key: str | None = None


def list_object(data: list[dict[str, Any]], url: str) -> dict[str, Any]:
    return {"object": "list", "data": data, "has_more": False, "url": url}


def empty_requirements() -> dict[str, Any]:
    return {
        "alternatives": [],
        "current_deadline": None,
        "currently_due": [],
        "disabled_reason": None,
        "errors": [],
        "eventually_due": [],
        "past_due": [],
        "pending_verification": [],
    }


def type_matches(event_type: str, wanted: Iterable[str]) -> bool:
    """``payout.paid`` matches ``payout.paid`` and ``payout.*``."""
    for pattern in wanted:
        if pattern == event_type or (pattern.endswith("*") and event_type.startswith(pattern[:-1])):
            return True
    return False


def _created_matches(created: int, condition: Any) -> bool:
    if isinstance(condition, str):
        return created == int(condition)
    checks = {
        "gt": lambda v: created > v,
        "gte": lambda v: created >= v,
        "lt": lambda v: created < v,
        "lte": lambda v: created <= v,
    }
    return all(checks[op](int(value)) for op, value in condition.items())


def paginate(items: list[dict[str, Any]], params: Mapping[str, Any], url: str) -> dict[str, Any]:
    """A Stripe list page of ``items`` (newest first): limit, starting_after, ending_before."""
    limit = p.integer(params, "limit")
    limit = 10 if limit is None else limit
    if not 1 <= limit <= 100:
        raise invalid("This value must be between 1 and 100.", param="limit")
    created = params.get("created")
    if created:
        if isinstance(created, dict):
            p.check_names(created, ("gt", "gte", "lt", "lte"), (), "created")
        values = created.values() if isinstance(created, dict) else [created]
        if not all(isinstance(v, str) and v.lstrip("-").isdigit() for v in values):
            raise invalid("Invalid timestamp", param="created")
        items = [i for i in items if _created_matches(i["created"], created)]
    ids = [i["id"] for i in items]
    after, before = params.get("starting_after"), params.get("ending_before")
    if after:
        if after not in ids:
            raise no_such("object", str(after), param="starting_after")
        rest = items[ids.index(after) + 1 :]
        page, has_more = rest[:limit], len(rest) > limit
    elif before:
        if before not in ids:
            raise no_such("object", str(before), param="ending_before")
        rest = items[: ids.index(before)]
        page, has_more = rest[-limit:], len(rest) > limit
    else:
        page, has_more = items[:limit], len(items) > limit
    return {"object": "list", "data": page, "has_more": has_more, "url": url}
