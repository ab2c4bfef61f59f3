"""A photo in, its facts out: intake + an OCR worker as processes, a real SROIE scan."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_event_path import upload

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.grpc.client import sync_channel

pytestmark = pytest.mark.slow

SROIE = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "sroie-dev"
SAMPLE = "X51005268262"  # HOME MASTER HARDWARE & ELECTRICAL, 22/12/2017, 15.90


def test_uploaded_scan_is_read_and_published(stack, intake_address):
    if not SROIE.exists():
        pytest.skip(f"shared data not found at {SROIE}")
    label = json.loads((SROIE / "labels" / f"{SAMPLE}.txt").read_text())
    env = {"SEISAN_INTAKE_GRPC_ADDRESS": intake_address}
    intake = stack.service("seisan_intake", "intake", **env).start()
    worker = stack.service("seisan_intake.worker", "worker", **env).start()
    subscriber = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seisan_shared.cli.main",
            "events",
            "tail",
            "--json",
            "--all",
            "-s",
            "seisan.receipt.>",
            "--count",
            "2",
        ],
        env={**stack.env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        intake.wait_serving(intake_address)
        receipt_id = upload(
            intake_address, "demo-aiko", (SROIE / "images" / f"{SAMPLE}.jpg").read_bytes()
        )
        out, err = subscriber.communicate(timeout=120)
        kinds = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert [k["type"] for k in kinds] == ["receipt.captured", "receipt.extracted"], (
            out,
            err,
            worker.log()[-3000:],
        )
        extracted = kinds[1]["payload"]
        assert extracted["receipt_id"] == receipt_id
        total = extracted["fields"]["total"]["amount"]
        assert (total["amount_minor"], total["currency"]) == (1590, "MYR")
        assert label["total"] == "15.90"
        assert extracted["fields"]["transaction_date"]["date"] == "2017-12-22"
        with sync_channel(intake_address, "demo-aiko") as channel:
            stub = receipts_pb2_grpc.ReceiptIntakeStub(channel)
            got = stub.GetReceipt(receipts_pb2.GetReceiptRequest(receipt_id=receipt_id)).receipt
        assert got.status == receipts_pb2.RECEIPT_STATUS_EXTRACTED
        assert got.fields.merchant.value.upper().startswith("HOME MASTER HARDWARE")
    finally:
        subscriber.kill()
        worker.terminate()
        intake.terminate()
    assert worker.proc is not None and worker.proc.returncode == 0, worker.log()[-2000:]
