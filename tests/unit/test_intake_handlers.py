"""Intake use cases against in-memory fakes that subclass the ports."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from google.protobuf.message import Message

from seisan_intake import handlers
from seisan_intake.domain.model import PaidWith, Receipt, Status, StoredImage
from seisan_intake.domain.ports import ReceiptQuery, ReceiptRepository, UnitOfWork


class FakeReceipts(ReceiptRepository):
    def __init__(self) -> None:
        self.rows: dict[str, Receipt] = {}

    async def add(self, receipt: Receipt) -> None:
        self.rows[receipt.receipt_id] = copy.deepcopy(receipt)

    async def get(self, receipt_id: str) -> Receipt | None:
        found = self.rows.get(receipt_id)
        return copy.deepcopy(found) if found else None

    async def find_exact(self, submitter: str, sha256: str) -> Receipt | None:
        return None

    async def find_by_sha(self, sha256: str) -> list[Receipt]:
        return []

    async def recent_hashes(self, limit: int) -> list[tuple[str, str]]:
        return []

    async def update(self, receipt: Receipt) -> None:
        receipt.version += 1
        self.rows[receipt.receipt_id] = copy.deepcopy(receipt)

    async def query(self, q: ReceiptQuery) -> list[Receipt]:
        return list(self.rows.values())


class FakeUow(UnitOfWork):
    def __init__(self) -> None:
        self.receipts = FakeReceipts()
        self.events: list[tuple[str, Message]] = []
        self.audits: list[dict[str, Any]] = []

    async def __aenter__(self) -> FakeUow:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None

    async def commit(self) -> None:
        return None

    async def emit(
        self, event_type: str, aggregate_id: str, payload: Message, *, actor: str = ""
    ) -> None:
        self.events.append((event_type, payload))

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str = "",
    ) -> None:
        self.audits.append({"actor": actor, "action": action, "entity_id": entity_id})


def receipt(status: Status = Status.PROCESSING, fields: dict[str, Any] | None = None) -> Receipt:
    image = StoredImage("ab" * 32, "image/jpeg", 10, 1, 1, "0" * 16, "o", "n")
    return Receipt(
        "r1",
        "aiko",
        PaidWith.PERSONAL,
        "",
        image,
        datetime.now(UTC),
        status=status,
        fields=fields or {},
    )


FIELDS = {
    "total": {"minor_units": 1112, "currency": "JPY", "confidence": 0.9},
    "merchant": {"value": "Blue Bottle", "confidence": 0.8},
}


async def test_extraction_sets_fields_and_publishes_extracted():
    uow = FakeUow()
    await uow.receipts.add(receipt())
    result = handlers.ExtractionResult(FIELDS, [], "text", "engine")
    assert await handlers.record_extraction("r1", result, uow)
    stored = await uow.receipts.get("r1")
    assert stored is not None and stored.status is Status.EXTRACTED
    assert stored.total_minor == 1112 and stored.merchant == "Blue Bottle"
    assert [e[0] for e in uow.events] == ["receipt.extracted"]


async def test_low_confidence_goes_to_review_with_reasons():
    uow = FakeUow()
    await uow.receipts.add(receipt())
    result = handlers.ExtractionResult(FIELDS, ["date not found"], "text", "engine")
    await handlers.record_extraction("r1", result, uow)
    stored = await uow.receipts.get("r1")
    assert stored is not None and stored.status is Status.NEEDS_REVIEW
    assert stored.review_reasons == ["date not found"]
    assert [e[0] for e in uow.events] == ["receipt.needs_review"]


async def test_a_second_result_or_one_for_a_corrected_receipt_is_ignored():
    uow = FakeUow()
    await uow.receipts.add(receipt(Status.EXTRACTED, fields={"merchant": {"value": "Fixed"}}))
    result = handlers.ExtractionResult(FIELDS, [], "text", "engine")
    assert not await handlers.record_extraction("r1", result, uow)
    stored = await uow.receipts.get("r1")
    assert stored is not None and stored.merchant == "Fixed" and uow.events == []


async def test_matched_before_ocr_keeps_matched_and_still_gets_fields():
    uow = FakeUow()
    await uow.receipts.add(receipt(Status.MATCHED))
    await handlers.record_extraction("r1", handlers.ExtractionResult(FIELDS, [], "", "e"), uow)
    stored = await uow.receipts.get("r1")
    assert stored is not None and stored.status is Status.MATCHED and stored.total_minor == 1112


async def test_link_and_release_follow_other_services():
    uow = FakeUow()
    await uow.receipts.add(receipt(Status.EXTRACTED, fields=FIELDS))
    assert await handlers.link_receipts(["r1", "unknown"], Status.CLAIMED, False, uow) == ["r1"]
    # a match cannot take a claimed receipt, and releasing a match does not free a claim
    assert await handlers.link_receipts(["r1"], Status.MATCHED, False, uow) == []
    assert await handlers.link_receipts(["r1"], Status.MATCHED, True, uow) == []
    assert await handlers.link_receipts(["r1"], Status.CLAIMED, True, uow) == ["r1"]
    stored = await uow.receipts.get("r1")
    assert stored is not None and stored.status is Status.EXTRACTED
