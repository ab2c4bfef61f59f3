"""SQL (SQLAlchemy Core) implementations of the payout service's repositories."""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict
from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from seisan_payouts.adapters.tables import (
    bank_files,
    claimed_receipts,
    claims,
    ledger_legs,
    ledger_transactions,
    payee_accounts,
    payout_runs,
    payouts,
    receipt_refs,
    stripe_events,
)
from seisan_payouts.domain.bank_transfer import AccountType
from seisan_payouts.domain.ledger import JournalEntry
from seisan_payouts.domain.model import (
    Claim,
    ClaimLine,
    ClaimStatus,
    PaidWith,
    PolicyFinding,
    ReceiptRef,
    ReceiptState,
    Rule,
    Severity,
)
from seisan_payouts.domain.payouts import (
    IN_FLIGHT,
    BankFileFormat,
    Payout,
    PayoutRun,
    PayoutStatus,
    Rail,
)
from seisan_payouts.domain.ports import (
    BankDetails,
    BankFileRepository,
    ClaimQuery,
    ClaimRepository,
    ConcurrentUpdate,
    DuplicateKey,
    LedgerRepository,
    PayeeAccount,
    PayeeRepository,
    PayoutQuery,
    PayoutRepository,
    ReceiptRefRepository,
    StoredBankFile,
    StripeEventLog,
)
from seisan_shared.money import Money


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


async def _insert(session: AsyncSession, stmt: Any) -> None:
    """Insert in a savepoint so a unique-key clash leaves the transaction usable."""
    try:
        async with session.begin_nested():
            await session.execute(stmt)
    except IntegrityError as exc:
        raise DuplicateKey(str(exc.orig)) from None


# -- receipts ---------------------------------------------------------------------------------


def _ref_values(r: ReceiptRef) -> dict[str, Any]:
    return {
        "receipt_id": r.receipt_id,
        "submitter": r.submitter,
        "paid_with": r.paid_with.value,
        "state": r.state.value,
        "total_minor": r.total.minor_units if r.total else None,
        "currency": r.total.currency if r.total else None,
        "transaction_date": r.transaction_date,
        "merchant": r.merchant,
        "match_id": r.match_id,
        "matched_charge_ids": json.dumps(list(r.matched_charge_ids)),
        "last_event_at": r.last_event_at,
    }


def _ref(row: Any) -> ReceiptRef:
    m = row._mapping
    total = None
    if m["total_minor"] is not None and m["currency"]:
        total = Money(int(m["total_minor"]), m["currency"])
    return ReceiptRef(
        receipt_id=m["receipt_id"],
        submitter=m["submitter"],
        paid_with=PaidWith(m["paid_with"]),
        state=ReceiptState(m["state"]),
        total=total,
        transaction_date=m["transaction_date"],
        merchant=m["merchant"] or "",
        match_id=m["match_id"] or "",
        matched_charge_ids=tuple(json.loads(m["matched_charge_ids"] or "[]")),
        last_event_at=_utc(m["last_event_at"]),
    )


