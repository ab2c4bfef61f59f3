"""The reconciliation model: stored charges, statements, matches, declarations, receipt refs,
and the report with its statement close check.

Invariants that money depends on:

* A charge and a receipt are each in at most one *live* match (proposed or confirmed).
  A split is one match holding several receipts for one charge, or one receipt over
  several charges, so the rule has no exception; the database enforces it too
  (partial unique indexes on the live parts of a match).
* A charge's status follows from its match and declaration: MATCHED with a confirmed
  match, SUGGESTED with a proposed one, DECLARED_MISSING with a declaration, else
  UNMATCHED. Nothing else moves it.
* The statement close check: statement total = matched + declared + open (suggested +
  unmatched), per currency, to the minor unit. Every line of a statement is in exactly
  one of those states, so a difference means the stored state is inconsistent.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from seisan_cards.domain.charges import CardCharge, StatementFormat
from seisan_cards.domain.errors import ChargeStateError, MatchStateError, NotYourCharge
from seisan_shared.money import Money

TREASURY_ROLES = frozenset({"treasury", "admin"})


@dataclass(frozen=True)
class Actor:
    name: str
    roles: frozenset[str]

    @property
    def sees_all(self) -> bool:
        """Treasury and admin see every cardholder's charges; staff only their own."""
        return bool(self.roles & TREASURY_ROLES)


class ChargeStatus(enum.StrEnum):
    UNMATCHED = "unmatched"
    SUGGESTED = "suggested"
    MATCHED = "matched"
    DECLARED_MISSING = "declared_missing"


OPEN_STATUSES = frozenset({ChargeStatus.UNMATCHED, ChargeStatus.SUGGESTED})


@dataclass(frozen=True)
class ChargeRecord:
    """A charge as this service keeps it: the parsed line plus its reconciliation state.

    ``charge.cardholder`` is the principal holding the card (resolved through the card
    directory at import); ``cardholder_name`` is the name as the issuer printed it.
    """

    charge: CardCharge
    statement_id: str | None
    imported_at: datetime
    status: ChargeStatus = ChargeStatus.UNMATCHED
    match_id: str = ""
    cardholder_name: str = ""

    @property
    def charge_id(self) -> str:
        return self.charge.charge_id

    @property
    def cardholder(self) -> str:
        return self.charge.cardholder

    @property
    def amount(self) -> Money:
        return self.charge.amount

    @property
    def booking_date(self) -> date:
        """The date the journal books it on: posted, or bought when the feed has no posting."""
        return self.charge.posting_date or self.charge.transaction_date

    @property
    def needs_receipt(self) -> bool:
        """Open and a real charge (a credit or a zero line asks nobody for a receipt)."""
        return self.status is ChargeStatus.UNMATCHED and self.amount.minor_units > 0

    def check_can_read(self, actor: Actor) -> None:
        if not actor.sees_all and actor.name != self.cardholder:
            raise NotYourCharge(f"charge {self.charge_id!r} is on another cardholder's card")

    def check_can_declare(self, actor: Actor) -> None:
        # The declaration is signed as the caller: only the cardholder may sign it, whatever
        # other roles they hold.
        if actor.name != self.cardholder:
            raise NotYourCharge(
                f"only the cardholder may declare a receipt missing for charge {self.charge_id!r}"
            )
        if self.status is not ChargeStatus.UNMATCHED:
            raise ChargeStateError(
                f"charge {self.charge_id!r} is {self.status.value}; only an unmatched charge "
                "can be declared missing"
            )


@dataclass(frozen=True)
class Statement:
    """An imported statement file. ``totals`` is the file's own sum per currency."""

    statement_id: str
    format: StatementFormat
    filename: str
    sha256: str
    period_start: date | None
    period_end: date | None
    totals: Mapping[str, int]
    charge_count: int
    imported_by: str
    imported_at: datetime

    def overlaps(self, start: date | None, end: date | None) -> bool:
        if start is not None and self.period_end is not None and self.period_end < start:
            return False
        return not (end is not None and self.period_start is not None and self.period_start > end)


class MatchStatus(enum.StrEnum):
    PROPOSED = "proposed"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    UNMATCHED = "unmatched"


LIVE_MATCH_STATUSES = frozenset({MatchStatus.PROPOSED, MatchStatus.CONFIRMED})


class MatchOrigin(enum.StrEnum):
    ENGINE = "engine"
    MANUAL = "manual"


SIGNALS = ("amount", "date", "merchant", "card_last4", "cardholder")


