"""The event catalogue: every event type, a real payload message each, shown in the README."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

from seisan_shared import catalogue, events, subjects
from seisan_shared.catalogue import CATALOGUE, spec_for

ROOT = Path(__file__).resolve().parents[2]
GEN_CATALOGUE = ROOT / "tools" / "gen_catalogue.py"
AUDIT_PROTOS = ROOT / "protos" / "seisan" / "audit"
# Floating-point fields allowed in payloads: ratios, never money.
FLOAT_FIELD_NAMES = {"confidence", "payment_method_confidence", "score", "weight"}


def event_types() -> set[str]:
    """Every event type constant in subjects.py (stream, prefix and subject names excluded)."""
    return {
        value
        for name, value in vars(subjects).items()
        if name.isupper() and isinstance(value, str) and not name.endswith(("_STREAM", "_PREFIX"))
    }


def test_subjects_introspection_finds_the_event_types() -> None:
    types = event_types()
    assert subjects.RECEIPT_CAPTURED in types
    assert subjects.EVENTS_STREAM not in types
    assert all("." in t for t in types), types


def test_every_event_type_has_a_spec() -> None:
    expected = event_types()
    if not AUDIT_PROTOS.exists():
        # The audit contract is not written yet; once protos/seisan/audit exists it is required.
        expected.discard(subjects.AUDIT_RECORDED)
    missing = sorted(expected - {spec.type for spec in CATALOGUE})
    assert not missing, f"event types without a catalogue entry: {missing}"


def test_audit_recorded_payload_once_the_audit_contract_exists() -> None:
    if not AUDIT_PROTOS.exists():
        pytest.skip("protos/seisan/audit does not exist yet")
    spec = spec_for(subjects.AUDIT_RECORDED)
    assert spec.payload_name == catalogue.AUDIT_RECORDED_PAYLOAD
    assert spec.publisher == "every service"


def test_catalogue_has_no_unknown_or_repeated_types() -> None:
    types = [spec.type for spec in CATALOGUE]
    assert len(types) == len(set(types))
    assert set(types) <= event_types()


def test_every_event_has_its_own_payload_message() -> None:
    names = [spec.payload_name for spec in CATALOGUE]
    assert len(names) == len(set(names)), "two event types share a payload message"
    for spec in CATALOGUE:
        assert issubclass(spec.payload, Message), spec.type
        assert spec.payload_name.startswith("seisan."), spec.payload_name
        assert spec.payload is not events.Envelope
        assert spec.publisher and spec.when, spec.type


def test_spec_for_finds_and_refuses() -> None:
    assert spec_for(subjects.PAYOUT_PAID).payload_name == "seisan.payouts.v1.PayoutPaid"
    assert spec_for(subjects.MATCH_PROPOSED).subject == "seisan.match.proposed"
    with pytest.raises(KeyError, match=r"receipt\.shredded"):
        spec_for("receipt.shredded")


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.type)
def test_payload_round_trips_through_an_envelope(spec: catalogue.EventSpec) -> None:
    catalogue.import_all()
    env = events.new_event(spec.type, source="test", aggregate_id="a-1", payload=spec.payload())
    decoded = events.decode(env.SerializeToString())
    payload = events.unpack_payload(decoded)
    assert type(payload) is spec.payload
    assert decoded.type == spec.type


# Any: DESCRIPTOR is the pure-Python or the upb descriptor class, depending on the backend.
def _fields(descriptor: Any, seen: set[str]) -> list[tuple[str, FieldDescriptor]]:
    """Every field reachable from a message, as (dotted path, field)."""
    if descriptor.full_name in seen:
        return []
    seen.add(descriptor.full_name)
    found = []
    for field in descriptor.fields:
        found.append((f"{descriptor.full_name}.{field.name}", field))
        if field.message_type is not None:
            found.extend(_fields(field.message_type, seen))
    return found


@pytest.mark.parametrize("spec", CATALOGUE, ids=lambda spec: spec.type)
def test_payloads_carry_no_bytes_float_money_or_card_number(spec: catalogue.EventSpec) -> None:
    for path, field in _fields(spec.payload.DESCRIPTOR, set()):
        # Images travel as blob references, never as bytes on the bus.
        assert field.type != FieldDescriptor.TYPE_BYTES, path
        # Money is seisan.common.v1.Money (integer minor units); floats are only ratios.
        if field.type in (FieldDescriptor.TYPE_FLOAT, FieldDescriptor.TYPE_DOUBLE):
            assert field.name in FLOAT_FIELD_NAMES, path
        # Only the last four digits of a card are ever carried.
        assert "pan" not in field.name.split("_"), path
        assert "card_number" not in field.name, path


def test_money_fields_use_the_common_money_message() -> None:
    money_names = {"amount", "total", "original_amount", "matched_amount", "statement_total"}
    checked = 0
    for spec in CATALOGUE:
        for path, field in _fields(spec.payload.DESCRIPTOR, set()):
            if field.name in money_names:
                assert field.message_type is not None, path
                assert field.message_type.full_name in (
                    "seisan.common.v1.Money",
                    "seisan.receipts.v1.ExtractedMoney",
                ), path
                checked += 1
    assert checked >= 5


def test_readme_catalogue_is_up_to_date() -> None:
    result = subprocess.run(
        [sys.executable, str(GEN_CATALOGUE), "--check"], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr + "\nrun: python tools/gen_catalogue.py"
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    for spec in CATALOGUE:
        assert f"`{spec.payload_name}`" in readme


def test_check_mode_fails_on_a_stale_readme_and_the_tool_repairs_it(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n<!-- catalogue:start -->\n| old |\n<!-- catalogue:end -->\ntail\n", encoding="utf-8"
    )
    command = [sys.executable, str(GEN_CATALOGUE), "--readme", str(readme)]
    stale = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
    assert stale.returncode == 1
    assert "stale" in stale.stderr
    subprocess.run(command, check=True, capture_output=True)
    fixed = readme.read_text(encoding="utf-8")
    assert "| old |" not in fixed
    assert fixed.startswith("# x\n<!-- catalogue:start -->\n")
    assert fixed.endswith("<!-- catalogue:end -->\ntail\n")
    assert "`seisan.receipt.captured`" in fixed
    fresh = subprocess.run([*command, "--check"], capture_output=True, text=True, check=False)
    assert fresh.returncode == 0
