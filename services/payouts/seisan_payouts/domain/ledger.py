"""Double-entry ledger of reimbursements: expense ↔ reimbursements payable ↔ cash.

Postings (debit +, credit −, integer minor units, one currency per entry)::

    claim approved   Dr expense:<category>                Cr payable:<employee>
    payout sent      Dr asset:payouts_in_transit           Cr asset:cash:<rail>
    payout paid      Dr payable:<employee>                 Cr asset:payouts_in_transit
    payout returned  Dr asset:cash:<rail>                  Cr asset:payouts_in_transit

(``payable:<employee>`` is ``liability:reimbursements_payable:<employee>``.)

"Sent" is when money leaves the company's cash (the Stripe transfer to the
employee's connected account, or the bank file being issued); "returned" is
when it comes back (the transfer reversed after a failed payout, or the bank
rejecting a transfer).

Invariants, enforced here and again by the database (see the migration):

* Every entry balances: its legs sum to zero, it has at least two, none is zero.
* One entry per (kind, reference): a claim is expensed once, a payout is paid
  once, a transfer is sent and returned at most once — the database's unique
  key makes a second posting of the same fact fail, whatever crashed when.
* Nobody is paid more than they are owed: a "paid" posting is refused when the
  employee's payable balance in that currency is smaller than the amount.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass

from seisan_payouts.domain.errors import LedgerError
from seisan_payouts.domain.model import Claim
from seisan_payouts.domain.payouts import Payout, Rail
from seisan_shared.money import Money

IN_TRANSIT = "asset:payouts_in_transit"


def expense_account(category: str) -> str:
    return f"expense:{category}"


def payable_account(employee: str) -> str:
    return f"liability:reimbursements_payable:{employee}"


def cash_account(rail: Rail) -> str:
    return f"asset:cash:{rail.value}"


class EntryKind(enum.StrEnum):
    CLAIM_APPROVED = "claim.approved"
    PAYOUT_SENT = "payout.sent"
    PAYOUT_PAID = "payout.paid"
    PAYOUT_RETURNED = "payout.returned"


@dataclass(frozen=True)
class Leg:
    account: str
    amount: int  # debit positive, credit negative, minor units of the entry's currency


@dataclass(frozen=True)
class JournalEntry:
    kind: EntryKind
    reference: str
    currency: str
    legs: tuple[Leg, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if len(self.legs) < 2:
            raise LedgerError(f"{self.kind} {self.reference}: an entry needs two legs or more")
        if any(leg.amount == 0 for leg in self.legs):
            raise LedgerError(f"{self.kind} {self.reference}: a leg of zero")
        total = sum(leg.amount for leg in self.legs)
        if total != 0:
            raise LedgerError(
                f"{self.kind} {self.reference}: debits and credits differ by {total} "
                f"{self.currency} minor units"
            )

    @property
    def amount(self) -> Money:
        return Money(sum(leg.amount for leg in self.legs if leg.amount > 0), self.currency)


def _transfer(debit: str, credit: str, amount: Money) -> tuple[Leg, Leg]:
    if amount.minor_units <= 0:
        raise LedgerError(f"cannot post {amount}: amounts are positive")
    return Leg(debit, amount.minor_units), Leg(credit, -amount.minor_units)


def claim_approved(claim: Claim) -> JournalEntry:
    """Per line, the expense; in total, what the company owes the claimant."""
    by_category: dict[str, int] = {}
    for line in claim.lines:
        by_category[line.category] = by_category.get(line.category, 0) + line.amount.minor_units
    legs = [Leg(expense_account(c), amount) for c, amount in sorted(by_category.items())]
    legs.append(Leg(payable_account(claim.claimant), -claim.total.minor_units))
    return JournalEntry(
        EntryKind.CLAIM_APPROVED,
        claim.claim_id,
        claim.currency,
        tuple(legs),
        f"claim {claim.claim_id} approved for {claim.claimant}",
    )


def payout_sent(payout: Payout, reference: str) -> JournalEntry:
    """``reference``: the Stripe transfer id, or the payout id for a bank file."""
    return JournalEntry(
        EntryKind.PAYOUT_SENT,
        reference,
        payout.amount.currency,
        _transfer(IN_TRANSIT, cash_account(payout.rail), payout.amount),
        f"payout {payout.payout_id} to {payout.employee} sent",
    )


def payout_returned(payout: Payout, reference: str) -> JournalEntry:
    """The money of a failed payout came back (same ``reference`` as its sent entry)."""
    return JournalEntry(
        EntryKind.PAYOUT_RETURNED,
        reference,
        payout.amount.currency,
        _transfer(cash_account(payout.rail), IN_TRANSIT, payout.amount),
        f"payout {payout.payout_id} to {payout.employee} returned: {payout.failure_reason}",
    )


def payout_paid(payout: Payout, payable_balance: int) -> JournalEntry:
    """Settle what is owed. ``payable_balance``: the employee's payable balance now
    (credit-normal: negative means owed), in the payout's currency."""
    owed = -payable_balance
    if payout.amount.minor_units > owed:
        raise LedgerError(
            f"payout {payout.payout_id} of {payout.amount} exceeds what {payout.employee} is "
            f"owed ({Money(owed, payout.amount.currency)})"
        )
    return JournalEntry(
        EntryKind.PAYOUT_PAID,
        payout.payout_id,
        payout.amount.currency,
        _transfer(payable_account(payout.employee), IN_TRANSIT, payout.amount),
        f"payout {payout.payout_id} to {payout.employee} paid",
    )


def trial_balance(entries: Sequence[JournalEntry]) -> dict[tuple[str, str], int]:
    """(account, currency) → balance over ``entries`` (a check for tests and reports)."""
    out: dict[tuple[str, str], int] = {}
    for entry in entries:
        for leg in entry.legs:
            key = (leg.account, entry.currency)
            out[key] = out.get(key, 0) + leg.amount
    return out
