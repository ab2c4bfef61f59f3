"""Enum values and message codes in words people read (then translated)."""

from __future__ import annotations

from collections.abc import Callable

from seisan.cards.v1 import cards_pb2
from seisan.payouts.v1 import payouts_pb2
from seisan.receipts.v1 import receipts_pb2

_PREFIXES = {
    "receipt": ("RECEIPT_STATUS_", receipts_pb2.ReceiptStatus),
    "paid_with": ("PAID_WITH_", receipts_pb2.PaidWith),
    "charge": ("CHARGE_STATUS_", cards_pb2.ChargeStatus),
    "match": ("MATCH_STATUS_", cards_pb2.MatchStatus),
    "claim": ("CLAIM_STATUS_", payouts_pb2.ClaimStatus),
    "payout": ("PAYOUT_STATUS_", payouts_pb2.PayoutStatus),
    "severity": ("FINDING_SEVERITY_", payouts_pb2.FindingSeverity),
    "rail": ("PAYOUT_RAIL_", payouts_pb2.PayoutRail),
}


def name(kind: str, value: int) -> str:
    """('receipt', 3) → 'needs review'; an unknown value → its number."""
    prefix, enum = _PREFIXES[kind]
    try:
        return enum.Name(value).removeprefix(prefix).lower().replace("_", " ")  # type: ignore[arg-type]
    except ValueError:
        return str(value)


def label(t: Callable[..., str], kind: str, value: int) -> str:
    return t(name(kind, value))


# ?msg= codes a redirect may carry → the sentence shown (translated on render).
MESSAGES = {
    "saved": "Saved.",
    "uploaded": "Uploaded",
    "declared": "Declared.",
    "approved": "Approved.",
    "rejected": "Rejected.",
    "confirmed": "Confirmed.",
    "matched": "Matched by hand.",
    "submitted": "submitted",
    "imported": "Imported.",
    "requested": "Cardholders were asked for their receipts.",
    "linked": "Account linked.",
}
