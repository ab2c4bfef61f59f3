"""The event bus: an embedded nats-server, the JetStream client, the outbox relay, consumers.

Services publish through the outbox (:func:`add_event` in their own
transaction, :class:`OutboxRelay` publishes) and consume with
:class:`EventConsumer` (idempotent through ``processed_events``, dead letters
on ``dlq.<durable>``). Nothing connects at import time.
"""

from seisan_shared.bus.client import BusError, EventBus, PublishError
from seisan_shared.bus.consumer import ConsumerStats, EventConsumer, Handler
from seisan_shared.bus.natsserver import (
    ClusterSpec,
    NatsServer,
    NatsServerError,
    nats_server_binary,
)
from seisan_shared.bus.outbox import OutboxRelay, RelayStats, add_event, add_events

__all__ = [
    "BusError",
    "ClusterSpec",
    "ConsumerStats",
    "EventBus",
    "EventConsumer",
    "Handler",
    "NatsServer",
    "NatsServerError",
    "OutboxRelay",
    "PublishError",
    "RelayStats",
    "add_event",
    "add_events",
    "nats_server_binary",
]
