"""Receipt field extraction: OCR lines in, fields with confidences out. Pure.

`extract` turns what an OCR engine read into an `ExtractedReceipt`; every
field carries a 0..1 confidence and the (masked) text it came from, and
`review_reasons` says, in words, why a person should look at it. Card numbers
are masked first (`pan.mask_card_numbers`), so no field and no text that leaves
here holds more than the last four digits of a card.

How: lines are grouped into printed rows (correcting the page's tilt), each row
is matched against keyword tables that tolerate common OCR confusions
(Totai/T0TAL/TOTA1), and each field takes the best-scoring candidate. Amounts
become integer minor units through `seisan_shared.money`.
"""

from __future__ import annotations

import re
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Any

from seisan_intake.domain import receipt_fields as rf
from seisan_intake.domain import receipt_text as rt
from seisan_intake.domain.japanese import find_invoice_number, normalize, repair_ocr
from seisan_intake.domain.pan import card_last_four, mask_card_numbers
from seisan_intake.domain.receipt_fields import Field, PaymentMethod

__all__ = [
    "DEFAULT_REVIEW_THRESHOLD",
    "ExtractedReceipt",
    "Field",
    "OcrLine",
    "PaymentMethod",
    "extract",
    "review_reasons",
]

DEFAULT_REVIEW_THRESHOLD = 0.6
_KANA = re.compile(r"[\u3040-\u30ff]")


@dataclass(frozen=True)
class OcrLine:
    """One line of text as an OCR engine read it.

    ``box`` is (left, top, right, bottom) in pixels of the image the engine
    read; ``confidence`` is the engine's own 0..1 score for the text; ``angle``
    is the tilt of the text's baseline in degrees (positive: clockwise on
    screen, i.e. the right end lower), 0 when the engine does not know it.
    """

    text: str
    confidence: float
    box: tuple[float, float, float, float]
    angle: float = 0.0


@dataclass(frozen=True)
class ExtractedReceipt:
    """What a receipt says. Amounts are integer minor units of ``currency``."""

    merchant: Field[str] | None = None
    transaction_date: Field[date] | None = None
    transaction_time: Field[time] | None = None
    currency: Field[str] | None = None
    total: Field[int] | None = None
    subtotal: Field[int] | None = None
    tax: Field[int] | None = None
    tip: Field[int] | None = None
    cash_tendered: Field[int] | None = None
    change: Field[int] | None = None
    card_last_four: Field[str] | None = None
    payment_method: Field[PaymentMethod] | None = None
    invoice_number: Field[str] | None = None
    invoice_number_valid: bool | None = None
    ocr_text: str = ""  # every line, card numbers masked, one line per printed row
    ocr_confidence: float = 0.0  # mean engine confidence over the lines

    def fields_dict(self) -> dict[str, dict[str, Any]]:
        """JSON-able fields, e.g. {"total": {"minor_units": 1234, "currency": "JPY", …}}."""
        out: dict[str, dict[str, Any]] = {}
        currency = self.currency.value if self.currency else None
        for name in ("merchant", "card_last_four", "invoice_number", "currency"):
            value: Field[Any] | None = getattr(self, name)
            if value is not None:
                out[name] = {"value": value.value, "confidence": value.confidence}
        if self.invoice_number is not None:
            out["invoice_number"]["valid"] = bool(self.invoice_number_valid)
        if self.transaction_date is not None:
            out["transaction_date"] = {
                "value": self.transaction_date.value.isoformat(),
                "confidence": self.transaction_date.confidence,
            }
        if self.transaction_time is not None:
            out["transaction_time"] = {
                "value": self.transaction_time.value.isoformat(timespec="minutes"),
                "confidence": self.transaction_time.confidence,
            }
        if self.payment_method is not None:
            out["payment_method"] = {
                "value": self.payment_method.value.value,
                "confidence": self.payment_method.confidence,
            }
        for name in ("total", "subtotal", "tax", "tip", "cash_tendered", "change"):
            amount: Field[int] | None = getattr(self, name)
            if amount is not None and currency is not None:
                out[name] = {
                    "minor_units": amount.value,
                    "currency": currency,
                    "confidence": amount.confidence,
                }
        return out