class SqlReceiptRefs(ReceiptRefRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_many(self, receipt_ids: list[str]) -> dict[str, ReceiptRef]:
        if not receipt_ids:
            return {}
        rows = await self.session.execute(
            receipt_refs.select().where(receipt_refs.c.receipt_id.in_(receipt_ids))
        )
        return {r.receipt_id: r for r in map(_ref, rows)}

    async def get(self, receipt_id: str) -> ReceiptRef | None:
        return (await self.get_many([receipt_id])).get(receipt_id)

    async def put(self, ref: ReceiptRef) -> None:
        values = _ref_values(ref)
        updated = await self.session.execute(
            receipt_refs.update()
            .where(receipt_refs.c.receipt_id == ref.receipt_id)
            .values(**values)
        )
        if _rowcount(updated) == 0:
            await self.session.execute(receipt_refs.insert().values(**values))

    async def matched_to(self, match_id: str) -> list[ReceiptRef]:
        rows = await self.session.execute(
            receipt_refs.select().where(receipt_refs.c.match_id == match_id)
        )
        return [_ref(r) for r in rows]


# -- claims -----------------------------------------------------------------------------------


def _lines_json(lines: list[ClaimLine]) -> str:
    return json.dumps(
        [
            {
                "receipt_id": line.receipt_id,
                "minor_units": line.amount.minor_units,
                "currency": line.amount.currency,
                "category": line.category,
                "merchant": line.merchant,
                "transaction_date": (
                    line.transaction_date.isoformat() if line.transaction_date else None
                ),
            }
            for line in lines
        ],
        ensure_ascii=False,
    )


def _lines(text: str) -> list[ClaimLine]:
    return [
        ClaimLine(
            receipt_id=item["receipt_id"],
            amount=Money(int(item["minor_units"]), item["currency"]),
            category=item["category"],
            merchant=item.get("merchant") or "",
            transaction_date=(
                date.fromisoformat(item["transaction_date"])
                if item.get("transaction_date")
                else None
            ),
        )
        for item in json.loads(text)
    ]


def _findings_json(findings: list[PolicyFinding]) -> str:
    return json.dumps(
        [
            {
                "rule": f.rule.value,
                "severity": f.severity.value,
                "message": f.message,
                "receipt_id": f.receipt_id,
            }
            for f in findings
        ],
        ensure_ascii=False,
    )


def _findings(text: str) -> list[PolicyFinding]:
    return [
        PolicyFinding(Rule(f["rule"]), Severity(f["severity"]), f["message"], f["receipt_id"])
        for f in json.loads(text or "[]")
    ]


def _claim_values(c: Claim) -> dict[str, Any]:
    return {
        "claim_id": c.claim_id,
        "claimant": c.claimant,
        "status": c.status.value,
        "currency": c.currency,
        "total_minor": c.total.minor_units,
        "description": c.description,
        "lines_json": _lines_json(c.lines),
        "findings_json": _findings_json(c.findings),
        "submitted_at": c.submitted_at,
        "decided_by": c.decided_by,
        "decided_at": c.decided_at,
        "rejection_reason": c.rejection_reason,
        "payout_id": c.payout_id,
        "payout_failure_reason": c.payout_failure_reason,
        "version": c.version,
    }


def _claim(row: Any) -> Claim:
    m = row._mapping
    return Claim(
        claim_id=m["claim_id"],
        claimant=m["claimant"],
        lines=_lines(m["lines_json"]),
        description=m["description"] or "",
        submitted_at=_utc(m["submitted_at"]),  # type: ignore[arg-type]
        status=ClaimStatus(m["status"]),
        findings=_findings(m["findings_json"]),
        decided_by=m["decided_by"] or "",
        decided_at=_utc(m["decided_at"]),
        rejection_reason=m["rejection_reason"] or "",
        payout_id=m["payout_id"] or "",
        payout_failure_reason=m["payout_failure_reason"] or "",
        version=m["version"],
    )


class SqlClaims(ClaimRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, claim: Claim) -> None:
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    claimed_receipts.insert(),
                    [{"receipt_id": r, "claim_id": claim.claim_id} for r in claim.receipt_ids],
                )
                await self.session.execute(claims.insert().values(**_claim_values(claim)))
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def get(self, claim_id: str) -> Claim | None:
        row = (
            await self.session.execute(claims.select().where(claims.c.claim_id == claim_id))
        ).first()
        return _claim(row) if row else None

    async def get_many(self, claim_ids: list[str]) -> list[Claim]:
        if not claim_ids:
            return []
        rows = await self.session.execute(claims.select().where(claims.c.claim_id.in_(claim_ids)))
        found = {c.claim_id: c for c in map(_claim, rows)}
        return [found[i] for i in claim_ids if i in found]

    async def update(self, claim: Claim) -> None:
        values = _claim_values(claim)
        values["version"] = claim.version + 1
        result = await self.session.execute(
            claims.update()
            .where(claims.c.claim_id == claim.claim_id, claims.c.version == claim.version)
            .values(**values)
        )
        if _rowcount(result) != 1:
            raise ConcurrentUpdate(f"claim {claim.claim_id} changed concurrently")
        claim.version += 1
        if claim.status is ClaimStatus.REJECTED:
            await self.session.execute(
                claimed_receipts.delete().where(claimed_receipts.c.claim_id == claim.claim_id)
            )

    async def query(self, q: ClaimQuery) -> list[Claim]:
        c = claims.c
        stmt = claims.select()
        if q.claimant:
            stmt = stmt.where(c.claimant == q.claimant)
        if q.status:
            stmt = stmt.where(c.status == q.status.value)
        if q.after:
            at, cid = datetime.fromisoformat(q.after[0]), q.after[1]
            stmt = stmt.where(
                sa.or_(c.submitted_at < at, sa.and_(c.submitted_at == at, c.claim_id < cid))
            )
        stmt = stmt.order_by(c.submitted_at.desc(), c.claim_id.desc()).limit(q.limit)
        return [_claim(r) for r in await self.session.execute(stmt)]

    async def approved_unpaid(self, currency: str | None) -> list[Claim]:
        stmt = claims.select().where(claims.c.status == ClaimStatus.APPROVED.value)
        if currency:
            stmt = stmt.where(claims.c.currency == currency)
        stmt = stmt.order_by(claims.c.claimant, claims.c.submitted_at, claims.c.claim_id)
        return [_claim(r) for r in await self.session.execute(stmt)]

    async def claims_holding(self, receipt_ids: list[str]) -> dict[str, str]:
        if not receipt_ids:
            return {}
        rows = await self.session.execute(
            sa.select(claimed_receipts.c.receipt_id, claimed_receipts.c.claim_id).where(
                claimed_receipts.c.receipt_id.in_(receipt_ids)
            )
        )
        return {r[0]: r[1] for r in rows}


