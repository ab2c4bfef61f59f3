"""tools/check_proto_compat.py: protos stay wire-compatible with protos/compat/baseline.binpb."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TOOL = ROOT / "tools" / "check_proto_compat.py"
BASELINE = ROOT / "protos" / "compat" / "baseline.binpb"
ENVELOPE = Path("protos/seisan/events/v1/envelope.proto")
RECEIPT_EVENTS = Path("protos/seisan/receipts/v1/events.proto")
PAYOUT_EVENTS = Path("protos/seisan/payouts/v1/events.proto")


def run_check(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(TOOL), "--root", str(root), "--against", str(BASELINE)],
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A throwaway copy of buf.yaml and protos/ to break on purpose."""
    shutil.copy(ROOT / "buf.yaml", tmp_path / "buf.yaml")
    shutil.copytree(ROOT / "protos", tmp_path / "protos")
    return tmp_path


def edit(root: Path, relative: Path, old: str, new: str) -> None:
    path = root / relative
    text = path.read_text(encoding="utf-8")
    assert text.count(old) == 1, f"{old!r} not found once in {relative}"
    path.write_text(text.replace(old, new), encoding="utf-8")


def test_baseline_is_committed() -> None:
    assert BASELINE.is_file() and BASELINE.stat().st_size > 0


def test_current_protos_are_compatible() -> None:
    result = run_check(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_unchanged_copy_is_compatible(workspace: Path) -> None:
    result = run_check(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_an_envelope_field_fails(workspace: Path) -> None:
    edit(workspace, ENVELOPE, "  string aggregate_id = 5;\n", "")
    result = run_check(workspace)
    assert result.returncode == 1
    assert "aggregate_id" in result.stdout + result.stderr


def test_removing_an_event_payload_field_fails(workspace: Path) -> None:
    edit(workspace, RECEIPT_EVENTS, "  string sha256 = 5;\n", "")
    result = run_check(workspace)
    assert result.returncode == 1
    assert "sha256" in result.stdout + result.stderr


def test_renumbering_a_field_fails(workspace: Path) -> None:
    edit(workspace, PAYOUT_EVENTS, "string failure_reason = 7;", "string failure_reason = 17;")
    result = run_check(workspace)
    assert result.returncode == 1
    assert "failure_reason" in result.stdout + result.stderr


def test_changing_a_field_type_fails(workspace: Path) -> None:
    edit(workspace, ENVELOPE, "string correlation_id = 6;", "int64 correlation_id = 6;")
    result = run_check(workspace)
    assert result.returncode == 1


def test_adding_a_field_passes(workspace: Path) -> None:
    edit(
        workspace, ENVELOPE, "  string actor = 8;\n", "  string actor = 8;\n  string tenant = 9;\n"
    )
    result = run_check(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_removing_a_field_with_its_number_reserved_passes(workspace: Path) -> None:
    edit(workspace, RECEIPT_EVENTS, "  string sha256 = 5;\n", "  reserved 5;\n")
    result = run_check(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_update_baseline_accepts_a_deliberate_break(workspace: Path) -> None:
    edit(workspace, ENVELOPE, "  string aggregate_id = 5;\n", "")
    new_baseline = workspace / "protos" / "compat" / "baseline.binpb"
    subprocess.run(
        [sys.executable, str(TOOL), "--root", str(workspace), "--update-baseline"],
        check=True,
        capture_output=True,
    )
    result = subprocess.run(
        [sys.executable, str(TOOL), "--root", str(workspace), "--against", str(new_baseline)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
