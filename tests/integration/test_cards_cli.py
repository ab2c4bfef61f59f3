"""The cards service as a process (`python -m seisan_cards`), driven from the CLI as a newcomer
would: receipts arrive on the bus, `seisan statements import`, `seisan reconcile report`,
`suggestions`, `confirm`, `reject`, `journal`; the webhook port answers; SIGTERM drains.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import date
from importlib import resources
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from seisan_cards.entrypoints.cli import reconcile_app, statements_app
from seisan_shared import subjects
from seisan_shared.bus import EventBus
from seisan_shared.bus.natsserver import NatsServer
from support.cards import CardsHarness, csv_statement
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow

STATEMENT = csv_statement(
    "tx-1,4242,aiko,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
    "tx-2,4242,aiko,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,",
    "tx-3,1111,ben,2026-11-12,2026-11-12,DOUTOR 0012,5814,350,JPY,,",
    "tx-4,1111,ben,2026-11-09,2026-11-09,JR EAST,4111,2500,JPY,,",
)


@pytest.fixture
def service(
    tmp_path: Path, nats_server: NatsServer
) -> Iterator[tuple[ServiceProcess, dict[str, str]]]:
    var = tmp_path / "var"
    var.mkdir()
    tokens = var / "tokens.toml"
    tokens.write_text(resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text())
    address = f"127.0.0.1:{free_port()}"
    webhook_port = free_port()
    env = {
        "SEISAN_NATS_URL": nats_server.url,
        "SEISAN_VAR_DIR": str(var),
        "SEISAN_TOKENS_FILE": str(tokens),
        "SEISAN_CARDS_GRPC_ADDRESS": address,
        "SEISAN_CARDS_WEBHOOK_PORT": str(webhook_port),
        "SEISAN_CARDS_STRIPE_WEBHOOK_SECRET": "whsec_cli_test",
        "SEISAN_CARDS_ADDRESS": address,
    }
    proc = ServiceProcess("seisan_cards", env, tmp_path, "cards").start()
    try:
        proc.wait_serving(address)
        yield proc, env
    finally:
        proc.terminate()


def run(app: object, env: dict[str, str], token: str, *args: str) -> Result:
    return CliRunner().invoke(app, [*args, "--token", token], env=env)  # type: ignore[arg-type]


async def _publish_receipts(url: str) -> None:
    helper = CardsHarness("", None, None)  # type: ignore[arg-type]
    async with EventBus(url, name="test") as bus:
        await bus.ensure_streams()
        for rid, who, merchant, day, total in (
            ("r1", "aiko", "Blue Bottle Coffee", date(2026, 11, 2), 1112),
            ("r2", "ben", "Starbucks", date(2026, 11, 10), 480),
            ("r3", "aiko", "Doutor", date(2026, 11, 12), 350),
        ):
            await bus.publish(
                await helper.receipt_event(
                    subjects.RECEIPT_EXTRACTED, rid, who, merchant=merchant, day=day, total=total
                )
            )


def _until(check: Callable[[], bool], within: float = 20.0) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError("condition not met in time")


def test_a_newcomer_imports_reports_and_decides_from_the_cli(service, tmp_path: Path):
    proc, env = service
    asyncio.run(_publish_receipts(env["SEISAN_NATS_URL"]))
    statement = tmp_path / "nov.csv"
    statement.write_bytes(STATEMENT)

    refused = run(statements_app, env, "demo-aiko", "import", str(statement))
    assert refused.exit_code == 4 and "PERMISSION_DENIED" in refused.output

    imported = run(statements_app, env, "demo-daichi", "import", str(statement), "--json")
    assert imported.exit_code == 0, imported.output
    reply = json.loads(imported.output)
    assert reply["imported_count"] == 4
    again = run(statements_app, env, "demo-daichi", "import", str(statement))
    assert again.exit_code == 0 and "already imported" in again.output

    report = run(reconcile_app, env, "demo-daichi", "report", "--json")
    assert report.exit_code == 0, report.output
    (entry,) = json.loads(report.output)["statements"]
    assert entry["close_check"]["balanced"] is True
    total = entry["close_check"]["statement_total"]
    assert total["amount_minor"] == 1112 + 480 + 350 + 2500 and total["currency"] == "JPY"
    assert total["formatted"] == "4,442 JPY"

    def suggested() -> list[dict]:
        out = run(reconcile_app, env, "demo-daichi", "suggestions", "--json")
        assert out.exit_code == 0, out.output
        return [item["match"] for item in json.loads(out.output)]

    # Receipts the consumer stored before the import are matched at import, later ones
    # incrementally. Either way, a receipt from someone other than the cardholder is only
    # suggested: ben's Starbucks for aiko's charge, aiko's Doutor for ben's.
    _until(lambda: len(suggested()) == 2)
    first, second = suggested()
    assert {tuple(first["charge_ids"]), tuple(second["charge_ids"])} == {("tx-2",), ("tx-3",)}
    human = run(reconcile_app, env, "demo-daichi", "suggestions")
    assert first["match_id"] in human.output and "·" in human.output

    staff = run(reconcile_app, env, "demo-aiko", "confirm", first["match_id"])
    assert staff.exit_code == 4 and "PERMISSION_DENIED" in staff.output
    confirmed = run(reconcile_app, env, "demo-daichi", "confirm", first["match_id"])
    assert confirmed.exit_code == 0 and "confirmed" in confirmed.output
    again = run(reconcile_app, env, "demo-daichi", "reject", first["match_id"], "--reason", "x")
    assert again.exit_code == 7 and "FAILED_PRECONDITION" in again.output

    missing = run(reconcile_app, env, "demo-ben", "charges", "--status", "unmatched", "--json")
    assert missing.exit_code == 0
    assert [c["charge_id"] for c in json.loads(missing.output)["charges"]] == ["tx-4"]
    declared = run(
        reconcile_app, env, "demo-ben", "declare", "tx-4", "--reason", "client visit", "--yes"
    )
    assert declared.exit_code == 0, declared.output
    assert "declared tx-4" in declared.output

    journal_a = run(
        reconcile_app, env, "demo-daichi", "journal", "--from", "2026-11-01", "--to", "2026-11-30"
    )
    journal_b = run(
        reconcile_app, env, "demo-daichi", "journal", "--from", "2026-11-01", "--to", "2026-11-30"
    )
    assert journal_a.exit_code == 0 and journal_a.output == journal_b.output
    assert journal_a.output.startswith("entry_id,")

    # The webhook endpoint is up on its own port and refuses an unsigned body.
    request = urllib.request.Request(
        f"http://127.0.0.1:{env['SEISAN_CARDS_WEBHOOK_PORT']}/webhooks/stripe-issuing",
        data=b"{}",
        method="POST",
    )
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 400

    bad = run(reconcile_app, env, "demo-daichi", "report", "--from", "yesterday")
    assert bad.exit_code == 2
    assert proc.terminate() == 0, proc.log()[-2000:]
    unreachable = run(reconcile_app, env, "demo-daichi", "report")
    assert unreachable.exit_code == 6


def test_offline_reconcile_files(tmp_path: Path):
    charges = tmp_path / "charges.csv"
    charges.write_bytes(STATEMENT)
    receipts = tmp_path / "receipts.jsonl"
    receipts.write_text(
        json.dumps(
            {
                "receipt_id": "r1",
                "submitter": "aiko",
                "merchant": "Blue Bottle Coffee",
                "date": "2026-11-02",
                "total": "1112",
                "currency": "JPY",
            }
        )
        + "\n"
    )
    out = tmp_path / "matches.csv"
    result = CliRunner().invoke(
        reconcile_app,
        ["files", "--charges", str(charges), "--receipts", str(receipts), "--out", str(out)],
    )
    assert result.exit_code == 0, result.output
    rows = out.read_text().splitlines()
    assert rows[0] == "charge_id,receipt_id,score,status"
    assert rows[1].startswith("tx-1,r1,") and rows[1].endswith(",auto")
    # The spelling, without the subcommand, does the same.
    out.unlink()
    same = CliRunner().invoke(
        reconcile_app,
        ["--charges", str(charges), "--receipts", str(receipts), "--out", str(out)],
    )
    assert same.exit_code == 0, same.output
    assert out.read_text().splitlines() == rows
    receipts.write_text('{"receipt_id": "r1"}\n')
    bad = CliRunner().invoke(
        reconcile_app,
        ["files", "--charges", str(charges), "--receipts", str(receipts), "--out", str(out)],
    )
    assert bad.exit_code == 5 and "line 1" in bad.output
