"""The web app over HTTP against the real stack (`seisan up` on free ports): sessions, CSRF,
roles, languages, amounts, and a receipt going from upload to extracted fields without a reload."""

from __future__ import annotations

import json
import re
import signal
import time
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

import httpx
import pytest

from seisan_shared.bus.natsserver import NatsServer
from support.processes import ServiceProcess
from support.webstack import (
    SROIE,
    SROIE_SAMPLE,
    WebStack,
    csrf_of,
    running_stack,
    sign_in,
    submit_claim,
    upload,
    wait_status,
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


def test_sigterm_ends_live_feeds_and_drains(tmp_path: Path) -> None:
    """Port 0 picks a free port (logged); SIGTERM ends an open live feed and exits 0."""
    tokens = tmp_path / "tokens.toml"
    tokens.write_text(resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text())
    with NatsServer(tmp_path / "nats") as nats:
        gateway = ServiceProcess(
            "seisan_gateway",
            {
                "SEISAN_NATS_URL": nats.url,
                "SEISAN_TOKENS_FILE": str(tokens),
                "SEISAN_VAR_DIR": str(tmp_path),
                "SEISAN_GATEWAY_HTTP_ADDRESS": "127.0.0.1:0",
            },
            tmp_path,
            "gateway",
        ).start()
        try:
            deadline = time.monotonic() + 30
            while not (found := re.search(r"web app on (http://\S+)/", gateway.log())):
                assert time.monotonic() < deadline, gateway.log()
                time.sleep(0.1)
            stack = WebStack(found.group(1), tmp_path, {}, {}, gateway.log_path)
            c = web_client(stack)  # no services behind it: sign in and stream only
            nonce = csrf_of(c.get("/signin").text)
            assert c.post("/signin", data={"token": "demo-aiko", "csrf": nonce}).status_code == 303
            with c.stream("GET", "/live/receipts", timeout=httpx.Timeout(30)) as live:
                lines = live.iter_lines()
                assert next(lines).startswith("retry:")
                assert gateway.proc is not None
                gateway.proc.send_signal(signal.SIGTERM)
                rest = list(lines)  # the stream ends instead of hanging the shutdown
            assert all(not line.startswith("event:") for line in rest)
            assert gateway.wait_exit(30) == 0, gateway.log()[-2000:]
            assert "gateway: stopped" in gateway.log()
        finally:
            gateway.kill()


def test_staff_declares_a_missing_receipt_for_a_card_charge(web: WebStack) -> None:
    daichi, daichi_csrf = sign_in(web, "demo-daichi")
    csv = (
        "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
        "currency,original_amount,original_currency\n"
        "tx-taxi-9,4242,Aiko Tanaka,2026-11-03,2026-11-04,NIHON KOTSU TAXI,4121,2480,JPY,,\n"
    )
    imported = daichi.post(
        "/statements",
        files={"file": ("taxi.csv", csv.encode(), "text/csv")},
        headers={"x-csrf-token": daichi_csrf},
    )
    assert imported.status_code == 303, imported.text
    statement_path = imported.headers["location"].split("?")[0]
    statement_id = statement_path.rsplit("/", 1)[1]
    assert "taxi.csv" in daichi.get("/statements").text
    asked = daichi.post(f"{statement_path}/request-missing", data={"csrf": daichi_csrf})
    assert asked.status_code == 303 and asked.headers["location"].endswith("msg=requested")
    aiko, csrf = sign_in(web, "demo-aiko")
    listed = aiko.get("/charges")
    assert "NIHON KOTSU TAXI" in listed.text and "¥2,480" in listed.text
    charge_id = re.search(r'action="/charges/([^/"]+)/declare"', listed.text)
    assert charge_id, listed.text
    ben, _ = sign_in(web, "demo-ben")
    assert "NIHON KOTSU TAXI" not in ben.get("/charges").text  # only the cardholder's own
    unsigned = aiko.post(
        f"/charges/{charge_id.group(1)}/declare",
        data={"csrf": csrf, "description": "taxi", "purpose": "client visit"},
    )
    assert unsigned.status_code == 400  # the attestation box was not ticked
    declared = aiko.post(
        f"/charges/{charge_id.group(1)}/declare",
        data={"csrf": csrf, "description": "taxi", "purpose": "client visit", "attest": "yes"},
    )
    assert declared.status_code == 303 and declared.headers["location"] == "/charges?msg=declared"
    assert "NIHON KOTSU TAXI" not in aiko.get("/charges").text
    statement = daichi.get(f"/statements/{statement_id}")
    assert statement.status_code == 200 and "Declared 1" in statement.text


def test_a_claim_goes_from_submitted_to_paid(web: WebStack) -> None:
    if not SROIE.exists():
        pytest.skip(f"shared data not found at {SROIE}")
    aiko, csrf = sign_in(web, "demo-aiko")
    image = (SROIE / "images" / "X00016469612.jpg").read_bytes()
    receipt_id = upload(aiko, csrf, image, "books.jpg", personal=True)
    wait_status(aiko, receipt_id, "extracted")
    aiko.post(
        f"/receipts/{receipt_id}/correct",
        data={"csrf": csrf, "total": "900", "currency": "JPY", "reason": "paid in yen"},
    )
    claims_page = aiko.get("/claims").text
    assert f'value="{receipt_id}"' in claims_page  # offered for a claim
    claim_path = submit_claim(aiko, csrf, receipt_id, "supplies")
    claim_id = claim_path.rsplit("/", 1)[1]
    assert "submitted" in aiko.get(claim_path).text

    chika, chika_csrf = sign_in(web, "demo-chika")
    assert claim_id[:8] in chika.get("/approvals").text
    approved = chika.post(f"/approvals/{claim_id}/approve", data={"csrf": chika_csrf})
    assert approved.status_code == 303, approved.text

    daichi, daichi_csrf = sign_in(web, "demo-daichi")
    ran = daichi.post("/payouts/run", data={"csrf": daichi_csrf, "request_id": "run-unlinked"})
    # No payout account yet: the service refuses and says why, on the page.
    assert ran.status_code == 400 and "nothing to pay" in ran.text and "aiko" in ran.text
    linked = daichi.post("/payouts/link", data={"csrf": daichi_csrf, "employee": "aiko"})
    assert linked.status_code == 303, linked.text
    request_id = re.search(r'name="request_id" value="([^"]+)"', daichi.get("/payouts").text)
    assert request_id
    ran = daichi.post("/payouts/run", data={"csrf": daichi_csrf, "request_id": request_id.group(1)})
    assert ran.status_code == 200, ran.text
    deadline = time.monotonic() + 60
    while "paid" not in (page := aiko.get(claim_path).text).split('id="claim-status">')[1][:20]:
        assert time.monotonic() < deadline, page
        time.sleep(0.5)
    payouts = daichi.get("/payouts").text
    assert "aiko" in payouts and "¥900" in payouts and "paid" in payouts
