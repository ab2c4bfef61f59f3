"""Principals, roles and the bearer-token file every gRPC server authenticates against.

The token file is TOML, one ``[[principal]]`` table per token::

    [[principal]]
    name = "aiko"
    roles = ["staff"]
    token_sha256 = "3f1c…"   # hex SHA-256 of the bearer token; the token itself is never stored

:meth:`TokenStore.issue` appends an entry and returns the plaintext token once
(``seisan tokens add``); a running server picks the change up on its next
call, without a restart.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import secrets
import threading
import time
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STAFF = "staff"
APPROVER = "approver"
TREASURY = "treasury"
ADMIN = "admin"
ROLES: frozenset[str] = frozenset({STAFF, APPROVER, TREASURY, ADMIN})

_log = logging.getLogger("seisan.auth")
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


class TokenFileError(ValueError):
    """The token file is missing or malformed; the message names the file and the entry."""


@dataclass(frozen=True)
class Principal:
    """Someone (a person or a service) who called us with a known token."""

    name: str
    roles: frozenset[str]

    def has_any(self, roles: Iterable[str]) -> bool:
        """True when the principal holds at least one of ``roles``."""
        return not self.roles.isdisjoint(roles)


def hash_token(token: str) -> str:
    """Hex SHA-256 of ``token``, the form stored in the token file.

    A fast, unsalted hash is the right tool here: tokens are 32 random bytes
    (256 bits of entropy) from :func:`secrets.token_urlsafe`, so there is nothing
    to guess and no dictionary to precompute; key stretching (bcrypt, scrypt)
    protects low-entropy *passwords* and would only slow every call down.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_token() -> str:
    """A fresh bearer token: 32 random bytes, URL-safe base64 (43 characters)."""
    return secrets.token_urlsafe(32)


def _check_roles(roles: Iterable[str], where: str) -> frozenset[str]:
    roles = list(roles)
    if not all(isinstance(role, str) for role in roles):
        raise TokenFileError(f"{where}: roles must be a list of strings, got {roles!r}")
    unknown = sorted(set(roles) - ROLES)
    if unknown:
        raise TokenFileError(
            f"{where}: unknown role(s) {', '.join(map(repr, unknown))} "
            f"(known: {', '.join(sorted(ROLES))})"
        )
    return frozenset(roles)


def _parse(path: Path, text: str) -> dict[str, Principal]:
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise TokenFileError(f"token file {path}: not valid TOML: {err}") from None
    entries = document.get("principal", [])
    if not isinstance(entries, list):
        raise TokenFileError(f"token file {path}: 'principal' must be an array of tables")
    by_hash: dict[str, Principal] = {}
    first_seen: dict[str, int] = {}
    for number, entry in enumerate(entries, start=1):
        where = f"token file {path}, principal #{number}"
        if not isinstance(entry, dict):
            raise TokenFileError(f"{where}: expected a table, got {entry!r}")
        if isinstance(entry.get("name"), str):
            where += f" ({entry['name']!r})"
        digest, principal = _parse_entry(entry, where)
        if digest in by_hash:
            raise TokenFileError(
                f"{where}: token_sha256 repeats principal #{first_seen[digest]}; "
                "each token must be unique"
            )
        by_hash[digest] = principal
        first_seen[digest] = number
    return by_hash


def _parse_entry(entry: Mapping[str, Any], where: str) -> tuple[str, Principal]:
    missing = [key for key in ("name", "roles", "token_sha256") if key not in entry]
    if missing:
        raise TokenFileError(f"{where}: missing key(s) {', '.join(missing)}")
    name, roles, digest = entry["name"], entry["roles"], entry["token_sha256"]
    if not isinstance(name, str) or not _valid_name(name):
        raise TokenFileError(f"{where}: name must be a non-empty string of printable characters")
    if not isinstance(roles, list):
        raise TokenFileError(f"{where}: roles must be a list of strings, got {roles!r}")
    if not isinstance(digest, str) or not _SHA256_HEX.fullmatch(digest):
        raise TokenFileError(f"{where}: token_sha256 must be 64 lower-case hex digits")
    return digest, Principal(name=name, roles=_check_roles(roles, where))


def _valid_name(name: str) -> bool:
    return bool(name.strip()) and name.isprintable()


