"""Finding a receipt's fields in its printed rows. Pure.

The building blocks of `extraction.extract`: each finder scores the candidates
that keyword tables (`receipt_text.Keywords`) and printed amounts and dates
offer, and returns a `Field` (value, confidence 0..1, the masked text it was
read from).
"""

from __future__ import annotations

import enum
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, time
from typing import Generic, TypeVar

from seisan_intake.domain.receipt_text import (
    TIME_JA_PATTERN,
    TIME_PATTERN,
    Amount,
    Keywords,
    Row,
    amount_after,
    amounts_in,
    dates_in,
)
from seisan_shared.money import EXPONENTS

T = TypeVar("T")


@dataclass(frozen=True)
class Field(Generic[T]):
    """An extracted value, how sure we are (0..1), and the masked text it was read from."""

    value: T
    confidence: float
    source: str = ""


class PaymentMethod(enum.StrEnum):
    CARD = "card"
    CASH = "cash"
    ELECTRONIC = "electronic"


# Keyword tables, matched on canonical text (see `receipt_text.canonical`).
TOTAL_STRONG = Keywords(
    "GRAND TOTAL|NET TOTAL|NETT TOTAL|ROUNDED TOTAL|TOTAL ROUNDED|ROUNDED|"
    "TOTAL AFTER ROUNDING|AMOUNT DUE|BALANCE DUE|TOTAL DUE|TOTAL PAYABLE|"
    "AMOUNT PAYABLE|TOTAL INCL|TOTAL INC|WITH GST|TOTAL AMOUNT|TOTAL AMT|"
    "TOTAL SALES|TOTAL RM|TOTAL (RM)|TOTAL MYR|"
    "総合計|税込合計|合計金額|お買上計|お買上げ計|お買い上げ計|お買上合計|"
    "ご請求額|ご請求金額|お支払金額|お支払い金額|お支払合計|お会計|領収金額"
)
TOTAL_PLAIN = Keywords("TOTAL|LOTAL|TOT|JUMLAH|DUE|ROUNDING|合計|合 計")
TOTAL_WEAK = Keywords("AMOUNT|NETT|NET|金額")
NOT_TOTAL = Keywords(
    "SUBTOTAL|SUB TOTAL|EXCL|EXCLUDING|EXCLUSIVE|BEFORE|QTY|QUANTITY|ITEM|DISCOUNT|"
    "DISC|SAVING|YOU SAVE|CHANGE|CASH|TENDER|PAID|PAYMENT|POINT|REBATE|DEPOSIT|"
    "ADJUSTMENT|ADJ|WEIGHT|PCS|COUNT|UNITS|TIP|GRATUITY|"
    "小計|点|対象|内税|消費税|税額|お預|預り|お釣|釣銭|値引|割引|ポイント|税抜|外税"
)
NOT_TOTAL_EVER = Keywords("INCLUDED GST|GST INCLUDED|INCLUDED TAX")
TAX_WORDS = Keywords("TAX|GST|SST|VAT|消費税|内税|外税|税額")
INCLUSIVE = Keywords("INCL|INCLUSIVE|INCLUDING|INC|WITH|税込")
ROUNDED = Keywords("ROUNDED|ROUNDING TOTAL|AFTER ROUNDING|TOTAL ROUND")
SUBTOTAL = Keywords("SUBTOTAL|SUB TOTAL|TOTAL EXCL|TOTAL BEFORE|小計|税抜合計|合計(税抜)")
TAX_TOTAL = Keywords("TOTAL GST|TOTAL TAX|GST TOTAL|TAX TOTAL|消費税合計|税額合計")
NOT_TAX = Keywords(
    "INVOICE|TAX INV|GST ID|GST REG|GSTID|REG NO|TAX ID|CODE|SUMMARY|ANALYSIS|EXCL|RATE"
)
TIP = Keywords("TIP|TIPS|GRATUITY|チップ")
NOT_TIP = Keywords("SUGGESTED|SUGGESTION|GUIDE")
TENDERED = Keywords("CASH|TENDERED|TENDER|AMOUNT PAID|PAID|PAYMENT|お預り|お預かり|預り|お預|現金")
CHANGE = Keywords("CHANGE|CHANGE DUE|お釣り|お釣|おつり|釣銭|釣り")
NOT_TENDERED = Keywords("CHANGE|CASH BILL|CASH SALES|お釣|釣銭|おつり")
DATE_WORDS = Keywords("DATE|DATED|TARIKH|日付|取引日|利用日|ご利用日|発行日")
NOT_DATE = Keywords("EXP|EXPIRY|EXPIRES|VALID|DUE|BEST BEFORE|有効期限|賞味期限|消費期限")


