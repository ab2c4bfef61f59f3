"""Recording a decision (seisan_shared.audit) and reading it back as a chain record."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from seisan.audit.v1 import audit_pb2
from seisan_audit.domain.errors import InvalidRecord
from seisan_audit.entrypoints.consumer import record_from_event
from seisan_shared import subjects
from seisan_shared.audit import audit_event, state_json
from seisan_shared.events import decode, new_event


class Status(enum.Enum):
    MATCHED = "matched"


@dataclass
class Money:
    minor_units: int
    currency: str


def test_state_json_is_sorted_compact_and_keeps_unicode() -> None:
    text = state_json(
        {"merchant": "セブン-イレブン", "amount": {"minor_units": 540, "currency": "JPY"}}
    )
    assert text == '{"amount":{"currency":"JPY","minor_units":540},"merchant":"セブン-イレブン"}'
    assert state_json(None) == ""
    assert state_json({}) == "{}"


def test_state_json_writes_down_common_domain_values() -> None:
    moment = datetime(2026, 11, 1, 9, 0, tzinfo=timezone(timedelta(hours=9)))
    ident = uuid.UUID("12345678-1234-5678-1234-567812345678")
    text = state_json(
        {
            "at": moment,
            "on": date(2026, 11, 1),
            "rate": Decimal("0.10"),
            "id": ident,
            "status": Status.MATCHED,
            "tags": {"b", "a"},
            "total": Money(1112, "JPY"),
        }
    )
    assert json.loads(text) == {
        "at": "2026-11-01T00:00:00Z",
        "on": "2026-11-01",
        "rate": "0.10",
        "id": str(ident),
        "status": "matched",
        "tags": ["a", "b"],
        "total": {"minor_units": 1112, "currency": "JPY"},
    }


@pytest.mark.parametrize(
    "state", [{"x": object()}, {"x": float("nan")}, {"x": datetime(2026, 1, 1)}]
)
def test_state_json_refuses_what_it_cannot_write_down_faithfully(state: dict[str, object]) -> None:
    with pytest.raises((TypeError, ValueError)):
        state_json(state)


def test_audit_event_round_trips_into_a_chain_record() -> None:
    when = datetime(2026, 11, 3, 1, 2, 3, 456789, tzinfo=UTC)
    envelope = audit_event(
        source="intake",
        actor="aiko",
        action="receipt.corrected",
        entity_type="receipt",
        entity_id="7f3c",
        before={"total": 1112, "merchant": "ｽﾀｰﾊﾞｯｸｽ"},
        after={"merchant": "スターバックス", "total": 1120},
        reason="OCR misread",
        correlation_id="corr-1",
        occurred_at=when,
    )
    wire = decode(envelope.SerializeToString())
    assert wire.type == subjects.AUDIT_RECORDED
    assert wire.aggregate_id == "receipt/7f3c"
    rec = record_from_event(wire)
    assert rec.record_id == wire.event_id  # one id: dedup by event id is dedup by record
    assert (rec.source_service, rec.actor, rec.action) == ("intake", "aiko", "receipt.corrected")
    assert (rec.entity_type, rec.entity_id) == ("receipt", "7f3c")
    assert json.loads(rec.before_json) == {"total": 1112, "merchant": "ｽﾀｰﾊﾞｯｸｽ"}
    assert rec.after_json == '{"merchant":"スターバックス","total":1120}'
    assert rec.reason == "OCR misread"
    assert rec.occurred_at == when
    assert rec.correlation_id == "corr-1"


def test_creation_and_deletion_have_no_before_or_after() -> None:
    created = record_from_event(
        audit_event(
            source="payouts",
            actor="system",
            action="payout.created",
            entity_type="payout",
            entity_id="po-1",
            before=None,
            after={"status": "created"},
        )
    )
    assert created.before_json == ""
    assert created.after_json == '{"status":"created"}'


def test_record_from_event_fills_gaps_from_the_envelope() -> None:
    payload = audit_pb2.AuditRecorded(action="claim.approved", entity_type="claim", entity_id="c9")
    envelope = new_event(
        subjects.AUDIT_RECORDED,
        source="payouts",
        aggregate_id="c9",
        payload=payload,
        actor="hiro",
        correlation_id="corr-9",
    )
    rec = record_from_event(envelope)
    assert rec.record_id == envelope.event_id
    assert rec.source_service == "payouts"
    assert rec.actor == "hiro"
    assert rec.correlation_id == "corr-9"
    assert rec.occurred_at == envelope.occurred_at.ToDatetime(tzinfo=UTC)


def test_record_from_event_refuses_other_events_and_bad_state() -> None:
    other = new_event(
        subjects.RECEIPT_DELETED,
        source="intake",
        aggregate_id="r",
        payload=audit_pb2.AuditRecorded(action="x"),
    )
    with pytest.raises(InvalidRecord):
        record_from_event(other)
    broken = new_event(
        subjects.AUDIT_RECORDED,
        source="intake",
        aggregate_id="r",
        payload=audit_pb2.AuditRecorded(action="x", before_json="{not json"),
    )
    with pytest.raises(InvalidRecord, match="before_json"):
        record_from_event(broken)
    wrong_payload = new_event(
        subjects.AUDIT_RECORDED,
        source="intake",
        aggregate_id="r",
        payload=audit_pb2.VerifyChainRequest(),
    )
    with pytest.raises(InvalidRecord, match="AuditRecorded"):
        record_from_event(wrong_payload)
