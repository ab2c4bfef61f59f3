"""Reading a receipt's printed text: rows, keywords, amounts and dates. Pure.

Rows are OCR lines grouped by their vertical position after undoing the page's
tilt. Keywords are matched on a "canonical" form of the text that forgives the
usual OCR confusions (case, spacing, 0/O, 1/l/I, 5/S), so "Totai", "T O T A L"
and "TOTA1" all read as TOTAL. Amounts and dates are found however receipts
print them, including the ways OCR glues them together ("25/12/20188:13").
"""

from __future__ import annotations

import math
import re
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from seisan_intake.domain.japanese import find_era_date
from seisan_shared.money import EXPONENTS, MoneyError, parse_minor_units

# --- layout -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Cell:
    text: str
    confidence: float
    box: tuple[float, float, float, float]
    angle: float = 0.0


@dataclass(frozen=True)
class Row:
    index: int
    cells: tuple[Cell, ...]
    text: str
    confidence: float  # the weakest cell's


def page_angle(cells: Sequence[Cell]) -> float:
    """Median tilt of the clearly horizontal lines (wider than 2× their height), in degrees."""
    angles = [
        cell.angle
        for cell in cells
        if (cell.box[2] - cell.box[0]) > 2 * (cell.box[3] - cell.box[1]) and abs(cell.angle) < 20
    ]
    return statistics.median(angles) if angles else 0.0


def group_rows(cells: Sequence[Cell]) -> list[Row]:
    """Group lines into printed rows, top to bottom, cells left to right, tilt undone."""
    if not cells:
        return []
    radians = math.radians(page_angle(cells))
    sin, cos = math.sin(radians), math.cos(radians)
    placed = []
    for cell in cells:
        left, top, right, bottom = cell.box
        cx, cy = (left + right) / 2, (top + bottom) / 2
        # The axis-aligned box of tilted text is taller than the text by width·|sin|.
        height = max(4.0, (bottom - top) - (right - left) * abs(sin))
        placed.append((cy * cos - cx * sin, cx * cos + cy * sin, height, cell))
    placed.sort(key=lambda item: item[0])
    groups: list[list[tuple[float, float, float, Cell]]] = []
    for item in placed:
        if groups:
            current = groups[-1]
            center = statistics.fmean(member[0] for member in current)
            height = max(statistics.fmean(member[2] for member in current), item[2])
            if abs(item[0] - center) <= 0.5 * height:
                current.append(item)
                continue
        groups.append([item])
    rows = []
    for index, group in enumerate(groups):
        ordered = tuple(member[3] for member in sorted(group, key=lambda member: member[1]))
        rows.append(
            Row(
                index=index,
                cells=ordered,
                text=" ".join(cell.text for cell in ordered),
                confidence=min(cell.confidence for cell in ordered),
            )
        )
    return rows


# --- keywords ---------------------------------------------------------------------------

_CONFUSABLE = {"0": "O", "1": "I", "L": "I", "|": "I", "!": "I", "5": "S"}


def canonical(text: str) -> tuple[str, list[int]]:
    """Upper-case letters with OCR confusions folded (L/1/| → I, 0 → O, 5 → S), CJK kept.

    Digits count as letters only next to a letter ("T0TAL"), so amounts stay out.
    Returns the folded text and, for each of its characters, the index in ``text``.
    """
    out: list[str] = []
    index: list[int] = []
    for i, ch in enumerate(text):
        upper = ch.upper()
        if "A" <= upper <= "Z":
            folded = _CONFUSABLE.get(upper, upper)
        elif ch in "015|!":
            before = text[i - 1] if i else ""
            after = text[i + 1] if i + 1 < len(text) else ""
            if not (before.isascii() and before.isalpha()) and not (
                after.isascii() and after.isalpha()
            ):
                continue
            folded = _CONFUSABLE[ch]
        elif ch.isascii() or ch.isspace():
            continue
        elif ch.isalpha() or ch in "※":
            folded = ch
        else:
            continue
        out.append(folded)
        index.append(i)
    return "".join(out), index


class Keywords:
    """A set of phrases matched on the canonical form of a row's text."""

    def __init__(self, phrases: str) -> None:
        """``phrases`` separated by "|": "GRAND TOTAL|NET TOTAL"."""
        forms = sorted(
            {canonical(phrase)[0] for phrase in phrases.split("|")}, key=len, reverse=True
        )
        self.pattern = re.compile("|".join(re.escape(form) for form in forms if form))

    def search(self, text: str) -> tuple[int, int] | None:
        """(start, end) in ``text`` of the first phrase found, else None."""
        folded, index = canonical(text)
        match = self.pattern.search(folded)
        if match is None:
            return None
        return index[match.start()], index[match.end() - 1] + 1

    def __contains__(self, text: str) -> bool:
        return self.search(text) is not None


