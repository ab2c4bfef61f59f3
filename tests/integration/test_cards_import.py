"""CardReconciliation over real gRPC on SQLite and PostgreSQL: statement import.

Every shared sample format imports through ImportStatement and its statement closes
(total = matched + declared + open, to the minor unit); imports are idempotent; the
malformed Visa VCF sample is refused naming line and field with nothing written.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import grpc
import pytest

from seisan.cards.v1 import cards_pb2
from seisan_cards.adapters.statements import parse_statement
from seisan_cards.adapters.statements.pan import find_pans
from seisan_shared import events, subjects
from seisan_shared.storage import Database
from support.cards import CARD_SAMPLES, OFX_SAMPLES, CardsHarness, csv_statement, running_cards

pytestmark = pytest.mark.skipif(
    not CARD_SAMPLES.is_dir(), reason=f"shared statement samples not found at {CARD_SAMPLES}"
)

SAMPLES = [
    *sorted(str(p.relative_to(CARD_SAMPLES)) for p in CARD_SAMPLES.glob("*/p*/data")),
    "../ofx/ofxparse__anzcc.ofx",
]

TABLES = ("card_statements", "card_charges", "card_statement_lines", "outbox")


@pytest.fixture
async def cards(database: Database) -> AsyncIterator[CardsHarness]:
    async with running_cards(database) as harness:
        yield harness


UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _close_checks(report: cards_pb2.ReconciliationReport, statement_id: str) -> list:
    return [s.close_check for s in report.statements if s.statement.statement_id == statement_id]


@pytest.mark.parametrize("sample", SAMPLES)
async def test_every_sample_format_imports_and_its_statement_closes(
    cards: CardsHarness, sample: str
):
    data = (CARD_SAMPLES / sample).read_bytes()
    expected = parse_statement(data)

    reply = await cards.import_file("t-daichi", data, filename=sample)

    assert reply.imported_count == len(expected.charges)
    assert reply.duplicate_count == 0 and not reply.already_imported
    assert reply.statement.statement_id == expected.statement_id
    assert reply.statement.charge_count == len(expected.charges)
    assert await cards.count("card_charges") == len(expected.charges)
    imported = await cards.payloads(subjects.CARD_CHARGE_IMPORTED)
    assert sorted(p.charge.charge_id for p in imported) == sorted(
        c.charge_id for c in expected.charges
    )
    for payload, charge in zip(
        sorted(imported, key=lambda p: p.charge.charge_id),
        sorted(expected.charges, key=lambda c: c.charge_id),
        strict=True,
    ):
        assert payload.charge.amount.minor_units == charge.amount.minor_units
        assert payload.charge.amount.currency == charge.amount.currency
        assert payload.charge.card_last4 == charge.card_last4
        assert payload.charge.status == cards_pb2.CHARGE_STATUS_UNMATCHED
    # No card number anywhere the service wrote. (Random UUIDs are taken out first: a
    # run of their digit groups passes the Luhn check one time in ten.)
    for envelope in await cards.outbox_events():
        written = " ".join(
            [str(events.unpack_payload(envelope)), envelope.aggregate_id, envelope.actor]
        )
        assert find_pans(UUID.sub("<uuid>", written)) == []

    checks = _close_checks(
        await cards.report(statement_id=expected.statement_id), reply.statement.statement_id
    )
    assert checks, "the report has the statement"
    for check in checks:
        assert check.balanced
        assert check.difference.minor_units == 0
        assert (
            check.statement_total.minor_units
            == check.matched.minor_units + check.declared.minor_units + check.open.minor_units
        )
        assert check.statement_total.minor_units == expected.total.get(
            check.statement_total.currency, 0
        )
    reconciled = await cards.payloads(subjects.STATEMENT_RECONCILED)
    assert reconciled and all(r.reconciliation.close_check.balanced for r in reconciled)


async def test_the_same_file_twice_creates_nothing_new(cards: CardsHarness):
    data = (CARD_SAMPLES / "vcf" / "p1" / "data").read_bytes()
    first = await cards.import_file("t-daichi", data)
    before = {t: await cards.count(t) for t in TABLES}

    again = await cards.import_file("t-emi", data)

    assert again.already_imported
    assert again.imported_count == 0 and again.duplicate_count == first.imported_count
    assert again.statement.statement_id == first.statement.statement_id
    assert again.statement.imported_by == "daichi"
    assert {t: await cards.count(t) for t in TABLES} == before


async def test_lines_seen_in_earlier_files_create_nothing_new(cards: CardsHarness):
    # vcf/p4 repeats the card transactions of vcf/p1 and vcf/p2 in one file.
    for case in ("p1", "p2"):
        await cards.import_file("t-daichi", (CARD_SAMPLES / "vcf" / case / "data").read_bytes())
    charges = await cards.count("card_charges")
    imported_events = len(await cards.outbox_events(subjects.CARD_CHARGE_IMPORTED))

    combined = (CARD_SAMPLES / "vcf" / "p4" / "data").read_bytes()
    reply = await cards.import_file("t-daichi", combined)

    assert not reply.already_imported
    assert reply.imported_count == 0
    assert reply.duplicate_count == len(parse_statement(combined).charges) > 0
    assert await cards.count("card_charges") == charges
    assert len(await cards.outbox_events(subjects.CARD_CHARGE_IMPORTED)) == imported_events
    # The new statement still carries its lines, so it closes on its own total.
    totals = parse_statement(combined).total
    checks = _close_checks(
        await cards.report(statement_id=reply.statement.statement_id),
        reply.statement.statement_id,
    )
    assert {c.statement_total.currency: c.statement_total.minor_units for c in checks} == dict(
        totals
    )
    assert all(c.balanced for c in checks)


@pytest.mark.parametrize(
    "fmt", [cards_pb2.STATEMENT_FORMAT_UNSPECIFIED, cards_pb2.STATEMENT_FORMAT_VISA_VCF]
)
async def test_malformed_vcf_is_refused_naming_line_and_field_and_nothing_is_written(
    cards: CardsHarness, fmt: int
):
    data = (CARD_SAMPLES / "vcf" / "n1" / "data").read_bytes()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file("t-daichi", data, fmt=fmt)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    details = err.value.details() or ""
    assert details.startswith("line 2, field ")
    assert "_amount" in details and "not an amount" in details
    for table in TABLES:
        assert await cards.count(table) == 0, table


async def test_a_bad_line_refuses_the_whole_file(cards: CardsHarness):
    data = csv_statement(
        "tx-1,4242,aiko,2026-11-02,,SQ *BLUE BOTTLE,5814,1112,JPY,,",
        "tx-2,4242,aiko,2026-11-03,,STARBUCKS,5814,12.3.4,JPY,,",
    )
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file("t-daichi", data)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert (err.value.details() or "").startswith("line 3, field amount: ")
    assert await cards.count("card_charges") == 0


async def test_wrong_declared_format_and_stripe_format_are_refused(cards: CardsHarness):
    ofx = (OFX_SAMPLES / "ofxparse__anzcc.ofx").read_bytes()
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file("t-daichi", ofx, fmt=cards_pb2.STATEMENT_FORMAT_GENERIC_CSV)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file("t-daichi", ofx, fmt=cards_pb2.STATEMENT_FORMAT_STRIPE_ISSUING)
    assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "webhook" in (err.value.details() or "")
    assert await cards.count("card_charges") == 0


async def test_oversize_statement_is_refused(database: Database):
    async with running_cards(database, max_statement_bytes=1000) as cards:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await cards.import_file("t-daichi", csv_statement(*["x"] * 600))
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "1,000 bytes" in (err.value.details() or "")


@pytest.mark.parametrize("token", ["t-aiko", "t-chika"])
async def test_only_treasury_and_admin_import_and_report(cards: CardsHarness, token: str):
    data = csv_statement("tx-1,4242,aiko,2026-11-02,,SQ *BLUE BOTTLE,5814,1112,JPY,,")
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file(token, data)
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.stub(token).GetReconciliationReport(cards_pb2.GetReconciliationReportRequest())
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await cards.import_file("no-such-token", data)
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    assert await cards.count("card_charges") == 0
    reply = await cards.import_file("t-emi", data)
    assert reply.imported_count == 1


async def test_cardholders_come_from_the_card_directory(cards: CardsHarness):
    data = csv_statement(
        "tx-1,4242,AIKO TANAKA,2026-11-02,,SQ *BLUE BOTTLE,5814,1112,JPY,,",
        "tx-2,9999,Ben Ito,2026-11-02,,JR EAST,4111,2500,JPY,,",
        "tx-3,8888,Someone Else,2026-11-02,,JR EAST,4111,2500,JPY,,",
    )
    await cards.import_file("t-daichi", data)
    listed = await cards.stub("t-daichi").ListCharges(cards_pb2.ListChargesRequest())
    holders = {c.charge_id: c.cardholder for c in listed.charges}
    assert holders == {"tx-1": "aiko", "tx-2": "ben", "tx-3": "Someone Else"}
