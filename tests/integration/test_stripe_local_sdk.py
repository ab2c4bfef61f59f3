"""The ``stripe`` SDK against the local Stripe server: objects, idempotency, errors, faults.

The server runs on port 0 in its own thread (the SDK blocks), checks every
request and response against Stripe's OpenAPI description as it goes, and each
test ends by asserting that nothing violated it.
"""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import stripe

from seisan_shared.stripe_local import FaultRule, LocalStripe, LocalStripeThread, StripeSpec
from seisan_shared.stripe_local.spec import default_spec_path

KEY = "sk_test_seisan_local"


@pytest.fixture(scope="module")
def spec() -> StripeSpec:
    if not default_spec_path().exists():
        pytest.skip(f"Stripe's spec is not at {default_spec_path()}")
    return StripeSpec.load()


@pytest.fixture
def local(spec: StripeSpec) -> Iterator[LocalStripeThread]:
    with LocalStripeThread(
        spec=spec,
        record=True,
        payout_delay=None,
        platform_balance={"usd": 1_000_000, "jpy": 5_000_000},
    ) as server:
        yield server
        assert server.call(lambda s: s.spec_violations) == []


def sdk(local: LocalStripeThread, retries: int = 0, timeout: float = 10.0) -> stripe.StripeClient:
    return stripe.StripeClient(
        KEY,
        base_addresses={"api": local.api_base},
        max_network_retries=retries,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def connected_account(client: stripe.StripeClient, currency: str = "usd") -> str:
    country = "JP" if currency == "jpy" else "US"
    account = client.v1.accounts.create(
        {
            "type": "custom",
            "country": country,
            "email": "hanako@example.com",
            "business_type": "individual",
            "capabilities": {"transfers": {"requested": True}},
            "external_account": {
                "object": "bank_account",
                "country": country,
                "currency": currency,
                "account_number": "000123456789",
                "routing_number": "110000000",
                "account_holder_name": "Hanako Yamada",
            },
            "tos_acceptance": {"date": 1_700_000_000, "ip": "127.0.0.1"},
            "metadata": {"employee_id": "e-1"},
        }
    )
    return str(account.id)


def platform_balance(local: LocalStripeThread, currency: str = "usd") -> int:
    balances = local.control.balances()
    return balances[local.control.platform_id()].get(currency, 0)


def transfer_params(destination: str, amount: int = 1500) -> Any:
    return {
        "amount": amount,
        "currency": "usd",
        "destination": destination,
        "metadata": {"claim_id": "claim-1", "payout_id": "pay-1"},
        "transfer_group": "run-1",
    }


def replayed(obj: Any) -> bool:
    """Whether the SDK object came from Stripe's idempotency replay."""
    return bool(obj.last_response.headers.get("Idempotent-Replayed") == "true")


def error_code(error: Any) -> str | None:
    code: str | None = error.json_body["error"].get("code")
    return code


def transfers_made(local: LocalStripeThread) -> int:
    return int(local.control.stats()["objects"]["transfers"])


# ---- objects ------------------------------------------------------------------------------


def test_account_transfer_payout_balance_and_events(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    account: Any = client.v1.accounts.retrieve(acct)
    assert (account.object, account.type, account.payouts_enabled) == ("account", "custom", True)
    assert account.capabilities.transfers == "active"
    bank = account.external_accounts.data[0]
    assert (bank.object, bank.last4, bank.currency) == ("bank_account", "6789", "usd")

    transfer: Any = client.v1.transfers.create(transfer_params(acct))
    assert transfer.id.startswith("tr_") and transfer.object == "transfer"
    assert (transfer.amount, transfer.currency, transfer.destination) == (1500, "usd", acct)
    assert transfer.metadata["claim_id"] == "claim-1" and transfer.livemode is False
    assert client.v1.transfers.retrieve(transfer.id).amount == 1500
    listed = client.v1.transfers.list({"transfer_group": "run-1"})
    assert [t.id for t in listed.data] == [transfer.id]

    payout: Any = client.v1.payouts.create(
        {"amount": 1000, "currency": "usd", "metadata": {"payout_id": "pay-1"}},
        {"stripe_account": acct},
    )
    assert payout.id.startswith("po_") and payout.status == "pending"
    assert payout.destination == bank.id and payout.metadata["payout_id"] == "pay-1"
    # A payout belongs to the connected account: the platform cannot see it.
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.retrieve(payout.id)

    connected = client.v1.balance.retrieve(options={"stripe_account": acct})
    assert [(b.amount, b.currency) for b in connected.available] == [(500, "usd")]
    platform = client.v1.balance.retrieve()
    assert {b.currency: b.amount for b in platform.available}["usd"] == 1_000_000 - 1500

    assert local.control.settle_payouts() == 1
    assert client.v1.payouts.retrieve(payout.id, options={"stripe_account": acct}).status == "paid"
    platform_events = [e.type for e in client.v1.events.list().data]
    account_events = [e.type for e in client.v1.events.list(options={"stripe_account": acct}).data]
    assert platform_events == ["transfer.created"]
    assert account_events == ["payout.paid", "payout.created"]
    event: Any = client.v1.events.retrieve(client.v1.events.list().data[0].id)
    assert event.data.object.id == transfer.id and event.request.id is not None


def test_lists_paginate_newest_first(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    ids = [client.v1.transfers.create(transfer_params(acct, 100 + i)).id for i in range(3)]
    first = client.v1.transfers.list({"limit": 2})
    assert [t.id for t in first.data] == [ids[2], ids[1]] and first.has_more
    rest = client.v1.transfers.list({"limit": 2, "starting_after": ids[1]})
    assert [t.id for t in rest.data] == [ids[0]] and not rest.has_more
    everything = [t.id for t in client.v1.transfers.list({"limit": 1}).auto_paging_iter()]
    assert everything == list(reversed(ids))


def test_transfer_reversal_moves_money_back(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    transfer = client.v1.transfers.create(transfer_params(acct, 1000))
    reversal = client.v1.transfers.reversals.create(transfer.id, {"amount": 400})
    assert (reversal.object, reversal.amount, reversal.transfer) == (
        "transfer_reversal",
        400,
        transfer.id,
    )
    after = client.v1.transfers.retrieve(transfer.id)
    assert (after.amount_reversed, after.reversed) == (400, False)
    assert platform_balance(local) == 1_000_000 - 600
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.transfers.reversals.create(transfer.id, {"amount": 601})
    assert [e.type for e in client.v1.events.list().data] == [
        "transfer.reversed",
        "transfer.created",
    ]


# ---- errors -------------------------------------------------------------------------------


def test_errors_are_stripe_shaped_with_the_right_status(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    with pytest.raises(stripe.AuthenticationError) as auth:
        stripe.StripeClient(
            "pk_test_wrongkind", base_addresses={"api": local.api_base}
        ).v1.balance.retrieve()
    assert auth.value.http_status == 401
    with pytest.raises(stripe.InvalidRequestError) as missing:
        client.v1.transfers.retrieve("tr_doesnotexist")
    assert (missing.value.http_status, missing.value.code) == (404, "resource_missing")
    with_colour: Any = {**transfer_params(acct), "colour": "red"}
    with pytest.raises(stripe.InvalidRequestError) as unknown:
        client.v1.transfers.create(with_colour)
    assert (unknown.value.code, unknown.value.param) == ("parameter_unknown", "colour")
    with pytest.raises(stripe.InvalidRequestError) as no_amount:
        client.v1.transfers.create({"currency": "usd", "destination": acct})
    assert (no_amount.value.code, no_amount.value.param) == ("parameter_missing", "amount")
    with pytest.raises(stripe.PermissionError) as foreign:
        client.v1.balance.retrieve(options={"stripe_account": "acct_notmine0000000"})
    assert foreign.value.http_status == 403
    bare = client.v1.accounts.create({"type": "express", "country": "US"})
    with pytest.raises(stripe.InvalidRequestError) as capability:
        client.v1.transfers.create(transfer_params(bare.id))
    assert capability.value.code == "insufficient_capabilities_for_transfer"
    assert transfers_made(local) == 0


def test_insufficient_funds_is_refused_and_balances_never_go_negative(
    local: LocalStripeThread,
) -> None:
    client = sdk(local)
    acct = connected_account(client)
    with pytest.raises(stripe.InvalidRequestError) as too_much:
        client.v1.transfers.create(transfer_params(acct, 1_000_001))
    assert (too_much.value.http_status, too_much.value.code) == (400, "balance_insufficient")
    client.v1.transfers.create(transfer_params(acct, 700))
    with pytest.raises(stripe.InvalidRequestError) as overdraw:
        client.v1.payouts.create({"amount": 701, "currency": "usd"}, {"stripe_account": acct})
    assert overdraw.value.code == "balance_insufficient"
    balances = local.control.balances()
    assert balances[acct] == {"usd": 700}
    assert all(v >= 0 for per in balances.values() for v in per.values())


# ---- idempotency --------------------------------------------------------------------------


def test_idempotent_replay_returns_the_same_object_and_moves_money_once(
    local: LocalStripeThread,
) -> None:
    client = sdk(local)
    acct = connected_account(client)
    options: Any = {"idempotency_key": "payout-41:transfer"}
    first = client.v1.transfers.create(transfer_params(acct), options)
    second = client.v1.transfers.create(transfer_params(acct), options)
    assert second.id == first.id and second.to_dict() == first.to_dict()
    assert not replayed(first) and replayed(second)
    assert transfers_made(local) == 1
    assert platform_balance(local) == 1_000_000 - 1500
    assert [e.type for e in client.v1.events.list().data] == ["transfer.created"]

    payout_options: Any = {"idempotency_key": "payout-41:payout", "stripe_account": acct}
    p1 = client.v1.payouts.create({"amount": 1500, "currency": "usd"}, payout_options)
    p2 = client.v1.payouts.create({"amount": 1500, "currency": "usd"}, payout_options)
    assert p1.id == p2.id
    assert local.control.balances()[acct] == {"usd": 0}


def test_same_key_with_other_parameters_is_an_idempotency_error(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    options: Any = {"idempotency_key": "payout-42:transfer"}
    client.v1.transfers.create(transfer_params(acct, 1500), options)
    with pytest.raises(stripe.IdempotencyError) as err:
        client.v1.transfers.create(transfer_params(acct, 1600), options)
    assert err.value.http_status == 400
    assert err.value.json_body["error"]["type"] == "idempotency_error"  # type: ignore[index]
    assert transfers_made(local) == 1


def test_keys_are_forgotten_after_24_hours(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    options: Any = {"idempotency_key": "payout-43:transfer"}
    first = client.v1.transfers.create(transfer_params(acct), options)
    local.control.advance_clock(23 * 3600)
    assert client.v1.transfers.create(transfer_params(acct), options).id == first.id
    local.control.advance_clock(3600 + 1)
    assert client.v1.transfers.create(transfer_params(acct), options).id != first.id
    assert transfers_made(local) == 2


def test_a_key_still_executing_gets_409_and_the_sdk_retries_into_the_replay(
    local: LocalStripeThread,
) -> None:
    client = sdk(local)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("slow", path="/v1/transfers", times=1, seconds=1.0)])
    options: Any = {"idempotency_key": "payout-44:transfer"}
    results: dict[str, Any] = {}

    def first() -> None:
        results["first"] = client.v1.transfers.create(transfer_params(acct), options)

    worker = threading.Thread(target=first)
    worker.start()
    time.sleep(0.3)
    with pytest.raises(stripe.APIError) as in_use:
        sdk(local).v1.transfers.create(transfer_params(acct), options)
    assert in_use.value.http_status == 409
    assert error_code(in_use.value) == "idempotency_key_in_use"
    retried = sdk(local, retries=5).v1.transfers.create(transfer_params(acct), options)
    worker.join(10)
    assert retried.id == results["first"].id
    assert transfers_made(local) == 1


# ---- faults -------------------------------------------------------------------------------


def test_rate_limit_raises_rate_limit_error_and_the_sdk_does_not_retry_it(
    local: LocalStripeThread,
) -> None:
    client = sdk(local, retries=3)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("rate_limit", path="/v1/transfers", times=1)])
    with pytest.raises(stripe.RateLimitError) as limited:
        client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-rl"})
    assert limited.value.http_status == 429
    assert error_code(limited.value) == "rate_limit"
    assert local.control.stats()["by_status"]["429"] == 1
    assert transfers_made(local) == 0
    # The fault was for one request; the same key now runs (nothing was saved for it).
    assert (
        client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-rl"}).amount
        == 1500
    )


def test_lock_timeout_429_is_retried_by_the_sdk(local: LocalStripeThread) -> None:
    client = sdk(local, retries=3)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("lock_timeout", path="/v1/transfers", times=2)])
    transfer = client.v1.transfers.create(transfer_params(acct))
    assert transfer.amount == 1500
    assert local.control.stats()["by_status"]["429"] == 2
    assert transfers_made(local) == 1


def test_500_before_the_work_means_nothing_happened(local: LocalStripeThread) -> None:
    client = sdk(local)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("fail_before", path="/v1/transfers", times=1)])
    with pytest.raises(stripe.APIError) as failed:
        client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-500b"})
    assert failed.value.http_status == 500
    assert transfers_made(local) == 0 and platform_balance(local) == 1_000_000
    retried = client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-500b"})
    assert not replayed(retried)  # it ran now
    assert transfers_made(local) == 1


