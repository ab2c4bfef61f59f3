"""Translation between the domain (plain data) and protobuf messages, at the edges only."""

from __future__ import annotations

from datetime import datetime

from seisan.payouts.v1 import events_pb2, payouts_pb2
from seisan_payouts.domain.model import Claim, ClaimStatus, PolicyFinding, Rule, Severity
from seisan_payouts.domain.payouts import BankFileFormat, Payout, PayoutRun, PayoutStatus, Rail
from seisan_payouts.domain.ports import BankDetails, PayeeAccount
from seisan_shared.protoconv import date_to_pb as date_pb
from seisan_shared.protoconv import money_to_pb as money_pb

CLAIM_STATUS_TO_PB = {
    ClaimStatus.SUBMITTED: payouts_pb2.CLAIM_STATUS_SUBMITTED,
    ClaimStatus.APPROVED: payouts_pb2.CLAIM_STATUS_APPROVED,
    ClaimStatus.REJECTED: payouts_pb2.CLAIM_STATUS_REJECTED,
    ClaimStatus.PAYOUT_PENDING: payouts_pb2.CLAIM_STATUS_PAYOUT_PENDING,
    ClaimStatus.PAID: payouts_pb2.CLAIM_STATUS_PAID,
}
CLAIM_STATUS_FROM_PB = {v: k for k, v in CLAIM_STATUS_TO_PB.items()}
RULE_TO_PB = {
    Rule.MATCHED_TO_CARD: payouts_pb2.POLICY_RULE_MATCHED_TO_CARD,
    Rule.DUPLICATE_CLAIM: payouts_pb2.POLICY_RULE_DUPLICATE_CLAIM,
    Rule.CATEGORY_LIMIT: payouts_pb2.POLICY_RULE_CATEGORY_LIMIT,
    Rule.RECEIPT_TOO_OLD: payouts_pb2.POLICY_RULE_RECEIPT_TOO_OLD,
    Rule.CURRENCY_NOT_SUPPORTED: payouts_pb2.POLICY_RULE_CURRENCY_NOT_SUPPORTED,
    Rule.RECEIPT_NOT_ELIGIBLE: payouts_pb2.POLICY_RULE_RECEIPT_NOT_ELIGIBLE,
}
SEVERITY_TO_PB = {
    Severity.WARNING: payouts_pb2.FINDING_SEVERITY_WARNING,
    Severity.BLOCKING: payouts_pb2.FINDING_SEVERITY_BLOCKING,
}
# The proto shows the rail-facing states; "transferred" is still being handed over.
PAYOUT_STATUS_TO_PB = {
    PayoutStatus.CREATED: payouts_pb2.PAYOUT_STATUS_CREATED,
    PayoutStatus.SENDING: payouts_pb2.PAYOUT_STATUS_SENDING,
    PayoutStatus.TRANSFERRED: payouts_pb2.PAYOUT_STATUS_SENDING,
    PayoutStatus.SENT: payouts_pb2.PAYOUT_STATUS_SENT,
    PayoutStatus.RETURNING: payouts_pb2.PAYOUT_STATUS_RETURNING,
    PayoutStatus.PAID: payouts_pb2.PAYOUT_STATUS_PAID,
    PayoutStatus.FAILED: payouts_pb2.PAYOUT_STATUS_FAILED,
    PayoutStatus.CANCELLED: payouts_pb2.PAYOUT_STATUS_CANCELLED,
}
PAYOUT_STATUS_FROM_PB = {
    payouts_pb2.PAYOUT_STATUS_CREATED: PayoutStatus.CREATED,
    payouts_pb2.PAYOUT_STATUS_SENDING: PayoutStatus.SENDING,
    payouts_pb2.PAYOUT_STATUS_SENT: PayoutStatus.SENT,
    payouts_pb2.PAYOUT_STATUS_RETURNING: PayoutStatus.RETURNING,
    payouts_pb2.PAYOUT_STATUS_PAID: PayoutStatus.PAID,
    payouts_pb2.PAYOUT_STATUS_FAILED: PayoutStatus.FAILED,
    payouts_pb2.PAYOUT_STATUS_CANCELLED: PayoutStatus.CANCELLED,
}
RAIL_TO_PB = {
    Rail.STRIPE: payouts_pb2.PAYOUT_RAIL_STRIPE,
    Rail.BANK_FILE: payouts_pb2.PAYOUT_RAIL_BANK_FILE,
}
RAIL_FROM_PB = {v: k for k, v in RAIL_TO_PB.items()}
FORMAT_TO_PB = {
    BankFileFormat.ZENGIN: payouts_pb2.BANK_FILE_FORMAT_ZENGIN,
    BankFileFormat.PAIN_001: payouts_pb2.BANK_FILE_FORMAT_PAIN_001,
}
FORMAT_FROM_PB = {v: k for k, v in FORMAT_TO_PB.items()}


def _stamp(target: object, value: datetime | None) -> None:
    if value is not None:
        target.FromDatetime(value)  # type: ignore[attr-defined]


def finding_to_pb(f: PolicyFinding) -> payouts_pb2.PolicyFinding:
    return payouts_pb2.PolicyFinding(
        rule=RULE_TO_PB[f.rule],
        severity=SEVERITY_TO_PB[f.severity],
        receipt_id=f.receipt_id,
        message=f.message,
    )


