"""Translation between the domain (plain data) and protobuf messages, at the edges only."""

from __future__ import annotations

from datetime import date
from typing import Any

from seisan.receipts.v1 import events_pb2, receipts_pb2
from seisan_intake.domain.model import PaidWith, Receipt, Status
from seisan_shared.protoconv import date_from_pb, date_to_pb

STATUS_TO_PB = {
    Status.PROCESSING: receipts_pb2.RECEIPT_STATUS_PROCESSING,
    Status.EXTRACTED: receipts_pb2.RECEIPT_STATUS_EXTRACTED,
    Status.NEEDS_REVIEW: receipts_pb2.RECEIPT_STATUS_NEEDS_REVIEW,
    Status.MATCHED: receipts_pb2.RECEIPT_STATUS_MATCHED,
    Status.CLAIMED: receipts_pb2.RECEIPT_STATUS_CLAIMED,
    Status.DELETED: receipts_pb2.RECEIPT_STATUS_DELETED,
}
STATUS_FROM_PB = {v: k for k, v in STATUS_TO_PB.items()}
PAID_WITH_TO_PB = {
    PaidWith.UNSPECIFIED: receipts_pb2.PAID_WITH_UNSPECIFIED,
    PaidWith.COMPANY_CARD: receipts_pb2.PAID_WITH_COMPANY_CARD,
    PaidWith.PERSONAL: receipts_pb2.PAID_WITH_PERSONAL,
}
PAID_WITH_FROM_PB = {v: k for k, v in PAID_WITH_TO_PB.items()}
PAYMENT_TO_PB = {
    "card": receipts_pb2.PAYMENT_METHOD_CARD,
    "cash": receipts_pb2.PAYMENT_METHOD_CASH,
    "electronic": receipts_pb2.PAYMENT_METHOD_ELECTRONIC,
    "other": receipts_pb2.PAYMENT_METHOD_OTHER,
}
PAYMENT_FROM_PB = {v: k for k, v in PAYMENT_TO_PB.items()}
TEXT_FIELDS = ("merchant", "currency", "card_last4", "invoice_number", "address")
MONEY_FIELDS = ("total", "subtotal", "tax", "tip")


def fields_to_pb(fields: dict[str, Any]) -> receipts_pb2.ReceiptFields:
    pb = receipts_pb2.ReceiptFields()
    for name in TEXT_FIELDS:
        if name in fields and fields[name].get("value"):
            target = getattr(pb, name)
            target.value = str(fields[name]["value"])
            target.confidence = float(fields[name].get("confidence", 0.0))
    for name in MONEY_FIELDS:
        if name in fields and fields[name].get("minor_units") is not None:
            money = getattr(pb, name)
            money.amount.minor_units = int(fields[name]["minor_units"])
            money.amount.currency = str(fields[name]["currency"])
            money.confidence = float(fields[name].get("confidence", 0.0))
    td = fields.get("transaction_date")
    if td and td.get("value"):
        pb.transaction_date.date.CopyFrom(date_to_pb(date.fromisoformat(td["value"])))
        pb.transaction_date.time = td.get("time") or ""
        pb.transaction_date.confidence = float(td.get("confidence", 0.0))
    pm = fields.get("payment_method")
    if pm and pm.get("value") in PAYMENT_TO_PB:
        pb.payment_method = PAYMENT_TO_PB[pm["value"]]
        pb.payment_method_confidence = float(pm.get("confidence", 0.0))
    return pb


def fields_from_pb(pb: receipts_pb2.ReceiptFields) -> dict[str, Any]:
    """Only the fields set in ``pb`` (a correction names just what it changes)."""
    out: dict[str, Any] = {}
    for name in TEXT_FIELDS:
        if pb.HasField(name):  # type: ignore[arg-type]
            out[name] = {"value": getattr(pb, name).value}
    for name in MONEY_FIELDS:
        if pb.HasField(name):  # type: ignore[arg-type]
            money = getattr(pb, name).amount
            out[name] = {"minor_units": money.minor_units, "currency": money.currency}
    if pb.HasField("transaction_date"):
        d = date_from_pb(pb.transaction_date.date)
        out["transaction_date"] = {
            "value": d.isoformat() if d else "",
            "time": pb.transaction_date.time,
        }
    if pb.payment_method:
        out["payment_method"] = {"value": PAYMENT_FROM_PB.get(pb.payment_method, "other")}
    return out


def receipt_to_pb(r: Receipt) -> receipts_pb2.Receipt:
    pb = receipts_pb2.Receipt(
        receipt_id=r.receipt_id,
        submitter=r.submitter,
        status=STATUS_TO_PB[r.status],
        paid_with=PAID_WITH_TO_PB[r.paid_with],
        note=r.note,
        fields=fields_to_pb(r.fields),
        sha256=r.image.sha256,
        content_type=r.image.content_type,
        width=r.image.width,
        height=r.image.height,
        possible_duplicate_of=r.possible_duplicate_of,
        review_reasons=r.review_reasons,
        ocr_text=r.ocr_text,
    )
    pb.uploaded_at.FromDatetime(r.uploaded_at)
    return pb


def captured_event(r: Receipt) -> events_pb2.ReceiptCaptured:
    return events_pb2.ReceiptCaptured(
        receipt_id=r.receipt_id,
        submitter=r.submitter,
        paid_with=PAID_WITH_TO_PB[r.paid_with],
        note=r.note,
        sha256=r.image.sha256,
        image_ref=r.image.normalized_key,
        original_ref=r.image.original_key,
        content_type=r.image.content_type,
        size_bytes=r.image.size_bytes,
        width=r.image.width,
        height=r.image.height,
        possible_duplicate_of=r.possible_duplicate_of,
    )