def test_500_after_the_work_then_retry_with_the_same_key_returns_the_original(
    local: LocalStripeThread,
) -> None:
    client = sdk(local)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("fail_after", path="/v1/transfers", times=1)])
    with pytest.raises(stripe.APIError):
        client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-500a"})
    assert transfers_made(local) == 1  # the work was done
    retried = client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-500a"})
    assert replayed(retried)
    assert [t.id for t in client.v1.transfers.list().data] == [retried.id]
    assert platform_balance(local) == 1_000_000 - 1500


def test_sdk_retries_hide_a_500_after_the_work_without_paying_twice(
    local: LocalStripeThread,
) -> None:
    client = sdk(local, retries=2)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("fail_after", path="/v1/payouts", times=1)])
    client.v1.transfers.create(transfer_params(acct, 900))
    payout = client.v1.payouts.create(
        {"amount": 900, "currency": "usd"}, {"stripe_account": acct, "idempotency_key": "k-p"}
    )
    assert replayed(payout)
    assert local.control.stats()["objects"]["payouts"] == 1
    assert local.control.balances()[acct] == {"usd": 0}


def test_timeout_after_the_work_then_retry_returns_the_original(local: LocalStripeThread) -> None:
    client = sdk(local, timeout=0.5)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("stall_after", path="/v1/transfers", times=1, seconds=1.5)])
    with pytest.raises(stripe.APIConnectionError):
        client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-stall"})
    assert transfers_made(local) == 1
    retried = client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-stall"})
    assert replayed(retried)
    assert platform_balance(local) == 1_000_000 - 1500


