"""Expense policy: checks on a claim's receipts, each explained in words on the claim.

What blocks and what only warns (``PolicyConfig.blocking``, configurable):

* blocking by default — the rules whose breach means paying money that is not
  owed: a receipt already matched to a corporate-card charge (the company paid
  it already), the same receipt claimed twice, a currency payouts cannot be made
  in, and a receipt that is not the claimant's, not paid personally, deleted,
  unread or unknown. A claim with a blocking finding is refused at submission
  (nothing is stored) and an approval re-checks, in case a card match arrived
  in between.
* warnings by default — judgement calls an approver makes with the facts in
  front of them: above a category's limit, older than the configured age, a
  receipt not marked as paid personally.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date

from seisan_payouts.domain.errors import InvalidRequest
from seisan_payouts.domain.model import (
    ClaimLine,
    PaidWith,
    PolicyFinding,
    ReceiptRef,
    ReceiptState,
    Rule,
    Severity,
)
from seisan_shared.money import Money, MoneyError, check_currency, parse_minor_units

DEFAULT_BLOCKING = frozenset(
    {
        Rule.MATCHED_TO_CARD,
        Rule.DUPLICATE_CLAIM,
        Rule.CURRENCY_NOT_SUPPORTED,
        Rule.RECEIPT_NOT_ELIGIBLE,
    }
)


@dataclass(frozen=True)
class PolicyConfig:
    """``category_limits``: per (category, currency), the most one receipt may claim."""

    payout_currencies: frozenset[str] = frozenset({"JPY", "USD", "EUR"})
    max_receipt_age_days: int = 90
    category_limits: Mapping[tuple[str, str], int] = field(default_factory=dict)
    categories: frozenset[str] = frozenset()  # empty: any category name is accepted
    blocking: frozenset[Rule] = DEFAULT_BLOCKING

    @classmethod
    def from_settings(
        cls,
        *,
        payout_currencies: Iterable[str],
        max_receipt_age_days: int,
        category_limits: Iterable[str],
        blocking_rules: Iterable[str],
        categories: Iterable[str] = (),
    ) -> PolicyConfig:
        """From configuration text: limits as ``meals:JPY:10000`` (major units)."""
        limits: dict[tuple[str, str], int] = {}
        for item in category_limits:
            parts = item.split(":")
            if len(parts) != 3:
                raise ValueError(f"category limit {item!r} is not CATEGORY:CURRENCY:AMOUNT")
            category, currency, amount = parts[0].strip().lower(), parts[1].strip(), parts[2]
            try:
                limits[(category, check_currency(currency))] = parse_minor_units(amount, currency)
            except MoneyError as exc:
                raise ValueError(f"category limit {item!r}: {exc}") from None
        try:
            blocking = frozenset(Rule(r.strip().lower()) for r in blocking_rules)
        except ValueError as exc:
            raise ValueError(f"blocking rules: {exc}; known: {[r.value for r in Rule]}") from None
        for currency in payout_currencies:
            check_currency(currency)
        return cls(
            payout_currencies=frozenset(payout_currencies),
            max_receipt_age_days=max_receipt_age_days,
            category_limits=limits,
            categories=frozenset(c.strip().lower() for c in categories if c.strip()),
            blocking=blocking,
        )

    def severity(self, rule: Rule) -> Severity:
        return Severity.BLOCKING if rule in self.blocking else Severity.WARNING


@dataclass(frozen=True)
class ClaimRequestItem:
    receipt_id: str
    category: str


@dataclass(frozen=True)
class Assessment:
    """Lines that could be built (receipts with an amount) and every finding, in order."""

    lines: list[ClaimLine]
    findings: list[PolicyFinding]

    @property
    def blocking(self) -> list[PolicyFinding]:
        return [f for f in self.findings if f.blocking]


def _finding(policy: PolicyConfig, rule: Rule, message: str, receipt_id: str) -> PolicyFinding:
    return PolicyFinding(rule, policy.severity(rule), message, receipt_id)


def assess(
    claimant: str,
    items: list[ClaimRequestItem],
    receipts: Mapping[str, ReceiptRef],
    claimed_elsewhere: Mapping[str, str],
    policy: PolicyConfig,
    today: date,
) -> Assessment:
    """Check each requested receipt; ``claimed_elsewhere`` maps receipt id → the other claim.

    A receipt that is unknown, deleted, someone else's or has no total yields a
    finding of its own and no line (it cannot be paid); every other receipt
    becomes a line, whatever warnings it carries.
    """
    if not items:
        raise InvalidRequest("a claim needs at least one receipt")
    findings: list[PolicyFinding] = []
    lines: list[ClaimLine] = []
    seen: set[str] = set()
    for item in items:
        rid = item.receipt_id
        category = item.category.strip().lower() or "other"
        if policy.categories and category not in policy.categories:
            raise InvalidRequest(
                f"receipt {rid!r}: unknown category {category!r}; "
                f"one of {', '.join(sorted(policy.categories))}"
            )
        if rid in seen:
            findings.append(
                _finding(policy, Rule.DUPLICATE_CLAIM, f"Receipt {rid} is listed twice.", rid)
            )
            continue
        seen.add(rid)
        ref = receipts.get(rid)
        unusable = _unusable(claimant, rid, ref)
        if unusable:  # it cannot be paid at all, whatever the configuration says
            findings.append(
                PolicyFinding(Rule.RECEIPT_NOT_ELIGIBLE, Severity.BLOCKING, unusable, rid)
            )
            continue
        assert ref is not None and ref.total is not None
        findings += _receipt_findings(category, ref, claimed_elsewhere, policy, today)
        lines.append(
            ClaimLine(
                receipt_id=rid,
                amount=ref.total,
                category=category,
                merchant=ref.merchant,
                transaction_date=ref.transaction_date,
            )
        )
    currencies = sorted({line.amount.currency for line in lines})
    if len(currencies) > 1:
        raise InvalidRequest(
            f"a claim is in one currency; these receipts are in {', '.join(currencies)} "
            "(claim them separately)"
        )
    return Assessment(lines, findings)


def _unusable(claimant: str, rid: str, ref: ReceiptRef | None) -> str:
    """Why a receipt cannot be a claim line at all, or ''."""
    if ref is None:
        return (
            f"Receipt {rid} is not known to payouts yet: it may still be being read; "
            "try again in a moment."
        )
    if ref.submitter != claimant:
        return f"Receipt {rid} was uploaded by someone else; only your own receipts can be claimed."
    if ref.state is ReceiptState.DELETED:
        return f"Receipt {rid} was deleted."
    if ref.total is None or ref.total.minor_units <= 0:
        return f"Receipt {rid} has no total; correct its total before claiming it."
    return ""


def _receipt_findings(
    category: str,
    ref: ReceiptRef,
    claimed_elsewhere: Mapping[str, str],
    policy: PolicyConfig,
    today: date,
) -> list[PolicyFinding]:
    rid = ref.receipt_id
    assert ref.total is not None
    out: list[PolicyFinding] = []

    def add(rule: Rule, message: str) -> None:
        out.append(_finding(policy, rule, message, rid))

    if ref.paid_with is PaidWith.COMPANY_CARD:
        add(
            Rule.RECEIPT_NOT_ELIGIBLE,
            f"Receipt {rid} was paid with a company card; only personal spend is reimbursed.",
        )
    elif ref.paid_with is PaidWith.UNSPECIFIED:
        out.append(
            PolicyFinding(
                Rule.RECEIPT_NOT_ELIGIBLE,
                Severity.WARNING,
                f"Receipt {rid} is not marked as paid personally; check that it was.",
                rid,
            )
        )
    if ref.state is ReceiptState.NEEDS_REVIEW:
        out.append(
            PolicyFinding(
                Rule.RECEIPT_NOT_ELIGIBLE,
                Severity.WARNING,
                f"Receipt {rid} was read with low confidence and not yet corrected; "
                "check its amount against the image.",
                rid,
            )
        )
    if ref.match_id:
        charges = ", ".join(ref.matched_charge_ids) or ref.match_id
        add(
            Rule.MATCHED_TO_CARD,
            f"Receipt {rid} is matched to card charge {charges}; the company already paid it.",
        )
    if rid in claimed_elsewhere:
        add(Rule.DUPLICATE_CLAIM, f"Receipt {rid} is already in claim {claimed_elsewhere[rid]}.")
    if ref.total.currency not in policy.payout_currencies:
        add(
            Rule.CURRENCY_NOT_SUPPORTED,
            f"Receipt {rid} is in {ref.total.currency}; payouts are made in "
            f"{', '.join(sorted(policy.payout_currencies))} only.",
        )
    limit = policy.category_limits.get((category, ref.total.currency))
    if limit is not None and ref.total.minor_units > limit:
        add(
            Rule.CATEGORY_LIMIT,
            f"Receipt {rid} ({ref.total.format()}) is above the {category} limit of "
            f"{Money(limit, ref.total.currency).format()}.",
        )
    if ref.transaction_date is not None:
        age = (today - ref.transaction_date).days
        if age > policy.max_receipt_age_days:
            add(
                Rule.RECEIPT_TOO_OLD,
                f"Receipt {rid} is {age} days old (from {ref.transaction_date.isoformat()}); "
                f"the policy allows {policy.max_receipt_age_days}.",
            )
    return out
