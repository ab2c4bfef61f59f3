"""The bank-file rail over real gRPC, on SQLite and PostgreSQL: a Zengin or pain.001 file per
run, issued once (same bytes every time), and paid or rejected on treasury's word."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from xml.etree import ElementTree as ET

import grpc
import pytest
import sqlalchemy as sa

from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan_payouts import handlers
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bank_rail import BankRail
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.config import PayoutsConfig
from seisan_payouts.domain import ledger
from seisan_payouts.domain.payouts import Rail
from seisan_payouts.entrypoints.grpc_servicer import ReimbursementPayoutServicer
from seisan_payouts.testing import approved_claim
from seisan_shared import catalogue, events
from seisan_shared.auth import Principal, TokenStore
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.server import ServiceRegistration, start_server
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations
from seisan_shared.storage.tables import outbox

TOKENS = {
    "t-aiko": Principal("aiko", frozenset({"staff"})),
    "t-daichi": Principal("daichi", frozenset({"treasury"})),
}


@dataclass
class Bank:
    address: str
    db: Database
    ports: handlers.PayoutsPorts
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, token: str = "t-daichi") -> payouts_pb2_grpc.ReimbursementPayoutStub:
        if token not in self.channels:
            self.channels[token] = channel(self.address, token)
        return payouts_pb2_grpc.ReimbursementPayoutStub(self.channels[token])

    async def link(self, employee: str, **bank: str) -> None:
        await self.stub().LinkPayeeAccount(
            payouts_pb2.LinkPayeeAccountRequest(
                employee=employee, bank_account=payouts_pb2.BankAccountDetails(**bank)
            )
        )

    async def file(self, run_id: str) -> tuple[str, str, bytes]:
        content_type = filename = ""
        data = b""
        async for part in self.stub().GetBankFile(payouts_pb2.GetBankFileRequest(run_id=run_id)):
            content_type = content_type or part.content_type
            filename = filename or part.filename
            data += part.chunk
        return content_type, filename, data

    async def event_types(self) -> list[str]:
        async with self.db.transaction() as s:
            rows = (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).all()
        return [events.decode(r[0]).type for r in rows]


@pytest.fixture
async def bank(database: Database) -> AsyncIterator[Bank]:
    await run_migrations(database, MIGRATIONS)
    catalogue.import_all()
    ports = handlers.PayoutsPorts(uow=lambda: SqlUnitOfWork(database))
    debtor = PayoutsConfig(nats_url="", tokens_file=None).debtor()  # type: ignore[arg-type]
    server = await start_server(
        [
            ServiceRegistration(
                "seisan.payouts.v1.ReimbursementPayout",
                ReimbursementPayoutServicer(ports, BankRail(ports, debtor)),
                payouts_pb2_grpc.add_ReimbursementPayoutServicer_to_server,
            )
        ],
        tokens=TokenStore.from_principals(TOKENS),
    )
    harness = Bank(server.address, database, ports)
    try:
        yield harness
    finally:
        for ch in harness.channels.values():
            await ch.close()
        await server.stop(0)


async def test_zengin_run_file_then_confirmation(bank: Bank) -> None:
    await bank.link(
        "aiko",
        payee_name="Aiko Sato",
        payee_name_kana="ｻﾄｳ ｱｲｺ",
        bank_code="0001",
        branch_code="001",
        account_type="ordinary",
        account_number="1234567",
    )
    await bank.link(
        "hana",
        payee_name="Hana Ito",
        payee_name_kana="ｲﾄｳ ﾊﾅ",
        bank_code="0009",
        branch_code="123",
        account_type="savings",
        account_number="7654321",
    )
    await approved_claim(bank.ports, "aiko", [Money(12_345, "JPY"), Money(655, "JPY")])
    await approved_claim(bank.ports, "hana", [Money(8_000, "JPY")])
    await approved_claim(bank.ports, "ben", [Money(1_000, "JPY")])  # no bank account

    run = (
        await bank.stub().CreatePayoutRun(
            payouts_pb2.CreatePayoutRunRequest(
                rail=payouts_pb2.PAYOUT_RAIL_BANK_FILE,
                bank_file_format=payouts_pb2.BANK_FILE_FORMAT_ZENGIN,
            )
        )
    ).run
    assert run.currency == "JPY" and run.execution_date.year
    assert {p.employee: p.amount.minor_units for p in run.payouts} == {
        "aiko": 13_000,
        "hana": 8_000,
    }
    assert len(run.notes) == 1 and run.notes[0].startswith("ben: no bank account linked")

    content_type, filename, data = await bank.file(run.run_id)
    assert content_type.startswith("text/plain") and "Shift_JIS" in content_type
    assert filename == f"{run.run_id}.zengin.txt"
    records = data.split(b"\r\n")[:-1]
    assert [len(r) for r in records] == [120] * 5  # header, 2 data, trailer, end
    assert [r[:1] for r in records] == [b"1", b"2", b"2", b"8", b"9"]
    text = [r.decode("cp932") for r in records]
    assert text[0][1:3] == "21"  # 総合振込
    trailer = text[3]
    assert int(trailer[1:7]) == 2 and int(trailer[7:19]) == 21_000
    amounts = sorted(int(r[80:90]) for r in text[1:3])
    assert amounts == [8_000, 13_000]
    assert any("ｻﾄｳ ｱｲｺ" in r for r in text[1:3])
    again = await bank.file(run.run_id)
    assert again[2] == data  # issued once: the same bytes on every download

    listed = await bank.stub().ListPayouts(payouts_pb2.ListPayoutsRequest(run_id=run.run_id))
    assert {p.status for p in listed.payouts} == {payouts_pb2.PAYOUT_STATUS_SENT}
    aiko = next(p for p in run.payouts if p.employee == "aiko")
    hana = next(p for p in run.payouts if p.employee == "hana")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bank.stub().CancelPayout(payouts_pb2.CancelPayoutRequest(payout_id=aiko.payout_id))
    assert err.value.code() == grpc.StatusCode.FAILED_PRECONDITION

    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bank.stub().ConfirmBankFilePaid(
            payouts_pb2.ConfirmBankFilePaidRequest(run_id=run.run_id, payout_ids=["pay-nope"])
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    confirm = payouts_pb2.ConfirmBankFilePaidRequest(
        run_id=run.run_id,
        rejections=[payouts_pb2.BankFileRejection(payout_id=hana.payout_id, reason="口座なし")],
        bank_reference="BK-20261130-1",
    )
    reply = await bank.stub().ConfirmBankFilePaid(confirm)
    states = {p.employee: (p.status, p.external_reference, p.failure_reason) for p in reply.payouts}
    assert states["aiko"] == (payouts_pb2.PAYOUT_STATUS_PAID, "BK-20261130-1", "")
    assert states["hana"][0] == payouts_pb2.PAYOUT_STATUS_FAILED
    assert states["hana"][2] == "bank rejected it: 口座なし"
    await bank.stub().ConfirmBankFilePaid(confirm)  # said twice: nothing changes

    async with bank.ports.uow() as uow:
        balances = await uow.ledger.balances()
        for claim in await uow.claims.get_many(list(hana.claim_ids)):
            assert claim.status.value == "approved"
            assert claim.payout_failure_reason == "bank rejected it: 口座なし"
        for claim in await uow.claims.get_many(list(aiko.claim_ids)):
            assert claim.status.value == "paid"
    assert balances[(ledger.payable_account("aiko"), "JPY")] == 0
    assert balances[(ledger.payable_account("hana"), "JPY")] == -8_000
    assert balances[(ledger.IN_TRANSIT, "JPY")] == 0
    assert balances[(ledger.cash_account(Rail.BANK_FILE), "JPY")] == -13_000
    assert sum(balances.values()) == 0
    kinds = await bank.event_types()
    assert kinds.count("payout.sent") == 2
    assert kinds.count("payout.paid") == 1 and kinds.count("payout.failed") == 1


async def test_pain001_run_in_euro(bank: Bank) -> None:
    await bank.link(
        "aiko", payee_name="Aiko Sato", iban="DE02 1203 0000 0000 2020 51", bic="BYLADEM1001"
    )
    await approved_claim(bank.ports, "aiko", [Money(4_250, "EUR")])
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await bank.stub().CreatePayoutRun(
            payouts_pb2.CreatePayoutRunRequest(
                rail=payouts_pb2.PAYOUT_RAIL_BANK_FILE,
                bank_file_format=payouts_pb2.BANK_FILE_FORMAT_PAIN_001,
            )
        )
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT  # which currency?
    run = (
        await bank.stub().CreatePayoutRun(
            payouts_pb2.CreatePayoutRunRequest(
                rail=payouts_pb2.PAYOUT_RAIL_BANK_FILE,
                bank_file_format=payouts_pb2.BANK_FILE_FORMAT_PAIN_001,
                currency="EUR",
            )
        )
    ).run
    (payout,) = run.payouts
    content_type, filename, data = await bank.file(run.run_id)
    assert content_type == "application/xml" and filename.endswith(".pain001.xml")
    root = ET.fromstring(data)
    ns = {"p": root.tag.split("}")[0][1:]}
    assert root.find(".//p:EndToEndId", ns).text == payout.payout_id  # type: ignore[union-attr]
    amount = root.find(".//p:InstdAmt", ns)
    assert amount is not None and (amount.text, amount.get("Ccy")) == ("42.50", "EUR")
    assert root.find(".//p:CdtrAcct//p:IBAN", ns).text == "DE02120300000000202051"  # type: ignore[union-attr]

    got = await bank.stub("t-aiko").GetPayeeAccount(payouts_pb2.GetPayeeAccountRequest())
    assert got.account.bank_account.iban == "****2051"  # never the whole number back
