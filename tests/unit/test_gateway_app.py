"""The web app with a fake in place of the services: what is refused before any call is made,
and how a service's refusal reaches the browser (a 403/404 page, never data)."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest

from seisan.receipts.v1 import receipts_pb2
from seisan_gateway.adapters.services import Services
from seisan_gateway.domain import errors
from seisan_gateway.domain.sessions import SessionStore
from seisan_gateway.entrypoints.web import Deps, create_app
from seisan_shared.auth import Principal, TokenStore

TOKENS = {
    "t-aiko": Principal("aiko", frozenset({"staff"})),
    "t-ben": Principal("ben", frozenset({"staff"})),
    "t-daichi": Principal("daichi", frozenset({"treasury"})),
}


class FakeServices(Services):
    """Answers as intake would for two receipts; records every call made."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self.receipts = {
            "r-aiko": receipts_pb2.Receipt(receipt_id="r-aiko", submitter="aiko"),
        }
        self.receipts["r-aiko"].fields.merchant.value = "Blue Bottle"
        self.receipts["r-aiko"].fields.total.amount.minor_units = 1112
        self.receipts["r-aiko"].fields.total.amount.currency = "JPY"

    async def get_receipt(self, token: str, receipt_id: str) -> receipts_pb2.Receipt:
        self.calls.append(("get_receipt", token))
        receipt = self.receipts.get(receipt_id)
        if receipt is None:
            raise errors.NotFound(f"receipt {receipt_id} not found")
        if TOKENS[token].name != receipt.submitter:
            raise errors.Forbidden("not yours")
        return receipt

    async def list_receipts(self, token: str, **_: Any) -> list[receipts_pb2.Receipt]:
        self.calls.append(("list_receipts", token))
        return [r for r in self.receipts.values() if r.submitter == TOKENS[token].name]

    async def correct_receipt(self, token: str, *args: Any) -> receipts_pb2.Receipt:
        self.calls.append(("correct_receipt", token))
        return self.receipts["r-aiko"]

    async def reconciliation_report(self, token: str, statement_id: str = "") -> Any:
        self.calls.append(("reconciliation_report", token))
        raise AssertionError("never reached by staff")


def _client(app: Any, **kwargs: Any) -> httpx.AsyncClient:
    # httpx's own ASGI transport: the real app in process, no server, no network.
    transport = httpx.ASGITransport(app=app)
    return httpx.AsyncClient(transport=transport, base_url="http://testserver", **kwargs)


@pytest.fixture
def app_and_fake() -> tuple[httpx.AsyncClient, FakeServices]:
    fake = FakeServices()
    deps = Deps(
        services=fake,
        tokens=TokenStore.from_principals(TOKENS),
        sessions=SessionStore(3600),
        feed=None,
        secure_cookies=False,
        max_upload_bytes=1024,
        stopping=asyncio.Event(),
    )
    return _client(create_app(deps)), fake


async def _sign_in(client: httpx.AsyncClient, token: str) -> str:
    form = (await client.get("/signin")).text
    nonce = re.search(r'name="csrf" value="([^"]+)"', form)
    assert nonce
    reply = await client.post("/signin", data={"token": token, "csrf": nonce.group(1)})
    assert reply.status_code == 303, reply.text
    page = (await client.get("/receipts")).text
    csrf = re.search(r'<meta name="csrf-token" content="([^"]+)"', page)
    assert csrf
    return csrf.group(1)


async def test_a_post_without_the_csrf_token_never_reaches_a_service(app_and_fake) -> None:  # type: ignore[no-untyped-def]
    client, fake = app_and_fake
    csrf = await _sign_in(client, "t-aiko")
    fake.calls.clear()
    refused = await client.post("/receipts/r-aiko/correct", data={"merchant": "X", "reason": "r"})
    assert refused.status_code == 403 and fake.calls == []
    header = await client.post(
        "/receipts/r-aiko/correct",
        data={"merchant": "X", "reason": "r"},
        headers={"x-csrf-token": csrf},
    )
    assert header.status_code == 303 and ("correct_receipt", "t-aiko") in fake.calls


async def test_the_service_decides_and_its_refusal_becomes_a_page_without_data(
    app_and_fake,
) -> None:  # type: ignore[no-untyped-def]
    client, fake = app_and_fake
    await _sign_in(client, "t-ben")
    refused = await client.get("/receipts/r-aiko")
    assert refused.status_code == 403 and "Blue Bottle" not in refused.text
    assert ("get_receipt", "t-ben") in fake.calls  # called with Ben's own token
    missing = await client.get("/receipts/nope")
    assert missing.status_code == 404 and "Not found" in missing.text
    as_json = await client.get("/receipts/r-aiko/summary", headers={"accept": "application/json"})
    assert as_json.status_code == 403 and as_json.json()["error"] == "Forbidden"


async def test_the_owner_sees_amounts_per_currency(app_and_fake) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_and_fake
    await _sign_in(client, "t-aiko")
    page = await client.get("/receipts/r-aiko")
    assert page.status_code == 200 and "¥1,112" in page.text and "Blue Bottle" in page.text


async def test_pages_outside_the_role_are_refused_before_any_call(app_and_fake) -> None:  # type: ignore[no-untyped-def]
    client, fake = app_and_fake
    await _sign_in(client, "t-aiko")
    fake.calls.clear()
    for path in ("/statements", "/charts", "/payouts", "/approvals"):
        assert (await client.get(path)).status_code == 403
    assert fake.calls == []


async def test_live_feed_without_a_bus_tells_the_browser_to_stop(app_and_fake) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_and_fake
    await _sign_in(client, "t-aiko")
    assert (await client.get("/live/receipts")).status_code == 204


async def test_sign_in_rotates_the_session_and_sign_out_ends_it(app_and_fake) -> None:  # type: ignore[no-untyped-def]
    client, _ = app_and_fake
    csrf = await _sign_in(client, "t-aiko")
    first = client.cookies.get("seisan_session")
    await _sign_in(client, "t-ben")
    assert client.cookies.get("seisan_session") != first
    stale = _client(client._transport.app, cookies={"seisan_session": first or ""})  # type: ignore[attr-defined]
    assert (await stale.get("/receipts")).status_code == 303  # the old session is gone
    assert (
        await client.post("/signout", data={"csrf": csrf})
    ).status_code == 403  # aiko's token, ben's session
    healthz = await client.get("/healthz")
    assert healthz.text == "ok" and "no-store" not in healthz.headers.get("cache-control", "")
