"""The audit hash chain: canonical bytes, appending, and catching every kind of tampering."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import pytest

from seisan_audit.domain.chain import (
    GENESIS,
    GENESIS_HASH,
    PROBLEM_LIMIT,
    AuditRecord,
    ChainEntry,
    ChainHead,
    ChainVerifier,
    Checkpoint,
    DamagedEntry,
    ProblemKind,
    canonical_bytes,
    canonical_json,
    canonical_state,
    entry_hash,
    format_instant,
    next_entry,
    parse_instant,
    verify_chain,
)
from seisan_audit.domain.errors import InvalidRecord

T0 = datetime(2026, 11, 3, 9, 30, 0, 123456, tzinfo=UTC)


def record(n: int, **changes: object) -> AuditRecord:
    base = AuditRecord.create(
        record_id=f"rec-{n:04d}",
        source_service="intake",
        actor="aiko",
        action="receipt.corrected",
        entity_type="receipt",
        entity_id=f"r-{n}",
        before_json='{"total": {"minor_units": 1112, "currency": "JPY"}}',
        after_json=(
            '{"total": {"minor_units": 1120, "currency": "JPY"}, "merchant": "スターバックス"}'
        ),
        reason="typo in total",
        occurred_at=T0 + timedelta(seconds=n),
        correlation_id=f"corr-{n}",
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def build_chain(n: int) -> list[ChainEntry]:
    entries: list[ChainEntry] = []
    head = GENESIS
    for i in range(1, n + 1):
        entry = next_entry(head, record(i), T0 + timedelta(seconds=i, milliseconds=5))
        entries.append(entry)
        head = ChainHead(entry.seq, entry.entry_hash)
    return entries


def head_of(entries: list[ChainEntry]) -> ChainHead:
    return ChainHead(entries[-1].seq, entries[-1].entry_hash) if entries else GENESIS


def rehash(entry: ChainEntry) -> ChainEntry:
    """What a careful forger does after editing: make the entry's own hash fit again."""
    return replace(
        entry,
        entry_hash=entry_hash(entry.prev_hash, entry.seq, entry.record, entry.recorded_at),
    )


def forge_from(entries: list[ChainEntry], index: int) -> list[ChainEntry]:
    """Renumber and re-link everything from ``index`` on, as a forger rewriting history would."""
    out = entries[:index]
    head = head_of(out)
    for entry in entries[index:]:
        forged = next_entry(head, entry.record, entry.recorded_at)
        out.append(forged)
        head = ChainHead(forged.seq, forged.entry_hash)
    return out


# --- an intact chain ---------------------------------------------------------------------------


def test_intact_chain_verifies_against_its_anchor() -> None:
    entries = build_chain(25)
    report = verify_chain(entries, anchor=head_of(entries))
    assert report.ok, report.problems
    assert report.records == 25
    assert report.last_seq == 25
    assert report.head_hash == entries[-1].entry_hash


def test_empty_chain_verifies_against_the_genesis_anchor() -> None:
    report = verify_chain([], anchor=GENESIS)
    assert report.ok
    assert report.records == 0
    assert report.head_hash == GENESIS_HASH


def test_chain_links_start_at_64_zeros_and_each_names_its_predecessor() -> None:
    entries = build_chain(3)
    assert entries[0].prev_hash == "0" * 64
    assert [e.seq for e in entries] == [1, 2, 3]
    assert entries[1].prev_hash == entries[0].entry_hash
    assert entries[2].prev_hash == entries[1].entry_hash
    assert len({e.entry_hash for e in entries}) == 3


def test_entry_hash_is_sha256_of_prev_hash_bytes_and_canonical_bytes() -> None:
    entry = build_chain(1)[0]
    expected = hashlib.sha256(
        bytes(32) + canonical_bytes(1, entry.record, entry.recorded_at)
    ).hexdigest()
    assert entry.entry_hash == expected


# --- tampering ----------------------------------------------------------------------------------


def test_edited_entry_is_reported_once_where_it_is() -> None:
    entries = build_chain(10)
    anchor = head_of(entries)
    entries[4] = replace(entries[4], record=replace(entries[4].record, actor="mallory"))
    report = verify_chain(entries, anchor=anchor)
    assert not report.ok
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 5)]


