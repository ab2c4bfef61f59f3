"""`seisan demo`, end to end: it starts its own stack, plays the story, exits 0."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import RunningStack

pytestmark = pytest.mark.slow


def _demo(env: dict[str, str]) -> dict:  # type: ignore[type-arg]
    result = subprocess.run(
        [sys.executable, "-m", "seisan_shared.cli.main", "demo", "--json", "--seed", "7"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, (result.stdout[-4000:], result.stderr[-4000:])
    summary: dict = json.loads(result.stdout)  # type: ignore[type-arg]
    return summary


def _assert_story(summary: dict) -> None:  # type: ignore[type-arg]
    assert summary["ok"] is True and "error" not in summary
    assert len(summary["steps"]) == 9 and all(s["ok"] for s in summary["steps"])
    receipts = summary["receipts"]
    assert len(receipts) == 4
    assert all(r["status"] in ("extracted", "matched", "claimed") for r in receipts)
    assert all(r["total"]["currency"] == "JPY" for r in receipts)
    matches = summary["matches"]
    assert len(matches["auto_confirmed"]) == 2
    assert all(m["automatic"] and m["score"] >= 0.85 for m in matches["auto_confirmed"])
    (suggested,) = matches["suggested"]
    assert suggested["reasons"] and 0.55 <= suggested["score"] < 1
    assert matches["confirmed_by_treasury"]["match_id"] == suggested["match_id"]
    assert matches["confirmed_by_treasury"]["status"] == "confirmed"
    assert len(summary["unmatched_charges"]) == 1
    assert summary["receipts_requested"][0]["cardholder"] == "aiko"
    personal = next(r for r in receipts if r["key"] == "personal")
    assert summary["claim"]["status"] == "paid"
    assert summary["claim"]["total"] == personal["total"]
    assert summary["claim"]["approved_by"] == "chika"
    payout = summary["payout"]
    assert payout["status"] == "paid" and payout["amount"] == personal["total"]
    assert payout["stripe_payout_id"].startswith("po_")
    assert summary["audit"]["ok"] is True and summary["audit"]["records"] > 0


def test_demo_starts_its_own_stack_and_tells_the_whole_story(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEISAN_")}
    env["SEISAN_VAR_DIR"] = str(tmp_path / "no-stack-here")
    summary = _demo(env)
    _assert_story(summary)
    assert summary["stack"]["started"] is True
    assert not Path(summary["stack"]["var"]).exists()  # its temporary folder is gone


def test_demo_uses_the_running_stack(running_stack: RunningStack) -> None:
    summary = _demo({**os.environ, **running_stack.stack.env})
    _assert_story(summary)
    assert summary["stack"] == {"started": False, "var": str(running_stack.stack.var)}
