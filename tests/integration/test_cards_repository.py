"""The database holds the reconciliation invariants too (SQLite and PostgreSQL):
one live match per charge and per receipt, unique issuer transaction ids, valid states."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, date, datetime

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError, IntegrityError

from seisan_cards.adapters.uow import SqlUnitOfWork
from seisan_cards.bootstrap import MIGRATIONS
from seisan_cards.domain.charges import CardCharge, StatementFormat
from seisan_cards.domain.model import (
    ChargeRecord,
    Match,
    MatchOrigin,
    MatchStatus,
    PaidWith,
    ReceiptRef,
)
from seisan_cards.domain.ports import ConcurrentUpdate, DuplicateKey
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations

NOW = datetime(2026, 11, 30, tzinfo=UTC)


def charge(cid: str, issuer: str | None = None) -> ChargeRecord:
    return ChargeRecord(
        charge=CardCharge(
            charge_id=cid,
            issuer_transaction_id=issuer or f"generic_csv:{cid}",
            card_last4="4242",
            cardholder="aiko",
            transaction_date=date(2026, 11, 2),
            posting_date=None,
            merchant="M",
            mcc="",
            amount=Money(1112, "JPY"),
            original_amount=Money(1059, "USD"),
            source_format=StatementFormat.GENERIC_CSV,
            source_line=2,
        ),
        statement_id=None,
        imported_at=NOW,
    )


def receipt(rid: str) -> ReceiptRef:
    return ReceiptRef(
        receipt_id=rid,
        submitter="aiko",
        merchant="M",
        receipt_date=date(2026, 11, 2),
        total=Money(1112, "JPY"),
        tip_minor=None,
        card_last4=None,
        paid_with=PaidWith.UNSPECIFIED,
        updated_at=NOW,
    )


def match(
    mid: str, charges: tuple[str, ...], receipts: tuple[str, ...], status: MatchStatus
) -> Match:
    return Match(
        match_id=mid,
        charge_ids=charges,
        receipt_ids=receipts,
        status=status,
        origin=MatchOrigin.ENGINE,
        score=0.9,
        signals={"amount": 1.0},
        reasons=("amount exact",),
        threshold_version="match-1",
        proposed_at=NOW,
    )


@pytest.fixture
async def db(database: Database) -> AsyncIterator[Database]:
    await run_migrations(database, MIGRATIONS)
    async with SqlUnitOfWork(database) as uow:
        await uow.charges.add_many([charge("c1"), charge("c2"), charge("c3")])
        for rid in ("r1", "r2", "r3"):
            await uow.receipts.save(receipt(rid))
        await uow.commit()
    yield database


async def test_one_live_match_per_charge_and_per_receipt(db: Database):
    async with SqlUnitOfWork(db) as uow:
        first = match("m1", ("c1",), ("r1", "r2"), MatchStatus.PROPOSED)
        await uow.matches.add(first)
        for other in (
            match("m2", ("c1",), ("r3",), MatchStatus.PROPOSED),  # charge taken
            match("m3", ("c2", "c3"), ("r2",), MatchStatus.CONFIRMED),  # receipt taken
        ):
            with pytest.raises(DuplicateKey):
                await uow.matches.add(other)
        # Once the first is rejected its items are free again.
        first.reject("daichi", "no", NOW)
        await uow.matches.update(first)
        await uow.matches.add(match("m4", ("c1",), ("r2",), MatchStatus.CONFIRMED))
        # A rejected match never blocks anything, and a decision on a stale copy is refused.
        stale = await uow.matches.get("m1")
        assert stale is not None and stale.status is MatchStatus.REJECTED
        stale.version -= 1
        with pytest.raises(ConcurrentUpdate):
            await uow.matches.update(stale)
        live = await uow.matches.live_for(charge_ids=["c1"])
        assert [m.match_id for m in live] == ["m4"]
        assert [m.receipt_ids for m in live] == [("r2",)]
        await uow.commit()
    async with db.transaction() as s:  # the index itself, not only the repository
        with pytest.raises(IntegrityError):
            async with s.begin_nested():
                await s.execute(
                    sa.text(
                        "insert into card_matches (match_id, status, origin, score, "
                        "threshold_version, automatic, proposed_at) values "
                        "('m5', 'confirmed', 'manual', 1.0, 'v', false, :t)"
                    ),
                    {"t": NOW},
                )
                await s.execute(
                    sa.text(
                        "insert into match_charges (match_id, charge_id, live) "
                        "values ('m5', 'c1', true)"
                    )
                )


async def test_issuer_transaction_ids_are_unique_and_states_checked(db: Database):
    async with SqlUnitOfWork(db) as uow:
        with pytest.raises(DuplicateKey):
            await uow.charges.add_many([charge("c9", issuer="generic_csv:c1")])
        await uow.charges.add_many([charge("c10")])
        assert set(await uow.charges.known_issuer_ids(["generic_csv:c10", "x"])) == {
            "generic_csv:c10"
        }
        (loaded,) = (await uow.charges.get_many(["c10"])).values()
        assert loaded.charge.original_amount == Money(1059, "USD")
        await uow.commit()
    for sql in (
        "update card_charges set status = 'paid' where charge_id = 'c1'",
        "update card_charges set card_last4 = '4111111111111111' where charge_id = 'c1'",
        "update card_charges set original_currency = null where charge_id = 'c1'",
        "update receipt_refs set currency = null where receipt_id = 'r1'",
    ):
        async with db.transaction() as s:
            # Too long is a driver error on PostgreSQL (VARCHAR(4)), a CHECK failure on SQLite.
            with pytest.raises(DBAPIError):
                async with s.begin_nested():
                    await s.execute(sa.text(sql))
