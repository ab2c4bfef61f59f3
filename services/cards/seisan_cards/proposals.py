"""Running the matching engine on stored items and recording what it proposes.

The engine (``domain/matching``) is pure and knows nothing of storage; this module maps
stored charges and receipt refs onto its views, asks it, and turns each proposal into a
``Match`` aggregate: confirmed at once when the engine says *auto*, else proposed for a
person. Every new match moves its items' states and queues its event in the caller's
unit of work, so state and event commit together.

Candidates come from the database: by the posting-lag window of the thresholds, and for
one item at a time also by what the incremental index can pair (the same amount from
anyone, anything of the same person or card), so a query reads tens of rows, not every
open item. Every process sharing the database sees the same open items, and a charge or
receipt is never in two live matches: the database refuses the second.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from seisan_cards import messages
from seisan_cards.domain import matching
from seisan_cards.domain.model import (
    ChargeRecord,
    ChargeStatus,
    Match,
    MatchOrigin,
    MatchStatus,
    ReceiptRef,
    ReceiptState,
    charge_status_for,
    receipt_state_for,
)
from seisan_cards.domain.ports import CardDirectory, DuplicateKey, Near, UnitOfWork
from seisan_shared import subjects

log = logging.getLogger("seisan.cards.matching")

Clock = Callable[[], datetime]


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id(prefix: str) -> str:
    return f"{prefix}_{uuid.uuid4().hex}"


@dataclass
class CardsPorts:
    uow: Callable[[], UnitOfWork]
    directory: CardDirectory
    thresholds: matching.Thresholds = field(default_factory=lambda: matching.DEFAULT_THRESHOLDS)
    clock: Clock = utcnow
    max_statement_bytes: int = 50 * 1024 * 1024
    # Most candidates one matching query reads from the database.
    candidate_limit: int = 50_000

    @property
    def engine_actor(self) -> str:
        return f"engine:{self.thresholds.version}"


def charge_view(record: ChargeRecord) -> matching.ChargeView:
    c = record.charge
    original = c.original_amount
    return matching.ChargeView(
        charge_id=c.charge_id,
        card_last4=c.card_last4,
        cardholder=c.cardholder,
        transaction_date=c.transaction_date,
        posting_date=c.posting_date or c.transaction_date,
        merchant=c.merchant,
        mcc=int(c.mcc) if c.mcc else None,
        amount_minor=c.amount.minor_units,
        currency=c.amount.currency,
        original_amount_minor=original.minor_units if original else None,
        original_currency=original.currency if original else None,
    )


def receipt_view(ref: ReceiptRef) -> matching.ReceiptView:
    assert ref.receipt_date is not None and ref.total is not None, "only matchable refs"
    paid = {"company_card": True, "personal": False}.get(ref.paid_with.value)
    return matching.ReceiptView(
        receipt_id=ref.receipt_id,
        submitter=ref.submitter,
        merchant=ref.merchant,
        date=ref.receipt_date,
        total_minor=ref.total.minor_units,
        currency=ref.total.currency,
        card_last4=ref.card_last4,
        tip_minor=ref.tip_minor,
        paid_with_company_card=paid,
    )


def _matchable_charge(record: ChargeRecord) -> bool:
    return record.status is ChargeStatus.UNMATCHED and record.amount.minor_units > 0


def item_states(
    match: Match,
) -> tuple[list[tuple[str, ChargeStatus, str]], list[tuple[str, ReceiptState, str]]]:
    """The states ``match`` gives its charges and receipts (freed when it is not live)."""
    live = match.live
    owner = match.match_id if live else ""
    status = charge_status_for(match if live else None, declared=False)
    state = receipt_state_for(match if live else None)
    return (
        [(c, status, owner) for c in match.charge_ids],
        [(r, state, owner) for r in match.receipt_ids],
    )


async def sync_item_states(uow: UnitOfWork, *matches: Match) -> None:
    """Charges and receipts of the matches take the states the matches give them."""
    charge_changes: list[tuple[str, ChargeStatus, str]] = []
    receipt_changes: list[tuple[str, ReceiptState, str]] = []
    for match in matches:
        c, r = item_states(match)
        charge_changes += c
        receipt_changes += r
    await uow.charges.set_states(charge_changes)
    await uow.receipts.set_states(receipt_changes)


def _to_match(
    proposal: matching.Match, charges: Mapping[str, ChargeRecord], now: datetime
) -> Match:
    auto = proposal.status is matching.MatchStatus.AUTO
    first = charges.get(proposal.charge_ids[0])
    return Match(
        match_id=new_id("mt"),
        charge_ids=tuple(proposal.charge_ids),
        receipt_ids=tuple(proposal.receipt_ids),
        status=MatchStatus.CONFIRMED if auto else MatchStatus.PROPOSED,
        origin=MatchOrigin.ENGINE,
        score=round(float(proposal.score), 6),
        signals=messages.signals_of(proposal.signals.as_dict()),
        reasons=tuple(proposal.reasons),
        threshold_version=proposal.threshold_version,
        proposed_at=now,
        cardholder=first.cardholder if first else "",
        automatic=auto,
        decided_at=now if auto else None,
    )


async def record_proposals(
    uow: UnitOfWork,
    proposals: Sequence[matching.Match],
    charges: Mapping[str, ChargeRecord],
    ports: CardsPorts,
) -> list[Match]:
    """Store the engine's proposals as matches: auto → confirmed, else proposed.

    All at once when nothing else took their items meanwhile; else one by one, skipping
    those whose charge or receipt another process put in a live match first.
    """
    now = ports.clock()
    candidates = [_to_match(p, charges, now) for p in proposals]
    try:
        await uow.matches.add_many(candidates)
        made = candidates
    except DuplicateKey:
        made = []
        for match in candidates:
            try:
                await uow.matches.add(match)
            except DuplicateKey:
                log.info("proposal %s skipped: an item is already in a live match", match.pairs())
                continue
            made.append(match)
    await sync_item_states(uow, *made)
    for match in made:
        event = subjects.MATCH_CONFIRMED if match.automatic else subjects.MATCH_PROPOSED
        await uow.emit(event, match.match_id, messages.match_event(match), actor=ports.engine_actor)
        if match.automatic:
            await uow.audit(
                actor=ports.engine_actor,
                action="match.auto_confirm",
                entity_type="match",
                entity_id=match.match_id,
                before=None,
                after=match.snapshot(),
                reason="; ".join(match.reasons),
            )
    return made


async def match_statement(
    uow: UnitOfWork, records: Sequence[ChargeRecord], ports: CardsPorts
) -> list[Match]:
    """Batch run: the open charges among ``records`` against every open receipt in reach."""
    open_charges = [r for r in records if _matchable_charge(r)]
    if not open_charges:
        return []
    th = ports.thresholds
    first = min(r.charge.transaction_date for r in open_charges)
    last = max(r.charge.transaction_date for r in open_charges)
    refs = await uow.receipts.open_between(
        first - timedelta(days=th.lag_max_days),
        last - timedelta(days=th.lag_min_days),
        limit=ports.candidate_limit,
    )
    refs = [r for r in refs if r.matchable]
    if not refs:
        return []
    rejected = await uow.matches.rejected_pairs(charge_ids=[r.charge_id for r in open_charges])
    result = matching.reconcile(
        [charge_view(r) for r in open_charges],
        [receipt_view(r) for r in refs],
        th,
        rejected=rejected,
    )
    by_id = {r.charge_id: r for r in open_charges}
    return await record_proposals(uow, result.matches(), by_id, ports)


async def match_receipt(uow: UnitOfWork, ref: ReceiptRef, ports: CardsPorts) -> Match | None:
    """Incremental: the best open charge for one open receipt, if any scores high enough."""
    if not ref.matchable:
        return None
    assert ref.receipt_date is not None
    th = ports.thresholds
    day = ref.receipt_date
    assert ref.total is not None
    amounts = [(ref.total.currency, ref.total.minor_units)]
    if ref.tip_minor:
        amounts.append((ref.total.currency, ref.total.minor_units + ref.tip_minor))
    candidates = await uow.charges.open_between(
        day + timedelta(days=th.lag_min_days),
        day + timedelta(days=th.lag_max_days),
        limit=ports.candidate_limit,
        near=Near(tuple(amounts), ref.submitter, ref.card_last4),
    )
    candidates = [c for c in candidates if _matchable_charge(c)]
    if not candidates:
        return None
    rejected = await uow.matches.rejected_pairs(receipt_ids=[ref.receipt_id])
    index = matching.MatchIndex(th, rejected=rejected)
    index.add_charges([charge_view(c) for c in candidates])
    best = index.best_charges_for(receipt_view(ref), limit=1)
    made = await record_proposals(uow, best, {c.charge_id: c for c in candidates}, ports)
    return made[0] if made else None


async def match_charge(uow: UnitOfWork, record: ChargeRecord, ports: CardsPorts) -> Match | None:
    """Incremental: the best open receipt for one open charge, if any scores high enough."""
    if not _matchable_charge(record):
        return None
    th = ports.thresholds
    c = record.charge
    amounts = [(c.amount.currency, c.amount.minor_units)]
    if c.original_amount is not None:
        amounts.append((c.original_amount.currency, c.original_amount.minor_units))
    day = c.transaction_date
    refs = await uow.receipts.open_between(
        day - timedelta(days=th.lag_max_days),
        day - timedelta(days=th.lag_min_days),
        limit=ports.candidate_limit,
        near=Near(tuple(amounts), c.cardholder, c.card_last4),
    )
    refs = [r for r in refs if r.matchable]
    if not refs:
        return None
    rejected = await uow.matches.rejected_pairs(charge_ids=[record.charge_id])
    index = matching.MatchIndex(th, rejected=rejected)
    index.add_receipts([receipt_view(r) for r in refs])
    best = index.best_receipts_for(charge_view(record), limit=1)
    made = await record_proposals(uow, best, {record.charge_id: record}, ports)
    return made[0] if made else None


async def rematch_freed(
    uow: UnitOfWork,
    charge_ids: Collection[str],
    receipt_ids: Collection[str],
    ports: CardsPorts,
) -> list[Match]:
    """After a decision frees items, look for new partners (rejected pairs stay excluded)."""
    made: list[Match] = []
    # Read each item afresh: the previous one's new match may have taken a candidate.
    for charge_id in sorted(set(charge_ids)):
        record = (await uow.charges.get_many([charge_id])).get(charge_id)
        match = await match_charge(uow, record, ports) if record else None
        if match is not None:
            made.append(match)
    for receipt_id in sorted(set(receipt_ids)):
        ref = await uow.receipts.get(receipt_id)
        if ref is not None and ref.state is ReceiptState.OPEN:
            match = await match_receipt(uow, ref, ports)
            if match is not None:
                made.append(match)
    return made
