"""Card reconciliation use cases against in-memory fakes that subclass the ports (no network).

The fake unit of work copies the store on entry and keeps the copy only on commit, so a
failing command leaves nothing behind, as the SQL one does. The fake match repository
refuses a second live match for a charge or receipt, as the database's indexes do.
"""

from __future__ import annotations

import copy
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from types import TracebackType
from typing import Any

import pytest
from google.protobuf.message import Message

from seisan_cards import handlers
from seisan_cards.adapters.directory import CardEntry, StaticCardDirectory
from seisan_cards.domain.charges import StatementRejected
from seisan_cards.domain.errors import ChargeStateError, NotYourCharge, StatementTooLarge
from seisan_cards.domain.model import (
    Actor,
    ChargeRecord,
    ChargeStatus,
    Match,
    MatchStatus,
    MissingReceiptDeclaration,
    PaidWith,
    ReceiptRef,
    ReceiptState,
    Statement,
    Tally,
    tally_charges,
)
from seisan_cards.domain.ports import (
    ChargeQuery,
    ChargeRepository,
    ConcurrentUpdate,
    DeclarationRepository,
    DuplicateKey,
    MatchRepository,
    Near,
    ReceiptRefRepository,
    StatementRepository,
    UnitOfWork,
)
from seisan_shared import subjects
from seisan_shared.money import Money

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TREASURY = Actor("daichi", frozenset({"treasury"}))
AIKO = Actor("aiko", frozenset({"staff"}))
HEADER = (
    "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
    "currency,original_amount,original_currency\n"
)


@dataclass
class Store:
    statements: dict[str, Statement] = field(default_factory=dict)
    lines: dict[str, list[tuple[str, int]]] = field(default_factory=dict)
    charges: dict[str, ChargeRecord] = field(default_factory=dict)
    matches: dict[str, Match] = field(default_factory=dict)
    rejected: set[tuple[str, str]] = field(default_factory=set)
    receipts: dict[str, ReceiptRef] = field(default_factory=dict)
    declarations: dict[str, MissingReceiptDeclaration] = field(default_factory=dict)
    events: list[tuple[str, str, Message]] = field(default_factory=list)
    audits: list[dict[str, Any]] = field(default_factory=list)


class FakeStatements(StatementRepository):
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, statement_id: str) -> Statement | None:
        return self.s.statements.get(statement_id)

    async def add(self, statement: Statement) -> None:
        if statement.statement_id in self.s.statements:
            raise DuplicateKey(statement.statement_id)
        self.s.statements[statement.statement_id] = statement

    async def add_lines(self, statement_id: str, lines: Sequence[tuple[str, int]]) -> None:
        assert all(cid in self.s.charges for cid, _ in lines), "lines reference stored charges"
        self.s.lines.setdefault(statement_id, []).extend(lines)

    async def overlapping(self, start: date | None, end: date | None) -> list[Statement]:
        return [s for s in self.s.statements.values() if s.overlaps(start, end)]

    async def charge_ids(self, statement_id: str) -> list[str]:
        return [cid for cid, _ in self.s.lines.get(statement_id, [])]


