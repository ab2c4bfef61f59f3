"""Use cases of receipt intake: plain async functions of a command and named ports."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from seisan.receipts.v1 import events_pb2
from seisan_intake import messages
from seisan_intake.adapters.blobstore import BlobStore
from seisan_intake.adapters.images import ImagePipeline
from seisan_intake.domain.errors import ImageRejected, InvalidCorrection, ReceiptNotFound
from seisan_intake.domain.model import (
    Actor,
    PaidWith,
    Receipt,
    Status,
    StoredImage,
    linked_status,
    released_status,
)
from seisan_intake.domain.ports import DuplicateKey, ReceiptQuery, UnitOfWork
from seisan_shared import subjects
from seisan_shared.money import Money, MoneyError, check_currency

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class UploadReceipt:
    actor: Actor
    data: bytes
    paid_with: PaidWith = PaidWith.UNSPECIFIED
    note: str = ""


@dataclass(frozen=True)
class UploadResult:
    receipt: Receipt
    duplicate: bool


@dataclass
class IntakePorts:
    uow: Callable[[], UnitOfWork]
    blobs: BlobStore
    images: ImagePipeline
    clock: Clock = utcnow
    near_duplicate_distance: int = 4
    near_duplicate_window: int = 5000
    _upload_lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def _hamming(a: str, b: str) -> int:
    return bin(int(a, 16) ^ int(b, 16)).count("1")


async def upload_receipt(cmd: UploadReceipt, ports: IntakePorts) -> UploadResult:
    """Validate and store an upload; the receipt row and `receipt.captured` commit together.

    Nothing is written unless the image is accepted. The same bytes from the same
    submitter return the existing receipt (idempotent); a near-duplicate is only
    flagged (two real, identical purchases on one day must both survive).
    """
    if len(cmd.note) > 2000:
        raise ImageRejected("note is longer than 2000 characters")
    image = await asyncio.to_thread(ports.images.normalize, cmd.data)
    async with ports.uow() as uow:
        existing = await uow.receipts.find_exact(cmd.actor.name, image.sha256)
        if existing is not None and existing.status is not Status.DELETED:
            return UploadResult(existing, duplicate=True)

    original_key = f"original/{image.sha256[:2]}/{image.sha256}"
    normalized_key = f"normalized/{image.sha256[:2]}/{image.sha256}.jpg"
    await ports.blobs.put(original_key, cmd.data)
    await ports.blobs.put(normalized_key, image.viewing_jpeg)

    stored = StoredImage(
        sha256=image.sha256,
        content_type=image.content_type,
        size_bytes=len(cmd.data),
        width=image.width,
        height=image.height,
        perceptual_hash=image.perceptual_hash,
        original_key=original_key,
        normalized_key=normalized_key,
    )
    async with ports.uow() as uow:
        existing = await uow.receipts.find_exact(cmd.actor.name, image.sha256)
        if existing is not None and existing.status is not Status.DELETED:
            return UploadResult(existing, duplicate=True)
        similar = await _possible_duplicate(uow, stored, ports)
        if existing is not None:  # re-upload of a deleted receipt: it comes back
            receipt = existing
            receipt.status = Status.PROCESSING
            receipt.paid_with, receipt.note = cmd.paid_with, cmd.note
            receipt.uploaded_at = ports.clock()
            receipt.possible_duplicate_of = similar
            await uow.receipts.update(receipt)
        else:
            receipt = Receipt(
                receipt_id=str(uuid.uuid4()),
                submitter=cmd.actor.name,
                paid_with=cmd.paid_with,
                note=cmd.note,
                image=stored,
                uploaded_at=ports.clock(),
                possible_duplicate_of=similar,
            )
            try:
                await uow.receipts.add(receipt)
            except DuplicateKey:
                raced = await uow.receipts.find_exact(cmd.actor.name, image.sha256)
                assert raced is not None
                return UploadResult(raced, duplicate=True)
        await uow.emit(
            subjects.RECEIPT_CAPTURED,
            receipt.receipt_id,
            messages.captured_event(receipt),
            actor=cmd.actor.name,
        )
        await uow.audit(
            actor=cmd.actor.name,
            action="receipt.upload",
            entity_id=receipt.receipt_id,
            before=None,
            after={
                "sha256": stored.sha256,
                "content_type": stored.content_type,
                "size_bytes": stored.size_bytes,
                "paid_with": receipt.paid_with.value,
                "possible_duplicate_of": similar,
            },
        )
        await uow.commit()
    return UploadResult(receipt, duplicate=False)


async def _possible_duplicate(uow: UnitOfWork, image: StoredImage, ports: IntakePorts) -> str:
    same_bytes = await uow.receipts.find_by_sha(image.sha256)
    for other in same_bytes:
        if other.status is not Status.DELETED:
            return other.receipt_id  # identical bytes from another submitter
    best: tuple[int, str] | None = None
    for receipt_id, phash in await uow.receipts.recent_hashes(ports.near_duplicate_window):
        distance = _hamming(phash, image.perceptual_hash)
        if distance <= ports.near_duplicate_distance and (best is None or distance < best[0]):
            best = (distance, receipt_id)
    return best[1] if best else ""


async def get_receipt(receipt_id: str, actor: Actor, ports: IntakePorts) -> Receipt:
    async with ports.uow() as uow:
        receipt = await uow.receipts.get(receipt_id)
    if receipt is None or receipt.status is Status.DELETED:
        raise ReceiptNotFound(receipt_id)
    receipt.check_can_read(actor)
    return receipt


async def list_receipts(query: ReceiptQuery, actor: Actor) -> ReceiptQuery:
    """Staff see only their own receipts, whatever they ask for."""
    if not (actor.roles & {"approver", "treasury", "admin"}):
        return ReceiptQuery(**{**query.__dict__, "submitter": actor.name})
    return query


async def run_query(query: ReceiptQuery, actor: Actor, ports: IntakePorts) -> list[Receipt]:
    scoped = await list_receipts(query, actor)
    async with ports.uow() as uow:
        return await uow.receipts.query(scoped)


async def read_image(
    receipt_id: str, original: bool, actor: Actor, ports: IntakePorts
) -> tuple[str, bytes]:
    receipt = await get_receipt(receipt_id, actor, ports)
    if original:
        receipt.check_can_read_original(actor)
        return receipt.image.content_type, await ports.blobs.get(receipt.image.original_key)
    return "image/jpeg", await ports.blobs.get(receipt.image.normalized_key)


def _validate_correction(changes: dict[str, Any]) -> None:
    for name, value in changes.items():
        if name in messages.MONEY_FIELDS:
            try:
                check_currency(value["currency"])
            except MoneyError as exc:
                raise InvalidCorrection(f"{name}: {exc}") from None
            if value["minor_units"] < 0:
                raise InvalidCorrection(f"{name}: amount must not be negative")
        if name == "transaction_date" and not value.get("value"):
            raise InvalidCorrection("transaction_date: year, month and day are required")
        if name == "card_last4" and not (len(value["value"]) == 4 and value["value"].isdigit()):
            raise InvalidCorrection("card_last4: exactly four digits (never a full card number)")


async def correct_receipt(
    receipt_id: str, changes: dict[str, Any], reason: str, actor: Actor, ports: IntakePorts
) -> Receipt:
    """The submitter fixes fields; audited with old → new; corrected fields get confidence 1."""
    if not changes:
        raise InvalidCorrection("no fields to correct were given")
    _validate_correction(changes)
    async with ports.uow() as uow:
        receipt = await uow.receipts.get(receipt_id)
        if receipt is None or receipt.status is Status.DELETED:
            raise ReceiptNotFound(receipt_id)
        receipt.check_can_change(actor)
        before = {k: receipt.fields.get(k) for k in changes}
        for name, value in changes.items():
            receipt.fields[name] = {**value, "confidence": 1.0}
        if receipt.status is Status.NEEDS_REVIEW:
            receipt.status = Status.EXTRACTED
            receipt.review_reasons = []
        await uow.receipts.update(receipt)
        event = events_pb2.ReceiptCorrected(
            receipt_id=receipt.receipt_id,
            submitter=receipt.submitter,
            corrected_by=actor.name,
            fields=messages.fields_to_pb(receipt.fields),
            reason=reason,
            paid_with=messages.PAID_WITH_TO_PB[receipt.paid_with],
        )
        for name in sorted(changes):
            event.changes.add(
                field=name,
                old_value=_render(before.get(name)),
                new_value=_render(receipt.fields[name]),
            )
        await uow.emit(subjects.RECEIPT_CORRECTED, receipt.receipt_id, event, actor=actor.name)
        await uow.audit(
            actor=actor.name,
            action="receipt.correct",
            entity_id=receipt.receipt_id,
            before=before,
            after={k: receipt.fields[k] for k in changes},
            reason=reason,
        )
        await uow.commit()
    return receipt


def _render(value: dict[str, Any] | None) -> str:
    if not value:
        return ""
    if "minor_units" in value:
        return Money(int(value["minor_units"]), str(value["currency"])).format()
    text = str(value.get("value", ""))
    if value.get("time"):
        text += " " + str(value["time"])
    return text


async def delete_receipt(receipt_id: str, reason: str, actor: Actor, ports: IntakePorts) -> None:
    async with ports.uow() as uow:
        receipt = await uow.receipts.get(receipt_id)
        if receipt is None or receipt.status is Status.DELETED:
            raise ReceiptNotFound(receipt_id)
        receipt.check_can_change(actor)
        before = receipt.status.value
        receipt.status = Status.DELETED
        await uow.receipts.update(receipt)
        await uow.emit(
            subjects.RECEIPT_DELETED,
            receipt.receipt_id,
            events_pb2.ReceiptDeleted(
                receipt_id=receipt.receipt_id,
                submitter=receipt.submitter,
                deleted_by=actor.name,
                reason=reason,
            ),
            actor=actor.name,
        )
        await uow.audit(
            actor=actor.name,
            action="receipt.delete",
            entity_id=receipt.receipt_id,
            before={"status": before},
            after={"status": Status.DELETED.value},
            reason=reason,
        )
        await uow.commit()


@dataclass(frozen=True)
class ExtractionResult:
    """What the OCR worker read: fields (plain data), why a person should look, masked text."""

    fields: dict[str, Any]
    review_reasons: list[str]
    ocr_text: str
    engine: str


async def record_extraction(receipt_id: str, result: ExtractionResult, uow: UnitOfWork) -> bool:
    """Store extracted fields and publish `receipt.extracted` or `receipt.needs_review`.

    Only a receipt without fields takes a result: a redelivered or late result
    for a receipt already extracted or corrected, or deleted, is ignored. A
    receipt matched or claimed by hand before OCR finished keeps that status.
    Returns whether anything changed. ``uow`` is already inside the consumer's
    transaction.
    """
    receipt = await uow.receipts.get(receipt_id)
    if receipt is None or receipt.status is Status.DELETED or receipt.fields:
        return False
    receipt.fields = result.fields
    receipt.review_reasons = list(result.review_reasons)
    receipt.ocr_text = result.ocr_text
    if receipt.status is Status.PROCESSING:
        receipt.status = Status.NEEDS_REVIEW if result.review_reasons else Status.EXTRACTED
    await uow.receipts.update(receipt)
    paid_with = messages.PAID_WITH_TO_PB[receipt.paid_with]
    fields = messages.fields_to_pb(receipt.fields)
    if not result.review_reasons:
        await uow.emit(
            subjects.RECEIPT_EXTRACTED,
            receipt.receipt_id,
            events_pb2.ReceiptExtracted(
                receipt_id=receipt.receipt_id,
                submitter=receipt.submitter,
                paid_with=paid_with,
                fields=fields,
                ocr_engine=result.engine,
            ),
        )
    else:
        await uow.emit(
            subjects.RECEIPT_NEEDS_REVIEW,
            receipt.receipt_id,
            events_pb2.ReceiptNeedsReview(
                receipt_id=receipt.receipt_id,
                submitter=receipt.submitter,
                paid_with=paid_with,
                fields=fields,
                review_reasons=receipt.review_reasons,
                ocr_engine=result.engine,
            ),
        )
    await uow.audit(
        actor=f"ocr:{result.engine}",
        action="receipt.extract",
        entity_id=receipt.receipt_id,
        before={"status": Status.PROCESSING.value},
        after={"status": receipt.status.value, "fields": receipt.fields},
        reason="; ".join(receipt.review_reasons),
    )
    return True


async def link_receipts(
    receipt_ids: list[str], link: Status, released: bool, uow: UnitOfWork
) -> list[str]:
    """Follow another service's decision: matched / claimed, or back when it is undone.

    A receipt that is matched or claimed can no longer be changed or deleted here.
    Returns the ids whose status changed (unknown or deleted receipts are skipped:
    the decision stands in the other service; intake only mirrors it).
    """
    changed: list[str] = []
    for receipt_id in receipt_ids:
        receipt = await uow.receipts.get(receipt_id)
        if receipt is None:
            continue
        if released:
            new = released_status(
                receipt.status, link, receipt.review_reasons, extracted=bool(receipt.fields)
            )
        else:
            new = linked_status(receipt.status, link)
        if new is None or new is receipt.status:
            continue
        receipt.status = new
        await uow.receipts.update(receipt)
        changed.append(receipt_id)
    return changed
