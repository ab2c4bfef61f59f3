"""Use cases of card reconciliation: plain async functions of a command and named ports.

Every decision (import, confirm, reject, manual match, unmatch, declaration, request for
receipts, automatic confirmation) is recorded in the audit trail and its events queued in
the outbox, in the same transaction as the state change.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date

from seisan_cards import messages
from seisan_cards.adapters.statements import parse_statement
from seisan_cards.domain.charges import (
    CardCharge,
    ParsedStatement,
    StatementFormat,
    StatementRejected,
)
from seisan_cards.domain.errors import (
    ChargeNotFound,
    ChargeStateError,
    InvalidRequest,
    MatchNotFound,
    MatchStateError,
    ReceiptNotKnown,
    SplitMismatch,
    StatementNotFound,
    StatementTooLarge,
)
from seisan_cards.domain.journal import build_journal, to_csv, to_json
from seisan_cards.domain.model import (
    Actor,
    ChargeRecord,
    ChargeStatus,
    Match,
    MatchOrigin,
    MatchStatus,
    MissingReceiptDeclaration,
    PaidWith,
    ReceiptRef,
    ReceiptState,
    ReconciliationReport,
    Statement,
    reconcile_statement,
)
from seisan_cards.domain.ports import (
    ChargeQuery,
    ConcurrentUpdate,
    DuplicateKey,
    UnitOfWork,
)
from seisan_cards.proposals import (
    CardsPorts,
    match_charge,
    match_receipt,
    match_statement,
    new_id,
    rematch_freed,
    sync_item_states,
)
from seisan_shared import subjects

log = logging.getLogger("seisan.cards")

__all__ = [
    "CardsPorts",
    "ImportResult",
    "ImportStatement",
    "confirm_match",
    "declare_missing_receipt",
    "export_journal",
    "import_feed_charge",
    "import_statement",
    "list_charges",
    "manual_match",
    "receipt_deleted",
    "receipt_seen",
    "reconciliation_report",
    "reject_match",
    "request_missing_receipts",
    "unmatch",
]

MAX_TEXT = 2000
MAX_LIST = 100_000


# --- statement import ---------------------------------------------------------------------


@dataclass(frozen=True)
class ImportStatement:
    actor: Actor
    data: bytes
    fmt: StatementFormat | None = None  # None: recognised from the content
    filename: str = ""


@dataclass(frozen=True)
class ImportResult:
    statement: Statement
    imported: int
    duplicates: int
    already_imported: bool
    matches: tuple[Match, ...] = ()


def _with_principal(charge: CardCharge, ports: CardsPorts) -> CardCharge:
    principal = ports.directory.principal_for(charge.card_last4, charge.cardholder)
    return replace(charge, cardholder=principal) if principal else charge


async def import_statement(cmd: ImportStatement, ports: CardsPorts) -> ImportResult:
    """Import a whole statement file, or nothing (StatementRejected names line and field).

    Idempotent: the same file again returns the earlier import; a line whose issuer
    transaction id is known creates nothing. New charges publish ``card.charge.imported``;
    the statement's open charges are matched at once (auto-confirmed or proposed), and
    ``statement.reconciled`` carries the close check.
    """
    if len(cmd.data) > ports.max_statement_bytes:
        raise StatementTooLarge(
            f"statement too large: more than {ports.max_statement_bytes:,} bytes "
            "(the configured limit)"
        )
    if len(cmd.filename) > 300:
        raise InvalidRequest("filename is longer than 300 characters")
    parsed = await asyncio.to_thread(parse_statement, cmd.data, cmd.fmt)
    sha256 = hashlib.sha256(cmd.data).hexdigest()
    try:
        return await _import_parsed(cmd, parsed, sha256, ports)
    except DuplicateKey:
        # A concurrent import wrote some of the same rows first; what it wrote is now
        # visible, so the second attempt skips it.
        return await _import_parsed(cmd, parsed, sha256, ports)


async def _import_parsed(
    cmd: ImportStatement, parsed: ParsedStatement, sha256: str, ports: CardsPorts
) -> ImportResult:
    now = ports.clock()
    async with ports.uow() as uow:
        earlier = await uow.statements.get(parsed.statement_id)
        if earlier is not None:
            return ImportResult(earlier, 0, len(parsed.charges), already_imported=True)
        known = await uow.charges.known_issuer_ids(
            [c.issuer_transaction_id for c in parsed.charges]
        )
        fresh = [c for c in parsed.charges if c.issuer_transaction_id not in known]
        clashes = await uow.charges.known_charge_ids([c.charge_id for c in fresh])
        for charge in fresh:
            if charge.charge_id in clashes:
                raise StatementRejected(
                    f"charge id {charge.charge_id!r} already belongs to another transaction",
                    line=charge.source_line,
                    field="charge_id",
                )
        statement = Statement(
            statement_id=parsed.statement_id,
            format=parsed.format,
            filename=cmd.filename,
            sha256=sha256,
            period_start=parsed.period_start,
            period_end=parsed.period_end,
            totals=dict(parsed.total),
            charge_count=len(parsed.charges),
            imported_by=cmd.actor.name,
            imported_at=now,
        )
        records = [
            ChargeRecord(
                charge=_with_principal(c, ports),
                statement_id=statement.statement_id,
                imported_at=now,
                cardholder_name=c.cardholder,
            )
            for c in fresh
        ]
        lines = [
            (known.get(c.issuer_transaction_id, c.charge_id), c.source_line) for c in parsed.charges
        ]
        await uow.statements.add(statement)
        await uow.charges.add_many(records)
        await uow.statements.add_lines(statement.statement_id, lines)
        for record in records:
            await uow.emit(
                subjects.CARD_CHARGE_IMPORTED,
                record.charge_id,
                messages.charge_imported(record),
                actor=cmd.actor.name,
            )
        await uow.audit(
            actor=cmd.actor.name,
            action="statement.import",
            entity_type="statement",
            entity_id=statement.statement_id,
            before=None,
            after={
                "format": statement.format.value,
                "filename": statement.filename,
                "sha256": sha256,
                "lines": len(parsed.charges),
                "new_charges": len(records),
                "totals": dict(statement.totals),
            },
        )
        line_ids = list(dict.fromkeys(cid for cid, _ in lines))
        current = await uow.charges.get_many(line_ids)
        made = await match_statement(uow, [current[cid] for cid in line_ids], ports)
        await _publish_reconciled(uow, statement, ports)
        await uow.commit()
    return ImportResult(
        statement,
        imported=len(records),
        duplicates=len(parsed.charges) - len(records),
        already_imported=False,
        matches=tuple(made),
    )


async def _publish_reconciled(uow: UnitOfWork, statement: Statement, ports: CardsPorts) -> None:
    tallies = await uow.charges.tally(statement_id=statement.statement_id)
    for entry in reconcile_statement(statement, tallies):
        if not entry.close_check.balanced:
            log.error(
                "statement %s does not close in %s: difference %d",
                statement.statement_id,
                entry.close_check.currency,
                entry.close_check.difference,
            )
        await uow.emit(
            subjects.STATEMENT_RECONCILED,
            statement.statement_id,
            messages.statement_reconciled(entry, ports.thresholds.version),
            actor=ports.engine_actor,
        )


async def import_feed_charge(
    charge: CardCharge, ports: CardsPorts, *, actor: str = "stripe-issuing"
) -> tuple[ChargeRecord, bool]:
    """One charge from a real-time feed (Stripe Issuing); (record, created). Idempotent."""
    for attempt in (1, 2):
        try:
            return await _import_feed_charge(charge, ports, actor)
        except DuplicateKey:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")  # pragma: no cover


async def _import_feed_charge(
    charge: CardCharge, ports: CardsPorts, actor: str
) -> tuple[ChargeRecord, bool]:
    async with ports.uow() as uow:
        known = await uow.charges.known_issuer_ids([charge.issuer_transaction_id])
        if known:
            existing = await uow.charges.get_many(list(known.values()))
            return next(iter(existing.values())), False
        record = ChargeRecord(
            charge=_with_principal(charge, ports),
            statement_id=None,
            imported_at=ports.clock(),
            cardholder_name=charge.cardholder,
        )
        await uow.charges.add_many([record])
        await uow.emit(
            subjects.CARD_CHARGE_IMPORTED,
            record.charge_id,
            messages.charge_imported(record),
            actor=actor,
        )
        await match_charge(uow, record, ports)
        await uow.commit()
        return (await _reread(ports, record.charge_id)), True


async def _reread(ports: CardsPorts, charge_id: str) -> ChargeRecord:
    async with ports.uow() as uow:
        return (await uow.charges.get_many([charge_id]))[charge_id]


# --- reading ------------------------------------------------------------------------------


async def list_charges(
    query: ChargeQuery, actor: Actor, ports: CardsPorts
) -> tuple[list[ChargeRecord], dict[str, Match]]:
    """Charges and their current matches; staff see only their own, whatever they ask."""
    if not actor.sees_all:
        query = replace(query, cardholder=actor.name)
    async with ports.uow() as uow:
        found = await uow.charges.query(query)
        matches = await uow.matches.get_many({r.match_id for r in found if r.match_id})
    return found, matches


@dataclass(frozen=True)
class ReportQuery:
    statement_id: str | None = None
    period_start: date | None = None
    period_end: date | None = None
    cardholder: str | None = None


async def reconciliation_report(query: ReportQuery, ports: CardsPorts) -> ReconciliationReport:
    """Per statement (with its close check) and per cardholder: counts and amounts by state.

    A statement's entry always covers the whole statement (the close check is about the
    file); ``cardholder`` narrows the statements to those carrying that person's charges
    and the cardholder section to that person.
    """
    if query.period_start and query.period_end and query.period_start > query.period_end:
        raise InvalidRequest("period_start is after period_end")
    async with ports.uow() as uow:
        if query.statement_id:
            one = await uow.statements.get(query.statement_id)
            if one is None:
                raise StatementNotFound(query.statement_id)
            chosen = [one]
        else:
            chosen = await uow.statements.overlapping(query.period_start, query.period_end)
        entries = []
        for statement in chosen:
            if query.cardholder is not None:
                mine = await uow.charges.tally(
                    statement_id=statement.statement_id, cardholder=query.cardholder
                )
                if not mine:
                    continue
            entries.append(
                (statement, await uow.charges.tally(statement_id=statement.statement_id))
            )
        holders = await uow.charges.tally(
            statement_id=query.statement_id or None,
            cardholder=query.cardholder,
            date_from=None if query.statement_id else query.period_start,
            date_to=None if query.statement_id else query.period_end,
        )
    return ReconciliationReport.build(
        entries,
        holders,
        generated_at=ports.clock(),
        threshold_version=ports.thresholds.version,
    )


# --- decisions on matches -----------------------------------------------------------------


async def _load_match(uow: UnitOfWork, match_id: str) -> Match:
    if not match_id:
        raise InvalidRequest("match_id is required")
    match = await uow.matches.get(match_id)
    if match is None:
        raise MatchNotFound(match_id)
    return match


async def _save_decision(uow: UnitOfWork, match: Match) -> None:
    try:
        await uow.matches.update(match)
    except ConcurrentUpdate:
        raise MatchStateError(
            f"match {match.match_id!r} was decided by someone else meanwhile; look again"
        ) from None
    await sync_item_states(uow, match)


async def confirm_match(match_id: str, actor: Actor, ports: CardsPorts) -> Match:
    async with ports.uow() as uow:
        match = await _load_match(uow, match_id)
        before = match.snapshot()
        match.confirm(actor.name, ports.clock())
        await _save_decision(uow, match)
        await uow.emit(
            subjects.MATCH_CONFIRMED, match.match_id, messages.match_event(match), actor=actor.name
        )
        await uow.audit(
            actor=actor.name,
            action="match.confirm",
            entity_type="match",
            entity_id=match.match_id,
            before=before,
            after=match.snapshot(),
        )
        await uow.commit()
    return match


async def _undo(
    match_id: str, reason: str, actor: Actor, ports: CardsPorts, *, unmatch: bool
) -> Match:
    if len(reason) > MAX_TEXT:
        raise InvalidRequest(f"reason is longer than {MAX_TEXT} characters")
    async with ports.uow() as uow:
        match = await _load_match(uow, match_id)
        before = match.snapshot()
        if unmatch:
            match.unmatch(actor.name, reason, ports.clock())
        else:
            match.reject(actor.name, reason, ports.clock())
        await _save_decision(uow, match)
        # A person said these do not belong together: never propose them again.
        await uow.matches.add_rejected_pairs(match.pairs(), match.match_id)
        await uow.emit(
            subjects.MATCH_REJECTED, match.match_id, messages.match_event(match), actor=actor.name
        )
        await uow.audit(
            actor=actor.name,
            action="match.unmatch" if unmatch else "match.reject",
            entity_type="match",
            entity_id=match.match_id,
            before=before,
            after=match.snapshot(),
            reason=reason,
        )
        await rematch_freed(uow, match.charge_ids, match.receipt_ids, ports)
        await uow.commit()
    return match


async def reject_match(match_id: str, reason: str, actor: Actor, ports: CardsPorts) -> Match:
    """Turn down a proposal; its pairs are never proposed again, its items look anew."""
    return await _undo(match_id, reason, actor, ports, unmatch=False)


async def unmatch(match_id: str, reason: str, actor: Actor, ports: CardsPorts) -> Match:
    """Undo a confirmed match (audited); its pairs are never proposed again."""
    return await _undo(match_id, reason, actor, ports, unmatch=True)


def _check_split_sums(charges: Sequence[ChargeRecord], refs: Sequence[ReceiptRef]) -> None:
    if len(charges) == 1 and len(refs) == 1:
        return  # a person may pair any one receipt with any one charge (tips, FX...)
    totals = [r.total for r in refs]
    if any(t is None for t in totals):
        raise SplitMismatch("a split needs every receipt's total; one has none")
    receipt_currencies = {t.currency for t in totals if t is not None}
    receipt_sum = sum(t.minor_units for t in totals if t is not None)
    billed = {c.amount.currency for c in charges}
    if receipt_currencies == billed and len(billed) == 1:
        charge_sum = sum(c.amount.minor_units for c in charges)
    else:
        originals = [c.charge.original_amount for c in charges]
        same = {o.currency for o in originals if o is not None}
        if None in originals or same != receipt_currencies or len(same) != 1:
            raise SplitMismatch(
                "a split's receipts must be in the charges' currency (or all in their "
                "original currency)"
            )
        charge_sum = sum(o.minor_units for o in originals if o is not None)
    if charge_sum != receipt_sum:
        currency = next(iter(receipt_currencies))
        raise SplitMismatch(
            f"a split's amounts must sum: charges {charge_sum} vs receipts {receipt_sum} "
            f"(minor units of {currency})"
        )


async def manual_match(
    charge_ids: Sequence[str],
    receipt_ids: Sequence[str],
    reason: str,
    actor: Actor,
    ports: CardsPorts,
) -> Match:
    """A person pairs receipts and charges; confirmed at once. Proposals it overrides are
    rejected (and their other items look for partners anew)."""
    charge_ids, receipt_ids = list(dict.fromkeys(charge_ids)), list(dict.fromkeys(receipt_ids))
    if not charge_ids or not receipt_ids:
        raise InvalidRequest("a manual match needs at least one charge and one receipt")
    if len(charge_ids) > 1 and len(receipt_ids) > 1:
        raise InvalidRequest(
            "a split is several receipts for one charge or one receipt over several charges"
        )
    if len(reason) > MAX_TEXT:
        raise InvalidRequest(f"reason is longer than {MAX_TEXT} characters")
    now = ports.clock()
    async with ports.uow() as uow:
        charges = await uow.charges.get_many(charge_ids)
        for cid in charge_ids:
            if cid not in charges:
                raise ChargeNotFound(cid)
            if charges[cid].status in (ChargeStatus.MATCHED, ChargeStatus.DECLARED_MISSING):
                raise ChargeStateError(
                    f"charge {cid!r} is {charges[cid].status.value}"
                    + (
                        f" (match {charges[cid].match_id}); unmatch it first"
                        if charges[cid].match_id
                        else ""
                    )
                )
        refs = await uow.receipts.get_many(receipt_ids)
        for rid in receipt_ids:
            if rid not in refs or refs[rid].state is ReceiptState.DELETED:
                raise ReceiptNotKnown(rid)
            if refs[rid].state is ReceiptState.MATCHED:
                raise MatchStateError(
                    f"receipt {rid!r} is already matched (match {refs[rid].match_id}); "
                    "unmatch it first"
                )
        ordered_charges = [charges[c] for c in charge_ids]
        _check_split_sums(ordered_charges, [refs[r] for r in receipt_ids])
        match_id = new_id("mt")
        wanted = {(c, r) for c in charge_ids for r in receipt_ids}
        freed_c: set[str] = set()
        freed_r: set[str] = set()
        for old in await uow.matches.live_for(charge_ids, receipt_ids):
            before = old.snapshot()
            old.reject(actor.name, f"superseded by manual match {match_id}", now)
            await _save_decision(uow, old)
            await uow.matches.add_rejected_pairs(set(old.pairs()) - wanted, old.match_id)
            await uow.emit(
                subjects.MATCH_REJECTED, old.match_id, messages.match_event(old), actor=actor.name
            )
            await uow.audit(
                actor=actor.name,
                action="match.reject",
                entity_type="match",
                entity_id=old.match_id,
                before=before,
                after=old.snapshot(),
                reason=old.decision_reason,
            )
            freed_c |= set(old.charge_ids) - set(charge_ids)
            freed_r |= set(old.receipt_ids) - set(receipt_ids)
        words = f"matched by {actor.name}" + (f": {reason}" if reason else "")
        match = Match(
            match_id=match_id,
            charge_ids=tuple(sorted(charge_ids)),
            receipt_ids=tuple(sorted(receipt_ids)),
            status=MatchStatus.CONFIRMED,
            origin=MatchOrigin.MANUAL,
            score=1.0,
            signals={},
            reasons=(words,),
            threshold_version=ports.thresholds.version,
            proposed_at=now,
            cardholder=ordered_charges[0].cardholder,
            decided_by=actor.name,
            decided_at=now,
            decision_reason=reason,
        )
        try:
            await uow.matches.add(match)
        except DuplicateKey:
            raise MatchStateError(
                "one of these items was matched by someone else meanwhile; look again"
            ) from None
        await sync_item_states(uow, match)
        await uow.emit(
            subjects.MATCH_CONFIRMED, match.match_id, messages.match_event(match), actor=actor.name
        )
        await uow.audit(
            actor=actor.name,
            action="match.manual",
            entity_type="match",
            entity_id=match.match_id,
            before=None,
            after=match.snapshot(),
            reason=reason,
        )
        await rematch_freed(uow, freed_c, freed_r, ports)
        await uow.commit()
    return match


# --- cardholders --------------------------------------------------------------------------


async def declare_missing_receipt(
    charge_id: str,
    description: str,
    business_purpose: str,
    attest: bool,
    actor: Actor,
    ports: CardsPorts,
) -> tuple[MissingReceiptDeclaration, ChargeRecord]:
    """The cardholder's own signed declaration that an unmatched charge has no receipt."""
    if not attest:
        raise InvalidRequest("attest must be true: the declaration is signed by its cardholder")
    if not description.strip() or not business_purpose.strip():
        raise InvalidRequest("description and business_purpose are both required")
    if len(description) > MAX_TEXT or len(business_purpose) > MAX_TEXT:
        raise InvalidRequest(f"description and business_purpose: at most {MAX_TEXT} characters")
    async with ports.uow() as uow:
        record = (await uow.charges.get_many([charge_id])).get(charge_id) if charge_id else None
        if record is None:
            raise ChargeNotFound(charge_id)
        record.check_can_declare(actor)
        declaration = MissingReceiptDeclaration(
            declaration_id=new_id("dc"),
            charge_id=charge_id,
            cardholder=actor.name,
            description=description.strip(),
            business_purpose=business_purpose.strip(),
            attestation=MissingReceiptDeclaration.attestation_for(record),
            declared_at=ports.clock(),
        )
        try:
            await uow.declarations.add(declaration)
        except DuplicateKey:
            raise ChargeStateError(f"charge {charge_id!r} is already declared missing") from None
        await uow.charges.set_states([(charge_id, ChargeStatus.DECLARED_MISSING, "")])
        await uow.audit(
            actor=actor.name,
            action="charge.declare_missing",
            entity_type="charge",
            entity_id=charge_id,
            before={"status": record.status.value},
            after={
                "status": ChargeStatus.DECLARED_MISSING.value,
                "declaration_id": declaration.declaration_id,
                "description": declaration.description,
                "business_purpose": declaration.business_purpose,
                "attestation": declaration.attestation,
            },
        )
        await uow.commit()
    return declaration, replace(record, status=ChargeStatus.DECLARED_MISSING, match_id="")


