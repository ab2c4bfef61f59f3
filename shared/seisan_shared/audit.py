"""Recording a decision in the audit trail, in the same transaction as the decision.

A service calls :func:`record_decision` with the session that changes its
state; the record goes into that transaction's outbox as an
``audit.recorded`` event, so the decision and its audit record commit
together or not at all. The audit service appends every record to one
hash-chained, append-only log (``seisan audit verify`` checks it).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from seisan.audit.v1 import audit_pb2
from seisan.events.v1 import envelope_pb2
from seisan_shared import subjects
from seisan_shared.bus.outbox import add_event
from seisan_shared.events import new_event

AuditRecorded = audit_pb2.AuditRecorded


def state_json(state: Mapping[str, Any] | None) -> str:
    """A state snapshot as JSON text (sorted keys, unicode kept); "" for no state.

    Dates and times become ISO 8601, ``Decimal`` and ``UUID`` strings, enums
    their value, sets sorted lists, dataclasses objects. Anything else is a
    ``TypeError``: a snapshot that cannot be written down must not be
    silently misrecorded. Floats that are not finite are refused too.
    """
    if state is None:
        return ""
    return json.dumps(
        state,
        sort_keys=True,
        ensure_ascii=False,
        separators=(",", ":"),
        allow_nan=False,
        default=_jsonable,
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise TypeError("naive datetime in an audit state; give it a time zone")
        return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal | uuid.UUID):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, set | frozenset):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    raise TypeError(f"{type(value).__name__} is not recordable in an audit state")


def audit_event(
    *,
    source: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str = "",
    correlation_id: str = "",
    occurred_at: datetime | None = None,
) -> envelope_pb2.Envelope:
    """The ``audit.recorded`` envelope for one decision (record id = event id)."""
    record_id = str(uuid.uuid4())
    when = occurred_at or datetime.now(UTC)
    payload = AuditRecorded(
        record_id=record_id,
        source_service=source,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before_json=state_json(before),
        after_json=state_json(after),
        reason=reason,
        correlation_id=correlation_id,
    )
    payload.occurred_at.FromDatetime(when)
    return new_event(
        subjects.AUDIT_RECORDED,
        source=source,
        aggregate_id=f"{entity_type}/{entity_id}" if entity_type else entity_id,
        payload=payload,
        correlation_id=correlation_id,
        actor=actor,
        event_id=record_id,
        occurred_at=when,
    )


async def record_decision(
    session: AsyncSession,
    *,
    source: str,
    actor: str,
    action: str,
    entity_type: str,
    entity_id: str,
    before: Mapping[str, Any] | None,
    after: Mapping[str, Any] | None,
    reason: str = "",
    correlation_id: str = "",
) -> str:
    """Record a decision in the audit trail, inside ``session``'s transaction; returns its id.

    ``before``/``after`` are the decided-about thing's state before and after
    (None: there was none — a creation, a deletion). Call it in the same
    transaction as the state change so that both commit or neither does.
    """
    envelope = audit_event(
        source=source,
        actor=actor,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        before=before,
        after=after,
        reason=reason,
        correlation_id=correlation_id,
    )
    await add_event(session, envelope)
    return str(envelope.event_id)
