import copy
import hashlib
import hmac
import json
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import stripe

from seisan_cards.adapters.statements.stripe_issuing import (
    charge_from_issuing_event,
    charge_from_issuing_transaction,
)
from seisan_cards.domain.charges import StatementFormat, StatementRejected
from seisan_shared.money import Money

FIXTURES = (
    Path(__file__).resolve().parents[2].parent / "shared" / "data" / "stripe" / "fixtures3.json"
)

# Stripe's published example issuing.transaction, as in fixtures3.json (API 2023-08-16).
EXAMPLE_TRANSACTION = {
    "amount": -100,
    "amount_details": {"atm_fee": None},
    "authorization": "iauth_1NnmXHGPxmnHQRkJg5PifkbB",
    "balance_transaction": None,
    "card": "ic_1NnmXHGPxmnHQRkJTavoq32Z",
    "cardholder": "ich_1NnlpjGPxmnHQRkJG42e0kwv",
    "created": 1234567890,
    "currency": "usd",
    "dispute": None,
    "id": "ipi_1NnmXHGPxmnHQRkJK6co6OqM",
    "livemode": False,
    "merchant_amount": -100,
    "merchant_currency": "usd",
    "merchant_data": {
        "category": "taxicabs_limousines",
        "category_code": "4121",
        "city": "San Francisco",
        "country": "US",
        "name": "Rocket Rides",
        "network_id": "1234567890",
        "postal_code": "94107",
        "state": "CA",
        "terminal_id": None,
    },
    "metadata": {},
    "object": "issuing.transaction",
    "type": "capture",
    "wallet": "apple_pay",
}


def event_for(transaction: dict) -> dict:
    return {
        "id": "evt_1",
        "object": "event",
        "type": "issuing_transaction.created",
        "data": {"object": transaction},
    }


@pytest.mark.skipif(not FIXTURES.exists(), reason=f"Stripe fixtures not found at {FIXTURES}")
def test_the_example_above_is_stripes_published_fixture():
    published = json.loads(FIXTURES.read_text())["resources"]["issuing.transaction"]
    assert published == EXAMPLE_TRANSACTION


def test_capture_event_becomes_a_positive_charge():
    charge = charge_from_issuing_event(event_for(EXAMPLE_TRANSACTION), card_last4="4242")
    assert charge.amount == Money(100, "USD")
    assert charge.original_amount is None
    assert charge.merchant == "Rocket Rides"
    assert charge.mcc == "4121"
    assert charge.card_last4 == "4242"
    assert charge.issuer_transaction_id == "stripe_issuing:ipi_1NnmXHGPxmnHQRkJK6co6OqM"
    assert charge.transaction_date == datetime.fromtimestamp(1234567890, tz=UTC).date()
    assert charge.source_format == StatementFormat.STRIPE_ISSUING
    again = charge_from_issuing_event(event_for(EXAMPLE_TRANSACTION), card_last4="4242")
    assert again.charge_id == charge.charge_id


def test_refund_foreign_amount_and_expanded_objects():
    tx = copy.deepcopy(EXAMPLE_TRANSACTION)
    tx.update(
        type="refund",
        amount=1059,
        merchant_amount=1600,
        merchant_currency="jpy",
        card={"id": "ic_1", "object": "issuing.card", "last4": "0005"},
        cardholder={"id": "ich_1", "name": "Hanako Sato"},
        authorization={"id": "iauth_1", "created": 1234400000},
    )
    charge = charge_from_issuing_transaction(tx)
    assert charge.amount == Money(-1059, "USD")
    assert charge.original_amount == Money(-1600, "JPY")
    assert charge.card_last4 == "0005"
    assert charge.cardholder == "Hanako Sato"
    assert charge.transaction_date == date(2009, 2, 12)  # the authorization's day
    assert charge.posting_date == date(2009, 2, 13)


def test_verified_stripe_event_object_is_accepted():
    secret = "whsec_test"
    payload = json.dumps(event_for(EXAMPLE_TRANSACTION))
    timestamp = int(time.time())
    signature = hmac.new(
        secret.encode(), f"{timestamp}.{payload}".encode(), hashlib.sha256
    ).hexdigest()
    event = stripe.Webhook.construct_event(payload, f"t={timestamp},v1={signature}", secret)
    charge = charge_from_issuing_event(event, card_last4="4242")
    assert charge.amount == Money(100, "USD")


@pytest.mark.parametrize(
    ("mutate", "field"),
    [
        (lambda e: e.update(type="issuing_authorization.created"), "type"),
        (lambda e: e["data"].pop("object"), "data.object"),
        (lambda e: e["data"]["object"].update(amount="1.00"), "amount"),
        (lambda e: e["data"]["object"].update(amount=True), "amount"),
        (lambda e: e["data"]["object"].update(currency="zzz"), "currency"),
        (lambda e: e["data"]["object"].update(created=None), "created"),
        (lambda e: e["data"]["object"].update(object="issuing.authorization"), "object"),
    ],
)
def test_bad_events_are_refused_naming_the_field(mutate, field):
    event = event_for(copy.deepcopy(EXAMPLE_TRANSACTION))
    mutate(event)
    with pytest.raises(StatementRejected) as caught:
        charge_from_issuing_event(event, card_last4="4242")
    assert caught.value.field == field


def test_unknown_card_is_refused():
    with pytest.raises(StatementRejected) as caught:
        charge_from_issuing_event(event_for(EXAMPLE_TRANSACTION))
    assert caught.value.field == "card"
