"""Journal lines: balanced per entry, deterministic bytes, accounts by MCC and state."""

from __future__ import annotations

import csv
import io
import json
import random
from dataclasses import replace
from datetime import UTC, date, datetime

import pytest

from seisan_cards.domain.charges import CardCharge, StatementFormat
from seisan_cards.domain.journal import (
    AWAITING_RECEIPTS,
    CARD_LIABILITY,
    OTHER_EXPENSES,
    JournalEntry,
    JournalLine,
    UnbalancedEntry,
    build_journal,
    expense_account,
    to_csv,
    to_json,
)
from seisan_cards.domain.model import ChargeRecord, ChargeStatus
from seisan_shared.money import Money

NOW = datetime(2026, 12, 1, tzinfo=UTC)


def record(
    cid: str,
    amount: int,
    mcc: str,
    status: ChargeStatus = ChargeStatus.MATCHED,
    *,
    day: date = date(2026, 11, 5),
    posted: date | None = None,
    currency: str = "JPY",
) -> ChargeRecord:
    return ChargeRecord(
        charge=CardCharge(
            charge_id=cid,
            issuer_transaction_id=f"x:{cid}",
            card_last4="4242",
            cardholder="aiko",
            transaction_date=day,
            posting_date=posted,
            merchant="M",
            mcc=mcc,
            amount=Money(amount, currency),
            original_amount=None,
            source_format=StatementFormat.GENERIC_CSV,
            source_line=1,
        ),
        statement_id=None,
        imported_at=NOW,
        status=status,
    )


CHARGES = [
    record("c1", 1112, "5814"),
    record("c2", 30000, "7011", ChargeStatus.DECLARED_MISSING),
    record("c3", 45000, "3012"),
    record("c4", 2500, "4111", ChargeStatus.SUGGESTED),
    record("c5", -500, "5814"),
    record("c6", 1598, "5942", currency="USD"),
    record("c7", 999, "", ChargeStatus.UNMATCHED),
    record("c8", 700, "5814", day=date(2026, 10, 31), posted=date(2026, 11, 1)),
    record("c9", 800, "5814", day=date(2026, 11, 30), posted=date(2026, 12, 1)),
    record("c10", 120, "5814", day=date(2026, 10, 20)),
]


@pytest.mark.parametrize(
    ("mcc", "code"),
    [
        ("5812", "6210"),
        ("3012", "6110"),
        ("4511", "6110"),
        ("7011", "6120"),
        ("3700", "6120"),
        ("7512", "6130"),
        ("4121", "6140"),
        ("5542", "6150"),
        ("5734", "6310"),
        ("5942", "6320"),
        ("8299", "6410"),
        ("5651", OTHER_EXPENSES.code),
        ("", OTHER_EXPENSES.code),
        ("abcd", OTHER_EXPENSES.code),
    ],
)
def test_expense_account_by_merchant_category(mcc: str, code: str):
    assert expense_account(mcc).code == code


def test_every_entry_balances_and_open_charges_await_receipts():
    journal = build_journal(CHARGES, date(2026, 11, 1), date(2026, 11, 30))
    by_id = {e.entry_id: e for e in journal.entries}
    assert list(by_id) == ["CARD-2026-11-JPY", "CARD-2026-11-USD"]
    jpy = {line.account.code: line for line in by_id["CARD-2026-11-JPY"].lines}
    assert jpy["6210"].debit == 1112 - 500 + 700 and jpy["6210"].charge_count == 3
    assert jpy["6120"].debit == 30000  # declared missing: booked as the expense it was
    assert jpy["6110"].debit == 45000
    assert jpy[AWAITING_RECEIPTS.code].debit == 2500 + 999  # suggested and unmatched
    total = 1112 + 30000 + 45000 + 2500 - 500 + 999 + 700
    assert jpy[CARD_LIABILITY.code].credit == total and jpy[CARD_LIABILITY.code].debit == 0
    for entry in journal.entries:
        assert sum(x.debit for x in entry.lines) == sum(x.credit for x in entry.lines)
    assert by_id["CARD-2026-11-JPY"].entry_date == date(2026, 11, 30)


def test_a_refund_only_month_credits_the_expense_and_debits_the_liability():
    journal = build_journal([record("r", -500, "5814")], date(2026, 11, 1), date(2026, 11, 30))
    (entry,) = journal.entries
    lines = {line.account: line for line in entry.lines}
    assert (lines[CARD_LIABILITY].debit, lines[CARD_LIABILITY].credit) == (500, 0)
    assert (lines[expense_account("5814")].debit, lines[expense_account("5814")].credit) == (0, 500)


def test_same_charges_in_any_order_give_the_same_bytes():
    start, end = date(2026, 10, 1), date(2026, 11, 30)
    expected_csv = to_csv(build_journal(CHARGES, start, end))
    expected_json = to_json(build_journal(CHARGES, start, end))
    rng = random.Random(7)
    for _ in range(5):
        shuffled = CHARGES[:]
        rng.shuffle(shuffled)
        assert to_csv(build_journal(shuffled, start, end)) == expected_csv
        assert to_json(build_journal(shuffled, start, end)) == expected_json
    # A changed state changes the output.
    changed = [replace(CHARGES[0], status=ChargeStatus.UNMATCHED), *CHARGES[1:]]
    assert to_csv(build_journal(changed, start, end)) != expected_csv


def test_csv_and_json_carry_the_same_balanced_lines():
    journal = build_journal(CHARGES, date(2026, 10, 1), date(2026, 11, 30))
    rows = list(csv.DictReader(io.StringIO(to_csv(journal).decode())))
    document = json.loads(to_json(journal))
    flat = [
        (e["entry_id"], x["account_code"], x["debit_minor"], x["credit_minor"])
        for e in document["entries"]
        for x in e["lines"]
    ]
    assert flat == [
        (r["entry_id"], r["account_code"], int(r["debit_minor"]), int(r["credit_minor"]))
        for r in rows
    ]
    usd = [r for r in rows if r["currency"] == "USD"]
    assert {r["debit"] for r in usd} | {r["credit"] for r in usd} == {"15.98", "0.00"}
    assert [e["period"] for e in document["entries"]] == ["2026-10", "2026-11", "2026-11"]


def test_an_unbalanced_entry_cannot_be_built():
    with pytest.raises(UnbalancedEntry):
        JournalEntry(
            "E",
            "2026-11",
            date(2026, 11, 30),
            "JPY",
            (JournalLine(CARD_LIABILITY, 0, 100, 1), JournalLine(OTHER_EXPENSES, 99, 0, 1)),
        )
    with pytest.raises(ValueError):
        build_journal(CHARGES, date(2026, 12, 1), date(2026, 11, 1))
