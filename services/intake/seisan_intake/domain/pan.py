"""Card numbers (PANs) in OCR text: mask all but the last four digits. Pure.

Invariant: text that leaves OCR — stored, logged or published — has passed
through `mask_card_numbers`, so no more than four digits of a card number
survive. A run of digits (and mask characters such as * or X; spaces or dashes
between groups allowed, the way card numbers are printed) is treated as a card
number and masked when it shows more than four digits and

* it is 13–19 digits long and passes the Luhn check (every issued card number
  does), or
* it is printed in card-number groups (4-4-4-4, 4-6-5, 4-4-4-4-3), or
* it already carries mask characters ("411111******1111" shows too much), or
* its line names a card (VISA, CARD, カード, …): then 8–19 digits are enough,
  Luhn or not, because OCR misreads break the check digit.

Other long numbers — GST registration numbers, barcodes, invoice numbers, the
qualified-invoice number T + 13 digits — are left alone: they are not card
numbers and the intake needs some of them.
"""

from __future__ import annotations

import re

__all__ = ["card_last_four", "luhn_valid", "mask_card_numbers"]

_MASK_CHARS = "*Xx•●#＊"
_UNIT = rf"[0-9０-９{re.escape(_MASK_CHARS)}]"
_SEP = r"(?: ?[\-‐－–] ?| {1,2}|　)"
# The first unit may follow a letter only when it is not an X ("AMEX 3782…" is not "X 3782…").
_FIRST = r"(?:[0-9０-９*•●#＊]|(?<![A-Za-z])[Xx])"
_RUN = re.compile(rf"(?<![0-9０-９]){_FIRST}{_UNIT}*(?:{_SEP}{_UNIT}+)*(?![0-9０-９])")
_CARD_WORDS = re.compile(
    r"card|visa|master|amex|american express|jcb|diners|discover|unionpay|maestro|"
    r"カード|クレジット|ｶｰﾄﾞ|会員番号",
    re.IGNORECASE,
)
_MIN_UNITS = 12
_MIN_UNITS_IN_CARD_CONTEXT = 8
_MAX_UNITS = 19


def _is_digit(ch: str) -> bool:
    return "0" <= ch <= "9" or "０" <= ch <= "９"


def _units(run: str) -> str:
    return "".join(ch for ch in run if _is_digit(ch) or ch in _MASK_CHARS)


def _is_invoice_number(text: str, start: int, run: str) -> bool:
    units = _units(run)
    return (
        start > 0
        and text[start - 1] in "TＴ"
        and len(units) == 13
        and all(_is_digit(ch) for ch in units)
    )


def luhn_valid(digits: str) -> bool:
    """The Luhn check every payment card number passes."""
    total = 0
    for position, ch in enumerate(reversed(digits)):
        value = int(ch)
        if position % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


_CARD_GROUPS = {(4, 4, 4, 4), (4, 6, 5), (4, 4, 4, 4, 3), (4, 4, 4, 2), (4, 4, 5), (4, 6, 4)}


def _looks_like_card(run: str, units: str, card_context: bool) -> bool:
    digits = "".join(ch for ch in units if _is_digit(ch))
    if len(digits) <= 4 or len(units) > _MAX_UNITS:
        return False
    if len(units) != len(digits):  # already partly masked
        return len(units) >= _MIN_UNITS
    if card_context and len(units) >= _MIN_UNITS_IN_CARD_CONTEXT:
        return True
    groups = tuple(len(group) for group in re.split(_SEP, run) if group)
    if groups in _CARD_GROUPS:
        return True
    ascii_digits = digits.translate(_FULLWIDTH_DIGITS)
    return 13 <= len(units) and luhn_valid(ascii_digits)


_FULLWIDTH_DIGITS = str.maketrans("０１２３４５６７８９", "0123456789")


def mask_card_numbers(text: str) -> str:
    """'VISA 4111 1111 1111 1234' → 'VISA ************1234'. Idempotent."""
    card_context = bool(_CARD_WORDS.search(text))

    def replace(match: re.Match[str]) -> str:
        run = match.group(0)
        units = _units(run)
        if _is_invoice_number(text, match.start(), run):
            return run
        if not _looks_like_card(run, units, card_context):
            return run
        digits = [ch for ch in units if _is_digit(ch)]
        return "*" * (len(units) - 4) + "".join(digits[-4:])

    return _RUN.sub(replace, text)


_LAST_FOUR = re.compile(
    rf"(?:[{re.escape(_MASK_CHARS)}]{{2,}}{_SEP}?)+(?P<last>[0-9]{{4}})(?![0-9])"
)


def card_last_four(text: str) -> str | None:
    """The last four digits of a (masked) card number in ``text``: '****1234' → '1234'."""
    match = _LAST_FOUR.search(mask_card_numbers(text))
    return match.group("last") if match else None
