"""The local Stripe server's parts: forms, idempotency keys, faults, signatures, the store."""

from __future__ import annotations

import random

import pytest
import stripe

from seisan_shared.stripe_local import forms
from seisan_shared.stripe_local.clock import Clock
from seisan_shared.stripe_local.errors import StripeError
from seisan_shared.stripe_local.faults import FaultPlan, FaultRule
from seisan_shared.stripe_local.idempotency import (
    IdempotencyKeys,
    InUse,
    Mismatch,
    Replay,
    SavedResponse,
    Started,
    fingerprint,
)
from seisan_shared.stripe_local.objects import RequestInfo
from seisan_shared.stripe_local.store import Store
from seisan_shared.stripe_local.webhooks import signature_header

# ---- forms -----------------------------------------------------------------------------


def test_form_decoding_nests_keys_like_stripe() -> None:
    pairs = forms.parse_pairs(
        "amount=1500&metadata%5Bclaim_id%5D=c-1&metadata%5Bnote%5D=&expand%5B0%5D=destination"
        "&expand%5B1%5D=balance_transaction&capabilities%5Btransfers%5D%5Brequested%5D=true"
    )
    assert forms.decode(pairs) == {
        "amount": "1500",
        "metadata": {"claim_id": "c-1", "note": ""},
        "expand": ["destination", "balance_transaction"],
        "capabilities": {"transfers": {"requested": "true"}},
    }


def test_form_decoding_keeps_numeric_metadata_keys_that_are_not_a_list() -> None:
    assert forms.decode([("metadata[2024]", "x")]) == {"metadata": {"2024": "x"}}
    assert forms.decode([("types[]", "a"), ("types[]", "b")]) == {"types": ["a", "b"]}


def test_form_decoding_refuses_a_key_that_is_both_value_and_hash() -> None:
    with pytest.raises(forms.FormError):
        forms.decode([("metadata", "x"), ("metadata[a]", "y")])
    with pytest.raises(forms.FormError):
        forms.decode([("metadata[a", "y")])


def test_form_encode_matches_the_sdk_encoding() -> None:
    from stripe._encode import _api_encode

    params = {"amount": 10, "metadata": {"k": "v"}, "expand": ["a", "b"], "flag": True}
    ours = forms.encode(params)
    theirs = [(k, str(v)) for k, v in _api_encode(params)]
    assert ours == theirs
    assert forms.decode(ours) == {
        "amount": "10",
        "metadata": {"k": "v"},
        "expand": ["a", "b"],
        "flag": "true",
    }


# ---- idempotency keys --------------------------------------------------------------------


def _saved(status: int = 200, body: bytes = b"{}") -> SavedResponse:
    return SavedResponse(status, body, "req_1")


def test_same_key_same_params_replays_the_saved_response() -> None:
    keys = IdempotencyKeys(Clock(start=1_000_000.0))
    fp = fingerprint("POST", "/v1/transfers", [("amount", "1"), ("currency", "usd")])
    assert isinstance(keys.begin("acct_p", "k", fp), Started)
    keys.finish("acct_p", "k", _saved(200, b'{"id": "tr_1"}'))
    # Parameter order does not make a different request.
    fp_reordered = fingerprint("POST", "/v1/transfers", [("currency", "usd"), ("amount", "1")])
    outcome = keys.begin("acct_p", "k", fp_reordered)
    assert isinstance(outcome, Replay)
    assert outcome.response.body == b'{"id": "tr_1"}'


def test_same_key_other_params_or_endpoint_is_a_mismatch() -> None:
    keys = IdempotencyKeys(Clock(start=0.0))
    keys.begin("acct_p", "k", fingerprint("POST", "/v1/transfers", [("amount", "1")]))
    keys.finish("acct_p", "k", _saved())
    assert isinstance(
        keys.begin("acct_p", "k", fingerprint("POST", "/v1/transfers", [("amount", "2")])),
        Mismatch,
    )
    assert isinstance(
        keys.begin("acct_p", "k", fingerprint("POST", "/v1/payouts", [("amount", "1")])),
        Mismatch,
    )


def test_a_key_in_flight_is_in_use_and_an_abandoned_key_is_free_again() -> None:
    keys = IdempotencyKeys(Clock(start=0.0))
    fp = fingerprint("POST", "/v1/payouts", [("amount", "1")])
    assert isinstance(keys.begin("acct_a", "k", fp), Started)
    assert isinstance(keys.begin("acct_a", "k", fp), InUse)
    keys.abandon("acct_a", "k")
    assert isinstance(keys.begin("acct_a", "k", fp), Started)


