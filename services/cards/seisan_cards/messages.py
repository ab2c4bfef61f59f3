"""Translation between the domain (plain data) and protobuf messages, at the edges only."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

from seisan.cards.v1 import cards_pb2, events_pb2
from seisan.common.v1 import common_pb2
from seisan.receipts.v1 import events_pb2 as receipt_events
from seisan.receipts.v1 import receipts_pb2
from seisan_cards.domain.charges import StatementFormat
from seisan_cards.domain.matching.scoring import WEIGHTS
from seisan_cards.domain.model import (
    ChargeRecord,
    ChargeStatus,
    CloseCheck,
    Match,
    MatchOrigin,
    MatchStatus,
    MissingReceiptDeclaration,
    PaidWith,
    ReconciliationReport,
    Statement,
    StatementReconciliation,
    Totals,
)
from seisan_shared.protoconv import date_to_pb
from seisan_shared.protoconv import money_to_pb as _money

FORMAT_TO_PB = {
    StatementFormat.GENERIC_CSV: cards_pb2.STATEMENT_FORMAT_GENERIC_CSV,
    StatementFormat.OFX: cards_pb2.STATEMENT_FORMAT_OFX,
    StatementFormat.VISA_VCF: cards_pb2.STATEMENT_FORMAT_VISA_VCF,
    StatementFormat.MASTERCARD_CDF: cards_pb2.STATEMENT_FORMAT_MASTERCARD_CDF,
    StatementFormat.AMEX_GL1025: cards_pb2.STATEMENT_FORMAT_AMEX_GL1025,
    StatementFormat.STRIPE_ISSUING: cards_pb2.STATEMENT_FORMAT_STRIPE_ISSUING,
}
FORMAT_FROM_PB = {v: k for k, v in FORMAT_TO_PB.items()}
CHARGE_STATUS_TO_PB = {
    ChargeStatus.UNMATCHED: cards_pb2.CHARGE_STATUS_UNMATCHED,
    ChargeStatus.SUGGESTED: cards_pb2.CHARGE_STATUS_SUGGESTED,
    ChargeStatus.MATCHED: cards_pb2.CHARGE_STATUS_MATCHED,
    ChargeStatus.DECLARED_MISSING: cards_pb2.CHARGE_STATUS_DECLARED_MISSING,
}
CHARGE_STATUS_FROM_PB = {v: k for k, v in CHARGE_STATUS_TO_PB.items()}
MATCH_STATUS_TO_PB = {
    MatchStatus.PROPOSED: cards_pb2.MATCH_STATUS_SUGGESTED,
    MatchStatus.CONFIRMED: cards_pb2.MATCH_STATUS_CONFIRMED,
    MatchStatus.REJECTED: cards_pb2.MATCH_STATUS_REJECTED,
    MatchStatus.UNMATCHED: cards_pb2.MATCH_STATUS_UNMATCHED,
}
ORIGIN_TO_PB = {
    MatchOrigin.ENGINE: cards_pb2.MATCH_ORIGIN_ENGINE,
    MatchOrigin.MANUAL: cards_pb2.MATCH_ORIGIN_MANUAL,
}
PAID_WITH_FROM_PB = {
    receipts_pb2.PAID_WITH_UNSPECIFIED: PaidWith.UNSPECIFIED,
    receipts_pb2.PAID_WITH_COMPANY_CARD: PaidWith.COMPANY_CARD,
    receipts_pb2.PAID_WITH_PERSONAL: PaidWith.PERSONAL,
}
# The engine's reasons come in this order (amount first); the card digits only when shown.
_REASON_ORDER = ("amount", "merchant", "date", "cardholder", "card_last4")
_SIGNAL_TO_PB = {
    "amount": cards_pb2.MATCH_SIGNAL_AMOUNT,
    "date": cards_pb2.MATCH_SIGNAL_DATE,
    "merchant": cards_pb2.MATCH_SIGNAL_MERCHANT,
    "card_last4": cards_pb2.MATCH_SIGNAL_CARD_LAST4,
    "cardholder": cards_pb2.MATCH_SIGNAL_SUBMITTER,
}


def money_to_pb(minor_units: int, currency: str) -> common_pb2.Money:
    return common_pb2.Money(minor_units=minor_units, currency=currency)


def charge_to_pb(record: ChargeRecord) -> cards_pb2.CardCharge:
    c = record.charge
    pb = cards_pb2.CardCharge(
        charge_id=c.charge_id,
        issuer_transaction_id=c.issuer_transaction_id,
        statement_id=record.statement_id or "",
        card_last4=c.card_last4,
        cardholder=c.cardholder,
        transaction_date=date_to_pb(c.transaction_date),
        merchant_descriptor=c.merchant,
        mcc=c.mcc,
        amount=_money(c.amount),
        status=CHARGE_STATUS_TO_PB[record.status],
        source=FORMAT_TO_PB.get(c.source_format, cards_pb2.STATEMENT_FORMAT_UNSPECIFIED),
        match_id=record.match_id,
    )
    if c.posting_date is not None:
        pb.posting_date.CopyFrom(date_to_pb(c.posting_date))
    if c.original_amount is not None:
        pb.original_amount.CopyFrom(_money(c.original_amount))
    pb.imported_at.FromDatetime(record.imported_at)
    return pb


def statement_to_pb(s: Statement) -> cards_pb2.Statement:
    pb = cards_pb2.Statement(
        statement_id=s.statement_id,
        format=FORMAT_TO_PB.get(s.format, cards_pb2.STATEMENT_FORMAT_UNSPECIFIED),
        filename=s.filename,
        sha256=s.sha256,
        charge_count=s.charge_count,
        imported_by=s.imported_by,
    )
    if s.period_start is not None:
        pb.period_start.CopyFrom(date_to_pb(s.period_start))
    if s.period_end is not None:
        pb.period_end.CopyFrom(date_to_pb(s.period_end))
    if s.totals:
        # The billing currency: the statement's largest total (almost always its only one).
        currency = max(s.totals, key=lambda c: (abs(s.totals[c]), c))
        pb.total.CopyFrom(money_to_pb(int(s.totals[currency]), currency))
    pb.imported_at.FromDatetime(s.imported_at)
    return pb


def breakdown(match: Match) -> list[cards_pb2.SignalScore]:
    """One SignalScore per signal the score weighed, with its reason in words."""
    reasons: dict[str, str] = {}
    if match.origin is MatchOrigin.ENGINE:
        reasons = dict(zip(_REASON_ORDER, match.reasons, strict=False))
    out = []
    for name in ("amount", "date", "merchant", "card_last4", "cardholder"):
        if name not in match.signals:
            continue
        out.append(
            cards_pb2.SignalScore(
                signal=_SIGNAL_TO_PB[name],
                score=float(match.signals[name]),
                weight=float(WEIGHTS.get(name, 0.0)),
                reason=reasons.get(name, ""),
            )
        )
    return out


def match_to_pb(m: Match) -> cards_pb2.Match:
    pb = cards_pb2.Match(
        match_id=m.match_id,
        charge_ids=list(m.charge_ids),
        receipt_ids=list(m.receipt_ids),
        status=MATCH_STATUS_TO_PB[m.status],
        origin=ORIGIN_TO_PB[m.origin],
        score=m.score,
        breakdown=breakdown(m),
        reasons=list(m.reasons),
        threshold_version=m.threshold_version,
        automatic=m.automatic,
        decided_by=m.decided_by,
        decision_reason=m.decision_reason,
        cardholder=m.cardholder,
    )
    pb.proposed_at.FromDatetime(m.proposed_at)
    if m.decided_at is not None:
        pb.decided_at.FromDatetime(m.decided_at)
    return pb


def totals_to_pb(t: Totals) -> cards_pb2.ReconciliationTotals:
    cur = t.currency
    return cards_pb2.ReconciliationTotals(
        currency=cur,
        matched_count=t.matched_count,
        matched_amount=money_to_pb(t.matched, cur),
        suggested_count=t.suggested_count,
        suggested_amount=money_to_pb(t.suggested, cur),
        unmatched_count=t.unmatched_count,
        unmatched_amount=money_to_pb(t.unmatched, cur),
        declared_count=t.declared_count,
        declared_amount=money_to_pb(t.declared, cur),
    )


def close_check_to_pb(c: CloseCheck) -> cards_pb2.CloseCheck:
    cur = c.currency
    return cards_pb2.CloseCheck(
        statement_total=money_to_pb(c.statement_total, cur),
        matched=money_to_pb(c.matched, cur),
        declared=money_to_pb(c.declared, cur),
        open=money_to_pb(c.open, cur),
        difference=money_to_pb(c.difference, cur),
        balanced=c.balanced,
    )


def statement_reconciliation_to_pb(r: StatementReconciliation) -> cards_pb2.StatementReconciliation:
    statement = statement_to_pb(r.statement)
    # With several currencies, each entry shows the total of its own currency.
    statement.total.CopyFrom(
        money_to_pb(int(r.statement.totals.get(r.close_check.currency, 0)), r.close_check.currency)
    )
    return cards_pb2.StatementReconciliation(
        statement=statement,
        totals=totals_to_pb(r.totals),
        close_check=close_check_to_pb(r.close_check),
    )


def report_to_pb(report: ReconciliationReport) -> cards_pb2.ReconciliationReport:
    pb = cards_pb2.ReconciliationReport(
        statements=[statement_reconciliation_to_pb(s) for s in report.statements],
        cardholders=[
            cards_pb2.CardholderReconciliation(
                cardholder=name, totals=[totals_to_pb(t) for t in totals]
            )
            for name, totals in report.cardholders.items()
        ],
        threshold_version=report.threshold_version,
    )
    pb.generated_at.FromDatetime(report.generated_at)
    return pb


def declaration_to_pb(d: MissingReceiptDeclaration) -> cards_pb2.MissingReceiptDeclaration:
    pb = cards_pb2.MissingReceiptDeclaration(
        declaration_id=d.declaration_id,
        charge_id=d.charge_id,
        cardholder=d.cardholder,
        description=d.description,
        business_purpose=d.business_purpose,
        attestation=d.attestation,
    )
    pb.declared_at.FromDatetime(d.declared_at)
    return pb


# --- event payloads -----------------------------------------------------------------------


def charge_imported(record: ChargeRecord) -> events_pb2.CardChargeImported:
    return events_pb2.CardChargeImported(charge=charge_to_pb(record))


def match_event(
    m: Match,
) -> events_pb2.MatchProposed | events_pb2.MatchConfirmed | events_pb2.MatchRejected:
    if m.status is MatchStatus.PROPOSED:
        return events_pb2.MatchProposed(match=match_to_pb(m))
    if m.status is MatchStatus.CONFIRMED:
        return events_pb2.MatchConfirmed(match=match_to_pb(m))
    return events_pb2.MatchRejected(match=match_to_pb(m))


def statement_reconciled(
    r: StatementReconciliation, threshold_version: str
) -> events_pb2.StatementReconciled:
    return events_pb2.StatementReconciled(
        reconciliation=statement_reconciliation_to_pb(r), threshold_version=threshold_version
    )


def receipt_requested(
    *,
    request_id: str,
    cardholder: str,
    charges: list[ChargeRecord],
    due_date: date | None,
    requested_by: str,
    message: str,
    statement_id: str,
) -> receipt_events.ReceiptRequested:
    pb = receipt_events.ReceiptRequested(
        request_id=request_id,
        cardholder=cardholder,
        requested_by=requested_by,
        message=message,
        statement_id=statement_id,
    )
    for record in charges:
        c = record.charge
        pb.charges.add(
            charge_id=c.charge_id,
            transaction_date=date_to_pb(c.transaction_date),
            merchant=c.merchant,
            amount=_money(c.amount),
            card_last4=c.card_last4,
        )
    if due_date is not None:
        pb.due_date.CopyFrom(date_to_pb(due_date))
    return pb


def signals_of(values: Mapping[str, float | None]) -> dict[str, float]:
    """The engine's signal breakdown without the absent ones (card digits not shown)."""
    return {k: round(float(v), 4) for k, v in values.items() if v is not None}
