"""Every event type, subject and stream name, in one place.

An event of type ``receipt.captured`` travels on subject
``seisan.receipt.captured`` in stream ``SEISAN_EVENTS``. Failed deliveries go
to ``dlq.<consumer>`` in stream ``SEISAN_DLQ``. The README's event
catalogue lists the same names.
"""

from __future__ import annotations

SUBJECT_PREFIX = "seisan"
EVENTS_STREAM = "SEISAN_EVENTS"
EVENTS_SUBJECTS = (f"{SUBJECT_PREFIX}.>",)
DLQ_STREAM = "SEISAN_DLQ"
DLQ_PREFIX = "dlq"
# Reply subjects: a connection signed in as NATS user U uses _INBOX.U (deploy/nats accounts).
INBOX_PREFIX = "_INBOX"

# receipt intake
RECEIPT_CAPTURED = "receipt.captured"
RECEIPT_EXTRACTED = "receipt.extracted"
RECEIPT_NEEDS_REVIEW = "receipt.needs_review"
RECEIPT_CORRECTED = "receipt.corrected"
RECEIPT_DELETED = "receipt.deleted"
RECEIPT_REQUESTED = "receipt.requested"
# card reconciliation
CARD_CHARGE_IMPORTED = "card.charge.imported"
MATCH_PROPOSED = "match.proposed"
MATCH_CONFIRMED = "match.confirmed"
MATCH_REJECTED = "match.rejected"
STATEMENT_RECONCILED = "statement.reconciled"
# reimbursement payout
CLAIM_SUBMITTED = "claim.submitted"
CLAIM_APPROVED = "claim.approved"
CLAIM_REJECTED = "claim.rejected"
PAYOUT_CREATED = "payout.created"
PAYOUT_SENT = "payout.sent"
PAYOUT_PAID = "payout.paid"
PAYOUT_FAILED = "payout.failed"
# audit trail (every service writes its decisions here)
AUDIT_RECORDED = "audit.recorded"


def subject_for(event_type: str) -> str:
    """Subject of an event type: 'receipt.captured' → 'seisan.receipt.captured'."""
    return f"{SUBJECT_PREFIX}.{event_type}"


def event_type_of(subject: str) -> str:
    prefix = SUBJECT_PREFIX + "."
    if not subject.startswith(prefix):
        raise ValueError(f"{subject!r} is not a Seisan event subject")
    return subject[len(prefix) :]


def inbox_prefix(user: str) -> str:
    """The reply-subject prefix of NATS user ``user``: ``_INBOX.<user>`` (only it may read it)."""
    return f"{INBOX_PREFIX}.{user}"


def dlq_subject(consumer: str) -> str:
    """Dead-letter subject of a durable consumer (outside the events stream's subjects)."""
    return f"{DLQ_PREFIX}.{consumer}"
