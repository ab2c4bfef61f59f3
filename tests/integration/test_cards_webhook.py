"""The Stripe Issuing webhook over real HTTP on a loopback port (SQLite and PostgreSQL).

Signed with ``stripe.WebhookSignature`` exactly as Stripe signs: a valid event stores one
charge (and matches it); a bad signature is 400 with nothing written; a duplicate
delivery stores nothing new.
"""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, date, datetime

import pytest
import stripe

from seisan.cards.v1 import cards_pb2
from seisan_cards.entrypoints.webhook import StripeIssuingWebhook, WebhookServer
from seisan_shared import subjects
from seisan_shared.storage import Database
from support.cards import CardsHarness, running_cards

SECRET = "whsec_test_secret"
CREATED = int(datetime(2026, 11, 2, 3, 0, tzinfo=UTC).timestamp())
TRANSACTION = {
    "id": "ipi_1NnmXHGPxmnHQRkJK6co6OqM",
    "object": "issuing.transaction",
    "amount": -1112,
    "authorization": None,
    "card": "ic_aiko",
    "cardholder": "ich_unknown",
    "created": CREATED,
    "currency": "jpy",
    "merchant_amount": -1112,
    "merchant_currency": "jpy",
    "merchant_data": {"category_code": "5814", "name": "BLUE BOTTLE COFFEE"},
    "type": "capture",
}


def event(
    transaction: dict, event_id: str = "evt_1", kind: str = "issuing_transaction.created"
) -> str:
    return json.dumps(
        {"id": event_id, "object": "event", "type": kind, "data": {"object": transaction}}
    )


@dataclass
class Endpoint:
    cards: CardsHarness
    server: WebhookServer

    async def post(
        self, body: str, signature: str | None, *, path: str | None = None, method: str = "POST"
    ) -> tuple[int, dict]:
        reader, writer = await asyncio.open_connection(self.server.host, self.server.port)
        data = body.encode()
        head = [f"{method} {path or self.server.path} HTTP/1.1", "Host: localhost"]
        head += ["Content-Type: application/json", f"Content-Length: {len(data)}"]
        if signature is not None:
            head.append(f"Stripe-Signature: {signature}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode() + data)
        await writer.drain()
        raw = await reader.read()
        writer.close()
        status_line, _, rest = raw.partition(b"\r\n")
        _, _, payload = rest.partition(b"\r\n\r\n")
        return int(status_line.split()[1]), json.loads(payload or b"{}")

    async def deliver(self, body: str, secret: str = SECRET) -> tuple[int, dict]:
        return await self.post(
            body, stripe.WebhookSignature.generate_signature_header(body, secret)
        )


@pytest.fixture
async def endpoint(database: Database) -> AsyncIterator[Endpoint]:
    async with running_cards(database) as cards:
        server = await WebhookServer(StripeIssuingWebhook(cards.ports, SECRET), port=0).start()
        try:
            yield Endpoint(cards, server)
        finally:
            await server.stop(1.0)


async def test_a_signed_event_imports_one_charge_and_matches_it(endpoint: Endpoint):
    cards = endpoint.cards
    await cards.receipt(
        "r1", "aiko", merchant="Blue Bottle Coffee", day=date(2026, 11, 2), total=1112
    )

    status, body = await endpoint.deliver(event(TRANSACTION))

    assert status == 200 and body["created"] is True
    listed = await cards.stub("t-aiko").ListCharges(cards_pb2.ListChargesRequest())
    (charge,) = listed.charges
    assert charge.charge_id == body["charge_id"]
    assert (charge.amount.minor_units, charge.amount.currency) == (1112, "JPY")  # sign turned
    assert charge.card_last4 == "4242" and charge.cardholder == "aiko"  # from the directory
    assert charge.source == cards_pb2.STATEMENT_FORMAT_STRIPE_ISSUING and not charge.statement_id
    assert charge.status == cards_pb2.CHARGE_STATUS_MATCHED
    (imported,) = await cards.payloads(subjects.CARD_CHARGE_IMPORTED)
    assert imported.charge.charge_id == charge.charge_id
    (confirmed,) = await cards.payloads(subjects.MATCH_CONFIRMED)
    assert list(confirmed.match.receipt_ids) == ["r1"] and confirmed.match.automatic


async def test_a_duplicate_delivery_stores_nothing_new(endpoint: Endpoint):
    first = await endpoint.deliver(event(TRANSACTION, "evt_1"))
    rows = await endpoint.cards.count("card_charges")
    outbox = await endpoint.cards.count("outbox")
    # Stripe retries the same event, and may send the same transaction in another event.
    again = await endpoint.deliver(event(TRANSACTION, "evt_1"))
    other_event = await endpoint.deliver(event(TRANSACTION, "evt_2"))
    assert first[0] == again[0] == other_event[0] == 200
    assert again[1] == other_event[1] == {"charge_id": first[1]["charge_id"], "created": False}
    assert await endpoint.cards.count("card_charges") == rows == 1
    assert await endpoint.cards.count("outbox") == outbox


@pytest.mark.parametrize(
    "signature",
    [
        None,
        "t=1,v1=deadbeef",
        "garbage",
        "wrong-secret",
        "tampered",
    ],
)
async def test_a_bad_signature_is_refused_and_nothing_is_written(
    endpoint: Endpoint, signature: str | None
):
    body = event(TRANSACTION)
    if signature == "wrong-secret":
        signature = stripe.WebhookSignature.generate_signature_header(body, "whsec_other")
    elif signature == "tampered":
        signature = stripe.WebhookSignature.generate_signature_header(body, SECRET)
        body = body.replace("-1112", "-11120")
    status, reply = await endpoint.post(body, signature)
    assert status == 400 and "signature" in reply["error"]
    assert await endpoint.cards.count("card_charges") == 0
    assert await endpoint.cards.count("outbox") == 0


async def test_an_old_signature_is_refused(endpoint: Endpoint):
    body = event(TRANSACTION)
    stale = stripe.WebhookSignature.generate_signature_header(
        body, SECRET, timestamp=int(datetime.now(UTC).timestamp()) - 3600
    )
    status, _ = await endpoint.post(body, stale)
    assert status == 400
    assert await endpoint.cards.count("card_charges") == 0


async def test_other_events_unknown_cards_and_wrong_routes(endpoint: Endpoint):
    status, body = await endpoint.deliver(event(TRANSACTION, kind="issuing_card.created"))
    assert status == 200 and body == {"ignored": "issuing_card.created"}

    unknown = copy.deepcopy(TRANSACTION)
    unknown["card"] = "ic_nobody"
    status, body = await endpoint.deliver(event(unknown))
    assert status == 400 and "last four" in body["error"]

    expanded = copy.deepcopy(unknown)
    expanded["id"] = "ipi_expanded"
    expanded["card"] = {"id": "ic_nobody", "last4": "1111"}
    expanded["cardholder"] = "ich_ben"
    status, body = await endpoint.deliver(event(expanded))
    assert status == 200 and body["created"]

    assert (await endpoint.post("{}", None, path="/elsewhere"))[0] == 404
    assert (await endpoint.post("", None, method="GET"))[0] == 405
    listed = await endpoint.cards.stub("t-daichi").ListCharges(cards_pb2.ListChargesRequest())
    assert [(c.card_last4, c.cardholder) for c in listed.charges] == [("1111", "ben")]
