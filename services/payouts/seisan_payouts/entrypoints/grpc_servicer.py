"""gRPC servicer for ReimbursementPayout: protobuf in, command out, handler call, protobuf back.

Roles per RPC are declared in the proto (allowed_roles) and enforced by the shared
auth interceptor; domain errors become status codes in the shared error
interceptor. Who may see or decide which claim lives in the domain.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from typing import Any

from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan_payouts import handlers, messages
from seisan_payouts.bank_rail import BankRail, content_type
from seisan_payouts.domain.bank_transfer import AccountType
from seisan_payouts.domain.errors import InvalidRequest, WrongState
from seisan_payouts.domain.model import Actor
from seisan_payouts.domain.payouts import Rail
from seisan_payouts.domain.policy import ClaimRequestItem
from seisan_payouts.domain.ports import BankDetails, ClaimQuery, PayoutQuery
from seisan_shared.context import current_principal
from seisan_shared.protoconv import date_from_pb

CHUNK = 256 * 1024


def _actor() -> Actor:
    principal = current_principal()
    return Actor(principal.name, frozenset(principal.roles))


def _cursor(at: str, ident: str) -> str:
    return base64.urlsafe_b64encode(f"{at}|{ident}".encode()).decode()


def _after(token: str) -> tuple[str, str] | None:
    if not token:
        return None
    try:
        at, ident = base64.urlsafe_b64decode(token.encode()).decode().split("|", 1)
    except (ValueError, UnicodeDecodeError):
        raise InvalidRequest("page_token is not one this service issued") from None
    return at, ident


def _page_size(value: int) -> int:
    size = value or 50
    if not 0 < size <= 500:
        raise InvalidRequest("page_size must be between 1 and 500")
    return size


def _bank(pb: payouts_pb2.BankAccountDetails) -> BankDetails:
    try:
        account_type = AccountType(pb.account_type or "ordinary")
    except ValueError:
        raise InvalidRequest(
            f"account_type {pb.account_type!r}: one of {[t.value for t in AccountType]}"
        ) from None
    return BankDetails(
        payee_name=pb.payee_name,
        payee_name_kana=pb.payee_name_kana,
        bank_code=pb.bank_code,
        branch_code=pb.branch_code,
        account_type=account_type,
        account_number=pb.account_number,
        iban=pb.iban,
        bic=pb.bic,
    )


class ReimbursementPayoutServicer(payouts_pb2_grpc.ReimbursementPayoutServicer):
    def __init__(self, ports: handlers.PayoutsPorts, bank: BankRail | None) -> None:
        self.ports = ports
        self.bank = bank

    # -- claims -----------------------------------------------------------------------------

    async def SubmitClaim(
        self, request: payouts_pb2.SubmitClaimRequest, context: Any
    ) -> payouts_pb2.SubmitClaimResponse:
        cmd = handlers.SubmitClaim(
            actor=_actor(),
            items=[ClaimRequestItem(i.receipt_id, i.category) for i in request.items],
            description=request.description,
        )
        claim = await handlers.submit_claim(cmd, self.ports)
        return payouts_pb2.SubmitClaimResponse(claim=messages.claim_to_pb(claim))

    async def ApproveClaim(
        self, request: payouts_pb2.ApproveClaimRequest, context: Any
    ) -> payouts_pb2.ApproveClaimResponse:
        claim = await handlers.approve_claim(request.claim_id, request.note, _actor(), self.ports)
        return payouts_pb2.ApproveClaimResponse(claim=messages.claim_to_pb(claim))

    async def RejectClaim(
        self, request: payouts_pb2.RejectClaimRequest, context: Any
    ) -> payouts_pb2.RejectClaimResponse:
        claim = await handlers.reject_claim(request.claim_id, request.reason, _actor(), self.ports)
        return payouts_pb2.RejectClaimResponse(claim=messages.claim_to_pb(claim))

    async def ListClaims(
        self, request: payouts_pb2.ListClaimsRequest, context: Any
    ) -> payouts_pb2.ListClaimsResponse:
        size = _page_size(request.page_size)
        query = ClaimQuery(
            claimant=request.claimant or None,
            status=messages.CLAIM_STATUS_FROM_PB.get(request.status),
            limit=size,
            after=_after(request.page_token),
        )
        found = await handlers.list_claims(query, _actor(), self.ports)
        reply = payouts_pb2.ListClaimsResponse(claims=[messages.claim_to_pb(c) for c in found])
        if len(found) == size:
            reply.next_page_token = _cursor(found[-1].submitted_at.isoformat(), found[-1].claim_id)
        return reply

    async def GetClaim(
        self, request: payouts_pb2.GetClaimRequest, context: Any
    ) -> payouts_pb2.GetClaimResponse:
        claim = await handlers.get_claim(request.claim_id, _actor(), self.ports)
        return payouts_pb2.GetClaimResponse(claim=messages.claim_to_pb(claim))

    # -- payouts ----------------------------------------------------------------------------

    async def CreatePayoutRun(
        self, request: payouts_pb2.CreatePayoutRunRequest, context: Any
    ) -> payouts_pb2.CreatePayoutRunResponse:
        rail = messages.RAIL_FROM_PB.get(request.rail, Rail.STRIPE)
        fmt = messages.FORMAT_FROM_PB.get(request.bank_file_format)
        if rail is Rail.BANK_FILE and self.bank is None:
            raise WrongState("the bank-file rail is not configured")
        cmd = handlers.CreateRun(
            actor=_actor(),
            rail=rail,
            bank_file_format=fmt,
            execution_date=date_from_pb(request.execution_date),
            currency=request.currency,
            request_id=request.request_id,
        )
        run, payouts = await handlers.create_payout_run(cmd, self.ports)
        return payouts_pb2.CreatePayoutRunResponse(run=messages.run_to_pb(run, payouts))

    async def GetPayout(
        self, request: payouts_pb2.GetPayoutRequest, context: Any
    ) -> payouts_pb2.GetPayoutResponse:
        payout = await handlers.get_payout(request.payout_id, _actor(), self.ports)
        return payouts_pb2.GetPayoutResponse(payout=messages.payout_to_pb(payout))

    async def ListPayouts(
        self, request: payouts_pb2.ListPayoutsRequest, context: Any
    ) -> payouts_pb2.ListPayoutsResponse:
        size = _page_size(request.page_size)
        query = PayoutQuery(
            employee=request.employee or None,
            status=messages.PAYOUT_STATUS_FROM_PB.get(request.status),
            run_id=request.run_id or None,
            limit=size,
            after=_after(request.page_token),
        )
        found = await handlers.list_payouts(query, _actor(), self.ports)
        reply = payouts_pb2.ListPayoutsResponse(payouts=[messages.payout_to_pb(p) for p in found])
        if len(found) == size:
            reply.next_page_token = _cursor(found[-1].created_at.isoformat(), found[-1].payout_id)
        return reply

    async def RetryPayout(
        self, request: payouts_pb2.RetryPayoutRequest, context: Any
    ) -> payouts_pb2.RetryPayoutResponse:
        payout = await handlers.retry_payout(request.payout_id, _actor(), self.ports)
        return payouts_pb2.RetryPayoutResponse(payout=messages.payout_to_pb(payout))

    async def CancelPayout(
        self, request: payouts_pb2.CancelPayoutRequest, context: Any
    ) -> payouts_pb2.CancelPayoutResponse:
        payout = await handlers.cancel_payout(
            request.payout_id, request.reason, _actor(), self.ports
        )
        return payouts_pb2.CancelPayoutResponse(payout=messages.payout_to_pb(payout))

    # -- bank files -------------------------------------------------------------------------

    def _bank_rail(self) -> BankRail:
        if self.bank is None:
            raise WrongState("the bank-file rail is not configured")
        return self.bank

    async def GetBankFile(
        self, request: payouts_pb2.GetBankFileRequest, context: Any
    ) -> AsyncIterator[payouts_pb2.GetBankFileResponse]:
        stored = await self._bank_rail().bank_file(request.run_id, _actor())
        data = stored.content
        for offset in range(0, max(len(data), 1), CHUNK):
            first = offset == 0
            yield payouts_pb2.GetBankFileResponse(
                content_type=content_type(stored) if first else "",
                filename=stored.filename if first else "",
                chunk=data[offset : offset + CHUNK],
            )

    async def ConfirmBankFilePaid(
        self, request: payouts_pb2.ConfirmBankFilePaidRequest, context: Any
    ) -> payouts_pb2.ConfirmBankFilePaidResponse:
        payouts = await self._bank_rail().confirm_paid(
            request.run_id,
            list(request.payout_ids),
            {r.payout_id: r.reason for r in request.rejections},
            request.bank_reference,
            _actor(),
        )
        return payouts_pb2.ConfirmBankFilePaidResponse(
            payouts=[messages.payout_to_pb(p) for p in payouts]
        )

    # -- payees -----------------------------------------------------------------------------

    async def LinkPayeeAccount(
        self, request: payouts_pb2.LinkPayeeAccountRequest, context: Any
    ) -> payouts_pb2.LinkPayeeAccountResponse:
        cmd = handlers.LinkPayee(
            actor=_actor(),
            employee=request.employee,
            stripe_account_id=request.stripe_account_id,
            create_test_account=request.create_test_account,
            bank=_bank(request.bank_account) if request.HasField("bank_account") else None,
            currency=request.currency or "JPY",
        )
        account = await handlers.link_payee(cmd, self.ports)
        return payouts_pb2.LinkPayeeAccountResponse(account=messages.payee_to_pb(account))

    async def GetPayeeAccount(
        self, request: payouts_pb2.GetPayeeAccountRequest, context: Any
    ) -> payouts_pb2.GetPayeeAccountResponse:
        actor = _actor()
        account = await handlers.get_payee(request.employee or actor.name, actor, self.ports)
        return payouts_pb2.GetPayeeAccountResponse(account=messages.payee_to_pb(account))
