"""Journal lines for the accounting system: card charges booked by period, balanced.

One entry per calendar month and currency of the charges' booking dates (posting date,
or transaction date when the feed has none). In each entry, per account:

* an expense account chosen by the merchant category code, for charges matched to a
  receipt or declared missing by the cardholder;
* ``1190 Card charges awaiting receipts`` for charges still open (suggested or
  unmatched), so the liability is complete even before every receipt is in;
* ``2150 Corporate card payable``, the card liability, for the total.

A refund (negative amount) reverses its account. Each account's net amount becomes a
debit (positive) or a credit (negative), so every entry balances exactly: its debits
equal its credits in minor units (checked when an entry is built). The output is
deterministic: the same charges give the same bytes, whatever order they come in.
"""

from __future__ import annotations

import calendar
import csv
import io
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from seisan_cards.domain.model import OPEN_STATUSES, ChargeRecord
from seisan_shared.money import format_major


@dataclass(frozen=True, order=True)
class Account:
    code: str
    name: str


CARD_LIABILITY = Account("2150", "Corporate card payable")
AWAITING_RECEIPTS = Account("1190", "Card charges awaiting receipts")
OTHER_EXPENSES = Account("6990", "Other expenses")

_TRAVEL_AIR = Account("6110", "Travel: airfare")
_TRAVEL_LODGING = Account("6120", "Travel: lodging")
_TRAVEL_CAR = Account("6130", "Travel: car rental")
_TRAVEL_GROUND = Account("6140", "Travel: taxis, rail, parking and tolls")
_FUEL = Account("6150", "Fuel")
_MEALS = Account("6210", "Meals and entertainment")
_IT = Account("6310", "Software, telecom and IT")
_OFFICE = Account("6320", "Office supplies and books")
_POSTAGE = Account("6330", "Postage and courier")
_TRAINING = Account("6410", "Training and education")
_PROFESSIONAL = Account("6510", "Professional services")
_FEES = Account("6610", "Fees, dues and memberships")

# (first MCC, last MCC, account), ISO 18245 ranges; the first range that holds an MCC wins.
_MCC_RANGES: tuple[tuple[int, int, Account], ...] = (
    (3000, 3350, _TRAVEL_AIR),
    (4511, 4511, _TRAVEL_AIR),
    (3351, 3500, _TRAVEL_CAR),
    (7512, 7519, _TRAVEL_CAR),
    (3501, 3999, _TRAVEL_LODGING),
    (7011, 7011, _TRAVEL_LODGING),
    (4011, 4131, _TRAVEL_GROUND),
    (4411, 4468, _TRAVEL_GROUND),
    (4582, 4582, _TRAVEL_GROUND),
    (4784, 4789, _TRAVEL_GROUND),
    (7523, 7523, _TRAVEL_GROUND),
    (5541, 5542, _FUEL),
    (5983, 5983, _FUEL),
    (5811, 5814, _MEALS),
    (4812, 4821, _IT),
    (4899, 4899, _IT),
    (5045, 5045, _IT),
    (5732, 5734, _IT),
    (5817, 5818, _IT),
    (7372, 7379, _IT),
    (5111, 5111, _OFFICE),
    (5192, 5192, _OFFICE),
    (5942, 5943, _OFFICE),
    (4214, 4215, _POSTAGE),
    (9402, 9402, _POSTAGE),
    (8211, 8299, _TRAINING),
    (8111, 8111, _PROFESSIONAL),
    (8931, 8931, _PROFESSIONAL),
    (7392, 7392, _PROFESSIONAL),
    (8999, 8999, _PROFESSIONAL),
    (8641, 8699, _FEES),
    (9211, 9399, _FEES),
)


def expense_account(mcc: str) -> Account:
    """The expense account of a merchant category code ("" or unknown: other expenses)."""
    if len(mcc) == 4 and mcc.isdigit():
        code = int(mcc)
        for low, high, account in _MCC_RANGES:
            if low <= code <= high:
                return account
    return OTHER_EXPENSES


def account_for(record: ChargeRecord) -> Account:
    if record.status in OPEN_STATUSES:
        return AWAITING_RECEIPTS
    return expense_account(record.charge.mcc)


class UnbalancedEntry(ValueError):
    """Debits and credits of an entry differ: a bug, never a data problem (see module doc)."""


