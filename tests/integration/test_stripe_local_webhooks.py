"""Webhooks from the local Stripe server: signatures, payout outcomes, retries, duplicates, order.

A tiny receiver verifies every delivery with ``stripe.Webhook.construct_event``
(as the payouts service will) and records what it accepted. The server runs on
this test's event loop; the blocking SDK is called through ``asyncio.to_thread``.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import pytest
import stripe

from seisan_shared.stripe_local import (
    DeliveryPolicy,
    FaultRule,
    LocalStripe,
    StripeSpec,
    WebhookEndpoint,
    wire,
)
from seisan_shared.stripe_local.spec import default_spec_path

SECRET = "whsec_seisan_test_secret"
KEY = "sk_test_seisan_webhooks"
FAST = DeliveryPolicy(max_attempts=4, first_retry=0.05, backoff=2.0, timeout=2.0)
T = TypeVar("T")


@dataclass
class Receiver:
    """Answers ``fail_first`` deliveries with 500, then verifies and accepts the rest."""

    secret: str = SECRET
    fail_first: int = 0
    attempts: int = 0
    rejected: int = 0
    events: list[Any] = field(default_factory=list)
    server: wire.HttpServer | None = None

    async def handle(self, request: wire.Request) -> wire.Response:
        self.attempts += 1
        if self.fail_first > 0:
            self.fail_first -= 1
            return wire.Response(500, b"try later")
        try:
            event = stripe.Webhook.construct_event(
                request.body.decode(), request.header("stripe-signature"), self.secret
            )
        except (stripe.SignatureVerificationError, ValueError):
            self.rejected += 1
            return wire.Response(400, b"bad signature")
        self.events.append(event)
        return wire.Response(200, b"{}")

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"{self.server.base_url}/stripe/webhook"

    def types(self) -> list[str]:
        return [e.type for e in self.events]


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    recv = Receiver()
    recv.server = wire.HttpServer(recv.handle)
    await recv.server.start()
    yield recv
    await recv.server.stop()


@pytest.fixture(scope="module")
def spec() -> StripeSpec:
    if not default_spec_path().exists():
        pytest.skip(f"Stripe's spec is not at {default_spec_path()}")
    return StripeSpec.load()


async def call(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    return await asyncio.to_thread(functools.partial(fn, *args, **kwargs))


def client_for(local: LocalStripe) -> stripe.StripeClient:
    return stripe.StripeClient(KEY, base_addresses={"api": local.api_base})


async def connected(client: stripe.StripeClient, account_number: str = "000123456789") -> str:
    account = await call(
        client.v1.accounts.create,
        {
            "type": "express",
            "country": "US",
            "capabilities": {"transfers": {"requested": True}},
            "external_account": {
                "object": "bank_account",
                "country": "US",
                "currency": "usd",
                "account_number": account_number,
                "routing_number": "110000000",
            },
        },
    )
    return str(account.id)


async def transfer(client: stripe.StripeClient, acct: str, amount: int = 1000) -> Any:
    params: Any = {"amount": amount, "currency": "usd", "destination": acct}
    return await call(client.v1.transfers.create, params)


async def payout(client: stripe.StripeClient, acct: str, amount: int = 1000) -> Any:
    params: Any = {"amount": amount, "currency": "usd"}
    return await call(client.v1.payouts.create, params, {"stripe_account": acct})


def server(receiver: Receiver, spec: StripeSpec, **options: Any) -> LocalStripe:
    defaults: dict[str, Any] = {
        "webhook_url": receiver.url,
        "webhook_secret": SECRET,
        "payout_delay": None,
        "platform_balance": {"usd": 100_000},
        "delivery": FAST,
        "spec": spec,
    }
    return LocalStripe(**{**defaults, **options})


async def test_webhooks_are_signed_so_construct_event_verifies_them(
    receiver: Receiver, spec: StripeSpec
) -> None:
    async with server(receiver, spec) as local:
        client = client_for(local)
        acct = await connected(client)
        made = await transfer(client, acct, 1234)
        assert await local.wait_webhooks_idle(10)
        assert receiver.types() == ["transfer.created"] and receiver.rejected == 0
        event = receiver.events[0]
        assert event.id.startswith("evt_") and event.data.object.id == made.id
        assert event.data.object.amount == 1234 and event.livemode is False
        assert spec.response_problems("GET", f"/v1/events/{event.id}", 200, event.to_dict()) == []
        stored = await call(client.v1.events.retrieve, event.id)
        assert stored.pending_webhooks == 0  # delivered


async def test_a_receiver_with_another_secret_rejects_every_delivery(
    receiver: Receiver, spec: StripeSpec
) -> None:
    receiver.secret = "whsec_not_the_servers"
    async with server(
        receiver, spec, delivery=DeliveryPolicy(max_attempts=2, first_retry=0.01)
    ) as local:
        client = client_for(local)
        await transfer(client, await connected(client))
        assert await local.wait_webhooks_idle(10)
    assert receiver.events == [] and receiver.rejected == 2
    assert local.webhooks.stats.given_up == 1


async def test_payout_is_paid_after_the_configured_delay(
    receiver: Receiver, spec: StripeSpec
) -> None:
    async with server(receiver, spec, payout_delay=0.2) as local:
        client = client_for(local)
        acct = await connected(client)
        await transfer(client, acct)
        made = await payout(client, acct)
        await asyncio.sleep(0.5)
        assert await local.wait_webhooks_idle(10)
        assert receiver.types() == ["transfer.created", "payout.created", "payout.paid"]
        paid = receiver.events[-1]
        assert paid.account == acct and paid.data.object.id == made.id
        assert paid.data.object.status == "paid" and paid.request.id is None


@pytest.mark.parametrize("how", ["control", "test_bank_number", "fault_rule"])
async def test_payout_fails_with_a_failure_code_and_the_money_returns(
    receiver: Receiver, spec: StripeSpec, how: str
) -> None:
    async with server(receiver, spec) as local:
        client = client_for(local)
        acct = await connected(
            client, "000111111116" if how == "test_bank_number" else "000123456789"
        )
        if how == "fault_rule":
            local.set_faults(
                [FaultRule("payout_fail", account=acct, failure_code="account_closed")]
            )
        await transfer(client, acct, 800)
        made = await payout(client, acct, 800)
        if how == "control":
            local.fail_payout(made.id, "account_closed")
        assert local.balances()[acct] == {"usd": 0}
        assert local.settle_payouts() == 1
        assert await local.wait_webhooks_idle(10)
        failed = receiver.events[-1]
        expected = "no_account" if how == "test_bank_number" else "account_closed"
        assert failed.type == "payout.failed" and failed.data.object.failure_code == expected
        assert failed.data.object.failure_message
        assert local.balances()[acct] == {"usd": 800}
        again = await call(client.v1.payouts.retrieve, made.id, options={"stripe_account": acct})
        assert again.status == "failed"


async def test_failed_deliveries_are_retried_with_backoff_until_the_receiver_answers_2xx(
    receiver: Receiver, spec: StripeSpec
) -> None:
    receiver.fail_first = 3
    async with server(receiver, spec) as local:
        client = client_for(local)
        made = await transfer(client, await connected(client))
        assert await local.wait_webhooks_idle(10)
        attempts = local.webhooks.stats.log
        assert [(a.attempt, a.status) for a in attempts] == [(1, 500), (2, 500), (3, 500), (4, 200)]
        assert receiver.types() == ["transfer.created"]
        assert receiver.events[0].data.object.id == made.id
        events = await call(client.v1.events.list)
        assert events.data[0].pending_webhooks == 0


async def test_retries_are_bounded_and_undelivered_events_stay_pending(
    receiver: Receiver, spec: StripeSpec
) -> None:
    receiver.fail_first = 1_000
    async with server(receiver, spec) as local:
        client = client_for(local)
        await transfer(client, await connected(client))
        assert await local.wait_webhooks_idle(10)
        assert receiver.attempts == FAST.max_attempts
        assert local.webhooks.stats.given_up == 1
        pending = await call(client.v1.events.list, {"delivery_success": False})
        assert [e.type for e in pending.data] == ["transfer.created"]
        assert pending.data[0].pending_webhooks == 1


async def test_an_unreachable_endpoint_is_retried_then_given_up(spec: StripeSpec) -> None:
    closed = wire.HttpServer(lambda r: asyncio.sleep(0, wire.Response(200)))
    await closed.start()
    url = f"{closed.base_url}/gone"
    await closed.stop()
    policy = DeliveryPolicy(max_attempts=3, first_retry=0.01)
    async with LocalStripe(
        endpoints=[WebhookEndpoint(url, SECRET)],
        platform_balance={"usd": 10},
        delivery=policy,
        spec=spec,
    ) as local:
        client = client_for(local)
        await transfer(client, await connected(client), 10)
        assert await local.wait_webhooks_idle(10)
        assert [a.status for a in local.webhooks.stats.log] == [None, None, None]


async def test_duplicate_delivery_when_asked(receiver: Receiver, spec: StripeSpec) -> None:
    duplicate = FaultRule("webhook_duplicate", event_type="transfer.created", times=1)
    async with server(receiver, spec, faults=[duplicate]) as local:
        client = client_for(local)
        acct = await connected(client)
        await transfer(client, acct)
        await transfer(client, acct)
        assert await local.wait_webhooks_idle(10)
    ids = [e.id for e in receiver.events]
    assert len(ids) == 3 and len(set(ids)) == 2
    assert ids.count(ids[0]) == 2  # the first event came twice, the second once


async def test_no_duplicates_or_reordering_unless_asked(
    receiver: Receiver, spec: StripeSpec
) -> None:
    async with server(receiver, spec) as local:
        client = client_for(local)
        acct = await connected(client)
        made = [await transfer(client, acct, 100 + i) for i in range(4)]
        assert await local.wait_webhooks_idle(10)
    assert [e.data.object.id for e in receiver.events] == [t.id for t in made]


async def test_out_of_order_delivery_when_asked(receiver: Receiver, spec: StripeSpec) -> None:
    hold = FaultRule("webhook_out_of_order", event_type="transfer.created", times=1)
    async with server(receiver, spec, faults=[hold]) as local:
        client = client_for(local)
        acct = await connected(client)
        first = await transfer(client, acct, 100)
        second = await transfer(client, acct, 200)
        assert await local.wait_webhooks_idle(10)
    assert [e.data.object.id for e in receiver.events] == [second.id, first.id]


async def test_payout_paid_can_arrive_before_payout_created(
    receiver: Receiver, spec: StripeSpec
) -> None:
    hold = FaultRule("webhook_out_of_order", event_type="payout.created")
    async with server(receiver, spec, faults=[hold], payout_delay=0.05) as local:
        client = client_for(local)
        acct = await connected(client)
        await transfer(client, acct)
        made = await payout(client, acct)
        await asyncio.sleep(0.2)
        assert await local.wait_webhooks_idle(10)
    assert receiver.types() == ["transfer.created", "payout.paid", "payout.created"]
    assert {e.data.object.id for e in receiver.events[1:]} == {made.id}


async def test_an_event_can_be_resent(receiver: Receiver, spec: StripeSpec) -> None:
    async with server(receiver, spec) as local:
        client = client_for(local)
        await transfer(client, await connected(client))
        assert await local.wait_webhooks_idle(10)
        local.resend_event(receiver.events[0].id)
        assert await local.wait_webhooks_idle(10)
    assert [e.id for e in receiver.events] == [receiver.events[0].id] * 2
