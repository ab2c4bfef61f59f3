"""The hash chain: audit records, their canonical bytes, appending and verifying.

Every entry carries ``seq`` (1, 2, 3… without gaps), the hash of the entry
before it (``prev_hash``; 64 zeros for the first) and its own hash::

    entry_hash = SHA-256(bytes.fromhex(prev_hash) || canonical_bytes(seq, record, recorded_at))

``canonical_bytes`` is UTF-8 JSON with sorted keys, no whitespace and no
ASCII escaping, so the bytes depend only on the values (never on dict order
or on how a producer escaped its strings). Editing any field, the ``seq`` or a
link changes a hash that a later entry or the anchor pins down; verification
recomputes everything and trusts no stored hash except as evidence.

The chain alone cannot tell that its last entries were cut off (a shorter
chain is still a valid chain), nor that a well-formed entry was appended by
someone who knows this algorithm. Both are caught against a *witness*: the
anchor (head count and hash, kept in its own guarded row, moved in the same
transaction as every append — must match exactly) and checkpoints (earlier
heads copied out of the database — the chain must still contain them).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from seisan_audit.domain.errors import InvalidRecord

GENESIS_HASH = "0" * 64
MAX_RECORD_ID = 200
PROBLEM_LIMIT = 1000  # problems kept in a report; the rest are only counted


@dataclass(frozen=True)
class AuditRecord:
    """One decision: who did what to which thing, when, and the state before and after.

    ``before_json``/``after_json`` are canonical JSON text (see
    :func:`canonical_state`), or "" when there is no state (nothing before a
    creation, nothing after a deletion).
    """

    record_id: str
    source_service: str
    actor: str
    action: str
    entity_type: str
    entity_id: str
    before_json: str
    after_json: str
    reason: str
    occurred_at: datetime
    correlation_id: str = ""

    @classmethod
    def create(
        cls,
        *,
        record_id: str,
        source_service: str,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        before_json: str,
        after_json: str,
        reason: str,
        occurred_at: datetime,
        correlation_id: str = "",
    ) -> AuditRecord:
        """A validated record with its states in canonical form (raises InvalidRecord)."""
        for name, value in (
            ("record_id", record_id),
            ("source_service", source_service),
            ("action", action),
        ):
            if not value:
                raise InvalidRecord(f"audit record without {name}")
        if len(record_id) > MAX_RECORD_ID:
            raise InvalidRecord(f"record_id longer than {MAX_RECORD_ID} characters")
        if occurred_at.tzinfo is None:
            raise InvalidRecord("occurred_at must be timezone-aware")
        return cls(
            record_id=record_id,
            source_service=source_service,
            actor=actor,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            before_json=canonical_state(before_json, "before_json"),
            after_json=canonical_state(after_json, "after_json"),
            reason=reason,
            occurred_at=occurred_at,
            correlation_id=correlation_id,
        )


@dataclass(frozen=True)
class ChainEntry:
    seq: int
    record: AuditRecord
    recorded_at: datetime
    prev_hash: str
    entry_hash: str


@dataclass(frozen=True)
class DamagedEntry:
    """A stored row that cannot even be read as an entry (a field of the wrong type, a bad time).

    Verification reports it as edited and carries on from its stored hash.
    """

    seq: int
    prev_hash: str
    entry_hash: str
    reason: str


@dataclass(frozen=True)
class ChainHead:
    """A chain's length and the hash of its last entry; also the shape of anchors."""

    records: int
    head_hash: str


GENESIS = ChainHead(0, GENESIS_HASH)


@dataclass(frozen=True)
class Checkpoint:
    """A head copied out of the database at ``taken_at``: the chain must still contain it."""

    records: int
    head_hash: str
    taken_at: datetime

    @property
    def head(self) -> ChainHead:
        return ChainHead(self.records, self.head_hash)


# --- canonical bytes -------------------------------------------------------------------------


def canonical_json(value: Any) -> str:
    """JSON text that depends only on ``value``: sorted keys, no spaces, no ASCII escapes.

    NaN and infinities are refused (not JSON). Unicode is kept as given, not
    NFC-normalised: the trail records exactly what was decided.
    """
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, separators=(",", ":"), allow_nan=False
    )


def canonical_state(text: str, field: str = "state") -> str:
    """Re-encode a JSON document canonically; "" (no state) stays "". Raises InvalidRecord."""
    if text == "":
        return ""
    try:
        value = json.loads(text, parse_constant=_refuse_constant)
        canonical = canonical_json(value)
        canonical.encode("utf-8")  # lone surrogates from "\ud800" escapes cannot be stored
    except (ValueError, UnicodeEncodeError) as exc:
        raise InvalidRecord(f"{field} is not valid JSON: {exc}") from None
    return canonical