class FakeCharges(ChargeRepository):
    def __init__(self, s: Store) -> None:
        self.s = s

    async def known_issuer_ids(self, issuer_ids: Collection[str]) -> dict[str, str]:
        wanted = set(issuer_ids)
        return {
            r.charge.issuer_transaction_id: r.charge_id
            for r in self.s.charges.values()
            if r.charge.issuer_transaction_id in wanted
        }

    async def known_charge_ids(self, charge_ids: Collection[str]) -> set[str]:
        return set(charge_ids) & set(self.s.charges)

    async def add_many(self, records: Sequence[ChargeRecord]) -> None:
        for r in records:
            if r.charge_id in self.s.charges or await self.known_issuer_ids(
                [r.charge.issuer_transaction_id]
            ):
                raise DuplicateKey(r.charge_id)
            self.s.charges[r.charge_id] = r

    async def get_many(self, charge_ids: Collection[str]) -> dict[str, ChargeRecord]:
        return {c: self.s.charges[c] for c in charge_ids if c in self.s.charges}

    async def set_states(self, changes: Sequence[tuple[str, ChargeStatus, str]]) -> None:
        for c, status, match_id in changes:
            self.s.charges[c] = replace(self.s.charges[c], status=status, match_id=match_id)

    def _select(self, q: ChargeQuery) -> list[ChargeRecord]:
        ids = (
            set(c for c, _ in self.s.lines.get(q.statement_id or "", []))
            if q.statement_id
            else None
        )
        out = [
            r
            for r in self.s.charges.values()
            if (q.status is None or r.status is q.status)
            and (q.cardholder is None or r.cardholder == q.cardholder)
            and (ids is None or r.charge_id in ids)
            and (q.date_from is None or r.charge.transaction_date >= q.date_from)
            and (q.date_to is None or r.charge.transaction_date <= q.date_to)
        ]
        return sorted(out, key=lambda r: (r.charge.transaction_date, r.charge_id), reverse=True)

    async def query(self, q: ChargeQuery) -> list[ChargeRecord]:
        return self._select(q)[: q.limit]

    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ChargeRecord]:
        def close(r: ChargeRecord) -> bool:
            if (
                near is None
                or r.cardholder == near.person
                or r.charge.card_last4 == near.card_last4
            ):
                return True
            money = [r.amount, r.charge.original_amount]
            return any(m is not None and (m.currency, m.minor_units) in near.amounts for m in money)

        return [
            r
            for r in self.s.charges.values()
            if r.status is ChargeStatus.UNMATCHED
            and start <= r.charge.transaction_date <= end
            and close(r)
        ][:limit]

    async def tally(
        self,
        *,
        statement_id: str | None = None,
        cardholder: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> list[Tally]:
        q = ChargeQuery(
            statement_id=statement_id, cardholder=cardholder, date_from=date_from, date_to=date_to
        )
        return tally_charges(self._select(q))

    async def booked_between(self, start: date, end: date) -> list[ChargeRecord]:
        return [r for r in self.s.charges.values() if start <= r.booking_date <= end]


class FakeMatches(MatchRepository):
    def __init__(self, s: Store) -> None:
        self.s = s

    def _live_conflict(self, match: Match) -> bool:
        for other in self.s.matches.values():
            if other.match_id != match.match_id and other.live and match.live:
                if set(other.charge_ids) & set(match.charge_ids):
                    return True
                if set(other.receipt_ids) & set(match.receipt_ids):
                    return True
        return False

    async def add(self, match: Match) -> None:
        if match.match_id in self.s.matches or self._live_conflict(match):
            raise DuplicateKey(match.match_id)
        self.s.matches[match.match_id] = copy.deepcopy(match)

    async def add_many(self, matches: Sequence[Match]) -> None:
        before = dict(self.s.matches)
        try:
            for m in matches:
                await self.add(m)
        except DuplicateKey:
            self.s.matches = before
            raise

    async def get(self, match_id: str) -> Match | None:
        found = self.s.matches.get(match_id)
        return copy.deepcopy(found) if found else None

    async def get_many(self, match_ids: Collection[str]) -> dict[str, Match]:
        return {m: copy.deepcopy(self.s.matches[m]) for m in match_ids if m in self.s.matches}

    async def update(self, match: Match) -> None:
        if self.s.matches[match.match_id].version != match.version:
            raise ConcurrentUpdate(match.match_id)
        match.version += 1
        self.s.matches[match.match_id] = copy.deepcopy(match)

    async def live_for(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> list[Match]:
        return [
            copy.deepcopy(m)
            for m in self.s.matches.values()
            if m.live
            and (set(m.charge_ids) & set(charge_ids) or set(m.receipt_ids) & set(receipt_ids))
        ]

    async def proposed(self, limit: int, cardholder: str | None = None) -> list[Match]:
        return [m for m in self.s.matches.values() if m.status is MatchStatus.PROPOSED][:limit]

    async def rejected_pairs(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> set[tuple[str, str]]:
        return {(c, r) for c, r in self.s.rejected if c in charge_ids or r in receipt_ids}

    async def add_rejected_pairs(self, pairs: Iterable[tuple[str, str]], match_id: str) -> None:
        self.s.rejected |= set(pairs)


class FakeReceipts(ReceiptRefRepository):
    def __init__(self, s: Store) -> None:
        self.s = s

    async def get(self, receipt_id: str) -> ReceiptRef | None:
        return self.s.receipts.get(receipt_id)

    async def get_many(self, receipt_ids: Collection[str]) -> dict[str, ReceiptRef]:
        return {r: self.s.receipts[r] for r in receipt_ids if r in self.s.receipts}

    async def save(self, ref: ReceiptRef) -> None:
        self.s.receipts[ref.receipt_id] = ref

    async def set_states(self, changes: Sequence[tuple[str, ReceiptState, str]]) -> None:
        for r, state, match_id in changes:
            if self.s.receipts[r].state is not ReceiptState.DELETED:
                self.s.receipts[r] = replace(self.s.receipts[r], state=state, match_id=match_id)

    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ReceiptRef]:
        def close(r: ReceiptRef) -> bool:
            if near is None or r.submitter == near.person:
                return True
            if near.card_last4 and r.card_last4 == near.card_last4:
                return True
            return r.total is not None and (r.total.currency, r.total.minor_units) in near.amounts

        return [
            r
            for r in self.s.receipts.values()
            if r.state is ReceiptState.OPEN
            and r.receipt_date is not None
            and start <= r.receipt_date <= end
            and close(r)
        ][:limit]


class FakeDeclarations(DeclarationRepository):
    def __init__(self, s: Store) -> None:
        self.s = s

    async def add(self, declaration: MissingReceiptDeclaration) -> None:
        if declaration.charge_id in self.s.declarations:
            raise DuplicateKey(declaration.charge_id)
        self.s.declarations[declaration.charge_id] = declaration

    async def for_charges(
        self, charge_ids: Collection[str]
    ) -> dict[str, MissingReceiptDeclaration]:
        return {c: self.s.declarations[c] for c in charge_ids if c in self.s.declarations}


class FakeUnitOfWork(UnitOfWork):
    def __init__(self, db: FakeDatabase) -> None:
        self.db = db

    async def __aenter__(self) -> FakeUnitOfWork:
        self.work = copy.deepcopy(self.db.store)
        self.statements = FakeStatements(self.work)
        self.charges = FakeCharges(self.work)
        self.matches = FakeMatches(self.work)
        self.receipts = FakeReceipts(self.work)
        self.declarations = FakeDeclarations(self.work)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.work = Store()  # uncommitted work is dropped

    async def commit(self) -> None:
        self.db.store = copy.deepcopy(self.work)

    async def emit(
        self, event_type: str, aggregate_id: str, payload: Message, *, actor: str = ""
    ) -> None:
        self.work.events.append((event_type, aggregate_id, payload))

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str = "",
    ) -> None:
        self.work.audits.append({"actor": actor, "action": action, "entity_id": entity_id})


@dataclass
class FakeDatabase:
    store: Store = field(default_factory=Store)

    def events(self, kind: str) -> list[Message]:
        return [p for t, _, p in self.store.events if t == kind]


@pytest.fixture
def db() -> FakeDatabase:
    return FakeDatabase()


@pytest.fixture
def ports(db: FakeDatabase) -> handlers.CardsPorts:
    return handlers.CardsPorts(
        uow=lambda: FakeUnitOfWork(db),
        directory=StaticCardDirectory([CardEntry("4242", "aiko"), CardEntry("1111", "ben")]),
        clock=lambda: NOW,
    )


def statement(*rows: str) -> bytes:
    return (HEADER + "\n".join(rows) + "\n").encode()


def ref(rid: str, who: str, merchant: str, day: date, total: int) -> ReceiptRef:
    return ReceiptRef(
        receipt_id=rid,
        submitter=who,
        merchant=merchant,
        receipt_date=day,
        total=Money(total, "JPY"),
        tip_minor=None,
        card_last4=None,
        paid_with=PaidWith.COMPANY_CARD,
        updated_at=NOW,
    )


async def seen(ports: handlers.CardsPorts, receipt: ReceiptRef) -> Match | None:
    async with ports.uow() as uow:
        match = await handlers.receipt_seen(receipt, uow, ports)
        await uow.commit()
    return match


NOV = statement(
    "tx-1,4242,AIKO T,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
    "tx-2,1111,BEN I,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,",
    "tx-3,1111,BEN I,2026-11-21,2026-11-22,UNIQLO,5651,-500,JPY,,",
)


async def test_import_is_whole_idempotent_and_publishes_each_new_charge(ports, db):
    result = await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), ports)
    assert (result.imported, result.duplicates, result.already_imported) == (3, 0, False)
    assert {c.cardholder for c in db.store.charges.values()} == {"aiko", "ben"}  # directory
    assert len(db.events(subjects.CARD_CHARGE_IMPORTED)) == 3
    assert len(db.events(subjects.STATEMENT_RECONCILED)) == 1
    assert [a["action"] for a in db.store.audits] == ["statement.import"]

    events_before = len(db.store.events)
    again = await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), ports)
    assert again.already_imported and again.imported == 0
    assert len(db.store.events) == events_before

    overlapping = statement(
        "tx-2,1111,BEN I,2026-11-10,2026-11-11,STARBUCKS 1234,5814,480,JPY,,",
        "tx-4,1111,BEN I,2026-11-12,,DOUTOR,5814,350,JPY,,",
    )
    third = await handlers.import_statement(handlers.ImportStatement(TREASURY, overlapping), ports)
    assert (third.imported, third.duplicates) == (1, 1)
    assert db.store.lines[third.statement.statement_id] == [("tx-2", 2), ("tx-4", 3)]