# --- fields: currency -------------------------------------------------------------------

_SYMBOL_EVIDENCE: tuple[tuple[re.Pattern[str], str, float], ...] = (
    (re.compile(r"(?<![A-Z])RM(?=\s?\d|\s?\)|\s?:|$|\s)"), "MYR", 1.0),
    (re.compile(r"[¥円]"), "JPY", 1.0),
    (re.compile(r"(?<![A-Z])S\$"), "SGD", 1.0),
    (re.compile(r"HK\$"), "HKD", 1.0),
    (re.compile(r"€"), "EUR", 1.0),
    (re.compile(r"£"), "GBP", 1.0),
    (re.compile(r"US\$"), "USD", 1.0),
    (re.compile(r"(?<![A-Z])\$"), "$", 0.6),  # a bare dollar sign: decided by context below
)
_CODE = re.compile(r"(?<![A-Z])(?P<code>[A-Z]{3})(?=\s?\d)|(?<=\d)\s?(?P<after>[A-Z]{3})\b")
_KANA = re.compile(r"[\u3040-\u30ff]")
_MALAYSIA = re.compile(
    r"SDN\.?\s?BHD|BERHAD|\bS/B\b|MALAYSIA|SELANGOR|JOHOR|KUALA LUMPUR|PULAU PINANG|PENANG|"
    r"JALAN|\bJLN\b|TAMAN|\bTMN\b|\bGST|\bSST\b",
    re.IGNORECASE,
)


def detect_currency(rows: Sequence[Row], default: str | None) -> Field[str] | None:
    """The receipt's currency from symbols, ISO codes and context (kana → JPY, SDN BHD → MYR)."""
    scores: dict[str, float] = {}
    sources: dict[str, str] = {}
    for row in rows:
        for pattern, code, weight in _SYMBOL_EVIDENCE:
            hits = len(pattern.findall(row.text))
            if hits:
                scores[code] = scores.get(code, 0.0) + weight * hits
                sources.setdefault(code, row.text)
        for match in _CODE.finditer(row.text):
            code = match["code"] or match["after"]
            if code in EXPONENTS:
                scores[code] = scores.get(code, 0.0) + 1.0
                sources.setdefault(code, row.text)
    text = "\n".join(row.text for row in rows)
    if _KANA.search(text):
        scores["JPY"] = scores.get("JPY", 0.0) + 0.8
    dollar = scores.pop("$", 0.0)
    if _MALAYSIA.search(text):
        # Malaysian receipts print "$" for ringgit too.
        scores["MYR"] = scores.get("MYR", 0.0) + 0.8 + dollar
    elif dollar:
        scores["USD"] = scores.get("USD", 0.0) + dollar
        sources.setdefault("USD", sources.pop("$", ""))
    if not scores:
        if default is None:
            return None
        return Field(default, 0.5, "default currency")
    ranked = sorted(scores.items(), key=lambda item: item[1], reverse=True)
    code, best = ranked[0]
    runner_up = ranked[1][1] if len(ranked) > 1 else 0.0
    margin = best - runner_up
    confidence = 0.5 + 0.45 * min(1.0, margin / 2.0)
    return Field(code, round(confidence, 3), sources.get(code) or "context")


# --- fields: dates and times


