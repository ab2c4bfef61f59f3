"""Offline reconciliation on files (`seisan reconcile`) and the benchmark's generator."""

import csv
import importlib.util
import json
import sys
from pathlib import Path

import pytest

from seisan_cards.entrypoints.reconcile_files import (
    CHARGES_HEADER,
    ReconcileInputError,
    reconcile_files,
)
from seisan_shared.errors import InvalidArgument

ROOT = Path(__file__).resolve().parents[2]
PAN = "4111111111111111"

CHARGES = [
    line.split(",")
    for line in """\
c-tip,1234,alice,2026-11-04,2026-11-06,SQ *BLUE BOTTLE,5814,17.70,USD,,
c-yen,1234,alice,2026-11-03,2026-11-05,ｽﾀｰﾊﾞｯｸｽ,5814,1112,JPY,,
c-fx,1234,alice,2026-11-03,2026-11-05,PARIS CAFE,5812,2000,JPY,12.50,EUR
c-hotel,5678,bob,2026-11-03,2026-11-06,HOTEL GRANVIA KYOTO,7011,30000,JPY,,
c-missing,5678,bob,2026-11-03,2026-11-05,NIHON KOTSU TAXI,4121,2500,JPY,,""".splitlines()
]
RECEIPTS = [
    {"receipt_id": "r-tip", "submitter": "alice", "merchant": "Blue Bottle Coffee",
     "date": "2026-11-03", "total": "15.00", "currency": "USD"},
    {"receipt_id": "r-yen", "submitter": "alice", "merchant": "スターバックス 春日井店",
     "date": "2026-11-03", "total": "1,112", "currency": "JPY", "card_last4": "1234"},
    {"receipt_id": "r-fx", "submitter": "alice", "merchant": "Paris Café",
     "date": "2026-11-03", "total": "12.50", "currency": "EUR"},
    {"receipt_id": "r-room", "submitter": "bob", "merchant": "Hotel Granvia Kyoto",
     "date": "2026-11-03", "total": "20000", "currency": "JPY"},
    {"receipt_id": "r-dinner", "submitter": "bob", "merchant": "Hotel Granvia Kyoto",
     "date": "2026-11-03", "total": "10000", "currency": "JPY", "tip": ""},
    {"receipt_id": "r-personal", "submitter": "carol", "merchant": "Kinokuniya",
     "date": "2026-11-03", "total": "3300", "currency": "JPY"},
]  # fmt: skip


def write_inputs(tmp_path: Path, charges=CHARGES, receipts=RECEIPTS) -> tuple[Path, Path]:
    charges_csv = tmp_path / "charges.csv"
    with charges_csv.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(CHARGES_HEADER)
        writer.writerows(charges)
    receipts_jsonl = tmp_path / "receipts.jsonl"
    receipts_jsonl.write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in receipts), encoding="utf-8"
    )
    return charges_csv, receipts_jsonl