async def test_a_refused_file_leaves_nothing(ports, db):
    with pytest.raises(StatementRejected, match=r"^line 3, field amount"):
        await handlers.import_statement(
            handlers.ImportStatement(
                TREASURY,
                statement(
                    "tx-1,4242,aiko,2026-11-02,,SQ *BLUE BOTTLE,5814,1112,JPY,,",
                    "tx-2,4242,aiko,2026-11-03,,X,5814,1.5,JPY,,",
                ),
            ),
            ports,
        )
    assert db.store == Store()
    small = replace(ports, max_statement_bytes=10)
    with pytest.raises(StatementTooLarge):
        await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), small)


async def test_a_charge_id_used_by_another_transaction_refuses_the_file(ports, db):
    result = await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), ports)
    feed = db.store.charges["tx-1"]
    db.store.charges["tx-9"] = replace(
        feed,
        charge=replace(feed.charge, charge_id="tx-9", issuer_transaction_id="stripe_issuing:ipi_9"),
    )
    before = copy.deepcopy(db.store)
    clash = statement(
        "tx-8,4242,aiko,2026-11-02,,A,5814,100,JPY,,",
        "tx-9,4242,aiko,2026-11-02,,B,5814,200,JPY,,",
    )
    with pytest.raises(StatementRejected, match=r"^line 3, field charge_id: .*another transaction"):
        await handlers.import_statement(handlers.ImportStatement(TREASURY, clash), ports)
    assert db.store == before
    assert result.imported == 3


