"""The cluster option: intake and its OCR worker share blobs through a JetStream Object Store."""

from __future__ import annotations

import pytest
from test_event_path import upload

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_shared.grpc.client import sync_channel
from support.images import receipt_jpeg

pytestmark = pytest.mark.slow


def test_upload_and_read_back_through_the_object_store(stack, intake_address, tmp_path):
    env = {"SEISAN_INTAKE_GRPC_ADDRESS": intake_address, "SEISAN_INTAKE_BLOB_STORE": "nats"}
    intake = stack.service("seisan_intake", "intake", **env).start()
    try:
        intake.wait_serving(intake_address)
        data = receipt_jpeg(99)
        receipt_id = upload(intake_address, "demo-aiko", data)
        with sync_channel(intake_address, "demo-aiko") as channel:
            stub = receipts_pb2_grpc.ReceiptIntakeStub(channel)
            original = b"".join(
                part.chunk
                for part in stub.GetReceiptImage(
                    receipts_pb2.GetReceiptImageRequest(
                        receipt_id=receipt_id, variant=receipts_pb2.IMAGE_VARIANT_ORIGINAL
                    )
                )
            )
        assert original == data
        assert not (stack.var / "blobs").exists()  # nothing on the local filesystem
    finally:
        intake.terminate()