def test_dropped_connection_after_the_work_is_retried_by_the_sdk_into_the_replay(
    local: LocalStripeThread,
) -> None:
    acct = connected_account(sdk(local))
    local.control.set_faults([FaultRule("drop_after", path="/v1/transfers", times=1)])
    with pytest.raises(stripe.APIConnectionError):
        sdk(local).v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-drop"})
    local.control.set_faults([FaultRule("drop_after", path="/v1/transfers", times=1)])
    transfer = sdk(local, retries=2).v1.transfers.create(
        transfer_params(acct), {"idempotency_key": "k-drop2"}
    )
    assert replayed(transfer)
    assert transfers_made(local) == 2


def test_a_saved_500_is_replayed_for_its_key_and_not_retried(local: LocalStripeThread) -> None:
    client = sdk(local, retries=2)
    acct = connected_account(client)
    local.control.set_faults([FaultRule("fail_saved", path="/v1/transfers", times=1)])
    for _ in range(2):
        with pytest.raises(stripe.APIError) as saved:
            client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-saved"})
        assert saved.value.http_status == 500
    assert (saved.value.headers or {})["Idempotent-Replayed"] == "true"
    assert local.control.stats()["by_status"]["500"] == 2  # Stripe-Should-Retry: false
    assert transfers_made(local) == 0
    assert client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "k-new"})
    assert transfers_made(local) == 1