def read_matches(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_round_trip_on_a_tiny_file_set(tmp_path):
    charges_csv, receipts_jsonl = write_inputs(tmp_path)
    out = tmp_path / "out" / "matches.csv"
    summary = reconcile_files(charges_csv, receipts_jsonl, out)
    rows = read_matches(out)
    assert out.read_text().splitlines()[0] == "charge_id,receipt_id,score,status"
    pairs = {(r["charge_id"], r["receipt_id"]): r["status"] for r in rows}
    assert pairs == {
        ("c-tip", "r-tip"): "auto",
        ("c-yen", "r-yen"): "auto",
        ("c-fx", "r-fx"): "auto",
        ("c-hotel", "r-room"): "auto",  # a split: two rows
        ("c-hotel", "r-dinner"): "auto",
    }
    assert all(0.0 < float(r["score"]) <= 1.0 and len(r["score"].split(".")[1]) == 4 for r in rows)
    assert (summary.charges, summary.receipts, summary.auto_pairs) == (5, 6, 5)
    assert (summary.unmatched_charges, summary.unmatched_receipts) == (1, 1)
    # same files, same bytes
    again = tmp_path / "again.csv"
    reconcile_files(charges_csv, receipts_jsonl, again)
    assert again.read_bytes() == out.read_bytes()


def test_rejected_pairs_stay_out_of_the_file(tmp_path):
    charges_csv, receipts_jsonl = write_inputs(tmp_path)
    out = tmp_path / "matches.csv"
    reconcile_files(charges_csv, receipts_jsonl, out, rejected={("c-tip", "r-tip")})
    assert ("c-tip", "r-tip") not in {(r["charge_id"], r["receipt_id"]) for r in read_matches(out)}


def test_a_full_card_number_is_cut_to_its_last_four(tmp_path):
    charges = [[*CHARGES[0][:1], PAN, *CHARGES[0][2:]]]
    receipts = [{**RECEIPTS[0], "card_last4": PAN}]
    charges_csv, receipts_jsonl = write_inputs(tmp_path, charges, receipts)
    out = tmp_path / "matches.csv"
    reconcile_files(charges_csv, receipts_jsonl, out)
    assert PAN not in out.read_text()
    assert read_matches(out)[0]["status"] == "auto"


BAD_INPUTS = [
    ("charges", lambda rows: [[*rows[0][:7], "10.5", "JPY", "", ""]], "line 2: field 'amount'"),
    (
        "charges",
        lambda rows: [[*rows[0][:3], "2026-13-01", *rows[0][4:]]],
        "line 2: field 'transaction_date'",
    ),
    ("charges", lambda rows: [rows[0], [*rows[1][:8], "XYZ", "", ""]], "line 3: field 'currency'"),
    ("charges", lambda rows: [[*rows[0][:9], "12.50", ""]], "line 2: field 'original_currency'"),
    ("charges", lambda rows: [rows[0], rows[0]], "line 3: field 'charge_id'"),
    ("receipts", lambda rows: [rows[0], {**rows[1], "total": 1112.0}], "line 2: field 'total'"),
    ("receipts", lambda rows: [{**rows[0], "date": "03/11/2026"}], "line 1: field 'date'"),
    (
        "receipts",
        lambda rows: [{k: v for k, v in rows[0].items() if k != "submitter"}],
        "line 1: field 'submitter'",
    ),
]


@pytest.mark.parametrize(("which", "change", "where"), BAD_INPUTS)
def test_bad_inputs_name_line_and_field(tmp_path, which, change, where):
    charges = change(CHARGES) if which == "charges" else CHARGES
    receipts = change(RECEIPTS) if which == "receipts" else RECEIPTS
    charges_csv, receipts_jsonl = write_inputs(tmp_path, charges, receipts)
    out = tmp_path / "matches.csv"
    with pytest.raises(ReconcileInputError) as err:
        reconcile_files(charges_csv, receipts_jsonl, out)
    assert where in str(err.value)
    assert isinstance(err.value, InvalidArgument)
    assert not out.exists()  # nothing half-written


def test_missing_header_column_and_broken_json_are_refused(tmp_path):
    good_charges, good_receipts = write_inputs(tmp_path)
    bad_charges = tmp_path / "bad-charges.csv"
    bad_charges.write_text("charge_id,amount\nc1,100\n", encoding="utf-8")
    with pytest.raises(ReconcileInputError, match="line 1: header lacks card_last4"):
        reconcile_files(bad_charges, good_receipts, tmp_path / "m.csv")
    bad_receipts = tmp_path / "bad.jsonl"
    bad_receipts.write_text(good_receipts.read_text().splitlines()[0] + "\nnot json\n")
    with pytest.raises(ReconcileInputError, match=r"bad\.jsonl line 2: not JSON"):
        reconcile_files(good_charges, bad_receipts, tmp_path / "m.csv")


def test_bench_generator_small_run_meets_the_precision_and_recall_goals():
    spec = importlib.util.spec_from_file_location("bench_match", ROOT / "tools" / "bench_match.py")
    assert spec and spec.loader
    bench = importlib.util.module_from_spec(spec)
    sys.modules["bench_match"] = bench
    spec.loader.exec_module(bench)
    data = bench.generate(5000, seed=3)
    assert len(data.charges) == 5000 and len(data.receipts) > 5000
    assert len(data.truth_charge) > 4700
    outcome = bench.evaluate(data)
    assert outcome.precision >= 0.995
    assert outcome.recall >= 0.98