def find_date(rows: Sequence[Row], *, month_first: bool) -> tuple[Field[date], Row] | None:
    """The transaction date: near a "Date" label, earlier rows first, not an expiry date."""
    best: tuple[float, Field[date], Row] | None = None
    for row in rows:
        for found, certainty, _ in dates_in(row.text, month_first=month_first):
            if not 2000 <= found.year <= 2099:
                continue
            score = 0.8 * certainty
            if row.text in DATE_WORDS:
                score += 0.15
            if row.text in NOT_DATE:
                score -= 0.5
            if TIME_PATTERN.search(row.text):
                score += 0.05  # printed with the time of the sale
            score -= 0.002 * row.index  # the transaction date is printed near the top
            confidence = round(
                max(0.0, min(0.99, score + 0.05)) * min(1.0, row.confidence + 0.05), 3
            )
            if best is None or score > best[0]:
                best = (score, Field(found, confidence, row.text), row)
    return (best[1], best[2]) if best else None


def find_time(rows: Sequence[Row], date_row: Row | None) -> Field[time] | None:
    """The transaction time, preferring the date's row and the rows next to it."""
    candidates: list[tuple[int, Field[time]]] = []
    for row in rows:
        for pattern in (TIME_PATTERN, TIME_JA_PATTERN):
            for match in pattern.finditer(row.text):
                hour, minute = int(match["h"]), int(match["m"])
                second = int(match.groupdict().get("s") or 0)
                ampm = (match.groupdict().get("ampm") or "").replace(".", "").replace(" ", "")
                if ampm:
                    if hour > 12:
                        continue
                    hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
                distance = abs(row.index - date_row.index) if date_row else row.index
                confidence = 0.9 if distance == 0 else (0.75 if distance <= 2 else 0.5)
                value = time(hour, minute, second)
                candidates.append(
                    (distance, Field(value, round(confidence * row.confidence, 3), row.text))
                )
    if not candidates:
        return None
    return min(candidates, key=lambda item: item[0])[1]


# --- fields: amounts --------------------------------------------------------------------


@dataclass(frozen=True)
class AmountFields:
    total: Field[int] | None = None
    subtotal: Field[int] | None = None
    tax: Field[int] | None = None
    tip: Field[int] | None = None
    tendered: Field[int] | None = None
    change: Field[int] | None = None


def _keyword_amounts(
    rows: Sequence[Row], keywords: Keywords, exclude: Keywords | None, currency: str
) -> list[tuple[Row, Amount]]:
    out = []
    for row in rows:
        span = keywords.search(row.text)
        if span is None or (exclude is not None and row.text in exclude):
            continue
        amount = amount_after(rows, row, span[1], currency)
        if amount is not None:
            out.append((row, amount))
    return out


def _first(found: list[tuple[Row, Amount]], weight: float) -> Field[int] | None:
    if not found:
        return None
    row, amount = found[0]
    return Field(amount.minor_units, round(weight * row.confidence, 3), row.text)


def find_amounts(rows: Sequence[Row], currency: str) -> AmountFields:
    subtotal = _first(_keyword_amounts(rows, SUBTOTAL, None, currency), 0.85)
    tendered = _first(_keyword_amounts(rows, TENDERED, NOT_TENDERED, currency), 0.85)
    change = _first(_keyword_amounts(rows, CHANGE, None, currency), 0.85)
    tip_rows = [
        (row, amount)
        for row, amount in _keyword_amounts(rows, TIP, NOT_TIP, currency)
        if amount.minor_units > 0
    ]
    tip = _first(tip_rows, 0.8)
    tax = _find_tax(rows, currency)
    total = _find_total(rows, currency, subtotal, tax, tendered, change)
    return AmountFields(total, subtotal, tax, tip, tendered, change)


_RATE = re.compile(r"(\d{1,2}(?:\.\d)?)\s?%")


