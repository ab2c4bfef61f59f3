"""The OCR worker's consumer: `receipt.captured` in, `receipt.extracted` / `needs_review` out.

The slow part (reading the image) runs in ``prepare``, outside any database
transaction; the short part (storing fields, queuing the event) runs in the
consumer's transaction together with the processed-event record. Workers
scale by running more processes on the same durable consumer.
"""

from __future__ import annotations

import asyncio
import io
import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from PIL import Image
from prometheus_client import Histogram
from sqlalchemy.ext.asyncio import AsyncSession

from seisan.receipts.v1 import events_pb2
from seisan_intake import handlers
from seisan_intake.adapters.blobstore import BlobNotFound, BlobStore
from seisan_intake.adapters.ocr import OcrEngine
from seisan_intake.adapters.uow import SqlUnitOfWork
from seisan_intake.domain.extraction import ExtractedReceipt, extract, review_reasons
from seisan_shared import events, subjects
from seisan_shared.events import Envelope

log = logging.getLogger("seisan.intake.ocr")
DURABLE = "intake-ocr"
FILTER = (subjects.subject_for(subjects.RECEIPT_CAPTURED),)


def receipt_fields(extracted: ExtractedReceipt) -> dict[str, Any]:
    """The receipt aggregate's field data from an extraction (one shape for DB, API, events)."""
    raw = extracted.fields_dict()
    fields: dict[str, Any] = {}
    for name, value in raw.items():
        if name == "card_last_four":
            fields["card_last4"] = value
        elif name == "transaction_time":
            continue
        else:
            fields[name] = value
    if "transaction_date" in fields and "transaction_time" in raw:
        fields["transaction_date"] = {
            **fields["transaction_date"],
            "time": raw["transaction_time"]["value"],
        }
    return fields


@dataclass
class OcrWorker:
    engine: OcrEngine
    blobs: BlobStore
    engine_name: str
    review_threshold: float = 0.6
    ocr_seconds: Histogram | None = None  # seisan_ocr_seconds, when the process has metrics

    async def read(self, envelope: Envelope) -> handlers.ExtractionResult | None:
        """OCR and extraction for one captured receipt (no database involved)."""
        captured = events.unpack_payload(envelope)
        assert isinstance(captured, events_pb2.ReceiptCaptured)
        try:
            data = await self.blobs.get(captured.image_ref)
        except BlobNotFound:
            log.warning("receipt %s: image %s is gone", captured.receipt_id, captured.image_ref)
            return None
        started = asyncio.get_running_loop().time()
        extracted = await asyncio.to_thread(self._read_bytes, data)
        took = asyncio.get_running_loop().time() - started
        if self.ocr_seconds is not None:
            self.ocr_seconds.observe(took)
        reasons = review_reasons(
            extracted, threshold=self.review_threshold, today=datetime.now(UTC).date()
        )
        log.info(
            "receipt %s read in %.2fs: %s",
            captured.receipt_id,
            took,
            "; ".join(reasons) or "all key fields confident",
        )
        return handlers.ExtractionResult(
            fields=receipt_fields(extracted),
            review_reasons=reasons,
            ocr_text=extracted.ocr_text,
            engine=self.engine_name,
        )

    def _read_bytes(self, data: bytes) -> ExtractedReceipt:
        with Image.open(io.BytesIO(data)) as image:
            lines = self.engine.read(image.convert("RGB"))
        return extract(lines)

    async def store(
        self, envelope: Envelope, session: AsyncSession, result: handlers.ExtractionResult | None
    ) -> None:
        if result is None:
            return
        await handlers.record_extraction(
            envelope.aggregate_id, result, SqlUnitOfWork.joining(session)
        )
