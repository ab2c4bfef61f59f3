"""Payouts: money to one employee in one currency for approved claims, and its state machine.

::

    created ─begin attempt→ sending ─transfer→ transferred ─payout→ sent ─paid→ paid
       │                      │                    │                  │
       └─cancel→ cancelled    └─refused─→ failed   └──refused / failed┴→ returning ─reversed→ failed
                                                                              failed ─retry→ created

(The bank-file rail goes created → sent when its file is issued, then paid or
failed on treasury's confirmation.)

Invariants money depends on:

* The attempt number is stored *before* the rail is called and every request
  of that attempt carries a key derived from (payout id, attempt, step). A
  process that dies and resumes re-sends with the same key (Stripe replays the
  first answer); only an answer that settles the attempt as failed — or a
  lookup proving nothing was created — starts a new attempt, and so a new key.
* A payout never moves backwards: :meth:`Payout.advance` refuses a state of a
  lower :data:`RANK`, so a late or replayed webhook cannot undo a newer state.
* Claims are released (back to approved-unpaid) only when the money is known
  not to have left, or to have come back: created/cancelled, refused before a
  transfer, or after the transfer was reversed. Never while it may be out.
* Paid is final: nothing moves a paid payout.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime

from seisan_payouts.domain.errors import WrongState
from seisan_shared.money import Money


class Rail(enum.StrEnum):
    STRIPE = "stripe"
    BANK_FILE = "bank_file"


class BankFileFormat(enum.StrEnum):
    ZENGIN = "zengin"
    PAIN_001 = "pain001"


class PayoutStatus(enum.StrEnum):
    CREATED = "created"
    SENDING = "sending"
    TRANSFERRED = "transferred"
    SENT = "sent"
    RETURNING = "returning"
    PAID = "paid"
    FAILED = "failed"
    CANCELLED = "cancelled"


# Order of progress within one attempt; a webhook may only move a payout up.
RANK = {
    PayoutStatus.CREATED: 0,
    PayoutStatus.SENDING: 1,
    PayoutStatus.TRANSFERRED: 2,
    PayoutStatus.SENT: 3,
    PayoutStatus.RETURNING: 4,
    PayoutStatus.PAID: 5,
    PayoutStatus.FAILED: 5,
    PayoutStatus.CANCELLED: 5,
}
IN_FLIGHT = frozenset({PayoutStatus.SENDING, PayoutStatus.TRANSFERRED, PayoutStatus.RETURNING})
TERMINAL = frozenset({PayoutStatus.PAID, PayoutStatus.FAILED, PayoutStatus.CANCELLED})


class Step(enum.StrEnum):
    """The rail calls of one attempt; each has its own idempotency key."""

    TRANSFER = "transfer"
    PAYOUT = "payout"
    REVERSAL = "reversal"


def new_payout_id() -> str:
    # Fits ISO 20022 Max35Text and Stripe metadata; [A-Za-z0-9-] only.
    return "pay-" + uuid.uuid4().hex[:24]


def new_run_id() -> str:
    return "run-" + uuid.uuid4().hex[:20]


@dataclass
class Payout:
    payout_id: str
    run_id: str
    employee: str
    amount: Money
    rail: Rail
    claim_ids: list[str]
    created_at: datetime
    status: PayoutStatus = PayoutStatus.CREATED
    attempt: int = 0
    attempt_started_at: datetime | None = None
    destination_account: str = ""
    transfer_id: str = ""
    stripe_payout_id: str = ""
    reversal_id: str = ""
    failure_reason: str = ""
    bank_reference: str = ""
    sent_at: datetime | None = None
    settled_at: datetime | None = None
    next_try_at: datetime | None = None
    checked_at: datetime | None = None
    version: int = 0

    def __post_init__(self) -> None:
        if self.amount.minor_units <= 0:
            raise WrongState(f"payout {self.payout_id}: amount {self.amount} is not positive")
        if not self.claim_ids:
            raise WrongState(f"payout {self.payout_id} pays no claim")

    def idempotency_key(self, step: Step) -> str:
        """Same payout, attempt and step → same key; a new attempt → new keys."""
        return f"seisan-{self.payout_id}-a{self.attempt}-{step.value}"

    @property
    def money_may_be_out(self) -> bool:
        """True when money may have left the company and not (known to have) come back."""
        return self.status in (
            PayoutStatus.SENDING,
            PayoutStatus.TRANSFERRED,
            PayoutStatus.SENT,
            PayoutStatus.RETURNING,
            PayoutStatus.PAID,
        )

    # -- transitions ------------------------------------------------------------------------

    def _require(self, *allowed: PayoutStatus, doing: str) -> None:
        if self.status not in allowed:
            raise WrongState(
                f"payout {self.payout_id} is {self.status.value}; cannot {doing} "
                f"(only when {' or '.join(s.value for s in allowed)})"
            )

    def advance(self, target: PayoutStatus) -> bool:
        """Move to ``target`` if that is progress; False (no change) if it would go backwards."""
        if self.status in TERMINAL or RANK[target] <= RANK[self.status]:
            return False
        self.status = target
        return True

    def begin_attempt(self, destination_account: str, now: datetime) -> None:
        """Record a new attempt (committed before any rail call)."""
        self._require(PayoutStatus.CREATED, doing="start an attempt")
        self.attempt += 1
        self.attempt_started_at = now
        self.destination_account = destination_account
        self.status = PayoutStatus.SENDING
        self.failure_reason = ""
        self.next_try_at = None

    def new_key_family(self, now: datetime) -> None:
        """The rail settled the current key as failed but nothing was created: try anew.

        Keeps the step the payout is at (a transfer already made stays made).
        """
        self._require(*IN_FLIGHT, doing="start a new attempt")
        self.attempt += 1
        self.attempt_started_at = now

    def transferred(self, transfer_id: str, now: datetime) -> bool:
        if self.status is not PayoutStatus.SENDING:
            return False
        self.transfer_id = transfer_id
        self.status = PayoutStatus.TRANSFERRED
        self.sent_at = self.sent_at or now
        return True

    def sent(self, reference: str, now: datetime) -> bool:
        """Stripe accepted the payout from the connected account, or a bank file was issued."""
        if self.rail is Rail.STRIPE:
            if self.status is not PayoutStatus.TRANSFERRED:
                return False
            self.stripe_payout_id = reference
        else:
            if self.status is not PayoutStatus.CREATED:
                return False
            self.bank_reference = reference
        self.status = PayoutStatus.SENT
        self.sent_at = self.sent_at or now
        return True

    def paid(self, now: datetime, reference: str = "") -> bool:
        if self.status is not PayoutStatus.SENT:
            return False
        if reference and self.rail is Rail.BANK_FILE:
            self.bank_reference = reference
        self.status = PayoutStatus.PAID
        self.settled_at = now
        self.next_try_at = None
        return True

    def returning(self, reason: str) -> bool:
        """The rail failed the payout after money left: bring it back, then fail."""
        if self.status not in (PayoutStatus.TRANSFERRED, PayoutStatus.SENT):
            return False
        self.status = PayoutStatus.RETURNING
        self.failure_reason = reason
        self.next_try_at = None
        return True

    def reversed(self, reversal_id: str, now: datetime) -> bool:
        if self.status is not PayoutStatus.RETURNING:
            return False
        self.reversal_id = reversal_id
        self.status = PayoutStatus.FAILED
        self.settled_at = now
        return True

    def refused(self, reason: str, now: datetime) -> bool:
        """Failed with no money out: refused before any transfer, or a rejected bank transfer."""
        if self.rail is Rail.STRIPE and self.status is not PayoutStatus.SENDING:
            return False
        if self.rail is Rail.BANK_FILE and self.status is not PayoutStatus.SENT:
            return False
        self.status = PayoutStatus.FAILED
        self.failure_reason = reason
        self.settled_at = now
        self.next_try_at = None
        return True

    def cancel(self, reason: str, now: datetime) -> None:
        self._require(PayoutStatus.CREATED, doing="cancel it: money may already be moving")
        self.status = PayoutStatus.CANCELLED
        self.failure_reason = reason or "cancelled"
        self.settled_at = now

    def retry(self) -> None:
        self._require(PayoutStatus.FAILED, doing="retry")
        self.status = PayoutStatus.CREATED
        self.transfer_id = self.stripe_payout_id = self.reversal_id = ""
        self.failure_reason = ""
        self.sent_at = self.settled_at = None
        self.next_try_at = None

    def snapshot(self) -> dict[str, object]:
        return {
            "status": self.status.value,
            "attempt": self.attempt,
            "amount": self.amount.format(),
            "employee": self.employee,
            "destination_account": self.destination_account,
            "transfer_id": self.transfer_id,
            "stripe_payout_id": self.stripe_payout_id,
            "reversal_id": self.reversal_id,
            "bank_reference": self.bank_reference,
            "failure_reason": self.failure_reason,
        }


@dataclass
class PayoutRun:
    run_id: str
    rail: Rail
    created_by: str
    created_at: datetime
    payout_ids: list[str] = field(default_factory=list)
    bank_file_format: BankFileFormat | None = None
    execution_date: date | None = None
    currency: str = ""
    request_id: str = ""
    notes: list[str] = field(default_factory=list)
