"""The web app over HTTP against the real stack (`seisan up` on free ports): sessions, CSRF,
roles, languages, amounts, and a receipt going from upload to extracted fields without a reload."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support.webstack import (
    SROIE,
    SROIE_SAMPLE,
    WebStack,
    csrf_of,
    running_stack,
    sign_in,
    web_client,
)

pytestmark = pytest.mark.slow

@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebStack]:
    with running_stack(tmp_path_factory.mktemp("web")) as stack:
        yield stack


def client(web: WebStack, **headers: str) -> httpx.Client:
    return web_client(web, **headers)


def set_cookie_header(reply: httpx.Response, name: str) -> str:
    for value in reply.headers.get_list("set-cookie"):
        if value.startswith(name + "="):
            return value
    raise AssertionError(f"no {name} cookie in {reply.headers.get_list('set-cookie')}")


def test_sign_in_gives_an_httponly_samesite_session_cookie_not_the_token(web: WebStack) -> None:
    c = client(web)
    form = c.get("/signin")
    assert form.status_code == 200
    reply = c.post("/signin", data={"token": "demo-aiko", "csrf": csrf_of(form.text)})
    assert reply.status_code == 303 and reply.headers["location"] == "/receipts"
    cookie = set_cookie_header(reply, "seisan_session")
    flags = {part.strip().lower() for part in cookie.split(";")}
    assert "httponly" in flags and "samesite=lax" in flags and "path=/" in flags
    assert "demo-aiko" not in cookie
    page = c.get("/receipts")
    assert page.status_code == 200 and "aiko" in page.text and "demo-aiko" not in page.text
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]


def test_unknown_token_and_missing_csrf_are_refused(web: WebStack) -> None:
    c = client(web)
    form = c.get("/signin")
    wrong = c.post("/signin", data={"token": "not-a-token", "csrf": csrf_of(form.text)})
    assert wrong.status_code == 401 and "seisan_session" not in wrong.headers.get("set-cookie", "")
    no_csrf = client(web).post("/signin", data={"token": "demo-aiko"})
    assert no_csrf.status_code == 403


def test_posts_without_the_session_csrf_token_are_refused(web: WebStack) -> None:
    c, csrf = sign_in(web, "demo-aiko")
    for data in ({}, {"csrf": "forged"}):
        reply = c.post("/receipts/anything/correct", data={**data, "merchant": "X", "reason": "r"})
        assert reply.status_code == 403, reply.text
    signout = c.post("/signout", data={})
    assert signout.status_code == 403  # not even signing out without the token
    assert c.get("/receipts").status_code == 200
    assert c.post("/signout", data={"csrf": csrf}).status_code == 303
    assert c.get("/receipts").status_code == 303  # the session is gone


def test_each_role_sees_only_its_pages(web: WebStack) -> None:
    anonymous = client(web)
    bounced = anonymous.get("/receipts")
    assert bounced.status_code == 303 and bounced.headers["location"].startswith("/signin")
    aiko, _ = sign_in(web, "demo-aiko")
    for path in ("/statements", "/payouts", "/charts", "/approvals", "/statements/x"):
        reply = aiko.get(path)
        assert reply.status_code == 403, (path, reply.status_code)
        assert "Forbidden" in reply.text
    daichi, _ = sign_in(web, "demo-daichi")
    assert daichi.get("/statements").status_code == 200
    assert daichi.get("/approvals").status_code == 403
    assert daichi.get("/receipts").status_code == 403
    chika, _ = sign_in(web, "demo-chika")
    assert chika.get("/approvals").status_code == 200
    assert chika.get("/receipts").status_code == 200
    assert chika.get("/statements").status_code == 403
    emi, _ = sign_in(web, "demo-emi")
    assert all(emi.get(p).status_code == 200 for p in ("/statements", "/approvals", "/receipts"))


def test_japanese_by_accept_language_and_by_the_switch(web: WebStack) -> None:
    c, _ = sign_in(web, "demo-aiko", **{"accept-language": "ja,en;q=0.5"})
    page = c.get("/receipts")
    assert 'lang="ja"' in page.text and "領収書を撮影" in page.text and "サインアウト" in page.text
    switched = c.get("/lang/en", params={"next": "/receipts"})
    assert switched.status_code == 303 and switched.headers["location"] == "/receipts"
    assert "httponly" in set_cookie_header(switched, "seisan_lang").lower()
    page = c.get("/receipts")
    assert 'lang="en"' in page.text and "Capture a receipt" in page.text
    assert c.get("/lang/en", params={"next": "//evil.example/"}).headers["location"] == "/"


def _upload(c: httpx.Client, csrf: str, data: bytes, name: str) -> dict[str, object]:
    reply = c.post(
        "/receipts",
        files={"file": (name, data, "image/jpeg")},
        data={"paid_with": "personal"},
        headers={"x-csrf-token": csrf, "accept": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    (receipt,) = reply.json()["receipts"]
    return dict(receipt)


def _wait_event(stream: httpx.Response, receipt_id: str, kind: str, patience: float) -> None:
    """Read the event stream until ``kind`` arrives for ``receipt_id`` (bounded, not timed)."""
    deadline = time.monotonic() + patience
    event = ""
    for line in stream.iter_lines():
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "receipt":
            change = json.loads(line.split(":", 1)[1])
            if change["receipt_id"] == receipt_id and change["event"] == kind:
                return
        if time.monotonic() > deadline:
            break
    raise AssertionError(f"no {kind} for {receipt_id} on the live feed")


def test_upload_then_extracted_fields_arrive_live_and_stay_private(web: WebStack) -> None:
    if not SROIE.exists():
        pytest.skip(f"shared data not found at {SROIE}")
    image = (SROIE / "images" / f"{SROIE_SAMPLE}.jpg").read_bytes()
    aiko, csrf = sign_in(web, "demo-aiko")
    with aiko.stream("GET", "/live/receipts", timeout=httpx.Timeout(30, read=150)) as live:
        assert live.status_code == 200
        assert live.headers["content-type"].startswith("text/event-stream")
        receipt = _upload(aiko, csrf, image, "hardware.jpg")
        assert receipt["status"] == "processing"
        _wait_event(live, str(receipt["receipt_id"]), "receipt.extracted", patience=150)
    rid = receipt["receipt_id"]
    summary = aiko.get(f"/receipts/{rid}/summary").json()
    assert summary["status"] == "extracted"
    assert summary["total"] == "RM 15.90" and summary["date"] == "2017-12-22"
    assert summary["merchant"].upper().startswith("HOME MASTER")
    page = aiko.get(f"/receipts/{rid}")
    assert "RM 15.90" in page.text and "HOME MASTER" in page.text.upper()
    assert aiko.get(f"/receipts/{rid}/image").headers["content-type"] == "image/jpeg"

    # Another member of staff gets a refusal page, never the receipt.
    ben, _ = sign_in(web, "demo-ben")
    for path in (f"/receipts/{rid}", f"/receipts/{rid}/image", f"/receipts/{rid}/summary"):
        reply = ben.get(path)
        assert reply.status_code in (403, 404), (path, reply.status_code)
        assert "HOME MASTER" not in reply.text.upper() and "15.90" not in reply.text
    assert rid not in ben.get("/receipts").text

    # Correct a field: the amount is parsed per currency rules and shown back the same way.
    corrected = aiko.post(
        f"/receipts/{rid}/correct",
        data={"csrf": csrf, "total": "1,112", "currency": "JPY", "reason": "test"},
    )
    assert corrected.status_code == 303
    assert "¥1,112" in aiko.get(f"/receipts/{rid}").text


def test_healthz(web: WebStack) -> None:
    assert client(web).get("/healthz").text == "ok"


def test_the_stack_prints_the_url_to_open(web: WebStack) -> None:
    deadline = time.monotonic() + 30
    while "sign in with a demo token" not in web.log() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert f"{web.url}/" in web.log() and "sign in with a demo token" in web.log()


def test_the_gateway_never_imports_a_service() -> None:
    package = Path(__file__).resolve().parents[2] / "services" / "gateway" / "seisan_gateway"
    for source in package.rglob("*.py"):
        text = source.read_text()
        for service in ("seisan_intake", "seisan_cards", "seisan_payouts", "seisan_audit"):
            assert f"import {service}" not in text and f"from {service}" not in text, source
