"""Server-side sessions: the cookie carries only a random id; the token stays on the server.

A session holds the principal's bearer token so the gateway can call the
services *as that person* — the services stay the authority on what they may
see and do. Roles here only decide which pages and links to offer.
"""

from __future__ import annotations

import hmac
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class Session:
    session_id: str
    principal: str
    roles: frozenset[str]
    token: str
    csrf_token: str
    last_seen: float = field(default=0.0)

    def has_any(self, *roles: str) -> bool:
        return not self.roles.isdisjoint(roles)

    def csrf_ok(self, presented: str | None) -> bool:
        return bool(presented) and hmac.compare_digest(presented or "", self.csrf_token)


class SessionStore:
    """Sessions in memory; idle ones expire. A restart signs everybody out (by design)."""

    def __init__(self, idle_seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._idle = idle_seconds
        self._clock = clock
        self._sessions: dict[str, Session] = {}

    def create(self, principal: str, roles: frozenset[str], token: str) -> Session:
        self._expire()
        session = Session(
            session_id=secrets.token_urlsafe(32),
            principal=principal,
            roles=roles,
            token=token,
            csrf_token=secrets.token_urlsafe(32),
            last_seen=self._clock(),
        )
        self._sessions[session.session_id] = session
        return session

    def get(self, session_id: str | None) -> Session | None:
        if not session_id:
            return None
        session = self._sessions.get(session_id)
        if session is None:
            return None
        now = self._clock()
        if now - session.last_seen > self._idle:
            del self._sessions[session_id]
            return None
        session.last_seen = now
        return session

    def end(self, session_id: str | None) -> None:
        if session_id:
            self._sessions.pop(session_id, None)

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = self._clock()
        for sid in [s for s, v in self._sessions.items() if now - v.last_seen > self._idle]:
            del self._sessions[sid]
