"""The `seisan` command, run as a person runs it, against the whole stack.

Each call is a subprocess (`python -m seisan_shared.cli.main …`) that finds the
stack through var/stack.json, as after `seisan up`. What is checked: the --json
shapes (money, dates, enums), a folder upload, and the exit codes for not found,
not allowed, invalid input, conflict and a service that is down.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import RunningStack

from support.images import receipt_jpeg

pytestmark = pytest.mark.slow

MONEY_KEYS = {"amount_minor", "currency", "formatted"}


def seisan(
    running: RunningStack, *args: str, token: str | None = None, **env: str
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, **running.stack.env, **env}
    full.pop("SEISAN_TOKEN", None)
    if token:
        full["SEISAN_TOKEN"] = token
    return subprocess.run(
        [sys.executable, "-m", "seisan_shared.cli.main", *args],
        env=full,
        capture_output=True,
        text=True,
        timeout=180,
    )


def ok_json(running: RunningStack, *args: str, token: str | None = None) -> Any:
    result = seisan(running, *args, "--json", token=token)
    assert result.returncode == 0, (result.stdout, result.stderr, running.logs())
    return json.loads(result.stdout)


def test_folder_upload_and_json_shapes(running_stack: RunningStack, tmp_path: Path) -> None:
    folder = tmp_path / "receipts"
    (folder / "november").mkdir(parents=True)
    for seed in (1, 2):
        (folder / f"r{seed}.jpg").write_bytes(receipt_jpeg(seed))
    (folder / "november" / "r3.png").write_bytes(receipt_jpeg(3, fmt="PNG"))
    (folder / "notes.txt").write_text("not a receipt")

    uploaded = seisan(running_stack, "receipts", "upload", str(folder), "--json",
                      "--company-card", "--wait", "90", token="demo-aiko")  # fmt: skip
    assert uploaded.returncode == 0, uploaded.stderr
    rows = json.loads(uploaded.stdout)
    assert sorted(Path(r["file"]).name for r in rows) == ["r1.jpg", "r2.jpg", "r3.png"]
    assert all(r["receipt_id"] and r["error"] is None and r["duplicate"] is False for r in rows)
    # --wait: each row carries the receipt as OCR left it.
    assert all(r["receipt"]["receipt_id"] == r["receipt_id"] for r in rows)
    assert all(r["receipt"]["status"] in ("extracted", "needs_review") for r in rows)
    assert "━" not in uploaded.stderr  # no progress bar off a terminal

    # A folder with one file the service refuses: that one is listed, the rest go in, exit 1.
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "good.jpg").write_bytes(receipt_jpeg(4))
    (mixed / "broken.jpg").write_bytes(b"this is not a JPEG")
    partly = seisan(running_stack, "receipts", "upload", str(mixed), "--json", token="demo-aiko")
    assert partly.returncode == 1
    by_name = {Path(r["file"]).name: r for r in json.loads(partly.stdout)}
    assert by_name["broken.jpg"]["error"]["code"] == "INVALID_ARGUMENT"
    assert by_name["good.jpg"]["receipt_id"]

    listed = ok_json(running_stack, "receipts", "list", token="demo-aiko")
    assert {r["receipt_id"] for r in listed} >= {r["receipt_id"] for r in rows}
    statuses = {"processing", "extracted", "needs_review", "matched", "claimed"}
    assert all(r["status"] in statuses and r["submitter"] == "aiko" for r in listed)
    shown = ok_json(running_stack, "receipts", "show", rows[0]["receipt_id"], "--wait", "60",
                    token="demo-aiko")  # fmt: skip
    assert shown["receipt_id"] == rows[0]["receipt_id"] and shown["status"] in statuses
    assert shown["paid_with"] == "company_card"

    # Statement import as treasury: money in the one shape, dates ISO.
    day = date.today() - timedelta(days=2)
    csv = tmp_path / "statement.csv"
    csv.write_text(
        "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
        "currency,original_amount,original_currency\n"
        f"e2e-1,4242,aiko,{day},{day},KINOKUNIYA,5942,12345,JPY,,\n"
    )
    imported = ok_json(running_stack, "statements", "import", str(csv), token="demo-daichi")
    assert imported["imported_count"] == 1
    assert imported["statement"]["total"] == {
        "amount_minor": 12345,
        "currency": "JPY",
        "formatted": "12,345 JPY",
    }
    missing = ok_json(running_stack, "reconcile", "missing", token="demo-aiko")
    (charge,) = [c for c in missing["charges"] if c["charge_id"] == "e2e-1"]
    assert set(charge["amount"]) == MONEY_KEYS and charge["transaction_date"] == str(day)
    assert charge["status"] == "unmatched" and charge["original_amount"] is None
    listed = ok_json(running_stack, "statements", "list", token="demo-daichi")
    (entry,) = [
        e for e in listed if e["statement"]["statement_id"] == imported["statement"]["statement_id"]
    ]
    assert entry["statement"]["filename"] == csv.name and entry["statement"]["charge_count"] == 1
    assert entry["close_check"]["balanced"] in (True, False)
    assert set(entry["close_check"]["statement_total"]) == MONEY_KEYS
    table = seisan(running_stack, "statements", "list", token="demo-daichi")
    assert table.returncode == 0 and imported["statement"]["statement_id"] in table.stdout
    report = ok_json(running_stack, "reconcile", "report", token="demo-daichi")
    assert set(report["statements"][0]["close_check"]["statement_total"]) == MONEY_KEYS

    # Declaring the charge twice: the second is a conflict.
    declared = seisan(running_stack, "reconcile", "declare", "e2e-1", "--reason", "books",
                      "--yes", token="demo-aiko")  # fmt: skip
    assert declared.returncode == 0, declared.stderr
    again = seisan(running_stack, "reconcile", "declare", "e2e-1", "--reason", "books",
                   "--yes", token="demo-aiko")  # fmt: skip
    assert again.returncode == 7 and "FAILED_PRECONDITION" in again.stderr


def test_exit_codes(running_stack: RunningStack, tmp_path: Path) -> None:
    def code(*args: str, token: str | None = "demo-aiko", **env: str) -> tuple[int, str]:
        result = seisan(running_stack, *args, token=token, **env)
        return result.returncode, result.stderr

    assert code("receipts", "show", "no-such-receipt")[0] == 3
    assert code("claims", "show", "clm-nope")[0] == 3
    assert code("payouts", "show", "pay-nope", token="demo-daichi")[0] == 3

    statement = tmp_path / "bad.csv"
    statement.write_text(
        "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
        "currency,original_amount,original_currency\n"
        "x-1,4242,aiko,2026-11-02,,SHOP,5999,12.3.4,JPY,,\n"
    )
    denied, err = code("statements", "import", str(statement))  # staff may not
    assert denied == 4 and "PERMISSION_DENIED" in err
    assert code("statements", "list")[0] == 4  # nor list them
    assert code("receipts", "list", token="not-a-token")[0] == 4
    assert code("receipts", "list", token=None)[0] == 4
    invalid, err = code("statements", "import", str(statement), token="demo-daichi")
    assert invalid == 5 and "line 2" in err
    assert code("claims", "list", "--status", "weird")[0] == 2  # usage
    assert code("receipts", "upload", str(tmp_path / "nowhere"))[0] == 2

    running_stack.processes["payouts"].terminate()
    down, err = code("claims", "list")
    assert down == 6 and "UNAVAILABLE" in err
    health = seisan(running_stack, "health", "--json")
    assert health.returncode == 6
    assert json.loads(health.stdout)["intake"] == "SERVING"