async def test_receipts_match_incrementally_and_rejected_pairs_stay_apart(ports, db):
    await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), ports)
    auto = await seen(ports, ref("r1", "aiko", "Blue Bottle", date(2026, 11, 2), 1112))
    assert auto is not None and auto.status is MatchStatus.CONFIRMED and auto.automatic
    assert db.store.charges["tx-1"].status is ChargeStatus.MATCHED
    assert db.store.receipts["r1"].state is ReceiptState.MATCHED

    other = await seen(ports, ref("r2", "aiko", "Starbucks", date(2026, 11, 10), 480))
    assert other is not None and other.status is MatchStatus.PROPOSED  # not ben's receipt
    assert db.store.charges["tx-2"].status is ChargeStatus.SUGGESTED
    # A second receipt for the same charge waits: the charge is in a live match.
    assert await seen(ports, ref("r3", "ben", "Starbucks", date(2026, 11, 10), 480)) is None

    await handlers.reject_match(other.match_id, "aiko's own coffee", TREASURY, ports)
    assert ("tx-2", "r2") in db.store.rejected
    # The freed charge found ben's receipt at once; r2 stays open, never re-paired with tx-2.
    assert db.store.charges["tx-2"].status is ChargeStatus.MATCHED
    assert db.store.receipts["r2"].state is ReceiptState.OPEN
    rematch = db.store.matches[db.store.charges["tx-2"].match_id]
    assert rematch.receipt_ids == ("r3",)
    assert [a["action"] for a in db.store.audits].count("match.reject") == 1
    assert len(db.events(subjects.MATCH_REJECTED)) == 1


async def test_declare_and_request_missing(ports, db):
    await handlers.import_statement(handlers.ImportStatement(TREASURY, NOV), ports)
    with pytest.raises(NotYourCharge):
        await handlers.declare_missing_receipt("tx-2", "coffee", "meeting", True, AIKO, ports)
    requests = await handlers.request_missing_receipts(None, None, None, "", TREASURY, ports)
    assert {r.cardholder: r.charge_ids for r in requests} == {
        "aiko": ("tx-1",),
        "ben": ("tx-2",),  # the credit tx-3 asks for nothing
    }
    assert len(db.events(subjects.RECEIPT_REQUESTED)) == 2
    declaration, record = await handlers.declare_missing_receipt(
        "tx-1", "coffee", "client meeting", True, AIKO, ports
    )
    assert record.status is ChargeStatus.DECLARED_MISSING
    assert db.store.charges["tx-1"].status is ChargeStatus.DECLARED_MISSING
    assert db.store.declarations["tx-1"] == declaration
    with pytest.raises(ChargeStateError):
        await handlers.declare_missing_receipt("tx-1", "coffee", "again", True, AIKO, ports)
    # A declared charge is not matched by a later receipt, and is no longer asked for.
    assert await seen(ports, ref("r1", "aiko", "Blue Bottle", date(2026, 11, 2), 1112)) is None
    again = await handlers.request_missing_receipts(None, "aiko", None, "", TREASURY, ports)
    assert again == []
    report = await handlers.reconciliation_report(handlers.ReportQuery(), ports)
    (entry,) = report.statements
    assert entry.close_check.balanced and entry.totals.declared == 1112
