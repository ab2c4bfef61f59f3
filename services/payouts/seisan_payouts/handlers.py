"""Use cases of reimbursement: claims, payout runs, payees, and what intake and
reconciliation tell us about receipts. Plain async functions of a command and named ports.

The Stripe rail's calls live in :mod:`seisan_payouts.stripe_rail` (the driver) and the
bank-file rail's in :mod:`seisan_payouts.bank_rail`; both book their transitions through
:mod:`seisan_payouts.settlement`.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import TypeVar

from seisan_payouts import messages, settlement
from seisan_payouts.domain import ledger
from seisan_payouts.domain.bank_transfer import BankTransfer, Debtor
from seisan_payouts.domain.errors import (
    ClaimNotFound,
    InvalidRequest,
    NotAllowed,
    PayeeNotFound,
    PayoutNotFound,
    PolicyBlocked,
    WrongState,
)
from seisan_payouts.domain.model import (
    READ_ALL_CLAIMS,
    TREASURY,
    Actor,
    Claim,
    ClaimStatus,
    PaidWith,
    ReceiptRef,
    ReceiptState,
)
from seisan_payouts.domain.payouts import (
    BankFileFormat,
    Payout,
    PayoutRun,
    Rail,
    new_payout_id,
    new_run_id,
)
from seisan_payouts.domain.policy import ClaimRequestItem, PolicyConfig, assess
from seisan_payouts.domain.ports import (
    BankDetails,
    ClaimQuery,
    ConcurrentUpdate,
    DuplicateKey,
    PayeeAccount,
    PayoutQuery,
    StripeGateway,
    UnitOfWork,
)
from seisan_shared import subjects
from seisan_shared.money import Money

Clock = Callable[[], datetime]
T = TypeVar("T")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _nothing() -> None:
    return None


@dataclass
class PayoutsPorts:
    uow: Callable[[], UnitOfWork]
    policy: PolicyConfig = field(default_factory=PolicyConfig)
    clock: Clock = utcnow
    stripe: StripeGateway | None = None
    # Nudges the Stripe driver after a run or a retry created work for it.
    wake_rail: Callable[[], None] = _nothing
    debtor: Debtor | None = None
    # Test-mode Stripe (a test key or the local server): test accounts may be created.
    stripe_test_mode: bool = True


async def retrying(command: Callable[[], Awaitable[T]], tries: int = 3) -> T:
    """Run a command again when a row it read changed under it (optimistic concurrency)."""
    for attempt in range(tries):
        try:
            return await command()
        except ConcurrentUpdate:
            if attempt == tries - 1:
                raise WrongState("it changed while this request ran; try again") from None
    raise AssertionError("unreachable")


# -- claims -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SubmitClaim:
    actor: Actor
    items: list[ClaimRequestItem]
    description: str = ""


async def submit_claim(cmd: SubmitClaim, ports: PayoutsPorts) -> Claim:
    """Check the receipts against policy; blocking findings refuse the claim (nothing stored).

    The receipts are reserved in the same transaction (``claimed_receipts``), so two
    claims racing for one receipt cannot both be stored.
    """
    if len(cmd.description) > 2000:
        raise InvalidRequest("description is longer than 2000 characters")
    if len(cmd.items) > 200:
        raise InvalidRequest("at most 200 receipts per claim")
    ids = [item.receipt_id for item in cmd.items]
    async with ports.uow() as uow:
        refs = await uow.receipts.get_many(ids)
        holding = await uow.claims.claims_holding(ids)
        result = assess(
            cmd.actor.name, cmd.items, refs, holding, ports.policy, ports.clock().date()
        )
        if result.blocking:
            raise PolicyBlocked(
                "claim refused: " + " ".join(f.message for f in result.blocking),
                tuple(result.blocking),
            )
        claim = Claim(
            claim_id="clm-" + uuid.uuid4().hex[:20],
            claimant=cmd.actor.name,
            lines=result.lines,
            description=cmd.description.strip(),
            submitted_at=ports.clock(),
            findings=result.findings,
        )
        try:
            await uow.claims.add(claim)
        except DuplicateKey:
            raise PolicyBlocked(
                "claim refused: one of these receipts was claimed by another claim just now"
            ) from None
        await uow.emit(
            subjects.CLAIM_SUBMITTED,
            claim.claim_id,
            messages.claim_submitted(claim),
            actor=cmd.actor.name,
        )
        await uow.audit(
            actor=cmd.actor.name,
            action="claim.submit",
            entity_type="claim",
            entity_id=claim.claim_id,
            before=None,
            after=claim.snapshot(),
        )
        await uow.commit()
    return claim


async def _load_claim(uow: UnitOfWork, claim_id: str) -> Claim:
    claim = await uow.claims.get(claim_id)
    if claim is None:
        raise ClaimNotFound(claim_id)
    return claim


async def approve_claim(claim_id: str, note: str, actor: Actor, ports: PayoutsPorts) -> Claim:
    """Policy is checked again (a card match may have arrived since submission); the expense
    and what is owed are booked in the ledger with the approval."""

    async def run() -> Claim:
        async with ports.uow() as uow:
            claim = await _load_claim(uow, claim_id)
            claim.check_can_read(actor)
            refs = await uow.receipts.get_many(claim.receipt_ids)
            holding = {
                rid: other
                for rid, other in (await uow.claims.claims_holding(claim.receipt_ids)).items()
                if other != claim.claim_id
            }
            items = [ClaimRequestItem(line.receipt_id, line.category) for line in claim.lines]
            fresh = assess(
                claim.claimant, items, refs, holding, ports.policy, ports.clock().date()
            ).findings
            if claim.status is ClaimStatus.SUBMITTED and any(f.blocking for f in fresh):
                claim.findings = fresh  # kept on the claim, so the claimant sees why
                await uow.claims.update(claim)
                await uow.commit()
                raise PolicyBlocked(
                    "the claim cannot be approved: "
                    + " ".join(f.message for f in fresh if f.blocking),
                    tuple(f for f in fresh if f.blocking),
                )
            if claim.status is ClaimStatus.SUBMITTED:
                claim.findings = fresh
            before = claim.snapshot()
            claim.approve(actor, ports.clock())
            await uow.ledger.post(ledger.claim_approved(claim))
            await uow.claims.update(claim)
            await uow.emit(
                subjects.CLAIM_APPROVED,
                claim.claim_id,
                messages.claim_approved(claim, note),
                actor=actor.name,
            )
            await uow.audit(
                actor=actor.name,
                action="claim.approve",
                entity_type="claim",
                entity_id=claim.claim_id,
                before=before,
                after=claim.snapshot(),
                reason=note,
            )
            await uow.commit()
            return claim

    return await retrying(run)


async def reject_claim(claim_id: str, reason: str, actor: Actor, ports: PayoutsPorts) -> Claim:
    async def run() -> Claim:
        async with ports.uow() as uow:
            claim = await _load_claim(uow, claim_id)
            claim.check_can_read(actor)
            before = claim.snapshot()
            claim.reject(actor, reason, ports.clock())
            await uow.claims.update(claim)  # frees its receipts for a new claim
            await uow.emit(
                subjects.CLAIM_REJECTED,
                claim.claim_id,
                messages.claim_rejected(claim),
                actor=actor.name,
            )
            await uow.audit(
                actor=actor.name,
                action="claim.reject",
                entity_type="claim",
                entity_id=claim.claim_id,
                before=before,
                after=claim.snapshot(),
                reason=claim.rejection_reason,
            )
            await uow.commit()
            return claim

    return await retrying(run)


async def get_claim(claim_id: str, actor: Actor, ports: PayoutsPorts) -> Claim:
    async with ports.uow() as uow:
        claim = await _load_claim(uow, claim_id)
    claim.check_can_read(actor)
    return claim


async def list_claims(query: ClaimQuery, actor: Actor, ports: PayoutsPorts) -> list[Claim]:
    """Staff see only their own claims, whatever they ask for."""
    if not actor.has_any(READ_ALL_CLAIMS):
        query = ClaimQuery(**{**query.__dict__, "claimant": actor.name})
    async with ports.uow() as uow:
        return await uow.claims.query(query)


# -- payout runs ------------------------------------------------------------------------------


@dataclass(frozen=True)
class CreateRun:
    actor: Actor
    rail: Rail
    bank_file_format: BankFileFormat | None = None
    execution_date: date | None = None
    currency: str = ""
    request_id: str = ""


def _bank_problem(bank: BankDetails | None, fmt: BankFileFormat) -> str:
    if bank is None:
        return "no bank account linked"
    if fmt is BankFileFormat.ZENGIN and not (
        bank.bank_code and bank.branch_code and bank.account_number
    ):
        return "no Japanese bank account (bank, branch and account number) linked"
    if fmt is BankFileFormat.PAIN_001 and not (bank.iban or bank.account_number):
        return "no IBAN or account number linked"
    return ""


async def create_payout_run(cmd: CreateRun, ports: PayoutsPorts) -> tuple[PayoutRun, list[Payout]]:
    """Group approved, unpaid claims per employee and currency into payouts, one run.

    Employees the rail cannot pay yet (no account linked) keep their claims approved; the
    run says so in its notes. A repeated ``request_id`` returns the first run.
    """
    if cmd.rail is Rail.BANK_FILE and cmd.bank_file_format is None:
        raise InvalidRequest("a bank-file run needs a format (zengin or pain001)")
    currency = cmd.currency.upper()
    if cmd.rail is Rail.BANK_FILE and not currency:
        if cmd.bank_file_format is not BankFileFormat.ZENGIN:
            raise InvalidRequest("a pain.001 run needs a currency (one file per currency)")
        currency = "JPY"
    if cmd.rail is Rail.BANK_FILE and cmd.bank_file_format is BankFileFormat.ZENGIN:
        if currency != "JPY":
            raise InvalidRequest("Zengin transfers are in yen only (currency JPY)")
    now = ports.clock()
    async with ports.uow() as uow:
        if cmd.request_id:
            existing = await uow.payouts.run_by_request(cmd.request_id)
            if existing is not None:
                return existing, await uow.payouts.of_run(existing.run_id)
        groups: dict[tuple[str, str], list[Claim]] = {}
        for claim in await uow.claims.approved_unpaid(currency or None):
            groups.setdefault((claim.claimant, claim.currency), []).append(claim)
        run = PayoutRun(
            run_id=new_run_id(),
            rail=cmd.rail,
            created_by=cmd.actor.name,
            created_at=now,
            bank_file_format=cmd.bank_file_format,
            execution_date=(
                cmd.execution_date or (now.date() + timedelta(days=1))
                if cmd.rail is Rail.BANK_FILE
                else None
            ),
            currency=currency,
            request_id=cmd.request_id,
        )
        created: list[Payout] = []
        for (employee, cur), group in sorted(groups.items()):
            payee = await uow.payees.get(employee)
            problem = ""
            if cmd.rail is Rail.STRIPE and not (payee and payee.stripe_account_id):
                problem = "no Stripe account linked"
            elif cmd.rail is Rail.STRIPE and cur not in ports.policy.payout_currencies:
                problem = f"payouts are not made in {cur}"
            elif cmd.rail is Rail.BANK_FILE:
                assert cmd.bank_file_format is not None
                problem = _bank_problem(payee.bank if payee else None, cmd.bank_file_format)
            if problem:
                total = sum(c.total.minor_units for c in group)
                run.notes.append(
                    f"{employee}: {problem}; {len(group)} claim(s) of {Money(total, cur)} "
                    "left approved"
                )
                continue
            payout = Payout(
                payout_id=new_payout_id(),
                run_id=run.run_id,
                employee=employee,
                amount=Money(sum(c.total.minor_units for c in group), cur),
                rail=cmd.rail,
                claim_ids=[c.claim_id for c in group],
                created_at=now,
            )
            for claim in group:
                claim.enter_payout(payout.payout_id)
                await uow.claims.update(claim)
            await uow.payouts.add(payout)
            await uow.emit(
                subjects.PAYOUT_CREATED,
                payout.payout_id,
                messages.payout_created(payout),
                actor=cmd.actor.name,
            )
            created.append(payout)
        if not created:
            detail = "; ".join(run.notes) or "there are no approved, unpaid claims"
            raise WrongState(f"nothing to pay: {detail}")
        run.payout_ids = [p.payout_id for p in created]
        try:
            await uow.payouts.add_run(run)
        except DuplicateKey:
            raise WrongState("a run with this request id was created just now; ask again") from None
        await uow.audit(
            actor=cmd.actor.name,
            action="payout.run",
            entity_type="payout_run",
            entity_id=run.run_id,
            before=None,
            after={
                "rail": run.rail.value,
                "payouts": {p.payout_id: p.amount.format() for p in created},
                "notes": run.notes,
            },
        )
        await uow.commit()
    ports.wake_rail()
    return run, created


# -- payouts ----------------------------------------------------------------------------------


def _check_can_read_payout(payout: Payout, actor: Actor) -> None:
    if payout.employee != actor.name and not actor.has_any(TREASURY):
        raise NotAllowed(f"payout {payout.payout_id!r} is to another user")


async def get_payout(payout_id: str, actor: Actor, ports: PayoutsPorts) -> Payout:
    async with ports.uow() as uow:
        payout = await uow.payouts.get(payout_id)
    if payout is None:
        raise PayoutNotFound(payout_id)
    _check_can_read_payout(payout, actor)
    return payout


async def list_payouts(query: PayoutQuery, actor: Actor, ports: PayoutsPorts) -> list[Payout]:
    if not actor.has_any(TREASURY):
        query = PayoutQuery(**{**query.__dict__, "employee": actor.name})
    async with ports.uow() as uow:
        return await uow.payouts.query(query)


async def cancel_payout(payout_id: str, reason: str, actor: Actor, ports: PayoutsPorts) -> Payout:
    """Only before money moved (created); its claims return to approved-unpaid."""

    async def run() -> Payout:
        async with ports.uow() as uow:
            payout = await uow.payouts.get(payout_id)
            if payout is None:
                raise PayoutNotFound(payout_id)
            await settlement.cancelled(uow, payout, reason.strip(), ports.clock(), actor.name)
            await uow.commit()
            return payout

    return await retrying(run)


async def retry_payout(payout_id: str, actor: Actor, ports: PayoutsPorts) -> Payout:
    """A failed payout goes again (a new attempt, so new idempotency keys), if its claims
    are still approved and not taken by another payout meanwhile."""

    async def run() -> Payout:
        async with ports.uow() as uow:
            payout = await uow.payouts.get(payout_id)
            if payout is None:
                raise PayoutNotFound(payout_id)
            before = payout.snapshot()
            payout.retry()
            claims = await uow.claims.get_many(payout.claim_ids)
            for claim in claims:
                if claim.status is not ClaimStatus.APPROVED or claim.payout_id != payout_id:
                    raise WrongState(
                        f"claim {claim.claim_id} is {claim.status.value} in payout "
                        f"{claim.payout_id or '-'}; this payout cannot be retried"
                    )
                claim.enter_payout(payout_id)
                await uow.claims.update(claim)
            await uow.payouts.update(payout)
            await uow.audit(
                actor=actor.name,
                action="payout.retry",
                entity_type="payout",
                entity_id=payout_id,
                before=before,
                after=payout.snapshot(),
            )
            await uow.commit()
            return payout

    payout = await retrying(run)
    ports.wake_rail()
    return payout


# -- payee accounts ---------------------------------------------------------------------------


@dataclass(frozen=True)
class LinkPayee:
    actor: Actor
    employee: str
    stripe_account_id: str = ""
    create_test_account: bool = False
    bank: BankDetails | None = None
    currency: str = "JPY"


def _check_bank(bank: BankDetails) -> BankDetails:
    """Field checks of the bank-file writers, before anything is stored."""
    probe = BankTransfer(
        payout_id="check",
        payee_name=bank.payee_name or "?",
        amount=Money(1, "JPY"),
        payee_name_kana=bank.payee_name_kana,
        bank_code=bank.bank_code,
        branch_code=bank.branch_code,
        account_type=bank.account_type,
        account_number=bank.account_number,
        iban=bank.iban,
        bic=bank.bic,
    )
    if not bank.payee_name.strip():
        raise InvalidRequest("the bank account needs the holder's name (payee_name)")
    return BankDetails(
        payee_name=bank.payee_name.strip(),
        payee_name_kana=bank.payee_name_kana.strip(),
        bank_code=probe.bank_code,
        branch_code=probe.branch_code,
        account_type=bank.account_type,
        account_number=probe.account_number,
        iban=probe.iban,
        bic=probe.bic,
    )


async def link_payee(cmd: LinkPayee, ports: PayoutsPorts) -> PayeeAccount:
    employee = cmd.employee.strip()
    if not employee:
        raise InvalidRequest("which employee? (employee is empty)")
    if cmd.create_test_account and cmd.stripe_account_id:
        raise InvalidRequest("give an account id or ask for a test account, not both")
    if not (cmd.create_test_account or cmd.stripe_account_id or cmd.bank):
        raise InvalidRequest("nothing to link: give a Stripe account id, a bank account, or both")
    account_id = cmd.stripe_account_id.strip()
    if cmd.create_test_account or account_id:
        if ports.stripe is None:
            raise WrongState("the Stripe rail is not configured")
    if cmd.create_test_account:
        if not ports.stripe_test_mode:
            raise NotAllowed("test accounts are created only against test-mode Stripe")
        assert ports.stripe is not None
        account_id = await ports.stripe.create_test_account(employee, cmd.currency or "JPY")
    elif account_id:
        assert ports.stripe is not None
        problem = await ports.stripe.check_account(account_id)
        if problem:
            raise InvalidRequest(f"Stripe account {account_id}: {problem}")
    bank = _check_bank(cmd.bank) if cmd.bank else None

    async with ports.uow() as uow:
        existing = await uow.payees.get(employee)
        account = PayeeAccount(
            employee=employee,
            stripe_account_id=account_id or (existing.stripe_account_id if existing else ""),
            bank=bank or (existing.bank if existing else None),
            updated_by=cmd.actor.name,
            updated_at=ports.clock(),
        )
        await uow.payees.put(account)
        await uow.audit(
            actor=cmd.actor.name,
            action="payee.link",
            entity_type="payee",
            entity_id=employee,
            before=_payee_snapshot(existing),
            after=_payee_snapshot(account),
        )
        await uow.commit()
    return account


def _payee_snapshot(account: PayeeAccount | None) -> dict[str, object] | None:
    if account is None:
        return None
    bank = account.bank
    return {
        "stripe_account_id": account.stripe_account_id,
        "bank": (
            {
                "bank_code": bank.bank_code,
                "branch_code": bank.branch_code,
                "account_number": messages.mask_account_number(bank.account_number),
                "iban": ("****" + bank.iban[-4:]) if bank.iban else "",
            }
            if bank
            else None
        ),
    }


async def get_payee(employee: str, actor: Actor, ports: PayoutsPorts) -> PayeeAccount:
    if employee != actor.name and not actor.has_any(TREASURY):
        raise NotAllowed("staff may see only their own payee account")
    async with ports.uow() as uow:
        account = await uow.payees.get(employee)
    if account is None:
        raise PayeeNotFound(employee)
    return account


# -- what intake and reconciliation tell us ---------------------------------------------------


@dataclass(frozen=True)
class ReceiptFacts:
    receipt_id: str
    submitter: str
    paid_with: PaidWith
    state: ReceiptState
    total: Money | None
    transaction_date: date | None
    merchant: str
    occurred_at: datetime


async def record_receipt(facts: ReceiptFacts, uow: UnitOfWork) -> bool:
    """Keep the latest of intake's events about a receipt (an older one never overwrites)."""
    ref = await uow.receipts.get(facts.receipt_id)
    if ref is not None and ref.last_event_at and facts.occurred_at < ref.last_event_at:
        return False
    if facts.state is ReceiptState.DELETED:
        if ref is None:
            ref = ReceiptRef(facts.receipt_id, facts.submitter, PaidWith.UNSPECIFIED, facts.state)
        ref.state = ReceiptState.DELETED
        ref.last_event_at = facts.occurred_at
        await uow.receipts.put(ref)
        return True
    await uow.receipts.put(
        ReceiptRef(
            receipt_id=facts.receipt_id,
            submitter=facts.submitter,
            paid_with=facts.paid_with,
            state=facts.state,
            total=facts.total,
            transaction_date=facts.transaction_date,
            merchant=facts.merchant,
            match_id=ref.match_id if ref else "",
            matched_charge_ids=ref.matched_charge_ids if ref else (),
            last_event_at=facts.occurred_at,
        )
    )
    return True


async def record_match(
    match_id: str,
    receipt_ids: list[str],
    charge_ids: list[str],
    confirmed: bool,
    uow: UnitOfWork,
) -> int:
    """A confirmed match marks its receipts as paid by card; an undone one clears the mark.

    A match may name a receipt this service has not heard of yet; it is kept as a
    placeholder so the mark is there when the receipt's own event arrives.
    """
    changed = 0
    if confirmed:
        refs = await uow.receipts.get_many(receipt_ids)
        for rid in receipt_ids:
            ref = refs.get(rid) or ReceiptRef(
                receipt_id=rid,
                submitter="",
                paid_with=PaidWith.UNSPECIFIED,
                state=ReceiptState.NEEDS_REVIEW,
            )
            ref.match_id = match_id
            ref.matched_charge_ids = tuple(charge_ids)
            await uow.receipts.put(ref)
            changed += 1
    else:
        for ref in await uow.receipts.matched_to(match_id):
            ref.match_id = ""
            ref.matched_charge_ids = ()
            await uow.receipts.put(ref)
            changed += 1
    return changed