# -- payouts and runs -------------------------------------------------------------------------

_PAYOUT_FIELDS = (
    "attempt",
    "attempt_started_at",
    "destination_account",
    "transfer_id",
    "stripe_payout_id",
    "reversal_id",
    "failure_reason",
    "bank_reference",
    "created_at",
    "sent_at",
    "settled_at",
    "next_try_at",
    "checked_at",
    "version",
)


def _payout_values(p: Payout) -> dict[str, Any]:
    values = {name: getattr(p, name) for name in _PAYOUT_FIELDS}
    values.update(
        payout_id=p.payout_id,
        run_id=p.run_id,
        employee=p.employee,
        currency=p.amount.currency,
        amount_minor=p.amount.minor_units,
        rail=p.rail.value,
        status=p.status.value,
        claim_ids_json=json.dumps(p.claim_ids),
    )
    return values


def _payout(row: Any) -> Payout:
    m = row._mapping
    values = {name: m[name] for name in _PAYOUT_FIELDS}
    for name in (
        "attempt_started_at",
        "created_at",
        "sent_at",
        "settled_at",
        "next_try_at",
        "checked_at",
    ):
        values[name] = _utc(values[name])
    for name in (
        "destination_account",
        "transfer_id",
        "stripe_payout_id",
        "reversal_id",
        "failure_reason",
        "bank_reference",
    ):
        values[name] = values[name] or ""
    return Payout(
        payout_id=m["payout_id"],
        run_id=m["run_id"],
        employee=m["employee"],
        amount=Money(int(m["amount_minor"]), m["currency"]),
        rail=Rail(m["rail"]),
        claim_ids=json.loads(m["claim_ids_json"]),
        status=PayoutStatus(m["status"]),
        **values,
    )


def _run_values(r: PayoutRun) -> dict[str, Any]:
    return {
        "run_id": r.run_id,
        "rail": r.rail.value,
        "bank_file_format": r.bank_file_format.value if r.bank_file_format else None,
        "execution_date": r.execution_date,
        "currency": r.currency,
        "created_by": r.created_by,
        "created_at": r.created_at,
        "request_id": r.request_id or None,
        "payout_ids_json": json.dumps(r.payout_ids),
        "notes_json": json.dumps(r.notes, ensure_ascii=False),
    }


def _run(row: Any) -> PayoutRun:
    m = row._mapping
    return PayoutRun(
        run_id=m["run_id"],
        rail=Rail(m["rail"]),
        created_by=m["created_by"],
        created_at=_utc(m["created_at"]),  # type: ignore[arg-type]
        payout_ids=json.loads(m["payout_ids_json"]),
        bank_file_format=BankFileFormat(m["bank_file_format"]) if m["bank_file_format"] else None,
        execution_date=m["execution_date"],
        currency=m["currency"] or "",
        request_id=m["request_id"] or "",
        notes=json.loads(m["notes_json"]),
    )


