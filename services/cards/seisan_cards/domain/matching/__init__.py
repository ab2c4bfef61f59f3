"""Matching engine: corporate-card charges to receipts. Pure (standard library, numpy, shared).

Batch: `reconcile(charges, receipts, thresholds, rejected=...)` → `Reconciliation`.
Incremental: `MatchIndex` of open charges and receipts, queried one item at a time.
"""

from .descriptors import merchant_similarity, normalise_merchant
from .engine import Reconciliation, reconcile
from .index import MatchIndex
from .model import (
    DEFAULT_THRESHOLDS,
    TIP_MCCS,
    AmountKind,
    ChargeTable,
    ChargeView,
    Match,
    MatchStatus,
    ReceiptTable,
    ReceiptView,
    SignalBreakdown,
    Thresholds,
)

__all__ = [
    "DEFAULT_THRESHOLDS",
    "TIP_MCCS",
    "AmountKind",
    "ChargeTable",
    "ChargeView",
    "Match",
    "MatchIndex",
    "MatchStatus",
    "ReceiptTable",
    "ReceiptView",
    "Reconciliation",
    "SignalBreakdown",
    "Thresholds",
    "merchant_similarity",
    "normalise_merchant",
    "reconcile",
]
