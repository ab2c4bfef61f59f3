"""ExportJournal over real gRPC (SQLite, PostgreSQL): balanced, deterministic, CSV and JSON."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import AsyncIterator
from datetime import date

import grpc
import pytest

from seisan.cards.v1 import cards_pb2
from seisan.common.v1.common_pb2 import Date
from seisan_shared.storage import Database
from support.cards import CardsHarness, csv_statement, running_cards

OCTOBER = csv_statement(
    "oc-1,4242,aiko,2026-10-30,2026-10-31,ANA 0123456789,3012,45000,JPY,,",
)
NOVEMBER = csv_statement(
    "tx-1,4242,aiko,2026-11-02,2026-11-03,SQ *BLUE BOTTLE,5814,1112,JPY,,",
    "tx-2,4242,aiko,2026-11-14,2026-11-15,HOTEL OKURA,7011,30000,JPY,,",
    "tx-3,1111,ben,2026-11-07,,AMZN Mktp US,5942,15.98,USD,,",
    "tx-4,1111,ben,2026-11-21,2026-11-22,UNIQLO GINZA,5651,-500,JPY,,",
    "tx-5,1111,ben,2026-11-30,2026-12-01,JR EAST,4111,2500,JPY,,",
)


@pytest.fixture
async def cards(database: Database) -> AsyncIterator[CardsHarness]:
    async with running_cards(database) as harness:
        await harness.receipt(
            "r1", "aiko", merchant="Blue Bottle", day=date(2026, 11, 2), total=1112
        )
        await harness.import_file("t-daichi", OCTOBER)
        await harness.import_file("t-daichi", NOVEMBER)
        yield harness


async def export(
    cards: CardsHarness, fmt: int, start=(2026, 10, 1), end=(2026, 11, 30)
) -> tuple[str, bytes]:
    stream = cards.stub("t-daichi").ExportJournal(
        cards_pb2.ExportJournalRequest(
            period_start=Date(year=start[0], month=start[1], day=start[2]),
            period_end=Date(year=end[0], month=end[1], day=end[2]),
            format=fmt,  # type: ignore[arg-type]
        )
    )
    parts = [p async for p in stream]
    return parts[0].content_type, b"".join(p.chunk for p in parts)


async def test_csv_journal_balances_per_entry_and_is_deterministic(cards: CardsHarness):
    content_type, data = await export(cards, cards_pb2.JOURNAL_FORMAT_CSV)
    assert content_type.startswith("text/csv")
    assert (await export(cards, cards_pb2.JOURNAL_FORMAT_CSV))[1] == data
    rows = list(csv.DictReader(io.StringIO(data.decode())))
    debits: dict[str, int] = defaultdict(int)
    credits: dict[str, int] = defaultdict(int)
    for row in rows:
        debits[row["entry_id"]] += int(row["debit_minor"])
        credits[row["entry_id"]] += int(row["credit_minor"])
    assert set(debits) == {"CARD-2026-10-JPY", "CARD-2026-11-JPY", "CARD-2026-11-USD"}
    assert debits == credits
    by = {(r["entry_id"], r["account_code"]): r for r in rows}
    # matched coffee → meals; open hotel → awaiting receipts; refund reverses; Dec 1 is out.
    assert by[("CARD-2026-11-JPY", "6210")]["debit_minor"] == "1112"
    assert by[("CARD-2026-11-JPY", "1190")]["debit_minor"] == str(30000 - 500)
    assert by[("CARD-2026-11-JPY", "2150")]["credit_minor"] == str(1112 + 30000 - 500)
    assert by[("CARD-2026-10-JPY", "1190")]["debit_minor"] == "45000"
    assert (
        by[("CARD-2026-11-USD", "2150")]["credit"] == "15.98"
    )  # no posting date: booked on purchase


async def test_json_journal_carries_the_same_lines(cards: CardsHarness):
    content_type, data = await export(cards, cards_pb2.JOURNAL_FORMAT_JSON, start=(2026, 11, 1))
    assert content_type == "application/json"
    document = json.loads(data)
    assert document["period_start"] == "2026-11-01"
    entries = {e["entry_id"]: e for e in document["entries"]}
    assert set(entries) == {"CARD-2026-11-JPY", "CARD-2026-11-USD"}
    for entry in entries.values():
        lines = entry["lines"]
        assert sum(x["debit_minor"] for x in lines) == sum(x["credit_minor"] for x in lines)
        assert sum(x["debit_minor"] for x in lines) == entry["total_minor"]
    assert (await export(cards, cards_pb2.JOURNAL_FORMAT_JSON, start=(2026, 11, 1)))[1] == data


async def test_journal_refuses_bad_periods_and_staff(cards: CardsHarness):
    stub = cards.stub("t-daichi")
    for request in (
        cards_pb2.ExportJournalRequest(),
        cards_pb2.ExportJournalRequest(
            period_start=Date(year=2026, month=12, day=1),
            period_end=Date(year=2026, month=11, day=1),
        ),
        cards_pb2.ExportJournalRequest(
            period_start=Date(year=2026, month=2, day=30),
            period_end=Date(year=2026, month=3, day=1),
        ),
    ):
        with pytest.raises(grpc.aio.AioRpcError) as err:
            _ = [p async for p in stub.ExportJournal(request)]
        assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as err:
        _ = [
            p
            async for p in cards.stub("t-aiko").ExportJournal(
                cards_pb2.ExportJournalRequest(
                    period_start=Date(year=2026, month=11, day=1),
                    period_end=Date(year=2026, month=11, day=30),
                )
            )
        ]
    assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