def _find_tax(rows: Sequence[Row], currency: str) -> Field[int] | None:
    found = []
    for row in rows:
        span = TAX_WORDS.search(row.text)
        if span is None or row.text in NOT_TAX:
            continue
        tax_total = row.text in TAX_TOTAL and row.text not in INCLUSIVE
        if not tax_total and (row.text in TOTAL_PLAIN or row.text in SUBTOTAL):
            continue  # "Total incl. GST", "Subtotal (excl. GST)": totals, not the tax
        amount = amount_after(rows, row, span[1], currency)
        if amount is not None and amount.minor_units >= 0:
            found.append((row, amount, tax_total))
    if not found:
        return None
    for row, amount, tax_total in found:
        if tax_total:
            return Field(amount.minor_units, round(0.85 * row.confidence, 3), row.text)
    by_rate: dict[str, tuple[Row, Amount]] = {}
    for row, amount, _ in found:
        rate = _RATE.search(row.text)
        by_rate.setdefault(rate.group(1) if rate else "", (row, amount))
    if len(by_rate) > 1 and "" not in by_rate:  # one line per rate (8% and 10%): add them up
        total = sum(amount.minor_units for _, amount in by_rate.values())
        confidence = min(row.confidence for row, _ in by_rate.values())
        source = " / ".join(row.text for row, _ in by_rate.values())
        return Field(total, round(0.8 * confidence, 3), source)
    row, amount, _ = found[0]
    return Field(amount.minor_units, round(0.75 * row.confidence, 3), row.text)


def _total_keyword(row: Row) -> tuple[float, tuple[int, int]] | None:
    """How strongly ``row`` says "this is the total", and where the keyword ends."""
    text = row.text
    if text in NOT_TOTAL_EVER:
        return None
    inclusive = text in INCLUSIVE and text in TAX_WORDS
    if text in NOT_TOTAL and not inclusive:
        return None
    for keywords, weight in ((TOTAL_STRONG, 1.0), (TOTAL_PLAIN, 0.85), (TOTAL_WEAK, 0.5)):
        span = keywords.search(text)
        if span is not None:
            if text in TAX_WORDS and not inclusive:
                return None  # "Total GST", "消費税合計"
            return (0.9 if inclusive and weight < 1.0 else weight), span
    return None


def _find_total(
    rows: Sequence[Row],
    currency: str,
    subtotal: Field[int] | None,
    tax: Field[int] | None,
    tendered: Field[int] | None,
    change: Field[int] | None,
) -> Field[int] | None:
    votes: dict[int, list[tuple[float, Row]]] = {}
    for row in rows:
        keyword = _total_keyword(row)
        if keyword is None:
            continue
        weight, span = keyword
        amount = amount_after(rows, row, span[1], currency)
        if amount is None:
            continue
        score = weight * min(1.0, row.confidence + 0.05) * (0.9 if amount.doubtful else 1.0)
        score += 0.03 * row.index / len(rows)  # the final total is printed last
        if row.text in ROUNDED:
            score += 0.05
        if amount.minor_units <= 0:
            score *= 0.1
        votes.setdefault(amount.minor_units, []).append((score, row))
    if not votes:
        return _fallback_total(rows, currency, subtotal, tendered, change)
    largest = max(votes)
    cash_rounding = EXPONENTS[currency] == 2

    def support(value: int) -> float:
        bonus = 0.05 * (len(votes[value]) - 1)
        if tendered is not None and change is not None:
            if tendered.value - change.value == value:
                bonus += 0.1
        elif tendered is not None and tendered.value == value:
            bonus += 0.05
        if subtotal is not None and tax is not None:
            if value in (subtotal.value, subtotal.value + tax.value):
                bonus += 0.05
        elif subtotal is not None and subtotal.value == value:
            bonus += 0.03
        if value < largest / 2:
            bonus -= 0.1
        if cash_rounding and value % 5 == 0:
            # Rounded to 5 cents (Malaysia, Australia, …) next to the unrounded figure.
            if any(other != value and abs(other - value) < 5 for other in votes):
                bonus += 0.2
        return bonus

    def strength(value: int) -> float:
        return max(score for score, _ in votes[value]) + support(value)

    ranked = sorted(votes, key=lambda value: (strength(value), value), reverse=True)
    value = ranked[0]
    score, row = max(votes[value], key=lambda item: item[0])
    confidence = min(0.99, strength(value))
    if len(ranked) > 1:  # another amount also looked like the total
        confidence -= max(0.0, 0.2 - (strength(value) - strength(ranked[1])))
    return Field(value, round(max(0.0, confidence), 3), row.text)


