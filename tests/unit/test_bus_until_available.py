"""A process that starts while JetStream elects a leader waits it out instead of dying."""

from __future__ import annotations

import nats.errors
import nats.js.errors
import pytest

from seisan_shared.bus.client import BusError, EventBus


def _bus(provision_timeout: float) -> EventBus:
    return EventBus("nats://127.0.0.1:1", name="t", provision_timeout=provision_timeout)


async def test_retries_timeouts_no_responders_and_503_then_returns_the_answer() -> None:
    failures: list[Exception] = [
        nats.errors.TimeoutError(),
        nats.errors.NoRespondersError(),
        nats.js.errors.ServiceUnavailableError(code=503, description="JetStream unavailable"),
    ]
    calls = 0

    async def call() -> str:
        nonlocal calls
        calls += 1
        if failures:
            raise failures.pop(0)
        return "created"

    assert await _bus(30).until_available("stream S", call) == "created"
    assert calls == 4


async def test_gives_up_after_the_provision_timeout_naming_what_it_was_doing() -> None:
    async def call() -> None:
        raise nats.errors.TimeoutError()

    with pytest.raises(BusError, match="stream SEISAN_EVENTS: JetStream unavailable"):
        await _bus(0.5).until_available("stream SEISAN_EVENTS", call)


async def test_a_refusal_is_not_retried() -> None:
    calls = 0

    async def call() -> None:
        nonlocal calls
        calls += 1
        raise nats.js.errors.BadRequestError(code=400, description="bad config")

    with pytest.raises(nats.js.errors.BadRequestError):
        await _bus(30).until_available("stream S", call)
    assert calls == 1
