"""The event catalogue: every event type, its payload message, who publishes it and when.

One row per event type constant of :mod:`seisan_shared.subjects`. The README's
"Event catalogue" table is rendered from :data:`CATALOGUE` by
``tools/gen_catalogue.py`` (``tests/unit/test_catalogue.py`` fails when it is stale).

``audit.recorded`` is resolved by its full message name
(``seisan.audit.v1.AuditRecorded``) rather than imported by module, so this
module imports even where the audit contract is not generated; the catalogue
test requires the entry as soon as ``protos/seisan/audit`` exists.
"""

from __future__ import annotations

import builtins
import importlib
import pkgutil
from dataclasses import dataclass
from functools import cache

from google.protobuf import descriptor_pool, message_factory
from google.protobuf.message import Message

import seisan
from seisan.cards.v1 import events_pb2 as cards_events
from seisan.payouts.v1 import events_pb2 as payouts_events
from seisan.receipts.v1 import events_pb2 as receipts_events
from seisan_shared import subjects
from seisan_shared.subjects import subject_for

AUDIT_RECORDED_PAYLOAD = "seisan.audit.v1.AuditRecorded"


@dataclass(frozen=True)
class EventSpec:
    """One event type: its payload message class, publishing service and moment."""

    type: str
    payload: builtins.type[Message]
    publisher: str
    when: str

    @property
    def subject(self) -> str:
        return subject_for(self.type)

    @property
    def payload_name(self) -> str:
        """Full protobuf name of the payload, e.g. ``seisan.receipts.v1.ReceiptCaptured``."""
        return self.payload.DESCRIPTOR.full_name


def import_all() -> None:
    """Import every generated ``*_pb2`` module so every payload type is in the descriptor pool.

    ``events.unpack_payload`` looks payload types up by name; call this once
    before decoding events of arbitrary types. Idempotent and cheap after the first call.
    """
    _import_generated()


@cache
def _import_generated() -> None:
    for module in pkgutil.walk_packages(seisan.__path__, prefix="seisan."):
        if module.name.endswith("_pb2"):
            importlib.import_module(module.name)


def message_class(full_name: str) -> builtins.type[Message] | None:
    """The generated class of a message by full name, or None when no module defines it."""
    import_all()
    try:
        descriptor = descriptor_pool.Default().FindMessageTypeByName(full_name)
    except KeyError:
        return None
    return message_factory.GetMessageClass(descriptor)


def _specs() -> tuple[EventSpec, ...]:
    r, c, p = receipts_events, cards_events, payouts_events
    specs = [
        EventSpec(
            subjects.RECEIPT_CAPTURED,
            r.ReceiptCaptured,
            "intake",
            "An upload was accepted and stored (not for an exact duplicate); starts OCR.",
        ),
        EventSpec(
            subjects.RECEIPT_EXTRACTED,
            r.ReceiptExtracted,
            "intake OCR worker",
            "OCR read the receipt and every key field is confident enough to use.",
        ),
        EventSpec(
            subjects.RECEIPT_NEEDS_REVIEW,
            r.ReceiptNeedsReview,
            "intake OCR worker",
            "OCR finished but a field is missing or low-confidence; a person should check.",
        ),
        EventSpec(
            subjects.RECEIPT_CORRECTED,
            r.ReceiptCorrected,
            "intake",
            "The submitter changed extracted fields (old → new).",
        ),
        EventSpec(
            subjects.RECEIPT_DELETED,
            r.ReceiptDeleted,
            "intake",
            "A receipt that was neither matched nor claimed was deleted.",
        ),
        EventSpec(
            subjects.RECEIPT_REQUESTED,
            r.ReceiptRequested,
            "cards",
            "Treasury asked for missing receipts: one event per cardholder.",
        ),
        EventSpec(
            subjects.CARD_CHARGE_IMPORTED,
            c.CardChargeImported,
            "cards",
            "A charge new to the system arrived (statement import or Stripe Issuing feed).",
        ),
        EventSpec(
            subjects.MATCH_PROPOSED,
            c.MatchProposed,
            "cards",
            "The engine found a match above the suggest threshold; it waits for a person.",
        ),
        EventSpec(
            subjects.MATCH_CONFIRMED,
            c.MatchConfirmed,
            "cards",
            "A match became final: auto-confirmed, confirmed or made manually by a person.",
        ),
        EventSpec(
            subjects.MATCH_REJECTED,
            c.MatchRejected,
            "cards",
            "A person rejected a proposal (never proposed again) or undid a match (Unmatch).",
        ),
        EventSpec(
            subjects.STATEMENT_RECONCILED,
            c.StatementReconciled,
            "cards",
            "A reconciliation run over a whole statement finished, with its close check.",
        ),
        EventSpec(
            subjects.CLAIM_SUBMITTED,
            p.ClaimSubmitted,
            "payouts",
            "A claim for personally paid receipts was submitted, with its policy findings.",
        ),
        EventSpec(
            subjects.CLAIM_APPROVED,
            p.ClaimApproved,
            "payouts",
            "An approver other than the claimant approved the claim.",
        ),
        EventSpec(
            subjects.CLAIM_REJECTED,
            p.ClaimRejected,
            "payouts",
            "An approver rejected the claim, with the reason.",
        ),
        EventSpec(
            subjects.PAYOUT_CREATED,
            p.PayoutCreated,
            "payouts",
            "A payout run grouped approved claims into a payout; no money moved yet.",
        ),
        EventSpec(
            subjects.PAYOUT_SENT,
            p.PayoutSent,
            "payouts",
            "The rail accepted the payout (Stripe transfer created, or bank file issued).",
        ),
        EventSpec(
            subjects.PAYOUT_PAID,
            p.PayoutPaid,
            "payouts",
            "The money reached the employee (Stripe webhook, or treasury's bank confirmation).",
        ),
        EventSpec(
            subjects.PAYOUT_FAILED,
            p.PayoutFailed,
            "payouts",
            "The rail refused or returned the payout; its claims are approved-unpaid again.",
        ),
    ]
    audit = message_class(AUDIT_RECORDED_PAYLOAD)
    if audit is not None:
        specs.append(
            EventSpec(
                subjects.AUDIT_RECORDED,
                audit,
                "every service",
                "A service made a decision worth auditing, in the same transaction (outbox).",
            )
        )
    return tuple(specs)


CATALOGUE: tuple[EventSpec, ...] = _specs()

_BY_TYPE = {spec.type: spec for spec in CATALOGUE}


def spec_for(event_type: str) -> EventSpec:
    """The catalogue entry of an event type; KeyError names an unknown type."""
    try:
        return _BY_TYPE[event_type]
    except KeyError:
        raise KeyError(f"event type {event_type!r} is not in the catalogue") from None


def render_markdown() -> str:
    """The catalogue as the markdown table the README shows between its catalogue markers."""
    rows = [
        "Every event is a `seisan.events.v1.Envelope` on subject"
        f" `{subjects.SUBJECT_PREFIX}.<type>` in stream `{subjects.EVENTS_STREAM}`;"
        " its `payload` (a `google.protobuf.Any`) holds"
        " the message below. Generated by `tools/gen_catalogue.py` from"
        " `shared/seisan_shared/catalogue.py`; do not edit by hand.",
        "",
        "| Subject | Payload | Publisher | When published |",
        "|---|---|---|---|",
    ]
    for spec in CATALOGUE:
        rows.append(
            f"| `{spec.subject}` | `{spec.payload_name}` | {spec.publisher} | {spec.when} |"
        )
    return "\n".join(rows) + "\n"
