"""`seisan claims` and `seisan payouts` against the real service on the embedded default.

The service runs as ``python -m seisan_payouts`` with no Stripe configured, so it
starts the local Stripe-compatible server itself (the demo path); receipts reach
it as intake's ``receipt.extracted`` events on JetStream. A claim is submitted,
approved by another user and paid through Stripe, then another through a Zengin
bank file, all from the command line.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from seisan.receipts.v1 import events_pb2, receipts_pb2
from seisan_payouts.entrypoints.cli import claims_app, payouts_app
from seisan_shared import events, subjects
from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import EventBus
from seisan_shared.bus.natsserver import NatsServer
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow


@dataclass
class Cli:
    address: str
    tokens: dict[str, str]
    nats_url: str
    runner: CliRunner

    def run(self, app: Any, who: str | None, *args: str, address: str | None = None) -> Any:
        env = {"SEISAN_PAYOUTS_ADDRESS": address or self.address}
        env["SEISAN_TOKEN"] = self.tokens.get(who or "", "") if who else ""
        return self.runner.invoke(app, list(args), env=env)

    def ok(self, app: Any, who: str, *args: str) -> Any:
        result = self.run(app, who, *args, "--json")
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def receipt(self, receipt_id: str, submitter: str, yen: int) -> None:
        fields = receipts_pb2.ReceiptFields()
        fields.total.amount.minor_units = yen
        fields.total.amount.currency = "JPY"
        fields.merchant.value = "JR東日本"
        today = datetime.now(UTC).date()
        fields.transaction_date.date.year = today.year
        fields.transaction_date.date.month = today.month
        fields.transaction_date.date.day = today.day
        payload = events_pb2.ReceiptExtracted(
            receipt_id=receipt_id,
            submitter=submitter,
            fields=fields,
            paid_with=receipts_pb2.PAID_WITH_PERSONAL,
        )

        async def publish() -> None:
            async with EventBus(self.nats_url, name="test") as bus:
                await bus.ensure_streams()
                await bus.publish(
                    events.new_event(
                        subjects.RECEIPT_EXTRACTED,
                        source="intake",
                        aggregate_id=receipt_id,
                        payload=payload,
                    )
                )

        asyncio.run(publish())

    def submit(self, who: str, receipt_id: str, within: float = 20.0) -> dict[str, Any]:
        """Submit once the service has heard of the receipt."""
        deadline = time.monotonic() + within
        while True:
            result = self.run(
                claims_app, who, "submit", receipt_id, "--category", "travel", "--json"
            )
            if result.exit_code == 0:
                return dict(json.loads(result.stdout))
            assert "not known to payouts yet" in result.output, result.output
            assert time.monotonic() < deadline, result.output
            time.sleep(0.2)

    def wait_payout(self, payout_id: str, status: str, within: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + within
        while True:
            payout = self.ok(payouts_app, "daichi", "show", payout_id)
            if payout["status"] == status:
                return dict(payout)
            assert time.monotonic() < deadline, payout
            time.sleep(0.3)


@pytest.fixture
def cli(tmp_path: Path) -> Iterator[Cli]:
    nats_server = NatsServer(tmp_path / "nats", name="payouts-cli")
    nats_server.start()
    token_file = tmp_path / "tokens.toml"
    tokens = {
        name: TokenStore.issue(token_file, name, roles)
        for name, roles in (
            ("aiko", ["staff"]),
            ("chika", ["staff", "approver"]),
            ("daichi", ["treasury"]),
        )
    }
    address = f"127.0.0.1:{free_port()}"
    service = ServiceProcess(
        "seisan_payouts",
        {
            "SEISAN_NATS_URL": nats_server.url,
            "SEISAN_PAYOUTS_TOKENS_FILE": str(token_file),
            "SEISAN_PAYOUTS_VAR_DIR": str(tmp_path / "var"),
            "SEISAN_PAYOUTS_GRPC_ADDRESS": address,
            "SEISAN_PAYOUTS_WEBHOOK_PORT": str(free_port()),
            "SEISAN_PAYOUTS_STRIPE_LOCAL_PORT": str(free_port()),
            "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.3",
        },
        tmp_path,
        "payouts",
    ).start()
    try:
        service.wait_serving(address)
        yield Cli(address, tokens, nats_server.url, CliRunner())
        assert service.terminate() == 0, service.log()[-3000:]
        assert (tmp_path / "var" / "stripe-local.json").exists()  # demo state kept across runs
    finally:
        service.kill()
        nats_server.stop()


def test_claim_approve_and_pay_from_the_command_line(cli: Cli, tmp_path: Path) -> None:
    # Stripe rail, on the embedded local server.
    cli.receipt("r-taxi", "aiko", 3_200)
    claim = cli.submit("aiko", "r-taxi")
    assert claim["status"] == "submitted"
    assert claim["total"] == {"amount_minor": 3200, "currency": "JPY", "formatted": "3,200 JPY"}
    refused = cli.run(claims_app, "aiko", "approve", claim["claim_id"])
    assert refused.exit_code == 4 and "PERMISSION_DENIED" in refused.output
    cli.ok(claims_app, "chika", "approve", claim["claim_id"], "--note", "ok")
    linked = cli.ok(payouts_app, "daichi", "link-account", "aiko", "--create-test-account")
    assert linked["stripe_account_id"].startswith("acct_")
    run = cli.ok(payouts_app, "daichi", "run", "--rail", "stripe")
    (payout,) = run["payouts"]
    paid = cli.wait_payout(payout["payout_id"], "paid")
    assert paid["stripe_payout_id"].startswith("po_") and paid["attempts"] == 1
    mine = cli.ok(claims_app, "aiko", "list")
    assert [c["status"] for c in mine] == ["paid"]
    human = cli.run(payouts_app, "aiko", "list")
    assert human.exit_code == 0 and payout["payout_id"] in human.stdout and "paid" in human.stdout

    # Bank-file rail: a Zengin file, then treasury's confirmation.
    cli.receipt("r-hotel", "aiko", 12_000)
    claim = cli.submit("aiko", "r-hotel")
    cli.ok(claims_app, "chika", "approve", claim["claim_id"])
    cli.ok(
        payouts_app,
        "daichi",
        "link-account",
        "aiko",
        "--name",
        "Aiko Sato",
        "--kana",
        "ｻﾄｳ ｱｲｺ",
        "--bank-code",
        "0001",
        "--branch-code",
        "001",
        "--account-number",
        "1234567",
    )
    run = cli.ok(payouts_app, "daichi", "run", "--rail", "bank-file", "--format", "zengin")
    out = tmp_path / "zengin.txt"
    cli.ok(payouts_app, "daichi", "bank-file", run["run_id"], "--out", str(out))
    assert len(out.read_bytes()) == 4 * 122  # header, one transfer, trailer, end
    done = cli.ok(payouts_app, "daichi", "confirm-paid", run["run_id"], "--bank-reference", "B1")
    assert [p["status"] for p in done] == ["paid"]


def test_exit_codes(cli: Cli) -> None:
    assert cli.run(claims_app, None, "list").exit_code == 4  # no token
    cli.tokens["nobody"] = "not-a-token"
    assert cli.run(claims_app, "nobody", "list").exit_code == 4
    assert cli.run(payouts_app, "daichi", "list", "--status", "weird").exit_code == 2
    gone = cli.run(claims_app, "aiko", "list", address=f"127.0.0.1:{free_port()}")
    assert gone.exit_code == 6 and "UNAVAILABLE" in gone.output
    missing = cli.run(claims_app, "aiko", "show", "clm-nope")
    assert missing.exit_code == 3 and "NOT_FOUND" in missing.output