def _refuse_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def format_instant(moment: datetime) -> str:
    """UTC, microseconds, 'Z': the one text form of a time inside the chain."""
    if moment.tzinfo is None:
        raise ValueError("a chain time must be timezone-aware")
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_instant(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=UTC)


def canonical_bytes(seq: int, record: AuditRecord, recorded_at: datetime) -> bytes:
    """The bytes an entry's hash covers: every field of the record, its seq and append time."""
    document = {
        "seq": seq,
        "record_id": record.record_id,
        "source_service": record.source_service,
        "actor": record.actor,
        "action": record.action,
        "entity_type": record.entity_type,
        "entity_id": record.entity_id,
        "before": record.before_json,
        "after": record.after_json,
        "reason": record.reason,
        "occurred_at": format_instant(record.occurred_at),
        "recorded_at": format_instant(recorded_at),
        "correlation_id": record.correlation_id,
    }
    return canonical_json(document).encode("utf-8")


def entry_hash(prev_hash: str, seq: int, record: AuditRecord, recorded_at: datetime) -> str:
    """Hex SHA-256 over the previous hash (32 bytes) and this entry's canonical bytes."""
    digest = hashlib.sha256(_hash_bytes(prev_hash))
    digest.update(canonical_bytes(seq, record, recorded_at))
    return digest.hexdigest()


def _hash_bytes(hex_hash: str) -> bytes:
    try:
        raw = bytes.fromhex(hex_hash)
    except ValueError:
        raw = b""
    if len(raw) != 32:
        # A damaged prev_hash must still hash (to something that cannot match), not crash.
        return b"\xff" + hex_hash.encode("utf-8", "replace")
    return raw


def next_entry(head: ChainHead, record: AuditRecord, recorded_at: datetime) -> ChainEntry:
    """The entry that appends ``record`` after ``head``."""
    seq = head.records + 1
    return ChainEntry(
        seq=seq,
        record=record,
        recorded_at=recorded_at,
        prev_hash=head.head_hash,
        entry_hash=entry_hash(head.head_hash, seq, record, recorded_at),
    )


# --- verification ----------------------------------------------------------------------------


class ProblemKind(StrEnum):
    EDITED = "edited"
    MISSING = "missing"
    BROKEN_LINK = "broken_link"
    OUT_OF_ORDER = "out_of_order"
    TRUNCATED = "truncated"
    ANCHOR_MISMATCH = "anchor_mismatch"


@dataclass(frozen=True)
class Problem:
    kind: ProblemKind
    seq: int  # where it shows; 0 for the chain as a whole
    detail: str

    def __str__(self) -> str:
        where = f"seq {self.seq}" if self.seq else "chain"
        return f"{self.kind.value} at {where}: {self.detail}"


@dataclass(frozen=True)
class ChainReport:
    records: int  # entries read
    last_seq: int
    head_hash: str  # stored hash of the last entry read
    problems: tuple[Problem, ...]
    problem_count: int  # may exceed len(problems) (PROBLEM_LIMIT)

    @property
    def ok(self) -> bool:
        return self.problem_count == 0

    @property
    def first_problem(self) -> Problem | None:
        return self.problems[0] if self.problems else None


@dataclass(frozen=True)
class _Witness:
    head: ChainHead
    exact: bool  # the anchor: the chain must end exactly here
    label: str