def _file_stamp(path: Path) -> tuple[int, int, int]:
    st = path.stat()
    return (st.st_mtime_ns, st.st_size, st.st_ino)


class TokenStore:
    """Bearer tokens → principals, read from a TOML token file and reloaded when it changes.

    :meth:`authenticate` stats the file at most once every ``recheck_seconds``
    and re-reads it when its modification time, size or inode changed. A file
    that has become unreadable or malformed is reported in the log (at ERROR)
    and the last good contents stay in force, so a bad edit cannot lock
    everybody out; fix the file and the next check picks it up.
    """

    def __init__(
        self,
        path: Path,
        principals_by_hash: Mapping[str, Principal],
        *,
        recheck_seconds: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self._by_hash = dict(principals_by_hash)
        self._recheck_seconds = recheck_seconds
        self._clock = clock
        self._checked_at = clock()
        self._stamp: tuple[int, int, int] | None = None
        self._last_error: str | None = None
        self._lock = threading.Lock()

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, recheck_seconds: float = 1.0) -> TokenStore:
        """Read the token file at ``path``; :class:`TokenFileError` if missing or malformed."""
        path = Path(path)
        try:
            stamp = _file_stamp(path)
            text = path.read_text(encoding="utf-8")
        except OSError as err:
            raise TokenFileError(f"token file {path}: cannot read: {err.strerror}") from None
        store = cls(path, _parse(path, text), recheck_seconds=recheck_seconds)
        store._stamp = stamp
        return store

    @classmethod
    def from_principals(cls, tokens: Mapping[str, Principal]) -> TokenStore:
        """An in-memory store (plaintext token → principal) for tests; never reloads."""
        store = cls(Path(os.devnull), {hash_token(t): p for t, p in tokens.items()})
        store._recheck_seconds = float("inf")
        return store

    def authenticate(self, token: str) -> Principal | None:
        """The principal holding ``token``, or None for an unknown token.

        The lookup is by the token's hash, so timing reveals nothing about the
        stored hashes that would help forge a token.
        """
        self._reload_if_changed()
        return self._by_hash.get(hash_token(token))

    def principals(self) -> list[Principal]:
        """Every principal currently known (a name may appear once per token)."""
        self._reload_if_changed()
        return list(self._by_hash.values())

    def _reload_if_changed(self) -> None:
        now = self._clock()
        if now - self._checked_at < self._recheck_seconds:
            return
        with self._lock:
            if now - self._checked_at < self._recheck_seconds:
                return
            self._checked_at = now
            try:
                stamp = _file_stamp(self.path)
                if stamp == self._stamp:
                    return
                by_hash = _parse(self.path, self.path.read_text(encoding="utf-8"))
            except (OSError, TokenFileError) as err:
                message = (
                    f"token file {self.path}: cannot read: {err.strerror}"
                    if isinstance(err, OSError)
                    else str(err)
                )
                if message != self._last_error:  # say it once, not every second
                    _log.error("%s; keeping the last good tokens", message)
                    self._last_error = message
                return
            self._by_hash, self._stamp, self._last_error = by_hash, stamp, None
            _log.info("token file %s reloaded: %d token(s)", self.path, len(by_hash))

    @staticmethod
    def issue(path: str | os.PathLike[str], name: str, roles: Iterable[str]) -> str:
        """Append a new principal entry to the token file and return its plaintext token.

        The token is shown this once; only its hash is written. A missing file
        is created with mode 0600. The existing file is validated first, so a
        broken file is never appended to.
        """
        path = Path(path)
        if not _valid_name(name):
            raise TokenFileError(
                f"principal name must be a non-empty string of printable characters: {name!r}"
            )
        checked = sorted(_check_roles(roles, f"token file {path}, new principal {name!r}"))
        if path.exists():
            _parse(path, path.read_text(encoding="utf-8"))
        token = new_token()
        entry = (
            "[[principal]]\n"
            f"name = {json.dumps(name, ensure_ascii=False)}\n"
            f"roles = [{', '.join(json.dumps(role) for role in checked)}]\n"
            f'token_sha256 = "{hash_token(token)}"\n'
        )
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as out:
            # Separate from the previous entry; one write keeps the append atomic enough
            # for a file edited by one operator at a time.
            prefix = "\n" if out.tell() > 0 else ""
            out.write(prefix + entry)
        return token
