"""SQL (SQLAlchemy Core) implementation of the receipt repository."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_intake.domain.model import PaidWith, Receipt, Status, StoredImage
from seisan_intake.domain.ports import DuplicateKey, ReceiptQuery, ReceiptRepository

metadata = sa.MetaData()
receipts = sa.Table(
    "receipts",
    metadata,
    sa.Column("receipt_id", sa.String(36), primary_key=True),
    sa.Column("submitter", sa.String(100)),
    sa.Column("status", sa.String(20)),
    sa.Column("paid_with", sa.String(20)),
    sa.Column("note", sa.Text()),
    sa.Column("sha256", sa.String(64)),
    sa.Column("content_type", sa.String(40)),
    sa.Column("size_bytes", sa.Integer()),
    sa.Column("width", sa.Integer()),
    sa.Column("height", sa.Integer()),
    sa.Column("perceptual_hash", sa.String(32)),
    sa.Column("original_key", sa.String(200)),
    sa.Column("normalized_key", sa.String(200)),
    sa.Column("uploaded_at", sa.DateTime(timezone=True)),
    sa.Column("fields_json", sa.Text()),
    sa.Column("review_reasons_json", sa.Text()),
    sa.Column("possible_duplicate_of", sa.String(36)),
    sa.Column("ocr_text", sa.Text()),
    sa.Column("merchant", sa.String(300)),
    sa.Column("transaction_date", sa.Date()),
    sa.Column("total_minor", sa.BigInteger()),
    sa.Column("currency", sa.String(3)),
    sa.Column("version", sa.Integer()),
)


class ConcurrentUpdate(RuntimeError):
    """The row changed between read and write; the caller retries the command."""


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _row_values(r: Receipt) -> dict[str, Any]:
    return {
        "receipt_id": r.receipt_id,
        "submitter": r.submitter,
        "status": r.status.value,
        "paid_with": r.paid_with.value,
        "note": r.note,
        "sha256": r.image.sha256,
        "content_type": r.image.content_type,
        "size_bytes": r.image.size_bytes,
        "width": r.image.width,
        "height": r.image.height,
        "perceptual_hash": r.image.perceptual_hash,
        "original_key": r.image.original_key,
        "normalized_key": r.image.normalized_key,
        "uploaded_at": r.uploaded_at,
        "fields_json": json.dumps(r.fields, ensure_ascii=False, sort_keys=True),
        "review_reasons_json": json.dumps(r.review_reasons, ensure_ascii=False),
        "possible_duplicate_of": r.possible_duplicate_of,
        "ocr_text": r.ocr_text,
        "merchant": r.merchant,
        "transaction_date": r.transaction_date,
        "total_minor": r.total_minor,
        "currency": r.currency,
        "version": r.version,
    }


def _from_row(row: Any) -> Receipt:
    m = row._mapping
    return Receipt(
        receipt_id=m["receipt_id"],
        submitter=m["submitter"],
        paid_with=PaidWith(m["paid_with"]),
        note=m["note"],
        image=StoredImage(
            sha256=m["sha256"],
            content_type=m["content_type"],
            size_bytes=m["size_bytes"],
            width=m["width"],
            height=m["height"],
            perceptual_hash=m["perceptual_hash"],
            original_key=m["original_key"],
            normalized_key=m["normalized_key"],
        ),
        uploaded_at=_utc(m["uploaded_at"]),
        status=Status(m["status"]),
        fields=json.loads(m["fields_json"] or "{}"),
        review_reasons=json.loads(m["review_reasons_json"] or "[]"),
        possible_duplicate_of=m["possible_duplicate_of"] or "",
        ocr_text=m["ocr_text"] or "",
        version=m["version"],
    )


class SqlReceiptRepository(ReceiptRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, receipt: Receipt) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(receipts.insert().values(**_row_values(receipt)))
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def get(self, receipt_id: str) -> Receipt | None:
        row = (
            await self.session.execute(receipts.select().where(receipts.c.receipt_id == receipt_id))
        ).first()
        return _from_row(row) if row else None

    async def find_exact(self, submitter: str, sha256: str) -> Receipt | None:
        row = (
            await self.session.execute(
                receipts.select().where(
                    receipts.c.submitter == submitter, receipts.c.sha256 == sha256
                )
            )
        ).first()
        return _from_row(row) if row else None

    async def find_by_sha(self, sha256: str) -> list[Receipt]:
        rows = await self.session.execute(receipts.select().where(receipts.c.sha256 == sha256))
        return [_from_row(r) for r in rows]

    async def recent_hashes(self, limit: int) -> list[tuple[str, str]]:
        rows = await self.session.execute(
            sa.select(receipts.c.receipt_id, receipts.c.perceptual_hash)
            .where(receipts.c.status != "deleted")
            .order_by(receipts.c.uploaded_at.desc())
            .limit(limit)
        )
        return [(r[0], r[1]) for r in rows]

    async def update(self, receipt: Receipt) -> None:
        values = _row_values(receipt)
        values["version"] = receipt.version + 1
        result = await self.session.execute(
            receipts.update()
            .where(
                receipts.c.receipt_id == receipt.receipt_id,
                receipts.c.version == receipt.version,
            )
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(f"receipt {receipt.receipt_id} changed concurrently")
        receipt.version += 1

    async def query(self, q: ReceiptQuery) -> list[Receipt]:
        c = receipts.c
        stmt = receipts.select().where(c.status != "deleted")
        if q.submitter:
            stmt = stmt.where(c.submitter == q.submitter)
        if q.status:
            stmt = stmt.where(c.status == q.status.value)
        if q.date_from:
            stmt = stmt.where(c.transaction_date >= q.date_from)
        if q.date_to:
            stmt = stmt.where(c.transaction_date <= q.date_to)
        if q.amount_min is not None:
            stmt = stmt.where(c.total_minor >= q.amount_min)
        if q.amount_max is not None:
            stmt = stmt.where(c.total_minor <= q.amount_max)
        if q.currency:
            stmt = stmt.where(c.currency == q.currency)
        if q.merchant:
            stmt = stmt.where(sa.func.lower(c.merchant).contains(q.merchant.lower()))
        if q.after:
            at, rid = datetime.fromisoformat(q.after[0]), q.after[1]
            stmt = stmt.where(
                sa.or_(c.uploaded_at < at, sa.and_(c.uploaded_at == at, c.receipt_id < rid))
            )
        stmt = stmt.order_by(c.uploaded_at.desc(), c.receipt_id.desc()).limit(q.limit)
        return [_from_row(r) for r in await self.session.execute(stmt)]