class ChainVerifier:
    """Feed entries in stored order; :meth:`report` says what is wrong, first problem first.

    After a problem the verifier re-synchronises on the entry it just saw, so
    one edited or deleted entry is reported once, not as a cascade. ``start``
    verifies a segment that follows an already trusted head. The anchor is
    given to :meth:`report`, read *after* the entries (an anchor read first
    would be overtaken by entries appended during the read);
    ``anchor_at_least`` — an anchor read before them — tells which entry
    hashes to keep for it.
    """

    def __init__(
        self,
        *,
        start: ChainHead = GENESIS,
        checkpoints: Iterable[Checkpoint] = (),
        anchor_at_least: int | None = None,
    ) -> None:
        self._expected_seq = start.records + 1
        self._prev_hash = start.head_hash
        self._last_seq = start.records
        self._head_hash = start.head_hash
        self._records = 0
        self._problems: list[Problem] = []
        self._problem_count = 0
        self._checkpoints = [
            _Witness(cp.head, False, f"checkpoint of {format_instant(cp.taken_at)}")
            for cp in checkpoints
        ]
        self._keep_from = anchor_at_least
        self._hash_at: dict[int, str] = {0: GENESIS_HASH, start.records: start.head_hash}
        for witness in self._checkpoints:
            self._hash_at.setdefault(witness.head.records, "")

    def _problem(self, kind: ProblemKind, seq: int, detail: str) -> None:
        self._problem_count += 1
        if len(self._problems) < PROBLEM_LIMIT:
            self._problems.append(Problem(kind, seq, detail))

    def feed(self, entry: ChainEntry | DamagedEntry) -> None:
        self._records += 1
        seq = entry.seq
        if seq < self._expected_seq:
            self._problem(
                ProblemKind.OUT_OF_ORDER,
                seq,
                f"entry {seq} comes after entry {self._expected_seq - 1} (reordered or repeated)",
            )
            # Keep expecting the successor of the highest entry: the rest still links to it.
            self._check_hash(entry)
            return
        if seq > self._expected_seq:
            first, last = self._expected_seq, seq - 1
            gap = f"entry {first}" if first == last else f"entries {first}..{last}"
            self._problem(ProblemKind.MISSING, seq, f"{gap} missing (deleted)")
        elif entry.prev_hash != self._prev_hash:
            what = f"entry {seq - 1}" if seq > 1 else "the chain's start (64 zeros)"
            self._problem(
                ProblemKind.BROKEN_LINK,
                seq,
                f"prev_hash {entry.prev_hash[:12]} does not link to {what} "
                f"({self._prev_hash[:12]}): an entry was replaced or re-hashed",
            )
        self._check_hash(entry)
        self._expected_seq = seq + 1
        self._prev_hash = entry.entry_hash
        self._last_seq = seq
        self._head_hash = entry.entry_hash
        if seq in self._hash_at or (self._keep_from is not None and seq >= self._keep_from):
            self._hash_at[seq] = entry.entry_hash

    def _check_hash(self, entry: ChainEntry | DamagedEntry) -> None:
        if isinstance(entry, DamagedEntry):
            self._problem(ProblemKind.EDITED, entry.seq, f"unreadable: {entry.reason}")
            return
        recomputed = entry_hash(entry.prev_hash, entry.seq, entry.record, entry.recorded_at)
        if recomputed != entry.entry_hash:
            self._problem(
                ProblemKind.EDITED,
                entry.seq,
                f"content does not match its hash (stored {entry.entry_hash[:12]}, "
                f"content gives {recomputed[:12]})",
            )

    @property
    def last_seq(self) -> int:
        return self._last_seq

    def report(self, anchor: ChainHead | None = None) -> ChainReport:
        """The verdict; ``anchor`` (if any) must match the chain's end exactly."""
        if anchor is not None:
            self._check_witness(_Witness(anchor, True, "anchor"))
        for witness in self._checkpoints:
            self._check_witness(witness)
        return ChainReport(
            records=self._records,
            last_seq=self._last_seq,
            head_hash=self._head_hash,
            problems=tuple(self._problems),
            problem_count=self._problem_count,
        )

    def _check_witness(self, witness: _Witness) -> None:
        head = witness.head
        if not head.head_hash:
            self._problem(ProblemKind.ANCHOR_MISMATCH, 0, f"the {witness.label} is missing")
            return
        if head.records > self._last_seq:
            self._problem(
                ProblemKind.TRUNCATED,
                self._last_seq + 1,
                f"the {witness.label} records {head.records} entries ending in "
                f"{head.head_hash[:12]}, but the chain ends at entry {self._last_seq}: "
                f"its tail was cut off",
            )
            return
        found = self._hash_at.get(head.records, "")
        if found != head.head_hash:
            shown = found[:12] if found else "no such entry"
            self._problem(
                ProblemKind.ANCHOR_MISMATCH,
                head.records,
                f"the {witness.label} says entry {head.records} hashes to "
                f"{head.head_hash[:12]}, the chain has {shown}: rewritten up to there",
            )
        elif witness.exact and self._last_seq > head.records:
            self._problem(
                ProblemKind.ANCHOR_MISMATCH,
                head.records + 1,
                f"entries {head.records + 1}..{self._last_seq} are beyond the anchor "
                f"(appended outside the audit service)",
            )


def verify_chain(
    entries: Iterable[ChainEntry | DamagedEntry],
    *,
    anchor: ChainHead | None = None,
    checkpoints: Iterable[Checkpoint] = (),
    start: ChainHead = GENESIS,
) -> ChainReport:
    """Recompute the chain from ``entries`` (in stored order) and check it against its witnesses."""
    verifier = ChainVerifier(
        start=start,
        checkpoints=checkpoints,
        anchor_at_least=None if anchor is None else anchor.records,
    )
    for entry in entries:
        verifier.feed(entry)
    return verifier.report(anchor)


def is_hex_hash(text: str) -> bool:
    return len(text) == 64 and all(c in "0123456789abcdef" for c in text)