class SqlPayouts(PayoutRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, payout: Payout) -> None:
        await self.session.execute(payouts.insert().values(**_payout_values(payout)))

    async def get(self, payout_id: str) -> Payout | None:
        row = (
            await self.session.execute(payouts.select().where(payouts.c.payout_id == payout_id))
        ).first()
        return _payout(row) if row else None

    async def update(self, payout: Payout) -> None:
        values = _payout_values(payout)
        values["version"] = payout.version + 1
        result = await self.session.execute(
            payouts.update()
            .where(payouts.c.payout_id == payout.payout_id, payouts.c.version == payout.version)
            .values(**values)
        )
        if _rowcount(result) != 1:
            raise ConcurrentUpdate(f"payout {payout.payout_id} changed concurrently")
        payout.version += 1

    async def query(self, q: PayoutQuery) -> list[Payout]:
        c = payouts.c
        stmt = payouts.select()
        if q.employee:
            stmt = stmt.where(c.employee == q.employee)
        if q.status:
            stmt = stmt.where(c.status == q.status.value)
        if q.run_id:
            stmt = stmt.where(c.run_id == q.run_id)
        if q.after:
            at, pid = datetime.fromisoformat(q.after[0]), q.after[1]
            stmt = stmt.where(
                sa.or_(c.created_at < at, sa.and_(c.created_at == at, c.payout_id < pid))
            )
        stmt = stmt.order_by(c.created_at.desc(), c.payout_id.desc()).limit(q.limit)
        return [_payout(r) for r in await self.session.execute(stmt)]

    async def to_drive(self, rail: Rail, now: datetime, limit: int) -> list[str]:
        c = payouts.c
        statuses = [PayoutStatus.CREATED.value, *(s.value for s in IN_FLIGHT)]
        rows = await self.session.execute(
            sa.select(c.payout_id)
            .where(
                c.rail == rail.value,
                c.status.in_(statuses),
                sa.or_(c.next_try_at.is_(None), c.next_try_at <= now),
            )
            .order_by(c.created_at, c.payout_id)
            .limit(limit)
        )
        return [r[0] for r in rows]

    async def sent_unsettled(self, rail: Rail, checked_before: datetime, limit: int) -> list[str]:
        c = payouts.c
        last_look = sa.func.coalesce(c.checked_at, c.sent_at)
        rows = await self.session.execute(
            sa.select(c.payout_id)
            .where(
                c.rail == rail.value,
                c.status == PayoutStatus.SENT.value,
                last_look <= checked_before,
            )
            .order_by(last_look)
            .limit(limit)
        )
        return [r[0] for r in rows]

    async def add_run(self, run: PayoutRun) -> None:
        await _insert(self.session, payout_runs.insert().values(**_run_values(run)))

    async def get_run(self, run_id: str) -> PayoutRun | None:
        row = (
            await self.session.execute(payout_runs.select().where(payout_runs.c.run_id == run_id))
        ).first()
        return _run(row) if row else None

    async def run_by_request(self, request_id: str) -> PayoutRun | None:
        row = (
            await self.session.execute(
                payout_runs.select().where(payout_runs.c.request_id == request_id)
            )
        ).first()
        return _run(row) if row else None

    async def of_run(self, run_id: str) -> list[Payout]:
        rows = await self.session.execute(
            payouts.select()
            .where(payouts.c.run_id == run_id)
            .order_by(payouts.c.employee, payouts.c.payout_id)
        )
        return [_payout(r) for r in rows]


# -- payees, Stripe events, bank files --------------------------------------------------------


