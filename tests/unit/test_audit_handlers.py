"""Audit handlers against in-memory fakes of the ports: append, verify, checkpoint."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from seisan_audit.domain.chain import (
    GENESIS,
    AuditRecord,
    ChainEntry,
    ChainHead,
    Checkpoint,
    DamagedEntry,
    ProblemKind,
    next_entry,
)
from seisan_audit.domain.ports import AuditLog, AuditReader, CheckpointStore, RecordQuery
from seisan_audit.handlers import append_record, take_checkpoint, verify

T0 = datetime(2026, 11, 3, 9, 0, tzinfo=UTC)


class Ticking:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        self.now += timedelta(milliseconds=7)
        return self.now


class MemoryAudit(AuditLog, AuditReader):
    """Both sides of the chain in a list; ``rows`` may be tampered with directly."""

    def __init__(self) -> None:
        self.rows: list[ChainEntry | DamagedEntry] = []
        self.anchor_head = GENESIS
        self.during_read: Callable[[], None] | None = None

    async def head(self) -> ChainHead:
        return self.anchor_head

    async def has_record(self, record_id: str) -> bool:
        return any(isinstance(r, ChainEntry) and r.record.record_id == record_id for r in self.rows)

    async def append(self, entry: ChainEntry) -> None:
        self.rows.append(entry)
        self.anchor_head = ChainHead(entry.seq, entry.entry_hash)

    async def anchor(self) -> ChainHead:
        return self.anchor_head

    async def entries(
        self, after_seq: int = 0, until_seq: int | None = None
    ) -> AsyncIterator[ChainEntry | DamagedEntry]:
        snapshot = [
            r
            for r in sorted(self.rows, key=lambda r: r.seq)
            if r.seq > after_seq and (until_seq is None or r.seq <= until_seq)
        ]
        for row in snapshot:
            yield row
        if self.during_read is not None:  # appends that land while the reader is busy
            hook, self.during_read = self.during_read, None
            hook()

    async def find(self, query: RecordQuery) -> list[ChainEntry | DamagedEntry]:
        return [r for r in self.rows if r.seq > query.after_seq][: query.limit]

    async def latest(self, count: int) -> list[ChainEntry | DamagedEntry]:
        return self.rows[-count:]

    async def get(self, seq: int) -> ChainEntry | DamagedEntry | None:
        return next((r for r in self.rows if r.seq == seq), None)


class MemoryCheckpoints(CheckpointStore):
    def __init__(self) -> None:
        self.items: list[Checkpoint] = []

    def read(self) -> list[Checkpoint]:
        return list(self.items)

    def append(self, checkpoint: Checkpoint) -> None:
        self.items.append(checkpoint)


def record(n: int) -> AuditRecord:
    return AuditRecord.create(
        record_id=f"rec-{n}",
        source_service="payouts",
        actor="treasury-bot",
        action="payout.created",
        entity_type="payout",
        entity_id=f"po-{n}",
        before_json="",
        after_json=f'{{"amount": {{"minor_units": {n * 1000}, "currency": "JPY"}}}}',
        reason="",
        occurred_at=T0,
    )


async def fill(audit: MemoryAudit, n: int, start: int = 1, clock: Ticking | None = None) -> None:
    for i in range(start, start + n):
        await append_record(audit, record(i), now=clock or Ticking())


# --- append ------------------------------------------------------------------------------------


async def test_append_links_each_record_to_the_head_in_arrival_order() -> None:
    audit, clock = MemoryAudit(), Ticking()
    first = await append_record(audit, record(1), now=clock)
    second = await append_record(audit, record(2), now=clock)
    assert first is not None and second is not None
    assert (first.seq, second.seq) == (1, 2)
    assert second.prev_hash == first.entry_hash
    assert second.recorded_at > first.recorded_at
    assert audit.anchor_head == ChainHead(2, second.entry_hash)


async def test_redelivered_record_is_not_appended_twice() -> None:
    audit = MemoryAudit()
    await fill(audit, 3)
    again = await append_record(audit, record(2), now=Ticking())
    assert again is None
    assert [r.seq for r in audit.rows] == [1, 2, 3]


# --- verify ------------------------------------------------------------------------------------


async def test_verify_an_intact_chain() -> None:
    audit = MemoryAudit()
    await fill(audit, 12)
    report = await verify(audit)
    assert report.ok
    assert report.records == 12
    assert report.head_hash == audit.anchor_head.head_hash


async def test_verify_reports_an_edit() -> None:
    audit = MemoryAudit()
    await fill(audit, 5)
    row = audit.rows[2]
    assert isinstance(row, ChainEntry)
    audit.rows[2] = replace(row, record=replace(row.record, after_json='{"amount":1}'))
    report = await verify(audit)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 3)]


async def test_verify_reads_entries_appended_while_it_was_reading() -> None:
    audit = MemoryAudit()
    await fill(audit, 4)

    def more() -> None:
        # Appended (and anchored) after the reader passed the end: not a truncation.
        head = audit.anchor_head
        for i in (5, 6):
            entry = next_entry(head, record(i), T0)
            audit.rows.append(entry)
            head = ChainHead(entry.seq, entry.entry_hash)
        audit.anchor_head = head

    audit.during_read = more
    report = await verify(audit)
    assert report.ok, report.problems
    assert report.records == 6


async def test_verify_reports_a_cut_tail_against_the_anchor() -> None:
    audit = MemoryAudit()
    await fill(audit, 6)
    del audit.rows[4:]
    report = await verify(audit)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 5)]


async def test_verify_uses_checkpoints_given() -> None:
    audit = MemoryAudit()
    await fill(audit, 6)
    store = MemoryCheckpoints()
    assert (await take_checkpoint(audit, store, now=Ticking())).checkpoint is not None
    del audit.rows[3:]
    audit.anchor_head = ChainHead(3, audit.rows[2].entry_hash)  # anchor wound back too
    report = await verify(audit, store.read())
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 4)]


# --- checkpoints -------------------------------------------------------------------------------


async def test_checkpoint_writes_the_head_only_when_it_moved() -> None:
    audit, store = MemoryAudit(), MemoryCheckpoints()
    nothing = await take_checkpoint(audit, store, now=Ticking())
    assert nothing.checkpoint is None and nothing.ok
    await fill(audit, 3)
    first = await take_checkpoint(audit, store, now=Ticking())
    assert first.checkpoint is not None
    assert first.checkpoint.head == audit.anchor_head
    assert (await take_checkpoint(audit, store, now=Ticking())).checkpoint is None
    await fill(audit, 2, start=4)
    second = await take_checkpoint(audit, store, now=Ticking())
    assert second.checkpoint is not None
    assert second.report is not None and second.report.records == 2  # only the new segment read
    assert [c.records for c in store.items] == [3, 5]


async def test_checkpoint_refuses_a_tampered_new_segment() -> None:
    audit, store = MemoryAudit(), MemoryCheckpoints()
    await fill(audit, 3)
    await take_checkpoint(audit, store, now=Ticking())
    await fill(audit, 3, start=4)
    row = audit.rows[4]
    assert isinstance(row, ChainEntry)
    audit.rows[4] = replace(row, record=replace(row.record, actor="mallory"))
    outcome = await take_checkpoint(audit, store, now=Ticking())
    assert outcome.checkpoint is None
    assert not outcome.ok
    assert outcome.report is not None
    assert [(p.kind, p.seq) for p in outcome.report.problems] == [(ProblemKind.EDITED, 5)]
    assert len(store.items) == 1


async def test_checkpoint_refuses_an_anchor_behind_the_last_checkpoint() -> None:
    audit, store = MemoryAudit(), MemoryCheckpoints()
    await fill(audit, 5)
    await take_checkpoint(audit, store, now=Ticking())
    del audit.rows[2:]
    audit.anchor_head = ChainHead(2, audit.rows[1].entry_hash)
    outcome = await take_checkpoint(audit, store, now=Ticking())
    assert outcome.checkpoint is None
    assert outcome.report is not None
    assert [p.kind for p in outcome.report.problems] == [ProblemKind.TRUNCATED]
    assert len(store.items) == 1


async def test_checkpoint_refuses_history_rewritten_under_it() -> None:
    audit, store = MemoryAudit(), MemoryCheckpoints()
    await fill(audit, 4)
    await take_checkpoint(audit, store, now=Ticking())
    # Rebuild the whole chain with one record changed, anchor and all, then carry on appending.
    forged = MemoryAudit()
    await fill(forged, 1)
    await append_record(forged, replace(record(2), actor="mallory"), now=Ticking())
    await fill(forged, 4, start=3)
    audit.rows, audit.anchor_head = forged.rows, forged.anchor_head
    outcome = await take_checkpoint(audit, store, now=Ticking())
    assert outcome.checkpoint is None
    assert outcome.report is not None
    assert [(p.kind, p.seq) for p in outcome.report.problems] == [(ProblemKind.BROKEN_LINK, 5)]