@pytest.mark.parametrize(
    "field, value",
    [
        ("after_json", '{"total":{"currency":"JPY","minor_units":99999}}'),
        ("before_json", ""),
        ("reason", "typo in total."),
        ("entity_id", "r-other"),
        ("occurred_at", T0 - timedelta(days=1)),
        ("correlation_id", ""),
        ("record_id", "rec-9999"),
    ],
)
def test_any_edited_field_breaks_the_hash(field: str, value: object) -> None:
    entries = build_chain(3)
    changes: dict[str, object] = {field: value}
    entries[1] = replace(entries[1], record=replace(entries[1].record, **changes))  # type: ignore[arg-type]
    report = verify_chain(entries, anchor=head_of(build_chain(3)))
    assert report.first_problem is not None
    assert (report.first_problem.kind, report.first_problem.seq) == (ProblemKind.EDITED, 2)


def test_edited_append_time_breaks_the_hash() -> None:
    entries = build_chain(3)
    entries[0] = replace(entries[0], recorded_at=entries[0].recorded_at + timedelta(seconds=1))
    report = verify_chain(entries)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 1)]


def test_edited_and_rehashed_entry_breaks_the_next_link() -> None:
    entries = build_chain(10)
    anchor = head_of(entries)
    entries[4] = rehash(replace(entries[4], record=replace(entries[4].record, actor="mallory")))
    report = verify_chain(entries, anchor=anchor)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.BROKEN_LINK, 6)]


def test_rehashed_last_entry_is_caught_by_the_anchor() -> None:
    entries = build_chain(5)
    anchor = head_of(entries)
    entries[-1] = rehash(replace(entries[-1], record=replace(entries[-1].record, reason="none")))
    assert verify_chain(entries).ok  # the chain alone cannot tell…
    report = verify_chain(entries, anchor=anchor)  # …its witness can
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.ANCHOR_MISMATCH, 5)]


def test_deleted_middle_entry_is_reported_as_missing() -> None:
    entries = build_chain(10)
    anchor = head_of(entries)
    del entries[3]  # seq 4
    report = verify_chain(entries, anchor=anchor)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.MISSING, 5)]
    assert "entry 4 missing" in report.problems[0].detail


def test_deleted_run_of_entries_names_the_gap() -> None:
    entries = build_chain(10)
    del entries[2:6]  # seq 3..6
    report = verify_chain(entries, anchor=head_of(build_chain(10)))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.MISSING, 7)]
    assert "entries 3..6" in report.problems[0].detail


def test_deleted_first_entry_is_reported() -> None:
    entries = build_chain(4)
    report = verify_chain(entries[1:], anchor=head_of(entries))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.MISSING, 2)]


def test_deleted_middle_entry_with_renumbered_rest_is_caught() -> None:
    # Close the gap by shifting later seqs down (without re-hashing): every moved entry is edited.
    entries = build_chain(6)
    anchor = head_of(entries)
    shifted = entries[:2] + [replace(e, seq=e.seq - 1) for e in entries[3:]]
    report = verify_chain(shifted, anchor=anchor)
    assert not report.ok
    assert report.first_problem is not None
    assert report.first_problem.seq == 3
    assert {p.kind for p in report.problems} >= {ProblemKind.BROKEN_LINK, ProblemKind.TRUNCATED}


def test_deleted_tail_is_invisible_without_a_witness_but_caught_by_the_anchor() -> None:
    entries = build_chain(10)
    anchor = head_of(entries)
    cut = entries[:7]
    assert verify_chain(cut).ok  # a shorter chain is still a valid chain
    report = verify_chain(cut, anchor=anchor)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 8)]
    assert "10 entries" in report.problems[0].detail


def test_deleted_tail_and_wound_back_anchor_is_caught_by_a_checkpoint() -> None:
    entries = build_chain(10)
    taken = Checkpoint(9, entries[8].entry_hash, T0 + timedelta(hours=1))
    cut = entries[:6]
    report = verify_chain(cut, anchor=head_of(cut), checkpoints=[taken])
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.TRUNCATED, 7)]
    assert "checkpoint" in report.problems[0].detail


def test_reordered_entries_are_reported() -> None:
    entries = build_chain(6)
    anchor = head_of(entries)
    swapped = [entries[0], entries[2], entries[1], *entries[3:]]
    report = verify_chain(swapped, anchor=anchor)
    kinds = [(p.kind, p.seq) for p in report.problems]
    assert kinds == [(ProblemKind.MISSING, 3), (ProblemKind.OUT_OF_ORDER, 2)]


def test_swapped_positions_of_two_entries_are_edits() -> None:
    # Rows keep their places but swap seq numbers (and contents): both fail their hashes.
    entries = build_chain(5)
    a, b = entries[1], entries[2]
    entries[1], entries[2] = replace(b, seq=2), replace(a, seq=3)
    report = verify_chain(entries, anchor=head_of(build_chain(5)))
    assert not report.ok
    assert (ProblemKind.EDITED, 2) in [(p.kind, p.seq) for p in report.problems]
    assert (ProblemKind.EDITED, 3) in [(p.kind, p.seq) for p in report.problems]


