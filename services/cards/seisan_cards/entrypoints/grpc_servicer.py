"""gRPC servicer for CardReconciliation: protobuf in, command out, handler call, protobuf back.

Roles per RPC are declared in the proto (allowed_roles) and enforced by the shared auth
interceptor; domain errors become status codes in the shared error interceptor.
Ownership rules (staff see and declare only their own charges) live in the domain.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from datetime import date
from typing import Any

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan_cards import handlers, messages
from seisan_cards.domain.errors import InvalidRequest, StatementTooLarge
from seisan_cards.domain.model import Actor
from seisan_cards.domain.ports import ChargeQuery
from seisan_shared.context import current_principal
from seisan_shared.protoconv import date_from_pb

CHUNK = 256 * 1024
MAX_PAGE = 1000
_JOURNAL_FORMATS = {
    cards_pb2.JOURNAL_FORMAT_UNSPECIFIED: "csv",
    cards_pb2.JOURNAL_FORMAT_CSV: "csv",
    cards_pb2.JOURNAL_FORMAT_JSON: "json",
}
_CONTENT_TYPES = {"csv": "text/csv; charset=utf-8", "json": "application/json"}


def _actor() -> Actor:
    principal = current_principal()
    return Actor(principal.name, frozenset(principal.roles))


def _encode_cursor(day: str, charge_id: str) -> str:
    return base64.urlsafe_b64encode(f"{day}|{charge_id}".encode()).decode()


def _decode_cursor(token: str) -> tuple[str, str]:
    try:
        day, charge_id = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
        date.fromisoformat(day)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("page_token is not one this service issued") from None
    return day, charge_id


def _date(value: Any, name: str) -> Any:
    try:
        return date_from_pb(value)
    except ValueError:
        raise InvalidRequest(f"{name} is not a calendar date") from None


class CardReconciliationServicer(cards_pb2_grpc.CardReconciliationServicer):
    def __init__(self, ports: handlers.CardsPorts) -> None:
        self.ports = ports

    async def ImportStatement(
        self, request_iterator: AsyncIterator[cards_pb2.ImportStatementRequest], context: Any
    ) -> cards_pb2.ImportStatementResponse:
        actor = _actor()
        metadata: cards_pb2.ImportStatementMetadata | None = None
        chunks: list[bytes] = []
        size = 0
        limit = self.ports.max_statement_bytes
        async for part in request_iterator:
            if part.HasField("metadata"):
                if metadata is not None or chunks:
                    raise InvalidRequest("metadata must be the first and only metadata message")
                metadata = part.metadata
            elif part.HasField("chunk"):
                size += len(part.chunk)
                if size > limit:
                    raise StatementTooLarge(
                        f"statement too large: more than {limit:,} bytes (the configured limit)"
                    )
                chunks.append(part.chunk)
        metadata = metadata or cards_pb2.ImportStatementMetadata()
        if metadata.format == cards_pb2.STATEMENT_FORMAT_STRIPE_ISSUING:
            raise InvalidRequest(
                "Stripe Issuing charges arrive by webhook; they are not a statement file"
            )
        fmt = messages.FORMAT_FROM_PB.get(metadata.format)
        if metadata.format and fmt is None:
            raise InvalidRequest(f"unknown statement format {metadata.format}")
        result = await handlers.import_statement(
            handlers.ImportStatement(
                actor=actor, data=b"".join(chunks), fmt=fmt, filename=metadata.filename
            ),
            self.ports,
        )
        return cards_pb2.ImportStatementResponse(
            statement=messages.statement_to_pb(result.statement),
            imported_count=result.imported,
            duplicate_count=result.duplicates,
            already_imported=result.already_imported,
        )

    async def ListCharges(
        self, request: cards_pb2.ListChargesRequest, context: Any
    ) -> cards_pb2.ListChargesResponse:
        page_size = request.page_size or 100
        if not 0 < page_size <= MAX_PAGE:
            raise InvalidRequest(f"page_size must be between 1 and {MAX_PAGE}")
        status = None
        if request.status:
            status = messages.CHARGE_STATUS_FROM_PB.get(request.status)
            if status is None:
                raise InvalidRequest(f"unknown charge status {request.status}")
        query = ChargeQuery(
            status=status,
            cardholder=request.cardholder or None,
            date_from=_date(request.period_start, "period_start"),
            date_to=_date(request.period_end, "period_end"),
            statement_id=request.statement_id or None,
            limit=page_size,
            after=_decode_cursor(request.page_token) if request.page_token else None,
        )
        found, matches = await handlers.list_charges(query, _actor(), self.ports)
        reply = cards_pb2.ListChargesResponse(
            charges=[messages.charge_to_pb(r) for r in found],
            matches=[messages.match_to_pb(matches[m]) for m in sorted(matches)],
        )
        if len(found) == page_size:
            last = found[-1]
            reply.next_page_token = _encode_cursor(
                last.charge.transaction_date.isoformat(), last.charge_id
            )
        return reply

    async def GetReconciliationReport(
        self, request: cards_pb2.GetReconciliationReportRequest, context: Any
    ) -> cards_pb2.GetReconciliationReportResponse:
        report = await handlers.reconciliation_report(
            handlers.ReportQuery(
                statement_id=request.statement_id or None,
                period_start=_date(request.period_start, "period_start"),
                period_end=_date(request.period_end, "period_end"),
                cardholder=request.cardholder or None,
            ),
            self.ports,
        )
        return cards_pb2.GetReconciliationReportResponse(report=messages.report_to_pb(report))

    async def ConfirmMatch(
        self, request: cards_pb2.ConfirmMatchRequest, context: Any
    ) -> cards_pb2.ConfirmMatchResponse:
        match = await handlers.confirm_match(request.match_id, _actor(), self.ports)
        return cards_pb2.ConfirmMatchResponse(match=messages.match_to_pb(match))

    async def RejectMatch(
        self, request: cards_pb2.RejectMatchRequest, context: Any
    ) -> cards_pb2.RejectMatchResponse:
        match = await handlers.reject_match(request.match_id, request.reason, _actor(), self.ports)
        return cards_pb2.RejectMatchResponse(match=messages.match_to_pb(match))

    async def ManualMatch(
        self, request: cards_pb2.ManualMatchRequest, context: Any
    ) -> cards_pb2.ManualMatchResponse:
        match = await handlers.manual_match(
            list(request.charge_ids),
            list(request.receipt_ids),
            request.reason,
            _actor(),
            self.ports,
        )
        return cards_pb2.ManualMatchResponse(match=messages.match_to_pb(match))

    async def Unmatch(
        self, request: cards_pb2.UnmatchRequest, context: Any
    ) -> cards_pb2.UnmatchResponse:
        match = await handlers.unmatch(request.match_id, request.reason, _actor(), self.ports)
        return cards_pb2.UnmatchResponse(match=messages.match_to_pb(match))

    async def RequestMissingReceipts(
        self, request: cards_pb2.RequestMissingReceiptsRequest, context: Any
    ) -> cards_pb2.RequestMissingReceiptsResponse:
        requests = await handlers.request_missing_receipts(
            request.statement_id or None,
            request.cardholder or None,
            _date(request.due_date, "due_date"),
            request.message,
            _actor(),
            self.ports,
        )
        return cards_pb2.RequestMissingReceiptsResponse(
            requests=[
                cards_pb2.MissingReceiptRequest(
                    request_id=r.request_id, cardholder=r.cardholder, charge_ids=list(r.charge_ids)
                )
                for r in requests
            ]
        )

    async def DeclareMissingReceipt(
        self, request: cards_pb2.DeclareMissingReceiptRequest, context: Any
    ) -> cards_pb2.DeclareMissingReceiptResponse:
        declaration, record = await handlers.declare_missing_receipt(
            request.charge_id,
            request.description,
            request.business_purpose,
            request.attest,
            _actor(),
            self.ports,
        )
        return cards_pb2.DeclareMissingReceiptResponse(
            declaration=messages.declaration_to_pb(declaration),
            charge=messages.charge_to_pb(record),
        )

    async def ExportJournal(
        self, request: cards_pb2.ExportJournalRequest, context: Any
    ) -> AsyncIterator[cards_pb2.ExportJournalResponse]:
        fmt = _JOURNAL_FORMATS.get(request.format)
        if fmt is None:
            raise InvalidRequest(f"unknown journal format {request.format}")
        data = await handlers.export_journal(
            _date(request.period_start, "period_start"),
            _date(request.period_end, "period_end"),
            fmt,
            self.ports,
        )
        for offset in range(0, max(len(data), 1), CHUNK):
            yield cards_pb2.ExportJournalResponse(
                content_type=_CONTENT_TYPES[fmt] if offset == 0 else "",
                chunk=data[offset : offset + CHUNK],
            )