# --- amounts ----------------------------------------------------------------------------

_AMOUNT = re.compile(
    r"(?<![\d_.,:\-])(?P<sign>-\s?)?"
    r"(?P<sym>(?i:RM)|MYR|USD|US\$|S\$|HK\$|\$|¥|€|£|JPY|EUR|GBP|SGD)?\s?"
    r"(?P<num>\d+[:\-]\d{2}(?![\d:\-])|\d{1,3}(?:,\d{3})+(?:\.\d{1,3})?|\d+(?:[.,]\d{1,3})?)"
    r"(?!\s?%)(?![\d])"
    r"(?P<tail>\s?円|-(?!\d))?"
)


@dataclass(frozen=True)
class Amount:
    minor_units: int
    start: int  # where the digits begin (after any sign or symbol)
    end: int
    marked: bool  # printed with a currency symbol or 円
    doubtful: bool = False  # "52-00", "52:00": a decimal point read as a dash or colon


def amounts_in(text: str, currency: str) -> list[Amount]:
    """Amounts printed in ``text`` that fit ``currency``'s decimals, as minor units."""
    exponent = EXPONENTS[currency]
    found = []
    for match in _AMOUNT.finditer(text):
        number = match["num"]
        marked = bool(match["sym"] or (match["tail"] or "").strip() == "円")
        doubtful = bool(re.search(r"[:\-]", number))
        if doubtful and exponent != 2:
            continue
        first = (
            match.start("sign") if match["sign"] else match.start("sym" if match["sym"] else "num")
        )
        glued = first > 0 and text[first - 1].isalpha()
        if glued and ((exponent == 0 and not marked) or doubtful):
            continue  # "レジ001", "No12": a code, not an amount ("FM1.00" is RM misread)
        whole, sep, fraction = _split_decimal(number.replace(":", ".").replace("-", "."))
        if exponent == 0:
            if sep == "." and len(fraction) == 3:  # OCR read "1,234" as "1.234"
                whole, sep, fraction = whole + fraction, "", ""
            if sep:
                continue
        elif len(fraction) != exponent:
            # Receipts in cent currencies print the cents; "RM 6413" is a lost decimal point
            # and a bare "9" a count, so neither is trusted as an amount.
            continue
        printed = whole + ("." + fraction if sep else "")
        try:
            minor = parse_minor_units(printed, currency)
        except MoneyError:
            continue
        if match["sign"]:
            minor = -minor
        found.append(Amount(minor, match.start("num"), match.end(), marked, doubtful))
    return found


def _split_decimal(number: str) -> tuple[str, str, str]:
    """'1,234.50' → ('1234', '.', '50'); '9,00' → ('9', '.', '00'); '1,234' → ('1234', '', '')."""
    if "." in number:
        whole, _, fraction = number.rpartition(".")
        return whole.replace(",", ""), ".", fraction
    head, comma, tail = number.rpartition(",")
    if comma and len(tail) == 2 and "," not in head:
        return head, ".", tail
    return number.replace(",", ""), "", ""


def amount_after(rows: Sequence[Row], row: Row, start: int, currency: str) -> Amount | None:
    """The amount printed after position ``start`` of ``row``, or alone on the next row."""
    after = [amount for amount in amounts_in(row.text, currency) if amount.start >= start]
    if after:
        # Several amounts after the keyword in separate cells: the rightmost is the column.
        return after[-1] if len(row.cells) > 1 else after[0]
    following = rows[row.index + 1] if row.index + 1 < len(rows) else None
    if following is not None and not re.search(r"[^\W\d_]", following.text):
        below = amounts_in(following.text, currency)
        if len(below) == 1:
            return below[0]
    return None