@dataclass
class Match:
    """Receipts paired with charges, and the decisions about the pairing.

    proposed → confirmed | rejected; confirmed → unmatched. Rejected and unmatched are
    final: their pairs are never proposed again.
    """

    match_id: str
    charge_ids: tuple[str, ...]
    receipt_ids: tuple[str, ...]
    status: MatchStatus
    origin: MatchOrigin
    score: float
    signals: Mapping[str, float]
    reasons: tuple[str, ...]
    threshold_version: str
    proposed_at: datetime
    cardholder: str = ""
    automatic: bool = False
    decided_by: str = ""
    decided_at: datetime | None = None
    decision_reason: str = ""
    version: int = 0

    def __post_init__(self) -> None:
        if not self.charge_ids or not self.receipt_ids:
            raise ValueError("a match needs at least one charge and one receipt")
        if len(self.charge_ids) > 1 and len(self.receipt_ids) > 1:
            raise ValueError("a split is several receipts for one charge or the reverse")

    @property
    def live(self) -> bool:
        return self.status in LIVE_MATCH_STATUSES

    @property
    def is_split(self) -> bool:
        return len(self.charge_ids) > 1 or len(self.receipt_ids) > 1

    def pairs(self) -> list[tuple[str, str]]:
        return [(c, r) for c in self.charge_ids for r in self.receipt_ids]

    def snapshot(self) -> dict[str, object]:
        """What the audit trail records of it before and after a decision."""
        return {
            "status": self.status.value,
            "charge_ids": list(self.charge_ids),
            "receipt_ids": list(self.receipt_ids),
            "score": round(self.score, 4),
            "origin": self.origin.value,
            "automatic": self.automatic,
            "threshold_version": self.threshold_version,
        }

    def _decide(self, to: MatchStatus, actor: str, reason: str, now: datetime) -> None:
        self.status = to
        self.decided_by = actor
        self.decided_at = now
        self.decision_reason = reason

    def confirm(self, actor: str, now: datetime) -> None:
        if self.status is not MatchStatus.PROPOSED:
            raise MatchStateError(
                f"match {self.match_id!r} is {self.status.value}; only a proposed match "
                "can be confirmed"
            )
        self._decide(MatchStatus.CONFIRMED, actor, "", now)

    def reject(self, actor: str, reason: str, now: datetime) -> None:
        if self.status is not MatchStatus.PROPOSED:
            hint = "; use unmatch to undo a confirmed match" if self.is_confirmed else ""
            raise MatchStateError(
                f"match {self.match_id!r} is {self.status.value}; only a proposed match "
                f"can be rejected{hint}"
            )
        self._decide(MatchStatus.REJECTED, actor, reason, now)

    def unmatch(self, actor: str, reason: str, now: datetime) -> None:
        if self.status is not MatchStatus.CONFIRMED:
            raise MatchStateError(
                f"match {self.match_id!r} is {self.status.value}; only a confirmed match "
                "can be unmatched"
            )
        self._decide(MatchStatus.UNMATCHED, actor, reason, now)

    @property
    def is_confirmed(self) -> bool:
        return self.status is MatchStatus.CONFIRMED


class ReceiptState(enum.StrEnum):
    OPEN = "open"
    SUGGESTED = "suggested"
    MATCHED = "matched"
    DELETED = "deleted"


class PaidWith(enum.StrEnum):
    UNSPECIFIED = "unspecified"
    COMPANY_CARD = "company_card"
    PERSONAL = "personal"


@dataclass(frozen=True)
class ReceiptRef:
    """What this service knows of a receipt, from ``receipt.*`` events: enough to match it."""

    receipt_id: str
    submitter: str
    merchant: str
    receipt_date: date | None
    total: Money | None
    tip_minor: int | None
    card_last4: str | None
    paid_with: PaidWith
    updated_at: datetime
    state: ReceiptState = ReceiptState.OPEN
    match_id: str = ""

    @property
    def matchable(self) -> bool:
        """Open, with a date and a positive total, and not paid with personal money."""
        return (
            self.state is ReceiptState.OPEN
            and self.receipt_date is not None
            and self.total is not None
            and self.total.minor_units > 0
            and self.paid_with is not PaidWith.PERSONAL
        )

    def with_fields(self, other: ReceiptRef) -> ReceiptRef:
        """``other``'s fields, keeping this ref's match state."""
        return replace(other, state=self.state, match_id=self.match_id)


ATTESTATION = (
    "I, {cardholder}, declare that I have no receipt for the charge of {amount} at {merchant} "
    "on {day} (charge {charge_id}); that it was a business expense for the purpose stated; "
    "and that I have not claimed and will not claim it in any other way."
)


@dataclass(frozen=True)
class MissingReceiptDeclaration:
    declaration_id: str
    charge_id: str
    cardholder: str
    description: str
    business_purpose: str
    attestation: str
    declared_at: datetime

    @staticmethod
    def attestation_for(record: ChargeRecord) -> str:
        c = record.charge
        return ATTESTATION.format(
            cardholder=record.cardholder,
            amount=c.amount.format(),
            merchant=c.merchant or "(no merchant)",
            day=c.transaction_date.isoformat(),
            charge_id=c.charge_id,
        )


# --- the report ---------------------------------------------------------------------------