def test_keys_are_scoped_per_account() -> None:
    keys = IdempotencyKeys(Clock(start=0.0))
    fp = fingerprint("POST", "/v1/payouts", [("amount", "1")])
    keys.begin("acct_a", "k", fp)
    keys.finish("acct_a", "k", _saved())
    assert isinstance(keys.begin("acct_b", "k", fp), Started)


def test_keys_are_kept_24_hours_then_forgotten() -> None:
    clock = Clock(start=5_000.0)
    keys = IdempotencyKeys(clock)
    fp = fingerprint("POST", "/v1/transfers", [("amount", "1")])
    keys.begin("acct_p", "k", fp)
    keys.finish("acct_p", "k", _saved())
    clock.advance(24 * 3600 - 1)
    assert isinstance(keys.begin("acct_p", "k", fp), Replay)
    clock.advance(2)
    assert isinstance(keys.begin("acct_p", "k", fp), Started)


def test_idempotency_snapshot_round_trips() -> None:
    clock = Clock(start=0.0)
    keys = IdempotencyKeys(clock)
    fp = fingerprint("POST", "/v1/transfers", [])
    keys.begin("acct_p", "k", fp)
    keys.finish("acct_p", "k", SavedResponse(402, b'{"x": 1}', "req_9", (("A", "b"),)))
    copy = IdempotencyKeys(clock)
    copy.restore(keys.snapshot())
    outcome = copy.begin("acct_p", "k", fp)
    assert isinstance(outcome, Replay)
    assert outcome.response == SavedResponse(402, b'{"x": 1}', "req_9", (("A", "b"),))


# ---- faults ------------------------------------------------------------------------------


def test_fault_rule_parses_the_command_line_form_and_json() -> None:
    rule = FaultRule.parse("stall_after:path=/v1/transfers,method=post,times=2,seconds=0.5")
    assert rule == FaultRule(
        "stall_after", path="/v1/transfers", method="POST", times=2, seconds=0.5
    )
    assert FaultRule.parse('{"action": "rate_limit", "probability": 0.25}') == FaultRule(
        "rate_limit", probability=0.25
    )
    assert FaultRule.from_json(rule.to_json()) == rule
    with pytest.raises(ValueError):
        FaultRule.parse("explode:path=/v1/transfers")
    with pytest.raises(ValueError):
        FaultRule.parse("rate_limit:colour=blue")


def test_fault_plan_fires_for_the_next_n_matching_requests_only() -> None:
    plan = FaultPlan([FaultRule("fail_before", path="/v1/payouts*", method="POST", times=2)])
    assert plan.for_request("POST", "/v1/transfers") is None
    assert plan.for_request("GET", "/v1/payouts") is None
    fired = [plan.for_request("POST", "/v1/payouts") for _ in range(4)]
    assert [r.action if r else None for r in fired] == ["fail_before", "fail_before", None, None]
    assert plan.injected["fail_before"] == 2


def test_probabilistic_faults_are_reproducible_with_a_seed() -> None:
    def run(seed: int) -> list[bool]:
        plan = FaultPlan([FaultRule("rate_limit", probability=0.3)], seed=seed)
        return [plan.for_request("POST", "/v1/transfers") is not None for _ in range(200)]

    first = run(7)
    assert first == run(7)
    assert first != run(8)
    assert 30 < sum(first) < 90  # about 30 % of 200


def test_webhook_and_payout_rules_match_their_own_targets() -> None:
    plan = FaultPlan(
        [
            FaultRule("webhook_duplicate", event_type="payout.*"),
            FaultRule("payout_fail", account="acct_x", failure_code="account_closed"),
        ]
    )
    assert plan.for_event("payout.paid") == {"webhook_duplicate"}
    assert plan.for_event("transfer.created") == set()
    assert plan.for_request("POST", "/v1/payouts") is None
    assert plan.payout_failure("acct_y") is None
    assert plan.payout_failure("acct_x") == "account_closed"


# ---- signatures --------------------------------------------------------------------------


def test_signature_header_verifies_with_the_sdk_and_fails_with_another_secret() -> None:
    payload = '{"id": "evt_1", "object": "event"}'
    header = signature_header(payload, "whsec_right")
    assert stripe.WebhookSignature.verify_header(payload, header, "whsec_right", tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload, header, "whsec_wrong", tolerance=300)
    with pytest.raises(stripe.SignatureVerificationError):
        stripe.WebhookSignature.verify_header(payload + " ", header, "whsec_right", tolerance=300)


