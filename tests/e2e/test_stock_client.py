"""A stock gRPC client (`buf curl`, from the buf-bin wheel) lists and calls via reflection."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BUF = Path(sys.executable).parent / "buf"


def buf_curl(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_reflection_lists_and_calls_with_a_token(stack, intake_address):
    intake = stack.service(
        "seisan_intake", "intake", SEISAN_INTAKE_GRPC_ADDRESS=intake_address
    ).start()
    try:
        intake.wait_serving(intake_address)
        listed = buf_curl("--list-services", f"http://{intake_address}")
        assert listed.returncode == 0, listed.stderr
        assert "seisan.receipts.v1.ReceiptIntake" in listed.stdout.split()
        methods = buf_curl("--list-methods", f"http://{intake_address}")
        assert "seisan.receipts.v1.ReceiptIntake/UploadReceipt" in methods.stdout.split()

        url = f"http://{intake_address}/seisan.receipts.v1.ReceiptIntake/ListReceipts"
        refused = buf_curl("-d", "{}", url)
        assert refused.returncode != 0 and "unauthenticated" in refused.stderr.lower()
        called = buf_curl("-H", "authorization: Bearer demo-aiko", "-d", '{"pageSize": 5}', url)
        assert called.returncode == 0, called.stderr
        assert json.loads(called.stdout) == {}  # no receipts yet: an empty, valid reply
    finally:
        intake.terminate()
