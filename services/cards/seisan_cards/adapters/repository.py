"""SQL (SQLAlchemy Core) repositories of the card reconciliation service."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Iterator, Sequence
from datetime import UTC, date, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_cards.domain.charges import CardCharge, StatementFormat
from seisan_cards.domain.model import (
    LIVE_MATCH_STATUSES,
    ChargeRecord,
    ChargeStatus,
    Match,
    MatchOrigin,
    MatchStatus,
    MissingReceiptDeclaration,
    PaidWith,
    ReceiptRef,
    ReceiptState,
    Statement,
    Tally,
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
)
from seisan_shared.money import Money

metadata = sa.MetaData()
statements = sa.Table(
    "card_statements",
    metadata,
    sa.Column("statement_id", sa.String(40), primary_key=True),
    sa.Column("format", sa.String(20)),
    sa.Column("filename", sa.String(300)),
    sa.Column("sha256", sa.String(64)),
    sa.Column("period_start", sa.Date()),
    sa.Column("period_end", sa.Date()),
    sa.Column("charge_count", sa.Integer()),
    sa.Column("imported_by", sa.String(200)),
    sa.Column("imported_at", sa.DateTime(timezone=True)),
)
statement_totals = sa.Table(
    "card_statement_totals",
    metadata,
    sa.Column("statement_id", sa.String(40), primary_key=True),
    sa.Column("currency", sa.String(3), primary_key=True),
    sa.Column("total_minor", sa.BigInteger()),
)
statement_lines = sa.Table(
    "card_statement_lines",
    metadata,
    sa.Column("statement_id", sa.String(40), primary_key=True),
    sa.Column("charge_id", sa.String(140), primary_key=True),
    sa.Column("line", sa.Integer()),
)
charges = sa.Table(
    "card_charges",
    metadata,
    sa.Column("charge_id", sa.String(140), primary_key=True),
    sa.Column("issuer_transaction_id", sa.String(200)),
    sa.Column("statement_id", sa.String(40)),
    sa.Column("source_format", sa.String(20)),
    sa.Column("source_line", sa.Integer()),
    sa.Column("card_last4", sa.String(4)),
    sa.Column("cardholder", sa.String(200)),
    sa.Column("cardholder_name", sa.String(200)),
    sa.Column("transaction_date", sa.Date()),
    sa.Column("posting_date", sa.Date()),
    sa.Column("merchant", sa.String(500)),
    sa.Column("mcc", sa.String(4)),
    sa.Column("amount_minor", sa.BigInteger()),
    sa.Column("currency", sa.String(3)),
    sa.Column("original_minor", sa.BigInteger()),
    sa.Column("original_currency", sa.String(3)),
    sa.Column("status", sa.String(20)),
    sa.Column("match_id", sa.String(40)),
    sa.Column("imported_at", sa.DateTime(timezone=True)),
)
receipt_refs = sa.Table(
    "receipt_refs",
    metadata,
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("submitter", sa.String(200)),
    sa.Column("merchant", sa.String(500)),
    sa.Column("receipt_date", sa.Date()),
    sa.Column("total_minor", sa.BigInteger()),
    sa.Column("currency", sa.String(3)),
    sa.Column("tip_minor", sa.BigInteger()),
    sa.Column("card_last4", sa.String(4)),
    sa.Column("paid_with", sa.String(20)),
    sa.Column("state", sa.String(12)),
    sa.Column("match_id", sa.String(40)),
    sa.Column("updated_at", sa.DateTime(timezone=True)),
)
matches = sa.Table(
    "card_matches",
    metadata,
    sa.Column("match_id", sa.String(40), primary_key=True),
    sa.Column("status", sa.String(12)),
    sa.Column("origin", sa.String(10)),
    sa.Column("score", sa.Float()),
    sa.Column("signals_json", sa.Text()),
    sa.Column("reasons_json", sa.Text()),
    sa.Column("threshold_version", sa.String(40)),
    sa.Column("cardholder", sa.String(200)),
    sa.Column("automatic", sa.Boolean()),
    sa.Column("decided_by", sa.String(200)),
    sa.Column("proposed_at", sa.DateTime(timezone=True)),
    sa.Column("decided_at", sa.DateTime(timezone=True)),
    sa.Column("decision_reason", sa.Text()),
    sa.Column("version", sa.Integer()),
)
match_charges = sa.Table(
    "match_charges",
    metadata,
    sa.Column("match_id", sa.String(40), primary_key=True),
    sa.Column("charge_id", sa.String(140), primary_key=True),
    sa.Column("live", sa.Boolean()),
)
match_receipts = sa.Table(
    "match_receipts",
    metadata,
    sa.Column("match_id", sa.String(40), primary_key=True),
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("live", sa.Boolean()),
)
rejected_pairs = sa.Table(
    "rejected_pairs",
    metadata,
    sa.Column("charge_id", sa.String(140), primary_key=True),
    sa.Column("receipt_id", sa.String(64), primary_key=True),
    sa.Column("match_id", sa.String(40)),
)
declarations = sa.Table(
    "missing_receipt_declarations",
    metadata,
    sa.Column("declaration_id", sa.String(40), primary_key=True),
    sa.Column("charge_id", sa.String(140)),
    sa.Column("cardholder", sa.String(200)),
    sa.Column("description", sa.Text()),
    sa.Column("business_purpose", sa.Text()),
    sa.Column("attestation", sa.Text()),
    sa.Column("declared_at", sa.DateTime(timezone=True)),
)

_CHUNK = 500
T = TypeVar("T")


def _chunks(items: Iterable[T], size: int = _CHUNK) -> Iterator[list[T]]:
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return _utc(value) if value is not None else None


# --- statements ---------------------------------------------------------------------------


class SqlStatementRepository(StatementRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, statement_id: str) -> Statement | None:
        row = (
            await self.session.execute(
                statements.select().where(statements.c.statement_id == statement_id)
            )
        ).first()
        if row is None:
            return None
        return (await self._with_totals([row]))[0]

    async def _with_totals(self, rows: Sequence[Any]) -> list[Statement]:
        ids = [r._mapping["statement_id"] for r in rows]
        totals: dict[str, dict[str, int]] = {i: {} for i in ids}
        for batch in _chunks(ids):
            found = await self.session.execute(
                statement_totals.select().where(statement_totals.c.statement_id.in_(batch))
            )
            for t in found:
                totals[t.statement_id][t.currency] = int(t.total_minor)
        out = []
        for row in rows:
            m = row._mapping
            out.append(
                Statement(
                    statement_id=m["statement_id"],
                    format=StatementFormat(m["format"]),
                    filename=m["filename"],
                    sha256=m["sha256"],
                    period_start=m["period_start"],
                    period_end=m["period_end"],
                    totals=dict(sorted(totals[m["statement_id"]].items())),
                    charge_count=m["charge_count"],
                    imported_by=m["imported_by"],
                    imported_at=_utc(m["imported_at"]),
                )
            )
        return out

    async def add(self, statement: Statement) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    statements.insert().values(
                        statement_id=statement.statement_id,
                        format=statement.format.value,
                        filename=statement.filename,
                        sha256=statement.sha256,
                        period_start=statement.period_start,
                        period_end=statement.period_end,
                        charge_count=statement.charge_count,
                        imported_by=statement.imported_by,
                        imported_at=statement.imported_at,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None
        if statement.totals:
            await self.session.execute(
                statement_totals.insert(),
                [
                    {"statement_id": statement.statement_id, "currency": c, "total_minor": t}
                    for c, t in statement.totals.items()
                ],
            )

    async def add_lines(self, statement_id: str, lines: Sequence[tuple[str, int]]) -> None:
        for batch in _chunks(lines):
            await self.session.execute(
                statement_lines.insert(),
                [
                    {"statement_id": statement_id, "charge_id": cid, "line": line}
                    for cid, line in batch
                ],
            )

    async def overlapping(self, start: date | None, end: date | None) -> list[Statement]:
        stmt = statements.select()
        c = statements.c
        if start is not None:
            stmt = stmt.where(sa.or_(c.period_end.is_(None), c.period_end >= start))
        if end is not None:
            stmt = stmt.where(sa.or_(c.period_start.is_(None), c.period_start <= end))
        stmt = stmt.order_by(c.imported_at, c.statement_id)
        rows = (await self.session.execute(stmt)).all()
        return await self._with_totals(rows)

    async def charge_ids(self, statement_id: str) -> list[str]:
        rows = await self.session.execute(
            sa.select(statement_lines.c.charge_id)
            .where(statement_lines.c.statement_id == statement_id)
            .order_by(statement_lines.c.line, statement_lines.c.charge_id)
        )
        return list(rows.scalars())


# --- charges ------------------------------------------------------------------------------


def _charge_row(r: ChargeRecord) -> dict[str, Any]:
    c = r.charge
    return {
        "charge_id": c.charge_id,
        "issuer_transaction_id": c.issuer_transaction_id,
        "statement_id": r.statement_id,
        "source_format": c.source_format.value,
        "source_line": c.source_line,
        "card_last4": c.card_last4,
        "cardholder": c.cardholder,
        "cardholder_name": r.cardholder_name,
        "transaction_date": c.transaction_date,
        "posting_date": c.posting_date,
        "merchant": c.merchant,
        "mcc": c.mcc,
        "amount_minor": c.amount.minor_units,
        "currency": c.amount.currency,
        "original_minor": c.original_amount.minor_units if c.original_amount else None,
        "original_currency": c.original_amount.currency if c.original_amount else None,
        "status": r.status.value,
        "match_id": r.match_id,
        "imported_at": r.imported_at,
    }


def _charge_from_row(row: Any) -> ChargeRecord:
    m = row._mapping
    original = (
        Money(int(m["original_minor"]), m["original_currency"]) if m["original_currency"] else None
    )
    charge = CardCharge(
        charge_id=m["charge_id"],
        issuer_transaction_id=m["issuer_transaction_id"],
        card_last4=m["card_last4"],
        cardholder=m["cardholder"],
        transaction_date=m["transaction_date"],
        posting_date=m["posting_date"],
        merchant=m["merchant"],
        mcc=m["mcc"],
        amount=Money(int(m["amount_minor"]), m["currency"]),
        original_amount=original,
        source_format=StatementFormat(m["source_format"]),
        source_line=m["source_line"],
    )
    return ChargeRecord(
        charge=charge,
        statement_id=m["statement_id"],
        imported_at=_utc(m["imported_at"]),
        status=ChargeStatus(m["status"]),
        match_id=m["match_id"] or "",
        cardholder_name=m["cardholder_name"] or "",
    )


class SqlChargeRepository(ChargeRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def known_issuer_ids(self, issuer_ids: Collection[str]) -> dict[str, str]:
        out: dict[str, str] = {}
        c = charges.c
        for batch in _chunks(issuer_ids):
            rows = await self.session.execute(
                sa.select(c.issuer_transaction_id, c.charge_id).where(
                    c.issuer_transaction_id.in_(batch)
                )
            )
            out.update({r[0]: r[1] for r in rows})
        return out

    async def known_charge_ids(self, charge_ids: Collection[str]) -> set[str]:
        out: set[str] = set()
        for batch in _chunks(charge_ids):
            rows = await self.session.execute(
                sa.select(charges.c.charge_id).where(charges.c.charge_id.in_(batch))
            )
            out.update(rows.scalars())
        return out

    async def add_many(self, records: Sequence[ChargeRecord]) -> None:
        if not records:
            return
        try:
            async with self.session.begin_nested():
                for batch in _chunks(records):
                    await self.session.execute(charges.insert(), [_charge_row(r) for r in batch])
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def get_many(self, charge_ids: Collection[str]) -> dict[str, ChargeRecord]:
        out: dict[str, ChargeRecord] = {}
        for batch in _chunks(charge_ids):
            rows = await self.session.execute(
                charges.select().where(charges.c.charge_id.in_(batch))
            )
            for row in rows:
                record = _charge_from_row(row)
                out[record.charge_id] = record
        return out

    async def set_states(self, changes: Sequence[tuple[str, ChargeStatus, str]]) -> None:
        stmt = (
            charges.update()
            .where(charges.c.charge_id == sa.bindparam("b_id"))
            .values(status=sa.bindparam("b_status"), match_id=sa.bindparam("b_match"))
        )
        for batch in _chunks(changes):
            await self.session.execute(
                stmt, [{"b_id": c, "b_status": s.value, "b_match": m} for c, s, m in batch]
            )

    async def query(self, q: ChargeQuery) -> list[ChargeRecord]:
        c = charges.c
        stmt = charges.select()
        if q.statement_id:
            stmt = stmt.where(
                c.charge_id.in_(
                    sa.select(statement_lines.c.charge_id).where(
                        statement_lines.c.statement_id == q.statement_id
                    )
                )
            )
        if q.status is not None:
            stmt = stmt.where(c.status == q.status.value)
        if q.cardholder is not None:
            stmt = stmt.where(c.cardholder == q.cardholder)
        if q.date_from is not None:
            stmt = stmt.where(c.transaction_date >= q.date_from)
        if q.date_to is not None:
            stmt = stmt.where(c.transaction_date <= q.date_to)
        if q.after is not None:
            day, cid = date.fromisoformat(q.after[0]), q.after[1]
            stmt = stmt.where(
                sa.or_(
                    c.transaction_date < day,
                    sa.and_(c.transaction_date == day, c.charge_id < cid),
                )
            )
        stmt = stmt.order_by(c.transaction_date.desc(), c.charge_id.desc()).limit(q.limit)
        return [_charge_from_row(r) for r in await self.session.execute(stmt)]

    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ChargeRecord]:
        c = charges.c
        in_window = c.transaction_date.between(start, end)
        stmt = charges.select().where(c.status == ChargeStatus.UNMATCHED.value, in_window)
        if near is not None:
            # First the ids, one indexed lookup per kind of likeness (an OR of them, or a
            # status condition next to them, makes planners scan the whole open window).
            ids = sa.select(c.charge_id)
            alike = [ids.where(c.cardholder == near.person, in_window)]
            if near.card_last4:
                alike.append(ids.where(c.card_last4 == near.card_last4, in_window))
            for currency, minor in near.amounts:
                same = (c.currency == currency, in_window)
                alike.append(ids.where(c.amount_minor == minor, *same))
                alike.append(
                    ids.where(c.original_minor == minor, c.original_currency == currency, in_window)
                )
            found = list((await self.session.execute(sa.union(*alike))).scalars())
            # By primary key only, the state and window checked here: next to a status
            # condition the planner would again prefer the (status, date) index.
            records = [
                r
                for r in (await self.get_many(found)).values()
                if r.status is ChargeStatus.UNMATCHED and start <= r.charge.transaction_date <= end
            ]
            records.sort(key=lambda r: (r.charge.transaction_date, r.charge_id))
            return records[:limit]
        stmt = stmt.order_by(c.transaction_date, c.charge_id).limit(limit)
        return [_charge_from_row(r) for r in await self.session.execute(stmt)]

    async def tally(
        self,
        *,
        statement_id: str | None = None,
        cardholder: str | None = None,
        date_from: date | None = None,
        date_to: date | None = None,
    ) -> list[Tally]:
        c = charges.c
        stmt = sa.select(
            c.cardholder, c.currency, c.status, sa.func.count(), sa.func.sum(c.amount_minor)
        ).group_by(c.cardholder, c.currency, c.status)
        if statement_id is not None:
            stmt = stmt.where(
                c.charge_id.in_(
                    sa.select(statement_lines.c.charge_id).where(
                        statement_lines.c.statement_id == statement_id
                    )
                )
            )
        if cardholder is not None:
            stmt = stmt.where(c.cardholder == cardholder)
        if date_from is not None:
            stmt = stmt.where(c.transaction_date >= date_from)
        if date_to is not None:
            stmt = stmt.where(c.transaction_date <= date_to)
        rows = await self.session.execute(stmt.order_by(c.cardholder, c.currency, c.status))
        return [
            Tally(r[0] or "", r[1], ChargeStatus(r[2]), int(r[3]), int(r[4] or 0)) for r in rows
        ]

    async def booked_between(self, start: date, end: date) -> list[ChargeRecord]:
        c = charges.c
        booked = sa.func.coalesce(c.posting_date, c.transaction_date)
        stmt = (
            charges.select()
            .where(
                sa.or_(
                    c.posting_date.between(start, end),
                    sa.and_(c.posting_date.is_(None), c.transaction_date.between(start, end)),
                )
            )
            .order_by(booked, c.charge_id)
        )
        return [_charge_from_row(r) for r in await self.session.execute(stmt)]


# --- matches ------------------------------------------------------------------------------


def _match_values(m: Match) -> dict[str, Any]:
    return {
        "match_id": m.match_id,
        "status": m.status.value,
        "origin": m.origin.value,
        "score": float(m.score),
        "signals_json": json.dumps(dict(m.signals), sort_keys=True),
        "reasons_json": json.dumps(list(m.reasons), ensure_ascii=False),
        "threshold_version": m.threshold_version,
        "cardholder": m.cardholder,
        "automatic": m.automatic,
        "decided_by": m.decided_by,
        "proposed_at": m.proposed_at,
        "decided_at": m.decided_at,
        "decision_reason": m.decision_reason,
        "version": m.version,
    }


class SqlMatchRepository(MatchRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, match: Match) -> None:
        await self.add_many([match])

    async def add_many(self, items: Sequence[Match]) -> None:
        if not items:
            return
        try:
            async with self.session.begin_nested():
                for batch in _chunks(items):
                    await self.session.execute(matches.insert(), [_match_values(m) for m in batch])
                    await self.session.execute(
                        match_charges.insert(),
                        [{"match_id": m.match_id, "charge_id": c, "live": m.live}
                         for m in batch for c in m.charge_ids],
                    )  # fmt: skip
                    await self.session.execute(
                        match_receipts.insert(),
                        [{"match_id": m.match_id, "receipt_id": r, "live": m.live}
                         for m in batch for r in m.receipt_ids],
                    )  # fmt: skip
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def _load(self, rows: Sequence[Any]) -> list[Match]:
        ids = [r._mapping["match_id"] for r in rows]
        parts_c: dict[str, list[str]] = {i: [] for i in ids}
        parts_r: dict[str, list[str]] = {i: [] for i in ids}
        for batch in _chunks(ids):
            for row in await self.session.execute(
                sa.select(match_charges.c.match_id, match_charges.c.charge_id).where(
                    match_charges.c.match_id.in_(batch)
                )
            ):
                parts_c[row[0]].append(row[1])
            for row in await self.session.execute(
                sa.select(match_receipts.c.match_id, match_receipts.c.receipt_id).where(
                    match_receipts.c.match_id.in_(batch)
                )
            ):
                parts_r[row[0]].append(row[1])
        out = []
        for row in rows:
            m = row._mapping
            out.append(
                Match(
                    match_id=m["match_id"],
                    charge_ids=tuple(sorted(parts_c[m["match_id"]])),
                    receipt_ids=tuple(sorted(parts_r[m["match_id"]])),
                    status=MatchStatus(m["status"]),
                    origin=MatchOrigin(m["origin"]),
                    score=float(m["score"]),
                    signals=json.loads(m["signals_json"] or "{}"),
                    reasons=tuple(json.loads(m["reasons_json"] or "[]")),
                    threshold_version=m["threshold_version"],
                    proposed_at=_utc(m["proposed_at"]),
                    cardholder=m["cardholder"] or "",
                    automatic=bool(m["automatic"]),
                    decided_by=m["decided_by"] or "",
                    decided_at=_maybe_utc(m["decided_at"]),
                    decision_reason=m["decision_reason"] or "",
                    version=m["version"],
                )
            )
        return out

    async def get(self, match_id: str) -> Match | None:
        rows = (
            await self.session.execute(matches.select().where(matches.c.match_id == match_id))
        ).all()
        loaded = await self._load(rows)
        return loaded[0] if loaded else None

    async def get_many(self, match_ids: Collection[str]) -> dict[str, Match]:
        out: dict[str, Match] = {}
        for batch in _chunks(match_ids):
            rows = (
                await self.session.execute(matches.select().where(matches.c.match_id.in_(batch)))
            ).all()
            out.update({m.match_id: m for m in await self._load(rows)})
        return out

    async def update(self, match: Match) -> None:
        values = _match_values(match)
        values["version"] = match.version + 1
        result = await self.session.execute(
            matches.update()
            .where(matches.c.match_id == match.match_id, matches.c.version == match.version)
            .values(**values)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            raise ConcurrentUpdate(f"match {match.match_id} changed concurrently")
        match.version += 1
        live = match.status in LIVE_MATCH_STATUSES
        for side in (match_charges, match_receipts):
            await self.session.execute(
                side.update().where(side.c.match_id == match.match_id).values(live=live)
            )

    async def live_for(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> list[Match]:
        ids: set[str] = set()
        for side, column, items in (
            (match_charges, match_charges.c.charge_id, charge_ids),
            (match_receipts, match_receipts.c.receipt_id, receipt_ids),
        ):
            for batch in _chunks(items):
                rows = await self.session.execute(
                    sa.select(side.c.match_id).where(column.in_(batch), side.c.live)
                )
                ids.update(rows.scalars())
        found = await self.get_many(ids)
        return [found[i] for i in sorted(found)]

    async def proposed(self, limit: int, cardholder: str | None = None) -> list[Match]:
        stmt = matches.select().where(matches.c.status == MatchStatus.PROPOSED.value)
        if cardholder is not None:
            stmt = stmt.where(matches.c.cardholder == cardholder)
        stmt = stmt.order_by(matches.c.score.desc(), matches.c.match_id).limit(limit)
        return await self._load((await self.session.execute(stmt)).all())

    async def rejected_pairs(
        self, charge_ids: Collection[str] = (), receipt_ids: Collection[str] = ()
    ) -> set[tuple[str, str]]:
        out: set[tuple[str, str]] = set()
        rp = rejected_pairs.c
        for column, items in ((rp.charge_id, charge_ids), (rp.receipt_id, receipt_ids)):
            for batch in _chunks(items):
                rows = await self.session.execute(
                    sa.select(rp.charge_id, rp.receipt_id).where(column.in_(batch))
                )
                out.update((r[0], r[1]) for r in rows)
        return out

    async def add_rejected_pairs(self, pairs: Iterable[tuple[str, str]], match_id: str) -> None:
        wanted = set(pairs)
        if not wanted:
            return
        known = await self.rejected_pairs(charge_ids=sorted({c for c, _ in wanted}))
        fresh = sorted(wanted - known)
        if fresh:
            await self.session.execute(
                rejected_pairs.insert(),
                [{"charge_id": c, "receipt_id": r, "match_id": match_id} for c, r in fresh],
            )


# --- receipt refs -------------------------------------------------------------------------


def _ref_row(ref: ReceiptRef) -> dict[str, Any]:
    return {
        "receipt_id": ref.receipt_id,
        "submitter": ref.submitter,
        "merchant": ref.merchant,
        "receipt_date": ref.receipt_date,
        "total_minor": ref.total.minor_units if ref.total else None,
        "currency": ref.total.currency if ref.total else None,
        "tip_minor": ref.tip_minor,
        "card_last4": ref.card_last4,
        "paid_with": ref.paid_with.value,
        "state": ref.state.value,
        "match_id": ref.match_id,
        "updated_at": ref.updated_at,
    }


def _ref_from_row(row: Any) -> ReceiptRef:
    m = row._mapping
    return ReceiptRef(
        receipt_id=m["receipt_id"],
        submitter=m["submitter"],
        merchant=m["merchant"] or "",
        receipt_date=m["receipt_date"],
        total=Money(int(m["total_minor"]), m["currency"]) if m["currency"] else None,
        tip_minor=int(m["tip_minor"]) if m["tip_minor"] is not None else None,
        card_last4=m["card_last4"],
        paid_with=PaidWith(m["paid_with"]),
        updated_at=_utc(m["updated_at"]),
        state=ReceiptState(m["state"]),
        match_id=m["match_id"] or "",
    )


class SqlReceiptRefRepository(ReceiptRefRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, receipt_id: str) -> ReceiptRef | None:
        return (await self.get_many([receipt_id])).get(receipt_id)

    async def get_many(self, receipt_ids: Collection[str]) -> dict[str, ReceiptRef]:
        out: dict[str, ReceiptRef] = {}
        for batch in _chunks(receipt_ids):
            rows = await self.session.execute(
                receipt_refs.select().where(receipt_refs.c.receipt_id.in_(batch))
            )
            for row in rows:
                ref = _ref_from_row(row)
                out[ref.receipt_id] = ref
        return out

    async def save(self, ref: ReceiptRef) -> None:
        values = _ref_row(ref)
        result = await self.session.execute(
            receipt_refs.update()
            .where(receipt_refs.c.receipt_id == ref.receipt_id)
            .values(**values)
        )
        if result.rowcount == 0:  # type: ignore[attr-defined]
            await self.session.execute(receipt_refs.insert().values(**values))

    async def set_states(self, changes: Sequence[tuple[str, ReceiptState, str]]) -> None:
        r = receipt_refs.c
        stmt = (
            receipt_refs.update()
            .where(r.receipt_id == sa.bindparam("b_id"), r.state != ReceiptState.DELETED.value)
            .values(state=sa.bindparam("b_state"), match_id=sa.bindparam("b_match"))
        )
        for batch in _chunks(changes):
            await self.session.execute(
                stmt, [{"b_id": i, "b_state": s.value, "b_match": m} for i, s, m in batch]
            )

    async def open_between(
        self, start: date, end: date, *, limit: int, near: Near | None = None
    ) -> list[ReceiptRef]:
        r = receipt_refs.c
        in_window = r.receipt_date.between(start, end)
        stmt = receipt_refs.select().where(r.state == ReceiptState.OPEN.value, in_window)
        if near is not None:
            ids = sa.select(r.receipt_id)  # ids first: see SqlChargeRepository.open_between
            alike = [ids.where(r.submitter == near.person, in_window)]
            if near.card_last4:
                alike.append(ids.where(r.card_last4 == near.card_last4, in_window))
            for currency, minor in near.amounts:
                alike.append(ids.where(r.total_minor == minor, r.currency == currency, in_window))
            found = list((await self.session.execute(sa.union(*alike))).scalars())
            refs = [
                ref
                for ref in (await self.get_many(found)).values()
                if ref.state is ReceiptState.OPEN
                and ref.receipt_date is not None
                and start <= ref.receipt_date <= end
            ]
            refs.sort(key=lambda ref: (ref.receipt_date or start, ref.receipt_id))
            return refs[:limit]
        stmt = stmt.order_by(r.receipt_date, r.receipt_id).limit(limit)
        return [_ref_from_row(row) for row in await self.session.execute(stmt)]


# --- declarations -------------------------------------------------------------------------


class SqlDeclarationRepository(DeclarationRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, declaration: MissingReceiptDeclaration) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    declarations.insert().values(
                        declaration_id=declaration.declaration_id,
                        charge_id=declaration.charge_id,
                        cardholder=declaration.cardholder,
                        description=declaration.description,
                        business_purpose=declaration.business_purpose,
                        attestation=declaration.attestation,
                        declared_at=declaration.declared_at,
                    )
                )
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def for_charges(
        self, charge_ids: Collection[str]
    ) -> dict[str, MissingReceiptDeclaration]:
        out: dict[str, MissingReceiptDeclaration] = {}
        for batch in _chunks(charge_ids):
            rows = await self.session.execute(
                declarations.select().where(declarations.c.charge_id.in_(batch))
            )
            for row in rows:
                m = row._mapping
                out[m["charge_id"]] = MissingReceiptDeclaration(
                    declaration_id=m["declaration_id"],
                    charge_id=m["charge_id"],
                    cardholder=m["cardholder"],
                    description=m["description"],
                    business_purpose=m["business_purpose"],
                    attestation=m["attestation"],
                    declared_at=_utc(m["declared_at"]),
                )
        return out
