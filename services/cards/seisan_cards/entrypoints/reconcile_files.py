"""Offline reconciliation on files: ``seisan reconcile --charges C --receipts R --out M``.

Reads the generic charges CSV and a receipts JSONL, runs the matching engine (the same
one the service runs) and writes ``charge_id,receipt_id,score,status`` rows, status
``auto`` or ``suggested``; unmatched items are absent and a split is several rows. The
output file appears whole or not at all. Amounts are parsed from their printed major
units into integer minor units (`seisan_shared.money.parse_minor_units`), never floats.

A bad input fails as a whole with `ReconcileInputError` naming the file, line and field.
Card numbers: only the last four digits of ``card_last4`` are ever kept, and an error
about that field never repeats its value.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import os
import tempfile
import time
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from seisan_cards.domain.matching import (
    DEFAULT_THRESHOLDS,
    ChargeTable,
    ReceiptTable,
    Thresholds,
    reconcile,
)
from seisan_cards.domain.matching.model import day_number
from seisan_shared.errors import InvalidArgument
from seisan_shared.money import MoneyError, check_currency, parse_minor_units

__all__ = [
    "CHARGES_HEADER",
    "MATCHES_HEADER",
    "ReconcileInputError",
    "Summary",
    "read_charges",
    "read_receipts",
    "reconcile_files",
]

CHARGES_HEADER = (
    "charge_id,card_last4,cardholder,transaction_date,posting_date,merchant,mcc,amount,"
    "currency,original_amount,original_currency"
).split(",")
MATCHES_HEADER = ["charge_id", "receipt_id", "score", "status"]


class ReconcileInputError(InvalidArgument):
    """A charges or receipts file that cannot be read; the message names line and field."""


@dataclass(frozen=True)
class Summary:
    charges: int
    receipts: int
    auto_pairs: int
    suggested_pairs: int
    unmatched_charges: int
    unmatched_receipts: int
    threshold_version: str
    seconds: float

    def __str__(self) -> str:
        return (
            f"{self.charges} charges, {self.receipts} receipts: {self.auto_pairs} auto, "
            f"{self.suggested_pairs} suggested; unmatched {self.unmatched_charges} charges, "
            f"{self.unmatched_receipts} receipts (thresholds {self.threshold_version}, "
            f"{self.seconds:.2f}s)"
        )


class _Problem(Exception):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"field {field!r}: {reason}")


def _date(text: str, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise _Problem(field, f"{text!r} is not an ISO date (YYYY-MM-DD)") from None


def _amount(text: Any, currency: str, field: str) -> int:
    if isinstance(text, bool) or not isinstance(text, str | int):
        raise _Problem(field, "must be the printed amount as a string (never a float)")
    try:
        return parse_minor_units(str(text), currency)
    except MoneyError as err:
        raise _Problem(field, str(err)) from None


def _currency(text: Any, field: str) -> str:
    code = str(text or "").strip().upper()
    try:
        return check_currency(code)
    except MoneyError as err:
        raise _Problem(field, str(err)) from None


def _last4(text: Any, field: str, *, required: bool) -> str:
    digits = "".join(ch for ch in str(text or "") if ch.isdigit())
    if not digits:
        if required:
            raise _Problem(field, "the card's last four digits are required")
        return ""
    if len(digits) < 4:
        raise _Problem(field, "needs four digits")
    return digits[-4:]  # a full card number is cut to its last four here, before anything else


class _ChargeColumns:
    def __init__(self) -> None:
        self.ids: list[str] = []
        self.last4: list[str] = []
        self.holder: list[str] = []
        self.day: list[int] = []
        self.posting: list[int] = []
        self.merchant: list[str] = []
        self.mcc: list[int] = []
        self.amount: list[int] = []
        self.currency: list[str] = []
        self.original: list[int] = []
        self.original_currency: list[str] = []

    def add(self, row: dict[str, str], seen: set[str]) -> None:
        charge_id = (row["charge_id"] or "").strip()
        if not charge_id:
            raise _Problem("charge_id", "is empty")
        if charge_id in seen:
            raise _Problem("charge_id", f"{charge_id!r} appears twice")
        seen.add(charge_id)
        holder = (row["cardholder"] or "").strip()
        if not holder:
            raise _Problem("cardholder", "is empty")
        posting = _date(row["posting_date"], "posting_date")
        transacted = (row["transaction_date"] or "").strip()
        day = _date(transacted, "transaction_date") if transacted else posting
        mcc_text = (row["mcc"] or "").strip()
        if mcc_text and not (mcc_text.isdigit() and len(mcc_text) == 4):
            raise _Problem("mcc", f"{mcc_text!r} is not a four-digit merchant category code")
        currency = _currency(row["currency"], "currency")
        amount = _amount(row["amount"], currency, "amount")
        original_text = (row["original_amount"] or "").strip()
        original_currency_text = (row["original_currency"] or "").strip()
        if bool(original_text) != bool(original_currency_text):
            raise _Problem(
                "original_amount" if not original_text else "original_currency",
                "original_amount and original_currency go together",
            )
        original, original_currency = 0, ""
        if original_text:
            original_currency = _currency(original_currency_text, "original_currency")
            original = _amount(original_text, original_currency, "original_amount")
        self.ids.append(charge_id)
        self.last4.append(_last4(row["card_last4"], "card_last4", required=False))
        self.holder.append(holder)
        self.day.append(day_number(day))
        self.posting.append(day_number(posting))
        self.merchant.append((row["merchant"] or "").strip())
        self.mcc.append(int(mcc_text) if mcc_text else 0)
        self.amount.append(amount)
        self.currency.append(currency)
        self.original.append(original)
        self.original_currency.append(original_currency)

    def table(self) -> ChargeTable:
        return ChargeTable(
            charge_id=self.ids,
            card_last4=self.last4,
            cardholder=self.holder,
            transaction_day=np.asarray(self.day, np.int32),
            posting_day=np.asarray(self.posting, np.int32),
            merchant=self.merchant,
            mcc=np.asarray(self.mcc, np.int32),
            amount_minor=np.asarray(self.amount, np.int64),
            currency=self.currency,
            original_amount_minor=np.asarray(self.original, np.int64),
            original_currency=self.original_currency,
        )


def read_charges(path: Path) -> ChargeTable:
    """The generic charges CSV as a table; `ReconcileInputError` names line and field."""
    columns = _ChargeColumns()
    seen: set[str] = set()
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [name for name in CHARGES_HEADER if name not in header]
        if missing:
            raise ReconcileInputError(
                f"{path.name} line 1: header lacks {', '.join(missing)} "
                f"(expected {','.join(CHARGES_HEADER)})"
            )
        for row in reader:
            if None in row or any(value is None for value in row.values()):
                raise ReconcileInputError(
                    f"{path.name} line {reader.line_num}: wrong number of fields"
                )
            try:
                columns.add(row, seen)
            except _Problem as problem:
                raise ReconcileInputError(
                    f"{path.name} line {reader.line_num}: {problem}"
                ) from None
    return columns.table()


def _receipt_lines(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    with path.open(encoding="utf-8-sig") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                item = json.loads(line)
            except json.JSONDecodeError as err:
                raise ReconcileInputError(
                    f"{path.name} line {number}: not JSON ({err.msg})"
                ) from None
            if not isinstance(item, dict):
                raise ReconcileInputError(f"{path.name} line {number}: not a JSON object")
            yield number, item


def read_receipts(path: Path) -> ReceiptTable:
    """Receipts JSONL as a table; `ReconcileInputError` names line and field."""
    ids: list[str] = []
    submitter: list[str] = []
    merchant: list[str] = []
    day: list[int] = []
    total: list[int] = []
    currency: list[str] = []
    last4: list[str] = []
    tip: list[int] = []
    company: list[int] = []
    seen: set[str] = set()
    for number, item in _receipt_lines(path):
        try:
            receipt_id = str(item.get("receipt_id") or "").strip()
            if not receipt_id:
                raise _Problem("receipt_id", "is missing")
            if receipt_id in seen:
                raise _Problem("receipt_id", f"{receipt_id!r} appears twice")
            seen.add(receipt_id)
            person = str(item.get("submitter") or "").strip()
            if not person:
                raise _Problem("submitter", "is missing")
            if "date" not in item:
                raise _Problem("date", "is missing")
            when = _date(str(item["date"]), "date")
            code = _currency(item.get("currency"), "currency")
            if "total" not in item:
                raise _Problem("total", "is missing")
            amount = _amount(item["total"], code, "total")
            tip_value = item.get("tip")
            tip_minor = 0 if tip_value in (None, "") else _amount(tip_value, code, "tip")
            flag = item.get("paid_with_company_card")
            if flag is not None and not isinstance(flag, bool):
                raise _Problem("paid_with_company_card", "must be true, false or absent")
            card = _last4(item.get("card_last4"), "card_last4", required=False)
        except _Problem as problem:
            raise ReconcileInputError(f"{path.name} line {number}: {problem}") from None
        ids.append(receipt_id)
        submitter.append(person)
        merchant.append(str(item.get("merchant") or "").strip())
        day.append(day_number(when))
        total.append(amount)
        currency.append(code)
        last4.append(card)
        tip.append(tip_minor)
        company.append(-1 if flag is None else int(flag))
    return ReceiptTable(
        receipt_id=ids,
        submitter=submitter,
        merchant=merchant,
        day=np.asarray(day, np.int32),
        total_minor=np.asarray(total, np.int64),
        currency=currency,
        card_last4=last4,
        tip_minor=np.asarray(tip, np.int64),
        company_card=np.asarray(company, np.int8),
    )


def reconcile_files(
    charges_csv: Path,
    receipts_jsonl: Path,
    out_csv: Path,
    thresholds: Thresholds = DEFAULT_THRESHOLDS,
    *,
    rejected: Collection[tuple[str, str]] = (),
) -> Summary:
    """Match the charges file against the receipts file and write the matches file."""
    charges = read_charges(Path(charges_csv))
    receipts = read_receipts(Path(receipts_jsonl))
    started = time.perf_counter()
    result = reconcile(charges, receipts, thresholds, rejected=rejected)
    seconds = time.perf_counter() - started
    out = Path(out_csv)
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", dir=out.parent)
    try:
        with os.fdopen(fd, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(MATCHES_HEADER)
            for charge_id, receipt_id, score, status in result.rows():
                writer.writerow([charge_id, receipt_id, f"{score:.4f}", status.value])
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Summary(
        charges=len(charges),
        receipts=len(receipts),
        auto_pairs=result.auto_pairs,
        suggested_pairs=result.suggested_pairs,
        unmatched_charges=len(result.unmatched_charge_rows()),
        unmatched_receipts=len(result.unmatched_receipt_rows()),
        threshold_version=thresholds.version,
        seconds=seconds,
    )
