"""What the audit service does: append a record, verify the chain, take a checkpoint."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from seisan_audit.domain.chain import (
    GENESIS,
    AuditRecord,
    ChainEntry,
    ChainReport,
    ChainVerifier,
    Checkpoint,
    Problem,
    ProblemKind,
    next_entry,
)
from seisan_audit.domain.ports import AuditLog, AuditReader, CheckpointStore

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


async def append_record(
    audit_log: AuditLog, record: AuditRecord, *, now: Clock = utc_now
) -> ChainEntry | None:
    """Append ``record`` at the head of the chain; None when it is there already (redelivery)."""
    head = await audit_log.head()  # locks the head first: the check below is then authoritative
    if await audit_log.has_record(record.record_id):
        return None
    entry = next_entry(head, record, now())
    await audit_log.append(entry)
    return entry


async def verify(reader: AuditReader, checkpoints: Sequence[Checkpoint] = ()) -> ChainReport:
    """Recompute the whole chain and hold it against its anchor and ``checkpoints``.

    Reads in batches without locking out appenders. The anchor is read once
    before (to know which hashes to keep) and once after the entries; entries
    appended in between are read too, so a busy chain does not look truncated.
    """
    floor = await reader.anchor()
    verifier = ChainVerifier(checkpoints=checkpoints, anchor_at_least=floor.records)
    async for entry in reader.entries():
        verifier.feed(entry)
    anchor = await reader.anchor()
    if anchor.records > verifier.last_seq:
        async for entry in reader.entries(after_seq=verifier.last_seq, until_seq=anchor.records):
            verifier.feed(entry)
    return verifier.report(anchor)


@dataclass(frozen=True)
class CheckpointOutcome:
    checkpoint: Checkpoint | None  # the one written, if any
    report: ChainReport | None  # the segment verified since the previous checkpoint

    @property
    def ok(self) -> bool:
        return self.report is None or self.report.ok


async def take_checkpoint(
    reader: AuditReader, store: CheckpointStore, *, now: Clock = utc_now
) -> CheckpointOutcome:
    """Copy the current head out of the database, after verifying what is new since the last copy.

    Only a segment that links to the previous checkpoint and verifies clean is
    certified; otherwise nothing is written and the report says why (the
    service logs it loudly). Nothing new: nothing written.
    """
    previous = store.read()
    start = previous[-1].head if previous else GENESIS
    anchor = await reader.anchor()
    if anchor == start:
        return CheckpointOutcome(None, None)
    if anchor.records < start.records:
        problem = Problem(
            ProblemKind.TRUNCATED,
            anchor.records + 1,
            f"the anchor is at entry {anchor.records}, behind the last checkpoint "
            f"(entry {start.records}): the tail was cut off",
        )
        return CheckpointOutcome(
            None, ChainReport(0, anchor.records, anchor.head_hash, (problem,), 1)
        )
    verifier = ChainVerifier(start=start, anchor_at_least=anchor.records)
    async for entry in reader.entries(after_seq=start.records, until_seq=anchor.records):
        verifier.feed(entry)
    report = verifier.report(anchor)
    if not report.ok:
        return CheckpointOutcome(None, report)
    checkpoint = Checkpoint(anchor.records, anchor.head_hash, now())
    store.append(checkpoint)
    return CheckpointOutcome(checkpoint, report)