@dataclass(frozen=True)
class MissingReceiptRequest:
    request_id: str
    cardholder: str
    charge_ids: tuple[str, ...]


async def request_missing_receipts(
    statement_id: str | None,
    cardholder: str | None,
    due_date: date | None,
    message: str,
    actor: Actor,
    ports: CardsPorts,
) -> list[MissingReceiptRequest]:
    """One ``receipt.requested`` per cardholder with unmatched charges (credits excluded)."""
    if len(message) > MAX_TEXT:
        raise InvalidRequest(f"message is longer than {MAX_TEXT} characters")
    async with ports.uow() as uow:
        if statement_id:
            if await uow.statements.get(statement_id) is None:
                raise StatementNotFound(statement_id)
        found = await uow.charges.query(
            ChargeQuery(
                status=ChargeStatus.UNMATCHED,
                cardholder=cardholder,
                statement_id=statement_id,
                limit=MAX_LIST,
            )
        )
        by_holder: dict[str, list[ChargeRecord]] = {}
        for record in found:
            if record.needs_receipt and record.cardholder:
                by_holder.setdefault(record.cardholder, []).append(record)
        requests = []
        for holder, records in sorted(by_holder.items()):
            records.sort(key=lambda r: (r.charge.transaction_date, r.charge_id))
            request_id = new_id("rq")
            await uow.emit(
                subjects.RECEIPT_REQUESTED,
                request_id,
                messages.receipt_requested(
                    request_id=request_id,
                    cardholder=holder,
                    charges=records,
                    due_date=due_date,
                    requested_by=actor.name,
                    message=message,
                    statement_id=statement_id or "",
                ),
                actor=actor.name,
            )
            await uow.audit(
                actor=actor.name,
                action="receipts.request",
                entity_type="cardholder",
                entity_id=holder,
                before=None,
                after={
                    "request_id": request_id,
                    "charge_ids": [r.charge_id for r in records],
                    "due_date": due_date,
                },
                reason=message,
            )
            requests.append(
                MissingReceiptRequest(request_id, holder, tuple(r.charge_id for r in records))
            )
        await uow.commit()
    return requests


