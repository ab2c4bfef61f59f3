"""The local Stripe server as a process: address on stdout, HTTP control, state file, SIGTERM."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import stripe

from seisan_shared.stripe_local import ControlError, FaultRule, LocalStripeProcess

SECRET = "whsec_process_test"
KEY = "sk_test_process"


class Inbox:
    """A stdlib webhook receiver in a thread; verifies with construct_event."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.lock = threading.Lock()
        inbox = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"])).decode()
                try:
                    event = stripe.Webhook.construct_event(
                        body, self.headers["Stripe-Signature"], SECRET
                    )
                except stripe.SignatureVerificationError:
                    self.send_response(400)
                    self.end_headers()
                    return
                with inbox.lock:
                    inbox.events.append(event)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.http.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http.server_address[1]}/webhook"

    def types(self) -> list[str]:
        with self.lock:
            return [e.type for e in self.events]


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    box = Inbox()
    box.thread.start()
    yield box
    box.http.shutdown()
    box.http.server_close()


def eventually(condition: Callable[[], bool], within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def start(tmp_path: Path, inbox: Inbox, *extra: str) -> LocalStripeProcess:
    args = [
        "--port",
        "0",
        "--webhook-url",
        inbox.url,
        "--webhook-secret",
        SECRET,
        "--fund",
        "usd:50000",
        "--payout-delay",
        "0.1",
        "--validate",
        *extra,
    ]
    return LocalStripeProcess(args, log_path=tmp_path / "stripe.log").start()


def test_process_serves_the_sdk_sends_webhooks_and_takes_control(
    tmp_path: Path, inbox: Inbox
) -> None:
    proc = start(tmp_path, inbox, "--fault", "rate_limit:path=/v1/payouts,times=1", "--seed", "3")
    try:
        assert proc.api_base.startswith("http://127.0.0.1:")
        client = stripe.StripeClient(KEY, base_addresses={"api": proc.api_base})
        acct = client.v1.accounts.create(
            {
                "type": "custom",
                "country": "US",
                "capabilities": {"transfers": {"requested": True}},
                "external_account": "btok_us_verified",
            }
        ).id
        client.v1.transfers.create({"amount": 5000, "currency": "usd", "destination": acct})
        with pytest.raises(stripe.RateLimitError):  # the fault given on the command line
            client.v1.payouts.create({"amount": 5000, "currency": "usd"}, {"stripe_account": acct})
        proc.control.set_faults([FaultRule("fail_after", path="/v1/payouts", times=1)])
        options: Any = {"stripe_account": acct, "idempotency_key": "po-1"}
        with pytest.raises(stripe.APIError):
            client.v1.payouts.create({"amount": 5000, "currency": "usd"}, options)
        payout: Any = client.v1.payouts.create({"amount": 5000, "currency": "usd"}, options)
        assert payout.last_response.headers["Idempotent-Replayed"] == "true"
        assert eventually(lambda: len(inbox.types()) >= 3)
        assert inbox.types() == ["transfer.created", "payout.created", "payout.paid"]
        stats = proc.control.stats()
        assert stats["faults_injected"] == {"rate_limit": 1, "fail_after": 1}
        assert stats["payouts_by_status"] == {"paid": 1}
        assert proc.control.balances()[acct] == {"usd": 0}
        bad = urllib.request.Request(
            f"{proc.api_base}/__control/faults",
            data=json.dumps({"rules": [{"action": "explode"}]}).encode(),
            method="POST",
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(bad, timeout=5)
        assert refused.value.code == 400
        with pytest.raises(ControlError):
            proc.control.fail_payout("po_unknown", "account_closed")
    finally:
        assert proc.stop() == 0, proc.log()
    assert "spec violation" not in proc.log()


def test_state_file_keeps_objects_balances_and_idempotency_keys_across_restarts(
    tmp_path: Path, inbox: Inbox
) -> None:
    state = tmp_path / "stripe-state.json"
    proc = start(tmp_path, inbox, "--state-file", str(state))
    try:
        client = stripe.StripeClient(KEY, base_addresses={"api": proc.api_base})
        acct = client.v1.accounts.create(
            {"type": "standard", "country": "US", "external_account": "btok_us"}
        ).id
        options: Any = {"idempotency_key": "tr-keep"}
        made = client.v1.transfers.create(
            {"amount": 700, "currency": "usd", "destination": acct}, options
        )
    finally:
        assert proc.stop() == 0, proc.log()
    assert state.exists()

    again = start(tmp_path, inbox, "--state-file", str(state))
    try:
        client = stripe.StripeClient(KEY, base_addresses={"api": again.api_base})
        assert client.v1.transfers.retrieve(made.id).amount == 700
        replay: Any = client.v1.transfers.create(
            {"amount": 700, "currency": "usd", "destination": acct}, options
        )
        assert replay.id == made.id
        assert replay.last_response.headers["Idempotent-Replayed"] == "true"
        assert again.control.balances()[acct] == {"usd": 700}
    finally:
        again.stop()