def extract(lines: Sequence[OcrLine], *, default_currency: str | None = None) -> ExtractedReceipt:
    """Read the fields of one receipt from its OCR lines.

    ``default_currency`` is used when the receipt names no currency and gives
    no hint (a company's home currency); it is reported with low confidence.
    """
    texts = [normalize(line.text) for line in lines]
    if any(_KANA.search(text) for text in texts):
        texts = [repair_ocr(text) for text in texts]
    rows = rt.group_rows(
        [
            rt.Cell(mask_card_numbers(text), line.confidence, line.box, line.angle)
            for text, line in zip(texts, lines, strict=True)
            if text.strip()
        ]
    )
    text = "\n".join(row.text for row in rows)
    ocr_confidence = round(statistics.fmean(line.confidence for line in lines), 3) if lines else 0.0
    if not rows:
        return ExtractedReceipt(ocr_text=text, ocr_confidence=ocr_confidence)
    currency = rf.detect_currency(rows, default_currency)
    found_date = rf.find_date(rows, month_first=bool(currency and currency.value == "USD"))
    found_time = rf.find_time(rows, found_date[1] if found_date else None)
    amounts = rf.find_amounts(rows, currency.value) if currency is not None else rf.AmountFields()
    invoice = _invoice(rows)
    return ExtractedReceipt(
        merchant=rf.find_merchant(rows),
        transaction_date=found_date[0] if found_date else None,
        transaction_time=found_time,
        currency=currency,
        total=amounts.total,
        subtotal=amounts.subtotal,
        tax=amounts.tax,
        tip=amounts.tip,
        cash_tendered=amounts.tendered,
        change=amounts.change,
        card_last_four=_last_four(rows),
        payment_method=rf.find_payment_method(rows),
        invoice_number=invoice[0] if invoice else None,
        invoice_number_valid=invoice[1] if invoice else None,
        ocr_text=text,
        ocr_confidence=ocr_confidence,
    )


def _invoice(rows: Sequence[rt.Row]) -> tuple[Field[str], bool] | None:
    for row in rows:
        found = find_invoice_number(row.text)
        if found is not None:
            number, valid = found
            confidence = round(min(0.98, row.confidence) if valid else 0.3, 3)
            return Field(number, confidence, row.text), valid
    return None


def _last_four(rows: Sequence[rt.Row]) -> Field[str] | None:
    """Last four digits of the card paid with: a masked number on or next to a card line."""
    best: Field[str] | None = None
    for row in rows:
        digits = card_last_four(row.text)
        if digits is None or rf.NOT_PAYMENT_CARD.search(row.text):
            continue
        if rf.CARD_CONTEXT.search(row.text):
            confidence = 0.95
        elif any(
            rf.CARD_CONTEXT.search(other.text) and not rf.NOT_PAYMENT_CARD.search(other.text)
            for other in rows[max(0, row.index - 2) : row.index + 3]
        ):
            confidence = 0.85
        else:
            continue  # a masked loyalty or account number, not the card paid with
        confidence = round(confidence * row.confidence, 3)
        if best is None or confidence > best.confidence:
            best = Field(digits, confidence, row.text)
    return best


def review_reasons(
    receipt: ExtractedReceipt,
    *,
    threshold: float = DEFAULT_REVIEW_THRESHOLD,
    today: date | None = None,
) -> list[str]:
    """Why a person should check this receipt; empty when it can go on by itself.

    Reasons read like "total not found" or "total confidence 0.42 < 0.6".
    ``today`` (when given) also flags dates in the future.
    """
    reasons: list[str] = []
    required: Iterable[tuple[str, Field[Any] | None]] = (
        ("total", receipt.total),
        ("date", receipt.transaction_date),
        ("merchant", receipt.merchant),
        ("currency", receipt.currency),
    )
    for name, found in required:
        if found is None:
            reasons.append(f"{name} not found")
        elif found.confidence < threshold:
            reasons.append(f"{name} confidence {found.confidence:.2f} < {threshold:g}")
    if receipt.invoice_number is not None and not receipt.invoice_number_valid:
        reasons.append(f"invoice number {receipt.invoice_number.value} fails its check digit")
    if today is not None and receipt.transaction_date is not None:
        if receipt.transaction_date.value > today:
            reasons.append(f"date {receipt.transaction_date.value.isoformat()} is in the future")
    if receipt.total is not None and receipt.total.value <= 0:
        reasons.append("total is not positive")
    return reasons
