"""Building and reading event envelopes (``seisan.events.v1.Envelope``)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from google.protobuf import any_pb2, symbol_database
from google.protobuf.message import Message

from seisan.events.v1 import envelope_pb2
from seisan_shared.subjects import subject_for

Envelope = envelope_pb2.Envelope


def new_event(
    event_type: str,
    *,
    source: str,
    aggregate_id: str,
    payload: Message,
    correlation_id: str = "",
    actor: str = "",
    event_id: str | None = None,
    occurred_at: datetime | None = None,
) -> envelope_pb2.Envelope:
    """A new envelope with a fresh UUID event id (the future ``Nats-Msg-Id``)."""
    packed = any_pb2.Any()
    packed.Pack(payload, type_url_prefix="type.seisan.dev/")
    env = envelope_pb2.Envelope(
        event_id=event_id or str(uuid.uuid4()),
        type=event_type,
        source=source,
        aggregate_id=aggregate_id,
        correlation_id=correlation_id,
        actor=actor,
        payload=packed,
    )
    env.occurred_at.FromDatetime(occurred_at or datetime.now(UTC))
    return env


def subject_of(env: envelope_pb2.Envelope) -> str:
    return subject_for(env.type)


def decode(data: bytes) -> envelope_pb2.Envelope:
    env = envelope_pb2.Envelope()
    env.ParseFromString(data)
    return env


def unpack_payload(env: envelope_pb2.Envelope) -> Any:
    """The payload as its own message type, looked up from the type URL.

    The payload's module must have been imported (``seisan_shared.catalogue``
    imports every event module).
    """
    full_name = env.payload.type_url.rsplit("/", 1)[-1]
    cls = symbol_database.Default().GetSymbol(full_name)
    message = cls()
    env.payload.Unpack(message)
    return message