# --- fields: dates and times ------------------------------------------------------------

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("JAN", "JANUARY"),
            ("FEB", "FEBRUARY"),
            ("MAR", "MARCH"),
            ("APR", "APRIL"),
            ("MAY",),
            ("JUN", "JUNE"),
            ("JUL", "JULY"),
            ("AUG", "AUGUST"),
            ("SEP", "SEPT", "SEPTEMBER"),
            ("OCT", "OCTOBER"),
            ("NOV", "NOVEMBER"),
            ("DEC", "DECEMBER"),
        ),
        start=1,
    )
    for name in names
}
_MONTH_FOLDED = {canonical(name)[0]: number for name, number in _MONTHS.items()}
_LOOKALIKE = {"O": "[O0]", "I": "[I1l|]", "L": "[L1l|]", "S": "[S5]"}
_MONTH_NAME = (
    r"(?P<mon>"
    + "|".join(
        "".join(_LOOKALIKE.get(ch, ch) for ch in name)
        for name in sorted(_MONTHS, key=len, reverse=True)
    )
    + r")"
)
_YEAR4 = r"(?:19|20)\d{2}"
_GLUED_TIME = r"(?=\d{1,2}:\d{2})"  # "25/12/20188:13": the date runs into the time
_YEAR = rf"(?P<y>{_YEAR4}{_GLUED_TIME}|{_YEAR4}(?!\d)|\d{{2}}{_GLUED_TIME}|\d{{2}}(?!\d))"
_DATE_PATTERNS: tuple[tuple[re.Pattern[str], str, float], ...] = (
    # 2024年5月12日, 2024/05/12, 2024-05-12, 2024.5.12, 2018-04-0617:36
    (
        re.compile(
            rf"(?<!\d)(?P<y>{_YEAR4})\s?[/.\-年]\s?(?P<m>\d{{1,2}})\s?[/.\-月]\s?"
            rf"(?P<d>\d{{2}}{_GLUED_TIME}|\d{{1,2}}(?!\d))"
        ),
        "ymd",
        1.0,
    ),
    # 25/12/2018, 25-12-18, 12.03.2018, 18-10-1715:16
    (
        re.compile(
            rf"(?<!\d)(?P<a>\d{{1,2}})\s?(?P<s>[/.\-])\s?(?P<b>\d{{1,2}})\s?(?P=s)\s?{_YEAR}"
        ),
        "ab",
        1.0,
    ),
    # 17/012018: the second separator lost
    (
        re.compile(rf"(?<!\d)(?P<a>\d{{1,2}})[/.\-](?P<b>\d{{2}})(?P<y>{_YEAR4})(?!\d)"),
        "ab",
        0.85,
    ),
    # 05 MAR 2018, 05Mar2018, 5-Mar-18, 10 0CT 2017
    (
        re.compile(
            rf"(?<!\d)(?P<d>\d{{1,2}})[\s\-/.]?{_MONTH_NAME}[A-Z]*[\s\-/.,]?\s?{_YEAR}",
            re.IGNORECASE,
        ),
        "dmy",
        1.0,
    ),
    # Mar 5, 2018
    (
        re.compile(
            rf"(?<![A-Z]){_MONTH_NAME}[A-Z]*\.?\s?(?P<d>\d{{1,2}})(?:ST|ND|RD|TH)?,?\s?"
            rf"(?P<y>{_YEAR4})",
            re.IGNORECASE,
        ),
        "mdy",
        1.0,
    ),
)


def _year(text: str) -> int:
    value = int(text[:4]) if len(text) >= 4 else int(text)
    return value + 2000 if value < 100 else value


def dates_in(text: str, *, month_first: bool) -> list[tuple[date, float, int]]:
    """(date, certainty, position) for every date printed in ``text``."""
    found: list[tuple[date, float, int]] = []
    era = find_era_date(text)
    if era is not None:
        found.append((era, 1.0, max(0, text.find("年") - 4)))
    for pattern, kind, certainty_of_kind in _DATE_PATTERNS:
        for match in pattern.finditer(text):
            certainty = certainty_of_kind
            try:
                year = _year(match["y"])
                if kind == "ymd":
                    month, day = int(match["m"]), int(match["d"])
                elif kind == "ab":
                    a, b = int(match["a"]), int(match["b"])
                    if a > 12 and b <= 12:
                        day, month = a, b
                    elif b > 12 and a <= 12:
                        month, day = a, b
                    elif month_first:
                        month, day = a, b
                        certainty *= 0.8 if a != b else 1.0
                    else:
                        day, month = a, b
                        certainty *= 0.8 if a != b else 1.0
                else:
                    month, day = _MONTH_FOLDED[canonical(match["mon"])[0]], int(match["d"])
                if len(match["y"]) == 2:
                    certainty *= 0.9
                    if match.start() and text[match.start() - 1].isalpha():
                        certainty *= 0.5  # "XE11-22-30" is a product code
                found.append((date(year, month, day), certainty, match.start()))
            except ValueError:
                continue
    return found


# A time starts after a non-digit, or right after a date's year ("25/12/20188:13", "02/03/1805:16").
TIME_PATTERN = re.compile(
    r"(?:(?<!\d)|(?<=[/\-.][12][09]\d\d)|(?<=[/\-.]\d\d))(?P<h>[01]?\d|2[0-3])\s?[:：]\s?(?P<m>[0-5]\d)(?:\s?[:：]\s?(?P<s>[0-5]\d))?(?!\d)"
    r"\s?(?P<ampm>[AaPp]\.?\s?[Mm]\.?)?"
)
TIME_JA_PATTERN = re.compile(r"(?P<h>[01]?\d|2[0-3])\s?時\s?(?P<m>[0-5]?\d)\s?分")