def claim_to_pb(c: Claim) -> payouts_pb2.Claim:
    pb = payouts_pb2.Claim(
        claim_id=c.claim_id,
        claimant=c.claimant,
        status=CLAIM_STATUS_TO_PB[c.status],
        total=money_pb(c.total),
        description=c.description,
        findings=[finding_to_pb(f) for f in c.findings],
        decided_by=c.decided_by,
        rejection_reason=c.rejection_reason,
        payout_id=c.payout_id,
        payout_failure_reason=c.payout_failure_reason,
    )
    for line in c.lines:
        pb.lines.add(
            receipt_id=line.receipt_id,
            amount=money_pb(line.amount),
            category=line.category,
            merchant=line.merchant,
            transaction_date=date_pb(line.transaction_date),
        )
    _stamp(pb.submitted_at, c.submitted_at)
    _stamp(pb.decided_at, c.decided_at)
    return pb


def payout_to_pb(p: Payout) -> payouts_pb2.Payout:
    pb = payouts_pb2.Payout(
        payout_id=p.payout_id,
        run_id=p.run_id,
        employee=p.employee,
        amount=money_pb(p.amount),
        claim_ids=p.claim_ids,
        rail=RAIL_TO_PB[p.rail],
        status=PAYOUT_STATUS_TO_PB[p.status],
        external_reference=external_reference(p),
        failure_reason=p.failure_reason,
        attempts=p.attempt,
        stripe_transfer_id=p.transfer_id,
        stripe_payout_id=p.stripe_payout_id,
        destination_account=p.destination_account,
    )
    _stamp(pb.created_at, p.created_at)
    _stamp(pb.sent_at, p.sent_at)
    _stamp(pb.settled_at, p.settled_at)
    return pb


def external_reference(p: Payout) -> str:
    if p.rail is Rail.BANK_FILE:
        return p.bank_reference
    return p.stripe_payout_id or p.transfer_id


def run_to_pb(run: PayoutRun, payouts: list[Payout]) -> payouts_pb2.PayoutRun:
    pb = payouts_pb2.PayoutRun(
        run_id=run.run_id,
        rail=RAIL_TO_PB[run.rail],
        payouts=[payout_to_pb(p) for p in payouts],
        created_by=run.created_by,
        notes=run.notes,
        currency=run.currency,
    )
    if run.bank_file_format is not None:
        pb.bank_file_format = FORMAT_TO_PB[run.bank_file_format]
    if run.execution_date is not None:
        pb.execution_date.CopyFrom(date_pb(run.execution_date))
    _stamp(pb.created_at, run.created_at)
    return pb


def mask_account_number(number: str) -> str:
    return "****" + number[-3:] if number else ""


def bank_to_pb(bank: BankDetails | None) -> payouts_pb2.BankAccountDetails:
    if bank is None:
        return payouts_pb2.BankAccountDetails()
    return payouts_pb2.BankAccountDetails(
        payee_name=bank.payee_name,
        payee_name_kana=bank.payee_name_kana,
        bank_code=bank.bank_code,
        branch_code=bank.branch_code,
        account_type=bank.account_type.value,
        account_number=mask_account_number(bank.account_number),
        iban=("****" + bank.iban[-4:]) if bank.iban else "",
        bic=bank.bic,
    )


def payee_to_pb(account: PayeeAccount) -> payouts_pb2.PayeeAccount:
    pb = payouts_pb2.PayeeAccount(
        employee=account.employee,
        stripe_account_id=account.stripe_account_id,
        updated_by=account.updated_by,
    )
    if account.bank is not None:
        pb.bank_account.CopyFrom(bank_to_pb(account.bank))
    _stamp(pb.updated_at, account.updated_at)
    return pb


# -- event payloads ---------------------------------------------------------------------------


def claim_submitted(c: Claim) -> events_pb2.ClaimSubmitted:
    return events_pb2.ClaimSubmitted(claim=claim_to_pb(c))


def claim_approved(c: Claim, note: str) -> events_pb2.ClaimApproved:
    return events_pb2.ClaimApproved(claim=claim_to_pb(c), approved_by=c.decided_by, note=note)


def claim_rejected(c: Claim) -> events_pb2.ClaimRejected:
    return events_pb2.ClaimRejected(
        claim=claim_to_pb(c), rejected_by=c.decided_by, reason=c.rejection_reason
    )


def payout_created(p: Payout) -> events_pb2.PayoutCreated:
    return events_pb2.PayoutCreated(
        payout_id=p.payout_id,
        run_id=p.run_id,
        employee=p.employee,
        amount=money_pb(p.amount),
        rail=RAIL_TO_PB[p.rail],
        claim_ids=p.claim_ids,
    )


def payout_sent(p: Payout) -> events_pb2.PayoutSent:
    return events_pb2.PayoutSent(
        payout_id=p.payout_id,
        employee=p.employee,
        amount=money_pb(p.amount),
        rail=RAIL_TO_PB[p.rail],
        external_reference=external_reference(p),
        claim_ids=p.claim_ids,
        attempt=p.attempt,
    )


def payout_paid(p: Payout) -> events_pb2.PayoutPaid:
    return events_pb2.PayoutPaid(
        payout_id=p.payout_id,
        employee=p.employee,
        amount=money_pb(p.amount),
        rail=RAIL_TO_PB[p.rail],
        external_reference=external_reference(p),
        claim_ids=p.claim_ids,
    )


def payout_failed(p: Payout) -> events_pb2.PayoutFailed:
    return events_pb2.PayoutFailed(
        payout_id=p.payout_id,
        employee=p.employee,
        amount=money_pb(p.amount),
        rail=RAIL_TO_PB[p.rail],
        external_reference=external_reference(p),
        claim_ids=p.claim_ids,
        failure_reason=p.failure_reason,
    )