def _fallback_total(
    rows: Sequence[Row],
    currency: str,
    subtotal: Field[int] | None,
    tendered: Field[int] | None,
    change: Field[int] | None,
) -> Field[int] | None:
    """No total line: tendered − change, the subtotal, else the largest amount printed."""
    if tendered is not None and change is not None and tendered.value > change.value:
        return Field(tendered.value - change.value, 0.5, f"{tendered.source} / {change.source}")
    if subtotal is not None:
        return Field(subtotal.value, 0.4, subtotal.source)
    if tendered is not None and change is None:
        return Field(tendered.value, 0.4, tendered.source)
    best: tuple[int, Row] | None = None
    for row in rows:
        if row.text in TENDERED or row.text in CHANGE:
            continue
        for amount in amounts_in(row.text, currency):
            if amount.doubtful or not (amount.marked or EXPONENTS[currency] > 0):
                continue
            if best is None or amount.minor_units > best[0]:
                best = (amount.minor_units, row)
    if best is None:
        return None
    return Field(best[0], round(0.35 * best[1].confidence, 3), best[1].text)


# --- fields: payment, merchant ----------------------------------------------------------

CARD_CONTEXT = re.compile(
    r"VISA|MASTER|AMEX|AMERICAN EXPRESS|JCB|DINERS|DISCOVER|UNIONPAY|CREDIT|DEBIT|"
    r"CARD|クレジット|カード",
    re.IGNORECASE,
)
NOT_PAYMENT_CARD = re.compile(
    r"POINT|MEMBER|LOYALTY|REWARD|ポイント|会員|GIFT|BANK ACC|ACCOUNT", re.IGNORECASE
)
_ELECTRONIC = re.compile(
    r"SUICA|PASMO|ICOCA|交通系|PAYPAY|QUICPAY|EDY|NANACO|WAON|電子マネー|APPLE\s?PAY|"
    r"GOOGLE\s?PAY|ALIPAY|WECHAT|GRABPAY|TOUCH\s?['N]*\s?GO|\bBOOST\b|E-?WALLET|"
    r"(?<![A-Za-z])(?-i:iD)(?![A-Za-z])",
    re.IGNORECASE,
)
_CASH = re.compile(r"現金|お預|お釣|釣銭|\bCASH\b(?!\s?(?:BILL|SALES?))|\bTENDER", re.IGNORECASE)
_CASH_WEAK = re.compile(r"\bCHANGE\b|CASH", re.IGNORECASE)
_MASKED_PAN = re.compile(r"[*Xx•●#]{4,}[\s\-]?\d{4}")


def find_payment_method(rows: Sequence[Row]) -> Field[PaymentMethod] | None:
    scores = {method: 0.0 for method in PaymentMethod}
    sources: dict[PaymentMethod, str] = {}

    def add(method: PaymentMethod, weight: float, row: Row) -> None:
        if weight * row.confidence > scores[method]:
            scores[method] = weight * row.confidence
            sources[method] = row.text

    for row in rows:
        text = row.text
        if _ELECTRONIC.search(text):
            add(PaymentMethod.ELECTRONIC, 0.9, row)
        if NOT_PAYMENT_CARD.search(text):
            pass
        elif _MASKED_PAN.search(text) and CARD_CONTEXT.search(text):
            add(PaymentMethod.CARD, 0.95, row)
        elif CARD_CONTEXT.search(text) and re.search(r"\d", text):
            add(PaymentMethod.CARD, 0.85, row)  # "VISA 48.95"; not "HOME MASTER HARDWARE"
        if _CASH.search(text):
            has_amount = bool(re.search(r"\d", text))
            add(PaymentMethod.CASH, 0.85 if has_amount else 0.6, row)
        elif _CASH_WEAK.search(text):
            add(PaymentMethod.CASH, 0.5, row)
    order = (PaymentMethod.ELECTRONIC, PaymentMethod.CARD, PaymentMethod.CASH)
    method = max(order, key=lambda candidate: scores[candidate])
    if scores[method] <= 0:
        return None
    return Field(method, round(scores[method], 3), sources[method])


