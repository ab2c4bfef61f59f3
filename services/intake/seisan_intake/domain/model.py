"""The receipt aggregate: what was uploaded, by whom, and what it says."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

from seisan_intake.domain.errors import NotYourReceipt, ReceiptLocked


class Status(enum.StrEnum):
    PROCESSING = "processing"
    EXTRACTED = "extracted"
    NEEDS_REVIEW = "needs_review"
    MATCHED = "matched"
    CLAIMED = "claimed"
    DELETED = "deleted"


class PaidWith(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    COMPANY_CARD = "company_card"
    PERSONAL = "personal"


READ_ALL_ROLES = frozenset({"approver", "treasury", "admin"})
ORIGINAL_READERS = frozenset({"treasury", "admin"})


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[str]


@dataclass(frozen=True)
class StoredImage:
    """Facts about an accepted upload (the bytes live in the blob store)."""

    sha256: str
    content_type: str
    size_bytes: int
    width: int
    height: int
    perceptual_hash: str
    original_key: str
    normalized_key: str


@dataclass
class Receipt:
    receipt_id: str
    submitter: str
    paid_with: PaidWith
    note: str
    image: StoredImage
    uploaded_at: datetime
    status: Status = Status.PROCESSING
    # Extracted fields, as plain JSON-able data (see fields.py for its shape).
    fields: dict[str, Any] = field(default_factory=dict)
    review_reasons: list[str] = field(default_factory=list)
    possible_duplicate_of: str = ""
    ocr_text: str = ""
    version: int = 0

    # search columns (Electronic Bookkeeping Act: date, amount, counterparty)
    @property
    def merchant(self) -> str | None:
        value = self.fields.get("merchant", {}).get("value")
        return str(value) if value else None

    @property
    def transaction_date(self) -> date | None:
        value = self.fields.get("transaction_date", {}).get("value")
        return date.fromisoformat(value) if value else None

    @property
    def total_minor(self) -> int | None:
        value = self.fields.get("total", {}).get("minor_units")
        return int(value) if value is not None else None

    @property
    def currency(self) -> str | None:
        value = self.fields.get("total", {}).get("currency")
        return str(value) if value else None

    def check_can_read(self, actor: Actor) -> None:
        if actor.name != self.submitter and not (actor.roles & READ_ALL_ROLES):
            # Same answer as "not found" would leak existence; staff get a plain denial.
            raise NotYourReceipt(f"receipt {self.receipt_id!r} belongs to another user")

    def check_can_read_original(self, actor: Actor) -> None:
        if actor.name != self.submitter and not (actor.roles & ORIGINAL_READERS):
            raise NotYourReceipt(
                "the original image is evidence: only its submitter, treasury and admin may read it"
            )

    def check_can_change(self, actor: Actor) -> None:
        if actor.name != self.submitter and "admin" not in actor.roles:
            raise NotYourReceipt(f"only the submitter may change receipt {self.receipt_id!r}")
        if self.status in (Status.MATCHED, Status.CLAIMED):
            raise ReceiptLocked(
                f"receipt {self.receipt_id!r} is {self.status.value}; unlink it first"
            )
        if self.status is Status.DELETED:
            raise ReceiptLocked(f"receipt {self.receipt_id!r} is deleted")

    def with_status(self, status: Status) -> Receipt:
        return replace(self, status=status)


# What other services' decisions do to a receipt's status (card match, claim).
LINKABLE = frozenset({Status.EXTRACTED, Status.NEEDS_REVIEW, Status.PROCESSING})


def linked_status(current: Status, link: Status) -> Status | None:
    """The status after a match or claim takes the receipt, or None if it does not apply."""
    if current in LINKABLE:
        return link
    return None


def released_status(
    current: Status, link: Status, review_reasons: list[str], extracted: bool
) -> Status | None:
    """The status after a match is undone or a claim rejected, or None if it does not apply."""
    if current is not link:
        return None
    if not extracted:
        return Status.PROCESSING  # OCR has not finished yet; its result will set the status
    return Status.NEEDS_REVIEW if review_reasons else Status.EXTRACTED
