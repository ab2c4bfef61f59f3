"""What each payout transition writes, in the caller's unit of work: state, ledger, claims,
event and audit record, together. Every rail (Stripe driver, webhooks, bank-file
confirmation, cancellation) goes through these, so a transition is booked the same
way whoever observed it.

Each function returns False (and writes nothing) when the transition does not
apply to the payout's current state — a duplicate or late observation — so
callers can apply what they saw without first asking whether it is news.
"""

from __future__ import annotations

from datetime import datetime

from seisan_payouts import messages
from seisan_payouts.domain import ledger
from seisan_payouts.domain.errors import LedgerError
from seisan_payouts.domain.payouts import Payout, PayoutStatus, Rail
from seisan_payouts.domain.ports import DuplicateKey, UnitOfWork
from seisan_shared import subjects


async def _save(
    uow: UnitOfWork, payout: Payout, before: dict[str, object], actor: str, action: str
) -> None:
    await uow.payouts.update(payout)
    await uow.audit(
        actor=actor,
        action=action,
        entity_type="payout",
        entity_id=payout.payout_id,
        before=before,
        after=payout.snapshot(),
        reason=payout.failure_reason,
    )


async def _post_once(uow: UnitOfWork, entry: ledger.JournalEntry) -> None:
    """Post; a fact already booked (the same kind and reference) is not booked again."""
    if await uow.ledger.has(entry.kind.value, entry.reference):
        return
    try:
        await uow.ledger.post(entry)
    except DuplicateKey:
        return


async def transferred(
    uow: UnitOfWork, payout: Payout, transfer_id: str, now: datetime, actor: str
) -> bool:
    """Stripe moved the money to the employee's connected account (it left our cash)."""
    before = payout.snapshot()
    if not payout.transferred(transfer_id, now):
        return False
    await _post_once(uow, ledger.payout_sent(payout, transfer_id))
    await _save(uow, payout, before, actor, "payout.transfer")
    return True


async def sent(uow: UnitOfWork, payout: Payout, reference: str, now: datetime, actor: str) -> bool:
    """Handed over: the Stripe payout exists, or the bank file was issued."""
    before = payout.snapshot()
    if not payout.sent(reference, now):
        return False
    if payout.rail is Rail.BANK_FILE:
        await _post_once(uow, ledger.payout_sent(payout, payout.payout_id))
    await _save(uow, payout, before, actor, "payout.send")
    await uow.emit(
        subjects.PAYOUT_SENT, payout.payout_id, messages.payout_sent(payout), actor=actor
    )
    return True


async def paid(
    uow: UnitOfWork, payout: Payout, now: datetime, actor: str, reference: str = ""
) -> bool:
    before = payout.snapshot()
    if not payout.paid(now, reference):
        return False
    owed = await uow.ledger.balance(ledger.payable_account(payout.employee), payout.amount.currency)
    await _post_once(uow, ledger.payout_paid(payout, owed))
    for claim in await uow.claims.get_many(payout.claim_ids):
        claim.payout_paid(payout.payout_id)
        await uow.claims.update(claim)
    await _save(uow, payout, before, actor, "payout.paid")
    await uow.emit(
        subjects.PAYOUT_PAID, payout.payout_id, messages.payout_paid(payout), actor=actor
    )
    return True


async def returning(uow: UnitOfWork, payout: Payout, reason: str, actor: str) -> bool:
    """The rail failed the payout after the transfer: the money must come back first."""
    before = payout.snapshot()
    if not payout.returning(reason):
        return False
    await _save(uow, payout, before, actor, "payout.returning")
    return True


async def _release_claims(uow: UnitOfWork, payout: Payout, reason: str) -> None:
    for claim in await uow.claims.get_many(payout.claim_ids):
        claim.payout_released(payout.payout_id, reason)
        await uow.claims.update(claim)


async def _failed(uow: UnitOfWork, payout: Payout, before: dict[str, object], actor: str) -> None:
    await _release_claims(uow, payout, payout.failure_reason)
    await _save(uow, payout, before, actor, "payout.fail")
    await uow.emit(
        subjects.PAYOUT_FAILED, payout.payout_id, messages.payout_failed(payout), actor=actor
    )


async def returned(
    uow: UnitOfWork, payout: Payout, reversal_id: str, now: datetime, actor: str
) -> bool:
    """The transfer was reversed: the money is back, the claims are approved-unpaid again."""
    before = payout.snapshot()
    transfer_id = payout.transfer_id
    if not payout.reversed(reversal_id, now):
        return False
    if not transfer_id:
        raise LedgerError(f"payout {payout.payout_id} returned without a transfer")
    await _post_once(uow, ledger.payout_returned(payout, transfer_id))
    await _failed(uow, payout, before, actor)
    return True


async def refused(uow: UnitOfWork, payout: Payout, reason: str, now: datetime, actor: str) -> bool:
    """Failed with no money out (Stripe refused the transfer; the bank rejected a transfer)."""
    before = payout.snapshot()
    was_sent = payout.status is PayoutStatus.SENT
    if not payout.refused(reason, now):
        return False
    if was_sent and payout.rail is Rail.BANK_FILE:
        await _post_once(uow, ledger.payout_returned(payout, payout.payout_id))
    await _failed(uow, payout, before, actor)
    return True


async def cancelled(
    uow: UnitOfWork, payout: Payout, reason: str, now: datetime, actor: str
) -> None:
    before = payout.snapshot()
    payout.cancel(reason, now)
    await _release_claims(
        uow, payout, f"payout {payout.payout_id} cancelled: {payout.failure_reason}"
    )
    await _save(uow, payout, before, actor, "payout.cancel")