@dataclass(frozen=True)
class JournalLine:
    account: Account
    debit: int  # minor units, >= 0
    credit: int  # minor units, >= 0
    charge_count: int


@dataclass(frozen=True)
class JournalEntry:
    entry_id: str
    period: str  # YYYY-MM
    entry_date: date
    currency: str
    lines: tuple[JournalLine, ...]

    def __post_init__(self) -> None:
        debits = sum(line.debit for line in self.lines)
        credits = sum(line.credit for line in self.lines)
        if debits != credits:
            raise UnbalancedEntry(
                f"journal entry {self.entry_id}: debits {debits} != credits {credits}"
            )

    @property
    def total(self) -> int:
        return sum(line.debit for line in self.lines)


@dataclass(frozen=True)
class Journal:
    period_start: date
    period_end: date
    entries: tuple[JournalEntry, ...]


def _month_end(day: date) -> date:
    return day.replace(day=calendar.monthrange(day.year, day.month)[1])


def build_journal(charges: Iterable[ChargeRecord], start: date, end: date) -> Journal:
    """The journal of every charge booked from ``start`` to ``end`` inclusive."""
    if start > end:
        raise ValueError("the period starts after it ends")
    # (period, currency) -> account -> [net minor units, charge count]
    nets: dict[tuple[str, str], dict[Account, list[int]]] = {}
    last_day: dict[tuple[str, str], date] = {}
    for record in charges:
        day = record.booking_date
        if not start <= day <= end:
            continue
        key = (f"{day.year:04d}-{day.month:02d}", record.amount.currency)
        accounts = nets.setdefault(key, {})
        last_day[key] = min(_month_end(day), end)
        amount = record.amount.minor_units
        for account, net in ((account_for(record), amount), (CARD_LIABILITY, -amount)):
            slot = accounts.setdefault(account, [0, 0])
            slot[0] += net
            slot[1] += 1
    entries = []
    for (period, currency), accounts in sorted(nets.items()):
        lines = tuple(
            JournalLine(
                account=account,
                debit=max(net, 0),
                credit=max(-net, 0),
                charge_count=count,
            )
            for account, (net, count) in sorted(accounts.items())
        )
        entries.append(
            JournalEntry(
                entry_id=f"CARD-{period}-{currency}",
                period=period,
                entry_date=last_day[(period, currency)],
                currency=currency,
                lines=lines,
            )
        )
    return Journal(start, end, tuple(entries))


CSV_COLUMNS = (
    "entry_id",
    "entry_date",
    "period",
    "currency",
    "account_code",
    "account_name",
    "debit",
    "credit",
    "debit_minor",
    "credit_minor",
    "charge_count",
)


def to_csv(journal: Journal) -> bytes:
    """RFC 4180 CSV with a header row, LF line ends; amounts as printed and in minor units."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for entry in journal.entries:
        for line in entry.lines:
            writer.writerow(
                (
                    entry.entry_id,
                    entry.entry_date.isoformat(),
                    entry.period,
                    entry.currency,
                    line.account.code,
                    line.account.name,
                    format_major(line.debit, entry.currency),
                    format_major(line.credit, entry.currency),
                    line.debit,
                    line.credit,
                    line.charge_count,
                )
            )
    return buffer.getvalue().encode("utf-8")


def to_json(journal: Journal) -> bytes:
    """One JSON document, keys sorted, amounts as integer minor units and printed strings."""
    document = {
        "period_start": journal.period_start.isoformat(),
        "period_end": journal.period_end.isoformat(),
        "entries": [
            {
                "entry_id": e.entry_id,
                "entry_date": e.entry_date.isoformat(),
                "period": e.period,
                "currency": e.currency,
                "total_minor": e.total,
                "lines": [
                    {
                        "account_code": line.account.code,
                        "account_name": line.account.name,
                        "debit": format_major(line.debit, e.currency),
                        "credit": format_major(line.credit, e.currency),
                        "debit_minor": line.debit,
                        "credit_minor": line.credit,
                        "charge_count": line.charge_count,
                    }
                    for line in e.lines
                ],
            }
            for e in journal.entries
        ],
    }
    text = json.dumps(document, sort_keys=True, ensure_ascii=False, indent=2)
    return (text + "\n").encode("utf-8")