@dataclass
class Totals:
    """Counts and amounts (minor units) in one currency, by reconciliation state."""

    currency: str
    matched_count: int = 0
    matched: int = 0
    suggested_count: int = 0
    suggested: int = 0
    unmatched_count: int = 0
    unmatched: int = 0
    declared_count: int = 0
    declared: int = 0

    def add(self, status: ChargeStatus, minor_units: int, count: int = 1) -> None:
        if status is ChargeStatus.MATCHED:
            self.matched_count += count
            self.matched += minor_units
        elif status is ChargeStatus.SUGGESTED:
            self.suggested_count += count
            self.suggested += minor_units
        elif status is ChargeStatus.DECLARED_MISSING:
            self.declared_count += count
            self.declared += minor_units
        else:
            self.unmatched_count += count
            self.unmatched += minor_units

    @property
    def open(self) -> int:
        return self.suggested + self.unmatched

    @property
    def count(self) -> int:
        return (
            self.matched_count + self.suggested_count + self.unmatched_count + self.declared_count
        )


@dataclass(frozen=True)
class Tally:
    """Charges of one cardholder, currency and status: how many, and their sum."""

    cardholder: str
    currency: str
    status: ChargeStatus
    count: int
    minor_units: int


def tally_charges(charges: Iterable[ChargeRecord]) -> list[Tally]:
    sums: dict[tuple[str, str, ChargeStatus], list[int]] = {}
    for record in charges:
        key = (record.cardholder, record.amount.currency, record.status)
        slot = sums.setdefault(key, [0, 0])
        slot[0] += 1
        slot[1] += record.amount.minor_units
    return [Tally(h, c, s, n, m) for (h, c, s), (n, m) in sorted(sums.items())]


def totals_by_currency(tallies: Iterable[Tally]) -> dict[str, Totals]:
    out: dict[str, Totals] = {}
    for t in tallies:
        out.setdefault(t.currency, Totals(t.currency)).add(t.status, t.minor_units, t.count)
    return dict(sorted(out.items()))


def totals_by_cardholder(tallies: Iterable[Tally]) -> dict[str, list[Totals]]:
    holders: dict[str, list[Tally]] = {}
    for t in tallies:
        holders.setdefault(t.cardholder, []).append(t)
    return {h: list(totals_by_currency(ts).values()) for h, ts in sorted(holders.items())}


@dataclass(frozen=True)
class CloseCheck:
    """statement_total − matched − declared − open; the statement closes when it is zero."""

    currency: str
    statement_total: int
    matched: int
    declared: int
    open: int

    @property
    def difference(self) -> int:
        return self.statement_total - self.matched - self.declared - self.open

    @property
    def balanced(self) -> bool:
        return self.difference == 0

    @property
    def settled(self) -> bool:
        """Balanced and nothing open: every line matched or declared."""
        return self.balanced and self.open == 0


@dataclass(frozen=True)
class StatementReconciliation:
    statement: Statement
    totals: Totals
    close_check: CloseCheck


def reconcile_statement(
    statement: Statement, lines: Iterable[Tally]
) -> list[StatementReconciliation]:
    """One entry per currency of the statement (its file totals and its lines' states).

    ``lines`` tally the charges the statement carries, whichever import first brought
    them. An empty statement gets one entry with currency "" and zeros.
    """
    by_currency = totals_by_currency(lines)
    currencies = sorted(set(statement.totals) | set(by_currency)) or [""]
    out = []
    for currency in currencies:
        totals = by_currency.get(currency, Totals(currency))
        check = CloseCheck(
            currency=currency,
            statement_total=int(statement.totals.get(currency, 0)),
            matched=totals.matched,
            declared=totals.declared,
            open=totals.open,
        )
        out.append(StatementReconciliation(statement, totals, check))
    return out


@dataclass(frozen=True)
class ReconciliationReport:
    statements: list[StatementReconciliation]
    cardholders: dict[str, list[Totals]]
    generated_at: datetime
    threshold_version: str
    unbalanced: list[StatementReconciliation] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        statements: Sequence[tuple[Statement, Sequence[Tally]]],
        cardholder_tallies: Iterable[Tally],
        *,
        generated_at: datetime,
        threshold_version: str,
    ) -> ReconciliationReport:
        entries = [entry for s, lines in statements for entry in reconcile_statement(s, lines)]
        return cls(
            statements=entries,
            cardholders=totals_by_cardholder(cardholder_tallies),
            generated_at=generated_at,
            threshold_version=threshold_version,
            unbalanced=[e for e in entries if not e.close_check.balanced],
        )


def charge_status_for(match: Match | None, declared: bool) -> ChargeStatus:
    """The invariant of the module docstring, in one place."""
    if match is not None and match.status is MatchStatus.CONFIRMED:
        return ChargeStatus.MATCHED
    if match is not None and match.status is MatchStatus.PROPOSED:
        return ChargeStatus.SUGGESTED
    return ChargeStatus.DECLARED_MISSING if declared else ChargeStatus.UNMATCHED


def receipt_state_for(match: Match | None) -> ReceiptState:
    if match is not None and match.status is MatchStatus.CONFIRMED:
        return ReceiptState.MATCHED
    if match is not None and match.status is MatchStatus.PROPOSED:
        return ReceiptState.SUGGESTED
    return ReceiptState.OPEN