LEGAL_SUFFIX = re.compile(
    r"SDN\.?\s?BHD\.?|[S5]\s?/\s?B(?![A-Za-z])|\bBHD\b\.?|BERHAD|\bLTD\b\.?|LIMITED|\bINC\b\.?|\bLLC\b|"
    r"\bCORP\b\.?|CORPORATION|\bPLT\b|\bGMBH\b|株式会社|有限会社|合同会社|\(株\)",
    re.IGNORECASE,
)
BUSINESS_WORD = re.compile(
    r"ENTERPRISE|TRADING|RESTAURANT|RESTORAN|\bSTORE|\bMART\b|HARDWARE|PHARMACY|FARMASI|"
    r"\bCO\.|SUPERMARKET|BAKERY|\bCAFE|STATIONERY|BOOKSTORE|KEDAI|\bSHOP|"
    r"店$|店\s|商店|本舗|薬局|食堂",
    re.IGNORECASE,
)
_TITLE = re.compile(
    r"^(?:SIMPLIFIED\s?)?(?:TAX\s?INVOICE|INVOICE|OFFICIAL\s?RECEIPT|RECEIPT|CASH\s?BILL|"
    r"CASH\s?SALES?|CASH|BILL|WELCOME(?:\sTO)?|領収書|領収証|レシート|お買上明細書?|明細書|"
    r"ご来店ありがとうございます)[\s.:!]*$",
    re.IGNORECASE,
)
# Lines that are never the name, even when they carry a company word.
_NOT_NAME_EVER = re.compile(
    r"TEL\b|TEL[:.]|FAX|PHONE|@|WWW|HTTP|\.COM|GST|REG\.?\s?NO|CO\.?\s?NO|COMPANY\s?NO|"
    r"电话|電話|〒|登録番号|INVOICE|RECEIPT|CASHIER",
    re.IGNORECASE,
)
# Address lines: not the name unless they carry a legal suffix.
_ADDRESS = re.compile(
    r"JALAN|\bJLN\b|\bLOT\b|TAMAN|\bNO[.:]|\d{5}|\bJOHOR|SELANGOR|KUALA LUMPUR|PENANG|"
    r"PULAU PINANG|PERAK|KEDAH|MELAKA|SABAH|SARAWAK|PAHANG|TERENGGANU|KELANTAN|PUTRAJAYA|"
    r"NEGERI SEMBILAN|[都道府県].{1,6}[市区町村郡]|[市区町村].{0,12}\d+-\d+|番地",
    re.IGNORECASE,
)
_CUT_AFTER = re.compile(
    r"SDN\.?\s?BHD\.?|S\s?/\s?B(?![A-Za-z])|BERHAD|\bBHD\b\.?|\bLTD\b\.?|LIMITED|\bLLC\b|\bPLT\b",
    re.IGNORECASE,
)
_REG_NUMBER = re.compile(r"\s*[\(（]?\s*[A-Z]{0,3}\d{4,}[\s\-]*[A-Z]?\s*[\)）]?\s*$")


_PRICE = re.compile(r"[¥$]\s?\d|\d\s?円|\bRM\s?\d|\d[.,]\d\d\b")


def _is_annotation(text: str) -> bool:
    """Hand-written names on scanned receipts read as all-lower-case Latin words."""
    letters = [ch for ch in text if ch.isascii() and ch.isalpha()]
    return bool(letters) and all(ch.islower() for ch in letters) and len(text.split()) <= 4