class SqlPayees(PayeeRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, employee: str) -> PayeeAccount | None:
        row = (
            await self.session.execute(
                payee_accounts.select().where(payee_accounts.c.employee == employee)
            )
        ).first()
        if row is None:
            return None
        m = row._mapping
        bank = None
        if m["bank_json"]:
            data = json.loads(m["bank_json"])
            data["account_type"] = AccountType(data.get("account_type", "ordinary"))
            bank = BankDetails(**data)
        return PayeeAccount(
            employee=m["employee"],
            stripe_account_id=m["stripe_account_id"] or "",
            bank=bank,
            updated_by=m["updated_by"] or "",
            updated_at=_utc(m["updated_at"]),
        )

    async def put(self, account: PayeeAccount) -> None:
        bank_json = ""
        if account.bank is not None:
            data = asdict(account.bank)
            data["account_type"] = account.bank.account_type.value
            bank_json = json.dumps(data, ensure_ascii=False)
        values = {
            "employee": account.employee,
            "stripe_account_id": account.stripe_account_id,
            "bank_json": bank_json,
            "updated_by": account.updated_by,
            "updated_at": account.updated_at,
        }
        result = await self.session.execute(
            payee_accounts.update()
            .where(payee_accounts.c.employee == account.employee)
            .values(**values)
        )
        if _rowcount(result) == 0:
            await self.session.execute(payee_accounts.insert().values(**values))


class SqlStripeEvents(StripeEventLog):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def record(self, event_id: str, event_type: str, payout_id: str) -> bool:
        try:
            await _insert(
                self.session,
                stripe_events.insert().values(
                    event_id=event_id,
                    type=event_type,
                    payout_id=payout_id,
                    received_at=datetime.now(UTC),
                ),
            )
        except DuplicateKey:
            return False
        return True


class SqlBankFiles(BankFileRepository):
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, run_id: str) -> StoredBankFile | None:
        row = (
            await self.session.execute(bank_files.select().where(bank_files.c.run_id == run_id))
        ).first()
        if row is None:
            return None
        m = row._mapping
        return StoredBankFile(
            run_id=m["run_id"],
            format=m["format"],
            filename=m["filename"],
            content=bytes(m["content"]),
            sha256=m["sha256"],
            created_at=_utc(m["created_at"]),  # type: ignore[arg-type]
        )

    async def add(self, file: StoredBankFile) -> None:
        await _insert(
            self.session,
            bank_files.insert().values(
                run_id=file.run_id,
                format=file.format,
                filename=file.filename,
                content=file.content,
                sha256=file.sha256,
                created_at=file.created_at,
            ),
        )


# -- ledger -----------------------------------------------------------------------------------


class SqlLedger(LedgerRepository):
    """Legs first, then the header that seals them (the order the SQLite triggers need)."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def post(self, entry: JournalEntry) -> None:
        if await self.has(entry.kind.value, entry.reference):
            raise DuplicateKey(f"ledger: {entry.kind.value} {entry.reference} is posted already")
        entry_id = str(uuid.uuid4())
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    ledger_legs.insert(),
                    [
                        {"transaction_id": entry_id, "account": leg.account, "amount": leg.amount}
                        for leg in entry.legs
                    ],
                )
                await self.session.execute(
                    ledger_transactions.insert().values(
                        id=entry_id,
                        kind=entry.kind.value,
                        reference=entry.reference,
                        currency=entry.currency,
                        description=entry.description,
                        posted_at=datetime.now(UTC),
                    )
                )
        except IntegrityError as exc:
            raise DuplicateKey(str(exc.orig)) from None

    async def has(self, kind: str, reference: str) -> bool:
        row = (
            await self.session.execute(
                sa.select(ledger_transactions.c.id).where(
                    ledger_transactions.c.kind == kind,
                    ledger_transactions.c.reference == reference,
                )
            )
        ).first()
        return row is not None

    async def balance(self, account: str, currency: str) -> int:
        value = await self.session.scalar(
            sa.select(sa.func.coalesce(sa.func.sum(ledger_legs.c.amount), 0))
            .select_from(
                ledger_legs.join(
                    ledger_transactions, ledger_legs.c.transaction_id == ledger_transactions.c.id
                )
            )
            .where(ledger_legs.c.account == account, ledger_transactions.c.currency == currency)
        )
        return int(value or 0)

    async def balances(self) -> dict[tuple[str, str], int]:
        rows = await self.session.execute(
            sa.select(
                ledger_legs.c.account,
                ledger_transactions.c.currency,
                sa.func.sum(ledger_legs.c.amount),
            )
            .select_from(
                ledger_legs.join(
                    ledger_transactions, ledger_legs.c.transaction_id == ledger_transactions.c.id
                )
            )
            .group_by(ledger_legs.c.account, ledger_transactions.c.currency)
        )
        return {(r[0], r[1]): int(r[2]) for r in rows}
