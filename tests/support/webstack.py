"""The whole stack as `seisan up` runs it (embedded NATS, every service, the web app).

Used by the gateway's HTTP tests and the browser tests: one supervisor
process, its state under a temporary folder, every port chosen free so tests
never collide with a running stack or with each other.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc
import httpx
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan_shared.cli.demo_stack import loopback_env
from seisan_shared.grpc.client import sync_channel

REPO = Path(__file__).resolve().parents[2]
SROIE = REPO.parent / "shared" / "data" / "sroie-dev"
# HOME MASTER HARDWARE & ELECTRICAL, 22/12/2017, RM 15.90 — OCR reads it reliably.
SROIE_SAMPLE = "X51005268262"

# A card directory: which principal holds which card (statement names → sign-in names).
CARDS_TOML = """
[[card]]
last4 = "4242"
principal = "aiko"
name = "Aiko Tanaka"

[[card]]
last4 = "1111"
principal = "ben"
name = "Ben Ito"
"""


@dataclass
class WebStack:
    url: str
    var: Path
    env: dict[str, str]
    grpc: dict[str, str]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def _serving(address: str) -> bool:
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=1
            )
        except grpc.RpcError:
            return False
    return reply.status == health_pb2.HealthCheckResponse.SERVING


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as reply:
            return bool(reply.status == 200)
    except OSError:
        return False


@contextmanager
def running_stack(root: Path, timeout: float = 90.0) -> Iterator[WebStack]:
    var = root / "var"
    var.mkdir(parents=True, exist_ok=True)
    (var / "cards.toml").write_text(CARDS_TOML)
    env, grpc_addresses = loopback_env(var, os.environ)
    env["SEISAN_INTAKE_OCR_THREADS"] = "1"
    env["SEISAN_METRICS_ADDRESS"] = "off"
    web = env["SEISAN_GATEWAY_HTTP_ADDRESS"]
    log_path = root / "stack.log"
    with log_path.open("ab") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seisan_shared.cli.main", "up", "--var", str(var)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    stack = WebStack(f"http://{web}", var, env, grpc_addresses, log_path)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"seisan up exited early:\n{stack.log()[-4000:]}")
            ready = _http_ok(stack.url + "/healthz") and all(
                _serving(a) for a in grpc_addresses.values()
            )
            if ready:
                break
            if time.monotonic() > deadline:
                raise AssertionError(f"stack not ready in {timeout}s:\n{stack.log()[-4000:]}")
            time.sleep(0.3)
        yield stack
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = CSRF.search(html)
    assert found, html[:2000]
    return found.group(1)


def web_client(stack: WebStack, **headers: str) -> httpx.Client:
    return httpx.Client(base_url=stack.url, headers=headers, timeout=30, follow_redirects=False)


def sign_in(stack: WebStack, token: str, **headers: str) -> tuple[httpx.Client, str]:
    """An HTTP client holding a session for ``token``, and the session's CSRF token."""
    client = web_client(stack, **headers)
    form = client.get("/signin")
    reply = client.post("/signin", data={"token": token, "csrf": csrf_of(form.text)})
    assert reply.status_code == 303, reply.text
    page = client.get(reply.headers["location"])
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)


def upload(client: httpx.Client, csrf: str, data: bytes, name: str, *, personal: bool) -> str:
    """Upload through the web app as the client's user; the new receipt's id."""
    reply = client.post(
        "/receipts",
        files={"file": (name, data, "image/jpeg")},
        data={"paid_with": "personal" if personal else "company_card"},
        headers={"x-csrf-token": csrf, "accept": "application/json"},
    )
    assert reply.status_code == 200, reply.text
    (receipt,) = reply.json()["receipts"]
    return str(receipt["receipt_id"])


def wait_status(client: httpx.Client, receipt_id: str, status: str, patience: float = 150) -> dict:
    """Poll the receipt's summary until it reaches ``status`` (bounded wait, not a timing test)."""
    deadline = time.monotonic() + patience
    while True:
        summary = client.get(f"/receipts/{receipt_id}/summary").json()
        if summary["status"] == status:
            return dict(summary)
        assert time.monotonic() < deadline, summary
        time.sleep(0.5)


def import_statement(web: WebStack, csv: str, filename: str) -> str:
    def parts() -> Iterator[cards_pb2.ImportStatementRequest]:
        yield cards_pb2.ImportStatementRequest(
            metadata=cards_pb2.ImportStatementMetadata(
                format=cards_pb2.STATEMENT_FORMAT_GENERIC_CSV, filename=filename
            )
        )
        yield cards_pb2.ImportStatementRequest(chunk=csv.encode())

    with sync_channel(web.grpc["cards"], "demo-daichi") as channel:
        reply = cards_pb2_grpc.CardReconciliationStub(channel).ImportStatement(parts())
    return reply.statement.statement_id


def submit_claim(
    client: httpx.Client, csrf: str, receipt_id: str, category: str, patience: float = 30
) -> str:
    """Claim one receipt through the web app; the claim's path.

    The payout service learns of a receipt and its correction from the bus, a moment
    after intake answered; until then it judges the receipt as it was (unknown, or in
    MYR: refused). So a refusal is retried until the events have arrived (bounded).
    """
    deadline = time.monotonic() + patience
    while True:
        reply = client.post(
            "/claims",
            data={"csrf": csrf, "receipt": receipt_id, f"category-{receipt_id}": category},
        )
        if reply.status_code == 303:
            return reply.headers["location"].split("?")[0]
        assert reply.status_code == 400, reply.text
        assert time.monotonic() < deadline, reply.text
        time.sleep(0.3)