# ---- store: money never goes wrong -----------------------------------------------------------


def _account(store: Store, number: str = "000123456789") -> str:
    account = store.create_account(
        {
            "type": "custom",
            "country": "US",
            "capabilities": {"transfers": {"requested": "true"}},
            "external_account": {
                "object": "bank_account",
                "country": "US",
                "currency": "usd",
                "account_number": number,
            },
        }
    )
    return str(account["id"])


def test_store_moves_money_transfer_then_payout_then_failure_returns_it() -> None:
    store = Store(Clock(start=1_700_000_000.0))
    store.fund(store.platform_id, "usd", 10_000)
    acct = _account(store)
    info = RequestInfo("req_1", None)
    store.create_transfer(
        {"amount": "4000", "currency": "usd", "destination": acct}, store.platform_id, info
    )
    assert store.available(store.platform_id, "usd") == 6_000
    assert store.available(acct, "usd") == 4_000
    payout = store.create_payout({"amount": "3000", "currency": "usd"}, acct, info)
    assert store.available(acct, "usd") == 1_000
    assert store.settle_payout(payout["id"], "account_closed")
    assert payout["status"] == "failed" and payout["failure_code"] == "account_closed"
    assert store.available(acct, "usd") == 4_000
    assert not store.settle_payout(payout["id"], None)  # settles once
    assert [e["type"] for e in store.events.values()] == [
        "transfer.created",
        "payout.created",
        "payout.failed",
    ]


def test_store_refuses_to_overdraw_with_stripe_error() -> None:
    store = Store(Clock(start=0.0))
    store.fund(store.platform_id, "usd", 100)
    acct = _account(store)
    with pytest.raises(StripeError) as e:
        store.create_transfer(
            {"amount": "101", "currency": "usd", "destination": acct},
            store.platform_id,
            RequestInfo(),
        )
    assert (e.value.status, e.value.code) == (400, "balance_insufficient")
    assert store.available(store.platform_id, "usd") == 100
    assert store.transfers == {}


def test_store_test_bank_numbers_plan_payout_failures() -> None:
    store = Store(Clock(start=0.0))
    store.fund(store.platform_id, "usd", 100)
    acct = _account(store, number="000111111116")
    store.create_transfer(
        {"amount": "100", "currency": "usd", "destination": acct}, store.platform_id, RequestInfo()
    )
    payout = store.create_payout({"amount": "100", "currency": "usd"}, acct, RequestInfo())
    assert store.planned_failure(payout["id"]) == "no_account"
    account = store.accounts[acct]
    assert account["external_accounts"]["data"][0]["last4"] == "1116"
    assert "000111111116" not in repr(store.snapshot())  # the full number is never kept


def test_balances_never_go_negative_and_money_is_conserved_under_random_operations() -> None:
    rng = random.Random(42)
    store = Store(Clock(start=0.0))
    funded = 50_000
    store.fund(store.platform_id, "usd", funded)
    accounts = [_account(store) for _ in range(3)]
    refused = 0
    for _ in range(600):
        op = rng.choice(["transfer", "reverse", "payout", "settle"])
        try:
            if op == "transfer":
                store.create_transfer(
                    {
                        "amount": str(rng.randint(1, 9_000)),
                        "currency": "usd",
                        "destination": rng.choice(accounts),
                    },
                    store.platform_id,
                    RequestInfo(),
                )
            elif op == "reverse" and store.transfers:
                transfer_id = rng.choice(list(store.transfers))
                store.reverse_transfer(
                    transfer_id,
                    {"amount": str(rng.randint(1, 3_000))},
                    store.platform_id,
                    RequestInfo(),
                )
            elif op == "payout":
                store.create_payout(
                    {"amount": str(rng.randint(1, 5_000)), "currency": "usd"},
                    rng.choice(accounts),
                    RequestInfo(),
                )
            elif op == "settle" and store.pending_payouts():
                payout_id = rng.choice(store.pending_payouts())
                store.settle_payout(payout_id, rng.choice([None, "could_not_process"]))
        except StripeError as e:
            assert e.status == 400
            refused += 1
        held = sum(store.available(a, "usd") for a in [store.platform_id, *accounts])
        assert all(store.available(a, "usd") >= 0 for a in [store.platform_id, *accounts])
        gone = sum(
            po["amount"] for po in store.payouts.values() if po["status"] in ("pending", "paid")
        )
        assert held + gone == funded
    assert refused > 0  # the sequence did try to overdraw
    assert any(po["status"] == "paid" for po in store.payouts.values())
