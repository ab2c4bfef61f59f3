"""One path through every layer: gRPC → handler → DB + outbox → JetStream → another process.

The publisher (the intake service) is killed between the DB commit and the
publish, and between the publish and marking the row published; after each
restart the subscriber process still receives every event exactly once.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections import Counter

import grpc
import pytest

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.grpc.client import sync_channel
from support.images import receipt_jpeg

pytestmark = pytest.mark.slow


def upload(address: str, token: str, data: bytes) -> str:
    with sync_channel(address, token) as channel:
        stub = receipts_pb2_grpc.ReceiptIntakeStub(channel)
        parts = [
            receipts_pb2.UploadReceiptRequest(
                metadata=receipts_pb2.UploadMetadata(paid_with=receipts_pb2.PAID_WITH_PERSONAL)
            )
        ]
        parts += [
            receipts_pb2.UploadReceiptRequest(chunk=data[i : i + 65536])
            for i in range(0, len(data), 65536)
        ]
        return stub.UploadReceipt(iter(parts), timeout=10).receipt_id


def list_ids(address: str, token: str) -> set[str]:
    with sync_channel(address, token) as channel:
        stub = receipts_pb2_grpc.ReceiptIntakeStub(channel)
        reply = stub.ListReceipts(receipts_pb2.ListReceiptsRequest(page_size=100), timeout=10)
        return {r.receipt_id for r in reply.receipts}


def test_subscriber_gets_every_event_once_across_publisher_crashes(stack, intake_address):
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
            "seisan.receipt.captured",
        ],
        env={**stack.env, "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    env = {"SEISAN_INTAKE_GRPC_ADDRESS": intake_address}
    intake = stack.service("seisan_intake", "intake", **env)
    try:
        # 1. dies after the commit, before publishing
        intake.start({"SEISAN_FAULTS": "outbox.before_publish:exit"})
        intake.wait_serving(intake_address)
        try:
            upload(intake_address, "demo-aiko", receipt_jpeg(1))
        except grpc.RpcError:
            pass  # the crash may beat the reply; the row is committed either way
        assert intake.wait_exit() == 137, intake.log()[-2000:]

        # 2. a clean restart publishes what was committed; a normal upload flows
        intake.start()
        intake.wait_serving(intake_address)
        upload(intake_address, "demo-aiko", receipt_jpeg(2))
        # a clean stop drains promptly (a hung drain would end in SIGKILL: -9)
        assert intake.terminate() == 0, intake.log()[-3000:]

        # 3. dies after publishing, before marking the rows published
        intake.start({"SEISAN_FAULTS": "outbox.after_publish:exit"})
        intake.wait_serving(intake_address)
        try:
            upload(intake_address, "demo-aiko", receipt_jpeg(3))
        except grpc.RpcError:
            pass
        assert intake.wait_exit() == 137, intake.log()[-2000:]

        # 4. the restart republishes the unmarked event; JetStream drops the duplicate
        intake.start()
        intake.wait_serving(intake_address)
        stored = list_ids(intake_address, "demo-aiko")
        assert len(stored) == 3
        time.sleep(2.0)  # let any duplicate arrive if one were going to
    finally:
        intake.terminate()
        subscriber.terminate()
    out, err = subscriber.communicate(timeout=10)
    events = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    receipt_ids = Counter(e["payload"]["receipt_id"] for e in events)
    event_ids = Counter(e["event_id"] for e in events)
    assert set(receipt_ids) == stored, (out, err)
    assert all(n == 1 for n in receipt_ids.values()), receipt_ids
    assert all(n == 1 for n in event_ids.values()), event_ids
    assert all(e["type"] == "receipt.captured" and e["source"] == "intake" for e in events)
    assert all(e["payload"]["submitter"] == "aiko" for e in events)
