"""Claims and what this service knows about receipts: who may do what, and in which state.

A claim asks for out-of-pocket spend back: one or more of the claimant's own
receipts, paid personally, in one currency. Its life::

    submitted ─approve→ approved ─run→ payout_pending ─paid→ paid
        └─reject→ rejected          ↑         └─failed / cancelled─┘ (back to approved)

Invariants money depends on:

* A claim's total is the exact sum of its lines, all in the claim's currency.
* Nobody approves or rejects their own claim; a rejection always has a reason.
* Only an approved claim goes into a payout, and a claim is in at most one
  unsettled payout at a time (``payout_pending`` holds it there).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import date, datetime

from seisan_payouts.domain.errors import InvalidRequest, NotAllowed, WrongState
from seisan_shared.money import Money

READ_ALL_CLAIMS = frozenset({"approver", "treasury", "admin"})
APPROVERS = frozenset({"approver", "admin"})
TREASURY = frozenset({"treasury", "admin"})


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[str]

    def has_any(self, roles: frozenset[str]) -> bool:
        return bool(self.roles & roles)


class ClaimStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    APPROVED = "approved"
    REJECTED = "rejected"
    PAYOUT_PENDING = "payout_pending"
    PAID = "paid"


class PaidWith(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    COMPANY_CARD = "company_card"
    PERSONAL = "personal"


class ReceiptState(enum.StrEnum):
    """What intake last said about a receipt."""

    EXTRACTED = "extracted"
    NEEDS_REVIEW = "needs_review"
    DELETED = "deleted"


@dataclass
class ReceiptRef:
    """This service's copy of a receipt, kept from intake's and reconciliation's events."""

    receipt_id: str
    submitter: str
    paid_with: PaidWith
    state: ReceiptState
    total: Money | None = None
    transaction_date: date | None = None
    merchant: str = ""
    # Set while a card charge is matched to the receipt (match.confirmed, undone by match.rejected).
    match_id: str = ""
    matched_charge_ids: tuple[str, ...] = ()
    # occurred_at of the last intake event applied: an older event never overwrites a newer one.
    last_event_at: datetime | None = None


class Rule(enum.StrEnum):
    MATCHED_TO_CARD = "matched_to_card"
    DUPLICATE_CLAIM = "duplicate_claim"
    CATEGORY_LIMIT = "category_limit"
    RECEIPT_TOO_OLD = "receipt_too_old"
    CURRENCY_NOT_SUPPORTED = "currency_not_supported"
    RECEIPT_NOT_ELIGIBLE = "receipt_not_eligible"


class Severity(enum.StrEnum):
    WARNING = "warning"
    BLOCKING = "blocking"


@dataclass(frozen=True)
class PolicyFinding:
    rule: Rule
    severity: Severity
    message: str
    receipt_id: str = ""

    @property
    def blocking(self) -> bool:
        return self.severity is Severity.BLOCKING


@dataclass(frozen=True)
class ClaimLine:
    receipt_id: str
    amount: Money
    category: str
    merchant: str = ""
    transaction_date: date | None = None


@dataclass
class Claim:
    claim_id: str
    claimant: str
    lines: list[ClaimLine]
    description: str
    submitted_at: datetime
    status: ClaimStatus = ClaimStatus.SUBMITTED
    findings: list[PolicyFinding] = field(default_factory=list)
    decided_by: str = ""
    decided_at: datetime | None = None
    rejection_reason: str = ""
    payout_id: str = ""
    payout_failure_reason: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        if not self.lines:
            raise InvalidRequest("a claim needs at least one receipt")
        currencies = {line.amount.currency for line in self.lines}
        if len(currencies) != 1:
            raise InvalidRequest(
                f"a claim is in one currency; these receipts are in {', '.join(sorted(currencies))}"
                " (claim them separately)"
            )
        for line in self.lines:
            if line.amount.minor_units <= 0:
                raise InvalidRequest(f"receipt {line.receipt_id!r}: amount must be positive")

    @property
    def currency(self) -> str:
        return self.lines[0].amount.currency

    @property
    def total(self) -> Money:
        total = Money(0, self.currency)
        for line in self.lines:
            total = total + line.amount
        return total

    @property
    def receipt_ids(self) -> list[str]:
        return [line.receipt_id for line in self.lines]

    # -- who may see and decide -----------------------------------------------------------

    def check_can_read(self, actor: Actor) -> None:
        if actor.name != self.claimant and not actor.has_any(READ_ALL_CLAIMS):
            raise NotAllowed(f"claim {self.claim_id!r} belongs to another user")

    def _check_can_decide(self, actor: Actor) -> None:
        if not actor.has_any(APPROVERS):
            raise NotAllowed("only an approver may decide claims")
        if actor.name == self.claimant:
            raise NotAllowed("nobody approves or rejects their own claim")
        if self.status is not ClaimStatus.SUBMITTED:
            raise WrongState(f"claim {self.claim_id!r} is {self.status.value}, not submitted")

    def approve(self, actor: Actor, when: datetime) -> None:
        self._check_can_decide(actor)
        blocking = [f for f in self.findings if f.blocking]
        if blocking:
            raise WrongState(
                "the claim cannot be approved while blocking findings hold: "
                + "; ".join(f.message for f in blocking)
            )
        self.status = ClaimStatus.APPROVED
        self.decided_by, self.decided_at = actor.name, when

    def reject(self, actor: Actor, reason: str, when: datetime) -> None:
        if not reason.strip():
            raise InvalidRequest("a rejection needs a reason")
        self._check_can_decide(actor)
        self.status = ClaimStatus.REJECTED
        self.decided_by, self.decided_at = actor.name, when
        self.rejection_reason = reason.strip()

    # -- payouts --------------------------------------------------------------------------

    def enter_payout(self, payout_id: str) -> None:
        if self.status is not ClaimStatus.APPROVED:
            raise WrongState(f"claim {self.claim_id!r} is {self.status.value}, not approved")
        self.status = ClaimStatus.PAYOUT_PENDING
        self.payout_id = payout_id
        self.payout_failure_reason = ""

    def payout_paid(self, payout_id: str) -> None:
        self._check_in(payout_id)
        self.status = ClaimStatus.PAID

    def payout_released(self, payout_id: str, reason: str) -> None:
        """The payout failed or was cancelled: back to approved-unpaid, with the reason."""
        self._check_in(payout_id)
        self.status = ClaimStatus.APPROVED
        self.payout_failure_reason = reason

    def _check_in(self, payout_id: str) -> None:
        if self.status is not ClaimStatus.PAYOUT_PENDING or self.payout_id != payout_id:
            raise WrongState(
                f"claim {self.claim_id!r} is {self.status.value} "
                f"(payout {self.payout_id or '-'}), not pending in payout {payout_id!r}"
            )

    def snapshot(self) -> dict[str, object]:
        """The claim's state for the audit trail."""
        return {
            "status": self.status.value,
            "claimant": self.claimant,
            "total": self.total.format(),
            "receipts": self.receipt_ids,
            "payout_id": self.payout_id,
            "blocking_findings": [f.message for f in self.findings if f.blocking],
            "warnings": [f.message for f in self.findings if not f.blocking],
        }