# ---- transport ----------------------------------------------------------------------------


def test_keep_alive_serves_several_requests_on_one_connection(local: LocalStripeThread) -> None:
    host, port = local.api_base.removeprefix("http://").split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    try:
        for _ in range(3):
            connection.request("GET", "/v1/balance", headers={"Authorization": f"Bearer {KEY}"})
            response = connection.getresponse()
            assert response.status == 200 and b'"object": "balance"' in response.read()
            assert response.getheader("Request-Id", "").startswith("req_")
    finally:
        connection.close()


async def test_async_sdk_over_httpx(spec: StripeSpec) -> None:
    pytest.importorskip("httpx")
    async with LocalStripe(
        spec=spec, payout_delay=None, platform_balance={"jpy": 100_000}
    ) as local:
        client = stripe.StripeClient(KEY, base_addresses={"api": local.api_base})
        account = await client.v1.accounts.create_async(
            {
                "type": "custom",
                "country": "JP",
                "capabilities": {"transfers": {"requested": True}},
                "external_account": {
                    "object": "bank_account",
                    "country": "JP",
                    "currency": "jpy",
                    "account_number": "0001234",
                    "routing_number": "1100000",
                    "account_holder_name": "ヤマダ ハナコ",
                },
            }
        )
        options: Any = {"idempotency_key": "async-1"}
        params: Any = {"amount": 3300, "currency": "jpy", "destination": account.id}
        first = await client.v1.transfers.create_async(params, options)
        again = await client.v1.transfers.create_async(params, options)
        assert first.id == again.id and first.amount == 3300
        assert local.balances()[account.id] == {"jpy": 3300}
        assert local.spec_violations == []


def test_every_recorded_exchange_matches_the_spec(
    local: LocalStripeThread, spec: StripeSpec
) -> None:
    client = sdk(local)
    acct = connected_account(client)
    client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "spec-1"})
    client.v1.transfers.create(transfer_params(acct), {"idempotency_key": "spec-1"})
    client.v1.payouts.create({"amount": 100, "currency": "usd"}, {"stripe_account": acct})
    local.control.settle_payouts()
    client.v1.events.list({"limit": 3, "type": "transfer.created"})
    client.v1.payouts.list(options={"stripe_account": acct})
    with pytest.raises(stripe.InvalidRequestError):
        client.v1.payouts.retrieve("po_missing", options={"stripe_account": acct})
    exchanges = local.call(lambda s: list(s.exchanges))
    assert len(exchanges) == 7
    for exchange in exchanges:
        assert exchange.body is not None
        assert (
            spec.response_problems(exchange.method, exchange.path, exchange.status, exchange.body)
            == []
        )
        if exchange.status < 400:
            assert spec.request_problems(exchange.method, exchange.path, exchange.params) == []
