"""gRPC servicer for ReceiptIntake: protobuf in, command out, handler call, protobuf back.

Roles per RPC are declared in the proto (allowed_roles) and enforced by the
shared auth interceptor; domain errors become status codes in the shared
error interceptor. Ownership rules live in the domain.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_intake import handlers, messages
from seisan_intake.domain.errors import ImageRejected, InvalidCorrection
from seisan_intake.domain.model import Actor, PaidWith
from seisan_intake.domain.ports import ReceiptQuery
from seisan_shared.context import current_principal

CHUNK = 256 * 1024


def _actor() -> Actor:
    principal = current_principal()
    return Actor(principal.name, frozenset(principal.roles))


def _encode_cursor(uploaded_at: str, receipt_id: str) -> str:
    return base64.urlsafe_b64encode(f"{uploaded_at}|{receipt_id}".encode()).decode()


def _decode_cursor(token: str) -> tuple[str, str]:
    try:
        at, rid = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidCorrection("page_token is not one this service issued") from None
    return at, rid


class ReceiptIntakeServicer(receipts_pb2_grpc.ReceiptIntakeServicer):
    def __init__(self, ports: handlers.IntakePorts, *, max_upload_bytes: int) -> None:
        self.ports = ports
        self.max_upload_bytes = max_upload_bytes

    async def UploadReceipt(
        self, request_iterator: AsyncIterator[receipts_pb2.UploadReceiptRequest], context: Any
    ) -> receipts_pb2.UploadReceiptResponse:
        actor = _actor()
        metadata: receipts_pb2.UploadMetadata | None = None
        chunks: list[bytes] = []
        size = 0
        async for part in request_iterator:
            if part.HasField("metadata"):
                if metadata is not None or chunks:
                    raise ImageRejected("metadata must be the first and only metadata message")
                metadata = part.metadata
            elif part.HasField("chunk"):
                size += len(part.chunk)
                if size > self.max_upload_bytes:
                    raise ImageRejected(
                        f"upload too large: more than {self.max_upload_bytes:,} bytes "
                        f"(the configured limit)"
                    )
                chunks.append(part.chunk)
        if metadata is None:
            metadata = receipts_pb2.UploadMetadata()
        cmd = handlers.UploadReceipt(
            actor=actor,
            data=b"".join(chunks),
            paid_with=messages.PAID_WITH_FROM_PB.get(metadata.paid_with, PaidWith.UNSPECIFIED),
            note=metadata.note,
        )
        result = await handlers.upload_receipt(cmd, self.ports)
        return receipts_pb2.UploadReceiptResponse(
            receipt_id=result.receipt.receipt_id,
            duplicate=result.duplicate,
            status=messages.STATUS_TO_PB[result.receipt.status],
        )

    async def GetReceipt(
        self, request: receipts_pb2.GetReceiptRequest, context: Any
    ) -> receipts_pb2.GetReceiptResponse:
        receipt = await handlers.get_receipt(request.receipt_id, _actor(), self.ports)
        return receipts_pb2.GetReceiptResponse(receipt=messages.receipt_to_pb(receipt))

    async def ListReceipts(
        self, request: receipts_pb2.ListReceiptsRequest, context: Any
    ) -> receipts_pb2.ListReceiptsResponse:
        page_size = request.page_size or 50
        if not 0 < page_size <= 500:
            raise InvalidCorrection("page_size must be between 1 and 500")
        query = ReceiptQuery(
            submitter=request.submitter or None,
            status=messages.STATUS_FROM_PB.get(request.status),
            date_from=messages.date_from_pb(request.date_from),
            date_to=messages.date_from_pb(request.date_to),
            amount_min=request.amount_min or None,
            amount_max=request.amount_max or None,
            currency=request.currency or None,
            merchant=request.merchant or None,
            limit=page_size,
            after=_decode_cursor(request.page_token) if request.page_token else None,
        )
        found = await handlers.run_query(query, _actor(), self.ports)
        reply = receipts_pb2.ListReceiptsResponse(
            receipts=[messages.receipt_to_pb(r) for r in found]
        )
        if len(found) == page_size:
            last = found[-1]
            reply.next_page_token = _encode_cursor(last.uploaded_at.isoformat(), last.receipt_id)
        return reply

    async def GetReceiptImage(
        self, request: receipts_pb2.GetReceiptImageRequest, context: Any
    ) -> AsyncIterator[receipts_pb2.GetReceiptImageResponse]:
        original = request.variant == receipts_pb2.IMAGE_VARIANT_ORIGINAL
        content_type, data = await handlers.read_image(
            request.receipt_id, original, _actor(), self.ports
        )
        for offset in range(0, max(len(data), 1), CHUNK):
            yield receipts_pb2.GetReceiptImageResponse(
                content_type=content_type if offset == 0 else "",
                chunk=data[offset : offset + CHUNK],
            )

    async def CorrectReceipt(
        self, request: receipts_pb2.CorrectReceiptRequest, context: Any
    ) -> receipts_pb2.CorrectReceiptResponse:
        changes = messages.fields_from_pb(request.fields)
        receipt = await handlers.correct_receipt(
            request.receipt_id, changes, request.reason, _actor(), self.ports
        )
        return receipts_pb2.CorrectReceiptResponse(receipt=messages.receipt_to_pb(receipt))

    async def DeleteReceipt(
        self, request: receipts_pb2.DeleteReceiptRequest, context: Any
    ) -> receipts_pb2.DeleteReceiptResponse:
        await handlers.delete_receipt(request.receipt_id, request.reason, _actor(), self.ports)
        return receipts_pb2.DeleteReceiptResponse()
