"""Japanese receipt conventions: eras, full-width text, qualified-invoice numbers. Pure.

Eras: a year counts from 1 (元年, "first year") on the day the era began, so
令和6年 is 2019 + 6 − 1 = 2024. Dates before an era began are refused; dates
after it ended are accepted (POS systems kept printing 平成31年 into mid-2019).
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from datetime import date

__all__ = [
    "ERAS",
    "Era",
    "era_to_gregorian",
    "find_era_date",
    "find_invoice_number",
    "invoice_check_digit",
    "is_valid_invoice_number",
    "kanji_number",
    "normalize",
    "repair_ocr",
]


@dataclass(frozen=True)
class Era:
    name: str
    letter: str
    start: date


# Newest first: an abbreviation or name is looked up here.
ERAS: tuple[Era, ...] = (
    Era("令和", "R", date(2019, 5, 1)),
    Era("平成", "H", date(1989, 1, 8)),
    Era("昭和", "S", date(1926, 12, 25)),
    Era("大正", "T", date(1912, 7, 30)),
    Era("明治", "M", date(1868, 1, 25)),
)
_BY_KEY = {era.name: era for era in ERAS} | {era.letter: era for era in ERAS}


def normalize(text: str) -> str:
    """Full-width letters, digits and signs to ASCII (ＡＢ１２３ → AB123), ㋿/㍻ → 令和/平成.

    NFKC does it, and also turns half-width katakana into full-width and the
    full-width yen sign ￥ into ¥. The ideographic space becomes a plain space.
    """
    return unicodedata.normalize("NFKC", text)


# PP-OCR's dictionary mixes Chinese and Japanese: it often answers with the simplified
# Chinese form of a Japanese kanji (消费税 for 消費税). Folded back on Japanese receipts.
_SIMPLIFIED = str.maketrans(
    "费对减预钱计单额现领书证总请电话录买卖实员币价优惠条码数货",
    "費対減預銭計単額現領書証総請電話録買売実員幣価優恵条碼数貨",
)
# Katakana and kanji that look alike; the neighbours decide which one was printed.
_KATAKANA_LOOKALIKE = {
    "一": "ー",
    "力": "カ",
    "二": "ニ",
    "口": "ロ",
    "工": "エ",
    "夕": "タ",
    "卜": "ト",
    "八": "ハ",
}
_KANJI_LOOKALIKE = {v: k for k, v in _KATAKANA_LOOKALIKE.items()}


def _is_katakana(ch: str) -> bool:
    return "\u30a1" <= ch <= "\u30fa" or ch == "ー"


def _is_kanji(ch: str) -> bool:
    return "\u4e00" <= ch <= "\u9fff"


def repair_ocr(text: str) -> str:
    """Japanese OCR fixes: 消费税 → 消費税, 力一ド → カード, 梅田ニ丁目 → 梅田二丁目.

    Only for text known to be Japanese (it has kana); Chinese text would be harmed.
    """
    text = text.translate(_SIMPLIFIED)
    chars = list(text)
    for _ in range(2):  # a fix can make its neighbour fixable: 力一ド → 力ード → カード
        for i, ch in enumerate(chars):
            before = chars[i - 1] if i else ""
            after = chars[i + 1] if i + 1 < len(chars) else ""
            if ch in _KATAKANA_LOOKALIKE and (_is_katakana(before) or _is_katakana(after)):
                chars[i] = _KATAKANA_LOOKALIKE[ch]
            elif ch in _KANJI_LOOKALIKE and _is_kanji(before) and _is_kanji(after):
                chars[i] = _KANJI_LOOKALIKE[ch]
    return "".join(chars)


_KANJI_DIGITS = {
    "〇": 0,
    "零": 0,
    "一": 1,
    "二": 2,
    "三": 3,
    "四": 4,
    "五": 5,
    "六": 6,
    "七": 7,
    "八": 8,
    "九": 9,
}


def kanji_number(text: str) -> int | None:
    """'元' → 1, '六' → 6, '十二' → 12, '三十一' → 31, '二〇二四' → 2024, '12' → 12; else None."""
    text = normalize(text).strip()
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return int(text)
    if text == "元":
        return 1
    if "十" in text:
        tens_text, _, ones_text = text.partition("十")
        tens = 1 if not tens_text else _KANJI_DIGITS.get(tens_text)
        ones = 0 if not ones_text else _KANJI_DIGITS.get(ones_text)
        if tens is None or ones is None or len(tens_text) > 1 or len(ones_text) > 1:
            return None
        return tens * 10 + ones
    if all(ch in _KANJI_DIGITS for ch in text):  # digit by digit: 二〇二四
        return int("".join(str(_KANJI_DIGITS[ch]) for ch in text))
    return None


def era_to_gregorian(era: str, year: int, month: int, day: int) -> date:
    """('令和', 6, 5, 12) → 2024-05-12; era by name or letter (R); else ValueError."""
    found = _BY_KEY.get(era.upper() if era.isascii() else era)
    if found is None:
        raise ValueError(f"unknown era {era!r}")
    if year < 1:
        raise ValueError(f"era year must be ≥ 1, got {year}")
    result = date(found.start.year + year - 1, month, day)
    if result < found.start:
        raise ValueError(f"{found.name}{year}年{month}月{day}日 is before {found.name} began")
    return result


_NUM = r"[0-9〇零一二三四五六七八九十]{1,4}"
_ERA_KANJI = re.compile(
    rf"(?P<era>令和|平成|昭和|大正|明治)\s*(?P<y>元|{_NUM})\s*年\s*(?P<m>{_NUM})\s*月\s*(?P<d>{_NUM})\s*日"
)
# Abbreviated: R6.5.12, R06/05/12, H31-04-30, 令和6.5.12 (letter or name, then separators).
_ERA_SHORT = re.compile(
    r"(?<![A-Za-z0-9])(?P<era>令和|平成|昭和|[RHS])\s?(?P<y>元|\d{1,2})\s?[./\-]\s?"
    r"(?P<m>\d{1,2})\s?[./\-]\s?(?P<d>\d{1,2})(?!\d)"
)


def find_era_date(text: str) -> date | None:
    """The first Japanese-era date in ``text`` (令和6年5月12日, 令和元年…, R6.5.12), else None."""
    text = normalize(text)
    for pattern in (_ERA_KANJI, _ERA_SHORT):
        for match in pattern.finditer(text):
            year = kanji_number(match["y"])
            month = kanji_number(match["m"])
            day = kanji_number(match["d"])
            if year is None or month is None or day is None:
                continue
            try:
                return era_to_gregorian(match["era"], year, month, day)
            except ValueError:
                continue
    return None


def invoice_check_digit(twelve_digits: str) -> int:
    """Check digit of a corporate number (the 13 digits after T), from its last 12 digits.

    National Tax Agency rule: 9 − (Σ Pn·Qn mod 9), Pn the n-th of the 12 digits
    counted from the right, Qn = 1 for odd n and 2 for even n.
    """
    if len(twelve_digits) != 12 or not (twelve_digits.isascii() and twelve_digits.isdigit()):
        raise ValueError(f"expected 12 digits, got {twelve_digits!r}")
    total = sum(
        int(digit) * (1 if n % 2 else 2) for n, digit in enumerate(reversed(twelve_digits), start=1)
    )
    return 9 - total % 9


def is_valid_invoice_number(text: str) -> bool:
    """True for 'T7123456789012' (T optional; full-width, hyphens, spaces allowed)."""
    digits = re.sub(r"[\s\-]", "", normalize(text))
    digits = digits.removeprefix("T")
    if len(digits) != 13 or not (digits.isascii() and digits.isdigit()):
        return False
    return int(digits[0]) == invoice_check_digit(digits[1:])


_INVOICE = re.compile(r"T\s?[-:]?\s?((?:\d[\s\-]?){12}\d)(?!\d)")


def find_invoice_number(text: str) -> tuple[str, bool] | None:
    """The first 'T' + 13-digit registration number in ``text`` as ('T…', check digit valid)."""
    text = normalize(text)
    candidates = ["T" + re.sub(r"[\s\-]", "", match.group(1)) for match in _INVOICE.finditer(text)]
    for candidate in candidates:
        if is_valid_invoice_number(candidate):
            return candidate, True
    return (candidates[0], False) if candidates else None
