"""A CardReconciliation service for tests: in-process, real gRPC on port 0, a real database.

``running_cards(db)`` migrates the database, starts the servicer behind the shared auth
and error interceptors and yields a harness that can import files, feed receipt events
through the real consumer handler, and read the outbox.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy as sa

from seisan.cards.v1 import cards_pb2, cards_pb2_grpc
from seisan.receipts.v1 import events_pb2 as receipt_events
from seisan.receipts.v1 import receipts_pb2
from seisan_cards.adapters.directory import CardEntry, StaticCardDirectory
from seisan_cards.adapters.uow import SqlUnitOfWork
from seisan_cards.bootstrap import MIGRATIONS
from seisan_cards.entrypoints.grpc_servicer import CardReconciliationServicer
from seisan_cards.entrypoints.receipt_consumer import make_handler
from seisan_cards.handlers import CardsPorts
from seisan_shared import catalogue, events, subjects
from seisan_shared.auth import Principal, TokenStore
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.server import ServiceRegistration, start_server
from seisan_shared.storage import Database, run_migrations
from seisan_shared.storage.tables import outbox

REPO = Path(__file__).resolve().parents[2]
STATEMENTS = REPO.parent / "shared" / "data" / "statements"
CARD_SAMPLES = STATEMENTS / "corporate-card"
OFX_SAMPLES = STATEMENTS / "ofx"

TOKENS = {
    "t-aiko": Principal("aiko", frozenset({"staff"})),
    "t-ben": Principal("ben", frozenset({"staff"})),
    "t-chika": Principal("chika", frozenset({"staff", "approver"})),
    "t-daichi": Principal("daichi", frozenset({"treasury"})),
    "t-emi": Principal("emi", frozenset({"admin"})),
}
DIRECTORY = [
    CardEntry(last4="4242", principal="aiko", name="Aiko Tanaka", stripe_card="ic_aiko"),
    CardEntry(last4="1111", principal="ben", name="Ben Ito", stripe_cardholder="ich_ben"),
]

HEADER = (
    "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
    "currency,original_amount,original_currency"
)


def csv_statement(*rows: str) -> bytes:
    return ("\n".join((HEADER, *rows)) + "\n").encode()


@dataclass
class CardsHarness:
    address: str
    db: Database
    ports: CardsPorts
    channels: dict[str | None, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, token: str | None) -> cards_pb2_grpc.CardReconciliationStub:
        if token not in self.channels:
            self.channels[token] = channel(self.address, token)
        return cards_pb2_grpc.CardReconciliationStub(self.channels[token])

    async def import_file(
        self,
        token: str,
        data: bytes,
        fmt: int = cards_pb2.STATEMENT_FORMAT_UNSPECIFIED,
        filename: str = "statement",
    ) -> cards_pb2.ImportStatementResponse:
        async def parts() -> AsyncIterator[cards_pb2.ImportStatementRequest]:
            yield cards_pb2.ImportStatementRequest(
                metadata=cards_pb2.ImportStatementMetadata(format=fmt, filename=filename)  # type: ignore[arg-type]
            )
            for i in range(0, len(data), 4096):
                yield cards_pb2.ImportStatementRequest(chunk=data[i : i + 4096])

        return await self.stub(token).ImportStatement(parts(), timeout=60)

    async def outbox_events(self, *types: str) -> list[events.Envelope]:
        async with self.db.transaction() as s:
            rows = (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).all()
        found = [events.decode(r[0]) for r in rows]
        return [e for e in found if not types or e.type in types]

    async def payloads(self, *types: str) -> list[Any]:
        return [events.unpack_payload(e) for e in await self.outbox_events(*types)]

    async def count(self, table: str) -> int:
        async with self.db.transaction() as s:
            return int((await s.execute(sa.text(f"select count(*) from {table}"))).scalar_one())

    async def report(self, **request: Any) -> cards_pb2.ReconciliationReport:
        reply = await self.stub("t-daichi").GetReconciliationReport(
            cards_pb2.GetReconciliationReportRequest(**request), timeout=20
        )
        return reply.report

    async def receipt_event(
        self,
        event_type: str,
        receipt_id: str,
        submitter: str,
        *,
        merchant: str = "",
        day: date | None = None,
        total: int | None = None,
        currency: str = "JPY",
        paid_with: receipts_pb2.PaidWith.ValueType = receipts_pb2.PAID_WITH_COMPANY_CARD,
        card_last4: str = "",
    ) -> events.Envelope:
        """An envelope as intake would publish it."""
        payload: Any
        if event_type == subjects.RECEIPT_DELETED:
            payload = receipt_events.ReceiptDeleted(
                receipt_id=receipt_id, submitter=submitter, deleted_by=submitter
            )
        else:
            fields = receipts_pb2.ReceiptFields()
            if merchant:
                fields.merchant.value = merchant
            if day is not None:
                fields.transaction_date.date.year = day.year
                fields.transaction_date.date.month = day.month
                fields.transaction_date.date.day = day.day
            if total is not None:
                fields.total.amount.minor_units = total
                fields.total.amount.currency = currency
            if card_last4:
                fields.card_last4.value = card_last4
            kind = (
                receipt_events.ReceiptExtracted
                if event_type == subjects.RECEIPT_EXTRACTED
                else receipt_events.ReceiptCorrected
            )
            payload = kind(
                receipt_id=receipt_id, submitter=submitter, paid_with=paid_with, fields=fields
            )
        return events.new_event(
            event_type, source="intake", aggregate_id=receipt_id, payload=payload
        )

    async def feed(self, envelope: events.Envelope) -> None:
        """Hand an event to the consumer's handler, in a transaction, as the consumer does."""
        handler = make_handler(self.ports)
        async with self.db.transaction() as session:
            await handler(envelope, session)

    async def receipt(self, receipt_id: str, submitter: str, **fields: Any) -> None:
        await self.feed(
            await self.receipt_event(subjects.RECEIPT_EXTRACTED, receipt_id, submitter, **fields)
        )


@asynccontextmanager
async def running_cards(
    db: Database, *, tokens: Mapping[str, Principal] = TOKENS, **port_options: Any
) -> AsyncIterator[CardsHarness]:
    await run_migrations(db, MIGRATIONS)
    catalogue.import_all()
    ports = CardsPorts(
        uow=lambda: SqlUnitOfWork(db),
        directory=StaticCardDirectory(list(DIRECTORY)),
        **port_options,
    )
    server = await start_server(
        [
            ServiceRegistration(
                "seisan.cards.v1.CardReconciliation",
                CardReconciliationServicer(ports),
                cards_pb2_grpc.add_CardReconciliationServicer_to_server,
            )
        ],
        tokens=TokenStore.from_principals(dict(tokens)),
    )
    harness = CardsHarness(server.address, db, ports)
    try:
        yield harness
    finally:
        for ch in harness.channels.values():
            await ch.close()
        await server.stop(0)