def test_repeated_entry_is_reported() -> None:
    entries = build_chain(4)
    report = verify_chain([*entries[:3], entries[1], entries[3]], anchor=head_of(entries))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.OUT_OF_ORDER, 2)]


def test_forged_row_inserted_in_the_middle_is_caught() -> None:
    entries = build_chain(8)
    anchor = head_of(entries)
    forged = record(999, actor="mallory", action="claim.approved")
    # Naive: slot it in with the next seq and let the rest be.
    naive = [*entries[:4], next_entry(head_of(entries[:4]), forged, T0), *entries[4:]]
    report = verify_chain(naive, anchor=anchor)
    assert report.first_problem is not None
    assert report.first_problem.seq == 5
    # Careful: renumber and re-link everything after it; only the anchor can tell.
    rewritten = forge_from([*entries[:4], replace(entries[4], record=forged), *entries[4:]], 4)
    assert verify_chain(rewritten).ok
    report = verify_chain(rewritten, anchor=anchor)
    assert [p.kind for p in report.problems] == [ProblemKind.ANCHOR_MISMATCH]


def test_forged_rows_appended_after_the_anchor_are_caught() -> None:
    entries = build_chain(5)
    anchor = head_of(entries)
    forged = next_entry(anchor, record(6, actor="mallory"), T0)
    report = verify_chain([*entries, forged], anchor=anchor)
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.ANCHOR_MISMATCH, 6)]
    assert "beyond the anchor" in report.problems[0].detail


def test_history_rewritten_before_a_checkpoint_is_caught_even_with_a_fresh_anchor() -> None:
    entries = build_chain(8)
    taken = Checkpoint(5, entries[4].entry_hash, T0 + timedelta(hours=1))
    rewritten = forge_from(
        [*entries[:2], replace(entries[2], record=record(3, actor="mallory")), *entries[3:]], 2
    )
    report = verify_chain(rewritten, anchor=head_of(rewritten), checkpoints=[taken])
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.ANCHOR_MISMATCH, 5)]


def test_a_checkpoint_that_is_still_in_the_chain_verifies() -> None:
    entries = build_chain(8)
    taken = [
        Checkpoint(3, entries[2].entry_hash, T0),
        Checkpoint(8, entries[7].entry_hash, T0 + timedelta(minutes=1)),
    ]
    assert verify_chain(entries, anchor=head_of(entries), checkpoints=taken).ok


def test_damaged_prev_hash_is_reported_not_crashed_on() -> None:
    entries = build_chain(3)
    entries[1] = replace(entries[1], prev_hash="not-hex")
    report = verify_chain(entries, anchor=head_of(build_chain(3)))
    assert [(p.kind, p.seq) for p in report.problems] == [
        (ProblemKind.BROKEN_LINK, 2),
        (ProblemKind.EDITED, 2),
    ]


def test_unreadable_row_is_an_edit_and_the_chain_continues_after_it() -> None:
    entries: list[ChainEntry | DamagedEntry] = list(build_chain(4))
    e2 = entries[1]
    entries[1] = DamagedEntry(e2.seq, e2.prev_hash, e2.entry_hash, "occurred_at 'yesterday'")
    report = verify_chain(entries, anchor=head_of(build_chain(4)))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.EDITED, 2)]
    assert "yesterday" in report.problems[0].detail


def test_problems_beyond_the_limit_are_counted_not_kept() -> None:
    entries = build_chain(PROBLEM_LIMIT + 5)
    edited = [replace(e, entry_hash="f" * 64) for e in entries]
    report = ChainVerifier()
    for entry in edited:
        report.feed(entry)
    result = report.report()
    assert len(result.problems) == PROBLEM_LIMIT
    assert result.problem_count > PROBLEM_LIMIT


def test_verifying_a_segment_from_a_trusted_head() -> None:
    entries = build_chain(10)
    start = head_of(entries[:6])
    assert verify_chain(entries[6:], start=start, anchor=head_of(entries)).ok
    wrong_start = ChainHead(6, entries[4].entry_hash)
    report = verify_chain(entries[6:], start=wrong_start, anchor=head_of(entries))
    assert [(p.kind, p.seq) for p in report.problems] == [(ProblemKind.BROKEN_LINK, 7)]


# --- canonical encoding --------------------------------------------------------------------------