async def export_journal(
    start: date | None, end: date | None, fmt: str, ports: CardsPorts
) -> bytes:
    """Balanced journal lines of the charges booked in [start, end], as CSV or JSON bytes."""
    if start is None or end is None:
        raise InvalidRequest("period_start and period_end are both required")
    if start > end:
        raise InvalidRequest("period_start is after period_end")
    if fmt not in ("csv", "json"):
        raise InvalidRequest("format must be csv or json")
    async with ports.uow() as uow:
        charges = await uow.charges.booked_between(start, end)
    journal = build_journal(charges, start, end)
    return to_csv(journal) if fmt == "csv" else to_json(journal)


# --- receipt events (consumed from intake) ------------------------------------------------


async def receipt_seen(ref: ReceiptRef, uow: UnitOfWork, ports: CardsPorts) -> Match | None:
    """``receipt.extracted`` / ``receipt.corrected``: keep the fields, match it if open.

    ``uow`` is already inside the consumer's transaction. A receipt known to be deleted
    stays deleted (a late event changes nothing).
    """
    existing = await uow.receipts.get(ref.receipt_id)
    if existing is not None and existing.state is ReceiptState.DELETED:
        return None
    current = existing.with_fields(ref) if existing is not None else ref
    await uow.receipts.save(current)
    if current.state is not ReceiptState.OPEN:
        return None
    return await match_receipt(uow, current, ports)


