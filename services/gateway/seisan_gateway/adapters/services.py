"""gRPC clients of the services the web app stands on, called with the signed-in user's token.

One channel per service for the whole process; the user's bearer token goes
in each call's metadata (it wins over the channel's, see
:mod:`seisan_shared.grpc.client`), so every service decides for itself what
this person may see and do. Service refusals become :mod:`..domain.errors`
through one table.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import TypeVar

import grpc

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan.receipts.v1 import receipts_pb2, receipts_pb2_grpc
from seisan_gateway.domain import errors
from seisan_shared.grpc.client import channel
from seisan_shared.transport import ClientTls

T = TypeVar("T")

CALL_TIMEOUT = 15.0
UPLOAD_CHUNK = 256 * 1024

_ERRORS: dict[grpc.StatusCode, type[errors.GatewayError]] = {
    grpc.StatusCode.UNAUTHENTICATED: errors.NotSignedIn,
    grpc.StatusCode.PERMISSION_DENIED: errors.Forbidden,
    grpc.StatusCode.NOT_FOUND: errors.NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: errors.Refused,
    grpc.StatusCode.FAILED_PRECONDITION: errors.Refused,
    grpc.StatusCode.ALREADY_EXISTS: errors.Refused,
    grpc.StatusCode.OUT_OF_RANGE: errors.Refused,
    grpc.StatusCode.RESOURCE_EXHAUSTED: errors.Refused,
    grpc.StatusCode.UNAVAILABLE: errors.Unavailable,
    grpc.StatusCode.DEADLINE_EXCEEDED: errors.Unavailable,
}


def translate_error(exc: grpc.aio.AioRpcError) -> errors.GatewayError:
    kind = _ERRORS.get(exc.code(), errors.GatewayError)
    return kind(exc.details() or exc.code().name)


async def _call(make: Callable[[], Awaitable[T]]) -> T:
    try:
        return await make()
    except grpc.aio.AioRpcError as exc:
        raise translate_error(exc) from None


def _auth(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)


@dataclass(frozen=True)
class Addresses:
    intake: str
    cards: str
    payouts: str


class Services:
    """The three services' stubs; every method takes the caller's token first."""

    def __init__(self, channels: dict[str, grpc.aio.Channel]) -> None:
        self.intake = receipts_pb2_grpc.ReceiptIntakeStub(channels["intake"])
        self.cards = cards_pb2_grpc.CardReconciliationStub(channels["cards"])
        self.payouts = payouts_pb2_grpc.ReimbursementPayoutStub(channels["payouts"])

    @classmethod
    @contextlib.asynccontextmanager
    async def connect(
        cls, addresses: Addresses, tls: ClientTls | None = None
    ) -> AsyncIterator[Services]:
        channels = {
            "intake": channel(addresses.intake, None, tls=tls),
            "cards": channel(addresses.cards, None, tls=tls),
            "payouts": channel(addresses.payouts, None, tls=tls),
        }
        try:
            yield cls(channels)
        finally:
            for ch in channels.values():
                await ch.close()

    # -- receipts --------------------------------------------------------------------------

    async def upload_receipt(
        self, token: str, data: bytes, *, filename: str, personal: bool, note: str = ""
    ) -> receipts_pb2.UploadReceiptResponse:
        paid_with = (
            receipts_pb2.PAID_WITH_PERSONAL if personal else receipts_pb2.PAID_WITH_COMPANY_CARD
        )

        async def parts() -> AsyncIterator[receipts_pb2.UploadReceiptRequest]:
            yield receipts_pb2.UploadReceiptRequest(
                metadata=receipts_pb2.UploadMetadata(
                    paid_with=paid_with, note=note, filename=filename
                )
            )
            for start in range(0, len(data), UPLOAD_CHUNK):
                yield receipts_pb2.UploadReceiptRequest(chunk=data[start : start + UPLOAD_CHUNK])

        return await _call(
            lambda: self.intake.UploadReceipt(parts(), metadata=_auth(token), timeout=60)
        )

    async def get_receipt(self, token: str, receipt_id: str) -> receipts_pb2.Receipt:
        request = receipts_pb2.GetReceiptRequest(receipt_id=receipt_id)
        reply = await _call(
            lambda: self.intake.GetReceipt(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.receipt

    async def list_receipts(
        self,
        token: str,
        *,
        status: int = 0,
        submitter: str = "",
        limit: int = 1000,
    ) -> list[receipts_pb2.Receipt]:
        """Newest first, following pages up to ``limit`` receipts."""
        found: list[receipts_pb2.Receipt] = []
        page_token = ""
        while True:
            request = receipts_pb2.ListReceiptsRequest(
                status=status,  # type: ignore[arg-type]
                submitter=submitter,
                page_size=min(200, limit),
                page_token=page_token,
            )
            reply = await _call(
                lambda request=request: self.intake.ListReceipts(  # type: ignore[misc]
                    request, metadata=_auth(token), timeout=CALL_TIMEOUT
                )
            )
            found.extend(reply.receipts)
            page_token = reply.next_page_token
            if not page_token or len(found) >= limit:
                return found[:limit]

    async def receipt_image(self, token: str, receipt_id: str) -> tuple[str, bytes]:
        request = receipts_pb2.GetReceiptImageRequest(receipt_id=receipt_id)

        async def fetch() -> tuple[str, bytes]:
            content_type, chunks = "image/jpeg", []
            call = self.intake.GetReceiptImage(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
            async for part in call:
                if part.content_type:
                    content_type = part.content_type
                chunks.append(part.chunk)
            return content_type, b"".join(chunks)

        return await _call(fetch)

    async def correct_receipt(
        self, token: str, receipt_id: str, fields: receipts_pb2.ReceiptFields, reason: str
    ) -> receipts_pb2.Receipt:
        request = receipts_pb2.CorrectReceiptRequest(
            receipt_id=receipt_id, fields=fields, reason=reason
        )
        reply = await _call(
            lambda: self.intake.CorrectReceipt(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.receipt

    # -- cards -----------------------------------------------------------------------------

    async def list_charges(
        self, token: str, *, status: int = 0, statement_id: str = "", cardholder: str = ""
    ) -> cards_pb2.ListChargesResponse:
        charges: list[cards_pb2.CardCharge] = []
        matches: dict[str, cards_pb2.Match] = {}
        page_token = ""
        while True:
            request = cards_pb2.ListChargesRequest(
                status=status,  # type: ignore[arg-type]
                statement_id=statement_id,
                cardholder=cardholder,
                page_size=500,
                page_token=page_token,
            )
            reply = await _call(
                lambda request=request: self.cards.ListCharges(  # type: ignore[misc]
                    request, metadata=_auth(token), timeout=CALL_TIMEOUT
                )
            )
            charges.extend(reply.charges)
            matches.update({m.match_id: m for m in reply.matches})
            page_token = reply.next_page_token
            if not page_token or len(charges) >= 5000:
                break
        return cards_pb2.ListChargesResponse(charges=charges, matches=list(matches.values()))

    async def reconciliation_report(
        self, token: str, statement_id: str = ""
    ) -> cards_pb2.ReconciliationReport:
        request = cards_pb2.GetReconciliationReportRequest(statement_id=statement_id)
        reply = await _call(
            lambda: self.cards.GetReconciliationReport(
                request, metadata=_auth(token), timeout=CALL_TIMEOUT
            )
        )
        return reply.report

    async def import_statement(
        self, token: str, data: bytes, filename: str
    ) -> cards_pb2.ImportStatementResponse:
        async def parts() -> AsyncIterator[cards_pb2.ImportStatementRequest]:
            # Format unspecified: the service detects CSV, OFX, VCF, CDF and GL1025 by content.
            yield cards_pb2.ImportStatementRequest(
                metadata=cards_pb2.ImportStatementMetadata(filename=filename)
            )
            for start in range(0, len(data), UPLOAD_CHUNK):
                yield cards_pb2.ImportStatementRequest(chunk=data[start : start + UPLOAD_CHUNK])

        return await _call(
            lambda: self.cards.ImportStatement(parts(), metadata=_auth(token), timeout=120)
        )

    async def request_missing(
        self, token: str, statement_id: str
    ) -> list[cards_pb2.MissingReceiptRequest]:
        request = cards_pb2.RequestMissingReceiptsRequest(statement_id=statement_id)
        reply = await _call(
            lambda: self.cards.RequestMissingReceipts(
                request, metadata=_auth(token), timeout=CALL_TIMEOUT
            )
        )
        return list(reply.requests)

    async def confirm_match(self, token: str, match_id: str) -> cards_pb2.Match:
        request = cards_pb2.ConfirmMatchRequest(match_id=match_id)
        reply = await _call(
            lambda: self.cards.ConfirmMatch(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.match

    async def reject_match(self, token: str, match_id: str, reason: str) -> cards_pb2.Match:
        request = cards_pb2.RejectMatchRequest(match_id=match_id, reason=reason)
        reply = await _call(
            lambda: self.cards.RejectMatch(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.match

    async def manual_match(
        self, token: str, charge_ids: Iterable[str], receipt_ids: Iterable[str], reason: str
    ) -> cards_pb2.Match:
        request = cards_pb2.ManualMatchRequest(
            charge_ids=list(charge_ids), receipt_ids=list(receipt_ids), reason=reason
        )
        reply = await _call(
            lambda: self.cards.ManualMatch(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.match

    async def declare_missing(
        self, token: str, charge_id: str, description: str, purpose: str, attest: bool
    ) -> cards_pb2.DeclareMissingReceiptResponse:
        request = cards_pb2.DeclareMissingReceiptRequest(
            charge_id=charge_id, description=description, business_purpose=purpose, attest=attest
        )
        return await _call(
            lambda: self.cards.DeclareMissingReceipt(
                request, metadata=_auth(token), timeout=CALL_TIMEOUT
            )
        )

    # -- claims and payouts -------------------------------------------------------------------

    async def submit_claim(
        self, token: str, items: list[tuple[str, str]], description: str
    ) -> payouts_pb2.Claim:
        request = payouts_pb2.SubmitClaimRequest(
            items=[payouts_pb2.ClaimItem(receipt_id=r, category=c) for r, c in items],
            description=description,
        )
        reply = await _call(
            lambda: self.payouts.SubmitClaim(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.claim

    async def list_claims(self, token: str, *, status: int = 0) -> list[payouts_pb2.Claim]:
        request = payouts_pb2.ListClaimsRequest(status=status, page_size=200)  # type: ignore[arg-type]
        reply = await _call(
            lambda: self.payouts.ListClaims(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return list(reply.claims)

    async def get_claim(self, token: str, claim_id: str) -> payouts_pb2.Claim:
        request = payouts_pb2.GetClaimRequest(claim_id=claim_id)
        reply = await _call(
            lambda: self.payouts.GetClaim(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.claim

    async def approve_claim(self, token: str, claim_id: str, note: str) -> payouts_pb2.Claim:
        request = payouts_pb2.ApproveClaimRequest(claim_id=claim_id, note=note)
        reply = await _call(
            lambda: self.payouts.ApproveClaim(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.claim

    async def reject_claim(self, token: str, claim_id: str, reason: str) -> payouts_pb2.Claim:
        request = payouts_pb2.RejectClaimRequest(claim_id=claim_id, reason=reason)
        reply = await _call(
            lambda: self.payouts.RejectClaim(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return reply.claim

    async def list_payouts(self, token: str) -> list[payouts_pb2.Payout]:
        request = payouts_pb2.ListPayoutsRequest(page_size=500)
        reply = await _call(
            lambda: self.payouts.ListPayouts(request, metadata=_auth(token), timeout=CALL_TIMEOUT)
        )
        return list(reply.payouts)

    async def link_test_account(self, token: str, employee: str) -> payouts_pb2.PayeeAccount:
        request = payouts_pb2.LinkPayeeAccountRequest(employee=employee, create_test_account=True)
        reply = await _call(
            lambda: self.payouts.LinkPayeeAccount(request, metadata=_auth(token), timeout=60)
        )
        return reply.account

    async def create_payout_run(self, token: str, request_id: str) -> payouts_pb2.PayoutRun:
        request = payouts_pb2.CreatePayoutRunRequest(
            rail=payouts_pb2.PAYOUT_RAIL_STRIPE, request_id=request_id
        )
        reply = await _call(
            lambda: self.payouts.CreatePayoutRun(request, metadata=_auth(token), timeout=60)
        )
        return reply.run
