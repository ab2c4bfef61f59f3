"""Stripe's idempotency layer for POST requests.

What it promises, after Stripe's documentation (docs.stripe.com/api/idempotent_requests):

* The first request with a key that reaches the endpoint has its status and body
  saved; a later request with the same key *and the same parameters* gets that
  saved answer back (``Idempotent-Replayed: true``), and nothing runs twice.
* The same key with different parameters (or another endpoint) is refused with a
  400 ``idempotency_error``.
* A request whose key is still executing is refused with 409
  ``idempotency_key_in_use``; nothing is saved for it, so the client may retry.
* Nothing is saved when the request failed validation before the endpoint ran.
* Keys are scoped to the account the request acts for (``Stripe-Account``), and
  are forgotten once at least 24 hours old; the same key then runs anew.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from seisan_shared.stripe_local.clock import Clock

KEY_TTL_SECONDS = 24 * 3600
MAX_KEY_LENGTH = 255


def fingerprint(method: str, path: str, pairs: Iterable[tuple[str, str]]) -> str:
    """What "the same request" means: endpoint and parameters, in any order."""
    digest = hashlib.sha256(f"{method} {path}\n".encode())
    for key, value in sorted(pairs):
        digest.update(f"{key}={value}\n".encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class SavedResponse:
    status: int
    body: bytes
    request_id: str
    headers: tuple[tuple[str, str], ...] = ()


@dataclass
class _Entry:
    fingerprint: str
    created: float
    response: SavedResponse | None = None  # None while the first request executes


@dataclass(frozen=True)
class Started:
    """The caller owns the key: run the endpoint, then :meth:`IdempotencyKeys.finish` or
    :meth:`IdempotencyKeys.abandon`."""


@dataclass(frozen=True)
class Replay:
    response: SavedResponse


@dataclass(frozen=True)
class InUse:
    """Another request with this key is executing right now."""


@dataclass(frozen=True)
class Mismatch:
    """The key was first used with other parameters or another endpoint."""


Outcome = Started | Replay | InUse | Mismatch


class IdempotencyKeys:
    def __init__(self, clock: Clock, ttl: float = KEY_TTL_SECONDS) -> None:
        self._clock = clock
        self._ttl = ttl
        self._entries: OrderedDict[tuple[str, str], _Entry] = OrderedDict()

    def begin(self, scope: str, key: str, request_fingerprint: str) -> Outcome:
        self._expire()
        entry = self._entries.get((scope, key))
        if entry is None:
            self._entries[(scope, key)] = _Entry(request_fingerprint, self._clock.now())
            return Started()
        if entry.fingerprint != request_fingerprint:
            return Mismatch()
        if entry.response is None:
            return InUse()
        return Replay(entry.response)

    def finish(self, scope: str, key: str, response: SavedResponse) -> None:
        entry = self._entries.get((scope, key))
        if entry is not None and entry.response is None:
            entry.response = response

    def abandon(self, scope: str, key: str) -> None:
        entry = self._entries.get((scope, key))
        if entry is not None and entry.response is None:
            del self._entries[(scope, key)]

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self) -> None:
        # Entries are kept in creation order, so the oldest are at the front.
        cutoff = self._clock.now() - self._ttl
        while self._entries:
            scope_key, entry = next(iter(self._entries.items()))
            if entry.created > cutoff:
                return
            del self._entries[scope_key]

    def snapshot(self) -> list[dict[str, Any]]:
        return [
            {
                "scope": scope,
                "key": key,
                "fingerprint": entry.fingerprint,
                "created": entry.created,
                "status": entry.response.status,
                "body": entry.response.body.decode("utf-8"),
                "request_id": entry.response.request_id,
                "headers": [list(h) for h in entry.response.headers],
            }
            for (scope, key), entry in self._entries.items()
            if entry.response is not None
        ]

    def restore(self, rows: list[dict[str, Any]]) -> None:
        for row in rows:
            response = SavedResponse(
                row["status"],
                row["body"].encode("utf-8"),
                row["request_id"],
                tuple((name, value) for name, value in row["headers"]),
            )
            self._entries[(row["scope"], row["key"])] = _Entry(
                row["fingerprint"], row["created"], response
            )