async def receipt_deleted(
    receipt_id: str, submitter: str, deleted_by: str, uow: UnitOfWork, ports: CardsPorts
) -> None:
    """``receipt.deleted``: keep a tombstone, withdraw its proposal (its charges look anew)."""
    now = ports.clock()
    existing = await uow.receipts.get(receipt_id)
    if existing is None:
        existing = ReceiptRef(
            receipt_id=receipt_id,
            submitter=submitter,
            merchant="",
            receipt_date=None,
            total=None,
            tip_minor=None,
            card_last4=None,
            paid_with=PaidWith.UNSPECIFIED,
            updated_at=now,
        )
    # Deleted first, so that the charges freed below cannot be proposed this receipt again.
    await uow.receipts.save(replace(existing, state=ReceiptState.DELETED, updated_at=now))
    actor = deleted_by or submitter or "intake"
    for match in await uow.matches.live_for(receipt_ids=[receipt_id]):
        if match.status is not MatchStatus.PROPOSED:
            log.warning(
                "receipt %s was deleted while in confirmed match %s; treasury should unmatch it",
                receipt_id,
                match.match_id,
            )
            continue
        before = match.snapshot()
        match.reject(actor, "the receipt was deleted", now)
        await _save_decision(uow, match)
        await uow.emit(
            subjects.MATCH_REJECTED, match.match_id, messages.match_event(match), actor=actor
        )
        await uow.audit(
            actor=actor,
            action="match.withdraw",
            entity_type="match",
            entity_id=match.match_id,
            before=before,
            after=match.snapshot(),
            reason="the receipt was deleted",
        )
        await rematch_freed(uow, match.charge_ids, (), ports)
