"""The bus consumer: every ``audit.recorded`` event becomes the next entry of the chain."""

from __future__ import annotations

from datetime import UTC
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from seisan.audit.v1 import audit_pb2
from seisan_audit.adapters.repository import SqlAuditLog
from seisan_audit.domain.chain import AuditRecord
from seisan_audit.domain.errors import InvalidRecord
from seisan_audit.handlers import Clock, append_record, utc_now
from seisan_shared import subjects
from seisan_shared.bus import EventBus, EventConsumer, Handler
from seisan_shared.events import Envelope
from seisan_shared.storage import Database

DURABLE = "audit"
SUBJECT = subjects.subject_for(subjects.AUDIT_RECORDED)


def record_from_event(envelope: Envelope) -> AuditRecord:
    """The domain record an ``audit.recorded`` envelope carries; envelope fields fill gaps."""
    if envelope.type != subjects.AUDIT_RECORDED:
        raise InvalidRecord(f"event {envelope.event_id} is {envelope.type!r}, not audit.recorded")
    payload = audit_pb2.AuditRecorded()
    if not envelope.payload.Unpack(payload):
        raise InvalidRecord(f"event {envelope.event_id} does not carry an AuditRecorded payload")
    occurred = payload.occurred_at if payload.HasField("occurred_at") else envelope.occurred_at
    return AuditRecord.create(
        record_id=payload.record_id or envelope.event_id,
        source_service=payload.source_service or envelope.source,
        actor=payload.actor or envelope.actor,
        action=payload.action,
        entity_type=payload.entity_type,
        entity_id=payload.entity_id,
        before_json=payload.before_json,
        after_json=payload.after_json,
        reason=payload.reason,
        occurred_at=occurred.ToDatetime(tzinfo=UTC),
        correlation_id=payload.correlation_id or envelope.correlation_id,
    )


def make_handler(now: Clock = utc_now) -> Handler:
    """The consumer's handler: append in the consumer's transaction (with its dedup row)."""

    async def handle(envelope: Envelope, session: AsyncSession) -> None:
        await append_record(SqlAuditLog(session), record_from_event(envelope), now=now)

    return handle


def audit_consumer(
    bus: EventBus, db: Database, *, durable: str = DURABLE, now: Clock = utc_now, **options: Any
) -> EventConsumer:
    """The durable consumer of ``seisan.audit.recorded`` feeding the chain, in arrival order."""
    return EventConsumer(
        bus,
        db,
        durable=durable,
        filter_subjects=[SUBJECT],
        handler=make_handler(now),
        **options,
    )