def _name_like(text: str) -> bool:
    text = text.strip()
    letters = sum(ch.isalpha() for ch in text)
    return (
        letters >= 2
        and letters >= len(text.replace(" ", "")) * 0.5
        and not _TITLE.match(text)
        and not _NOT_NAME_EVER.search(text)
        and not _is_annotation(text)
        and not dates_in(text, month_first=False)
        and not _PRICE.search(text)
    )


def _clean_name(text: str) -> str:
    text = re.sub(r"5\s?/\s?B(?![A-Za-z])", "S/B", text)
    cut = _CUT_AFTER.search(text)
    if cut is not None:
        text = text[: cut.end()]
    # OCR reads O as 0 and & as S inside names: "CONFECTI0NERY", "STATIONERY S BOOKS".
    text = re.sub(r"(?<=[A-Za-z])0+(?=[A-Za-z])", lambda m: "O" * len(m.group(0)), text)
    if text.upper() == text:
        text = re.sub(r"(?<=[A-Z]{2}) S (?=[A-Z]{2})", " & ", text)
    text = _REG_NUMBER.sub("", text).strip(" ,:;-")
    # Specks read as punctuation: "ファミリーマート 、 新宿西口店".
    words = [word for word in text.split() if re.search(r"[^\W_]", word) or word == "&"]
    return " ".join(words)


def _suffix_strength(text: str) -> int:
    if _NOT_NAME_EVER.search(_REG_NUMBER.sub("", text)) or _TITLE.match(text.strip()):
        return 0
    if LEGAL_SUFFIX.search(text):
        return 2
    if BUSINESS_WORD.search(text) and not _ADDRESS.search(text):
        return 1
    return 0


def find_merchant(rows: Sequence[Row]) -> Field[str] | None:
    """The merchant: the company-named line near the top, else the first name-like line."""
    top = list(rows[:10])
    strengths = [_suffix_strength(row.text) for row in top]
    if any(strengths):
        # A legal name (SDN BHD) beats a shop word (RESTAURANT), unless it is far below it.
        ranked = [
            strength - 0.25 * index if strength else -9.0
            for index, strength in enumerate(strengths)
        ]
        position = ranked.index(max(ranked))
        row = top[position]
        parts = [row]
        before = top[position - 1] if position > 0 else None
        after = top[position + 1] if position + 1 < len(top) else None
        words = [
            m.start() for m in (LEGAL_SUFFIX.search(row.text), BUSINESS_WORD.search(row.text)) if m
        ]
        head = row.text[: min(words)] if words else row.text
        if before is not None and _name_like(before.text) and not _ADDRESS.search(before.text):
            if sum(ch.isalpha() for ch in head) < 3 or before.text.rstrip().endswith(("&", "-")):
                parts.insert(0, before)
        if after is not None and (
            row.text.rstrip().endswith(("&", "-", " AND")) or after.text.lstrip().startswith("&")
        ):
            parts.append(after)
        name = _clean_name(" ".join(part.text for part in parts))
        if name:
            weight = 0.92 if strengths[position] == 2 else 0.85
            confidence = weight * min(part.confidence for part in parts)
            return Field(name, round(confidence, 3), " / ".join(part.text for part in parts))
    for row in top:
        if _name_like(row.text) and not _ADDRESS.search(row.text):
            parts = [row]
            following = rows[row.index + 1] if row.index + 1 < len(rows) else None
            if following is not None and row.text.rstrip().endswith(("&", "-")):
                parts.append(following)
            name = _clean_name(" ".join(part.text for part in parts))
            if name:
                japanese = bool(_KANA.search(name) or re.search(r"[\u4e00-\u9fff]", name))
                confidence = (0.85 if japanese else 0.7) * min(part.confidence for part in parts)
                return Field(name, round(confidence, 3), " / ".join(part.text for part in parts))
    return None