def test_canonical_state_ignores_key_order_and_whitespace() -> None:
    a = canonical_state('{"b": 1, "a": {"y": [1, 2], "x": null}}')
    b = canonical_state('{ "a" : { "x" : null , "y" : [ 1 , 2 ] } , "b" : 1 }')
    assert a == b == '{"a":{"x":null,"y":[1,2]},"b":1}'


def test_canonical_state_ignores_how_unicode_was_escaped() -> None:
    escaped = canonical_state('{"merchant": "\\u30b9\\u30bf\\u30fc\\u30d0\\u30c3\\u30af\\u30b9"}')
    raw = canonical_state('{"merchant": "スターバックス"}')
    assert escaped == raw == '{"merchant":"スターバックス"}'


def test_canonical_bytes_do_not_depend_on_how_states_were_written() -> None:
    one = record(1, before_json=canonical_state('{"a":1,"b":"\\u8cbb"}'))
    two = record(1, before_json=canonical_state('{"b": "費", "a": 1}'))
    assert canonical_bytes(1, one, T0) == canonical_bytes(1, two, T0)


def test_canonical_bytes_are_the_documented_form() -> None:
    # The chain's format is forever: a change here breaks every stored chain.
    rec = AuditRecord.create(
        record_id="r1",
        source_service="intake",
        actor="aiko",
        action="receipt.corrected",
        entity_type="receipt",
        entity_id="7f",
        before_json='{"total": 1112}',
        after_json='{"total": 1120}',
        reason="誤記",
        occurred_at=datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=9))),
        correlation_id="c1",
    )
    expected = (
        '{"action":"receipt.corrected","actor":"aiko","after":"{\\"total\\":1120}",'
        '"before":"{\\"total\\":1112}","correlation_id":"c1","entity_id":"7f",'
        '"entity_type":"receipt","occurred_at":"2026-11-01T00:00:00.000000Z",'
        '"reason":"誤記","record_id":"r1","recorded_at":"2026-11-03T09:30:00.123456Z",'
        '"seq":7,"source_service":"intake"}'
    ).encode()
    assert canonical_bytes(7, rec, T0) == expected


def test_canonical_json_keeps_unicode_unnormalised() -> None:
    composed, decomposed = "\u30ac", "\u30ab\u3099"  # ガ as one code point and as カ + ゛
    assert canonical_json(composed) != canonical_json(decomposed)


@pytest.mark.parametrize(
    "text", ["{", "{'a': 1}", '{"a": NaN}', '{"a": Infinity}', '"\\ud800"', "nul"]
)
def test_canonical_state_refuses_what_is_not_storable_json(text: str) -> None:
    with pytest.raises(InvalidRecord):
        canonical_state(text)


def test_empty_state_stays_empty_and_null_is_a_state() -> None:
    assert canonical_state("") == ""
    assert canonical_state("null") == "null"


def test_instants_are_utc_with_microseconds() -> None:
    jst = datetime(2026, 11, 1, 9, 0, 0, 5, tzinfo=timezone(timedelta(hours=9)))
    assert format_instant(jst) == "2026-11-01T00:00:00.000005Z"
    assert parse_instant(format_instant(jst)) == jst
    with pytest.raises(ValueError):
        format_instant(datetime(2026, 11, 1))


@pytest.mark.parametrize("missing", ["record_id", "source_service", "action"])
def test_record_needs_id_source_and_action(missing: str) -> None:
    fields: dict[str, object] = {
        "record_id": "r",
        "source_service": "intake",
        "actor": "",
        "action": "a",
        "entity_type": "",
        "entity_id": "",
        "before_json": "",
        "after_json": "",
        "reason": "",
        "occurred_at": T0,
    }
    fields[missing] = ""
    with pytest.raises(InvalidRecord, match=missing):
        AuditRecord.create(**fields)  # type: ignore[arg-type]


def test_record_refuses_naive_time_and_overlong_id() -> None:
    with pytest.raises(InvalidRecord, match="timezone"):
        AuditRecord.create(**{**record(1).__dict__, "occurred_at": datetime(2026, 1, 1)})
    with pytest.raises(InvalidRecord, match="longer"):
        AuditRecord.create(**{**record(1).__dict__, "record_id": "x" * 201})


def test_hash_depends_on_seq_and_prev_hash() -> None:
    rec = record(1)
    base = entry_hash(GENESIS_HASH, 1, rec, T0)
    assert entry_hash(GENESIS_HASH, 2, rec, T0) != base
    assert entry_hash("1" + GENESIS_HASH[1:], 1, rec, T0) != base
    assert entry_hash(GENESIS_HASH, 1, rec, T0) == base
