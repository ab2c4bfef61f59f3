"""Find and redact card numbers (PANs) in text, keeping only the last four digits.

A PAN here is 13 to 19 digits, optionally written in groups separated by single
spaces or dashes ("4111 1111 1111 1111", "4111-1111-1111-1111"), that passes the
Luhn check. Runs of digits longer than that (acquirer references, 23 digits) are
not PANs as a whole, but a PAN written as leading or trailing groups of such a
run is still found. Every raw text field of a statement goes through
:func:`redact_pans` before it is kept, stored or logged.
"""

from __future__ import annotations

import re

_GROUPS = re.compile(r"\d+(?:[ -]\d+)*")
_POSSIBLE = re.compile(r"\d(?:[ -]?\d){12}")  # 13 digits at least: the cheap first look
_SEPARATORS = re.compile(r"[ -]")
_MASKED = re.compile(r"[0-9]{0,8}[*xX•·#]+([0-9]{4})", re.ASCII)

PAN_MIN_DIGITS = 13
PAN_MAX_DIGITS = 19


def luhn_valid(digits: str) -> bool:
    """The Luhn (mod 10) check used by every card number."""
    if not digits.isdigit():
        return False
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def is_pan(text: str) -> bool:
    """True when ``text`` (spaces and dashes allowed) is exactly one Luhn-valid card number."""
    digits = _SEPARATORS.sub("", text.strip())
    return PAN_MIN_DIGITS <= len(digits) <= PAN_MAX_DIGITS and luhn_valid(digits)


def _pan_spans(run: str) -> list[tuple[int, int]]:
    """Spans (within ``run``) of whole groups that form a PAN, longest first, not overlapping."""
    groups = [(m.start(), m.end()) for m in re.finditer(r"\d+", run)]
    found: list[tuple[int, int]] = []
    taken = [False] * len(groups)
    candidates = []
    for i in range(len(groups)):
        count = 0
        for j in range(i, len(groups)):
            count += groups[j][1] - groups[j][0]
            if count > PAN_MAX_DIGITS:
                break
            if count >= PAN_MIN_DIGITS:
                candidates.append((count, i, j))
    for _count, i, j in sorted(candidates, key=lambda c: (-c[0], c[1])):
        if any(taken[i : j + 1]):
            continue
        span = run[groups[i][0] : groups[j][1]]
        if luhn_valid(_SEPARATORS.sub("", span)):
            for k in range(i, j + 1):
                taken[k] = True
            found.append((groups[i][0], groups[j][1]))
    return sorted(found)


def find_pans(text: str) -> list[tuple[int, int]]:
    """Start and end offsets of every card number in ``text``."""
    spans: list[tuple[int, int]] = []
    if not _POSSIBLE.search(text):
        return spans
    for match in _GROUPS.finditer(text):
        # A digit run glued to letters ("REF4111111111111111") still counts.
        for start, end in _pan_spans(match.group()):
            spans.append((match.start() + start, match.start() + end))
    return spans


def _masked(pan: str) -> str:
    digits = _SEPARATORS.sub("", pan)
    return "*" * (len(digits) - 4) + digits[-4:]


def redact_pans(text: str) -> str:
    """``text`` with every card number replaced by stars and its last four digits."""
    spans = find_pans(text)
    if not spans:
        return text
    out = []
    last = 0
    for start, end in spans:
        out.append(text[last:start])
        out.append(_masked(text[start:end]))
        last = end
    out.append(text[last:])
    return "".join(out)


def contains_pan(text: str) -> bool:
    return bool(find_pans(text))


def last4_of_account(raw: str) -> str | None:
    """Last four digits of an account-number field of a card feed, or None if it has none.

    The field may hold a full card number (kept to its last four digits whether or
    not it passes Luhn: the feed says it is the card), a masked number
    ("************1234", "4111 XXXX XXXX 1234") or the last four alone.
    """
    compact = _SEPARATORS.sub("", raw.strip())
    if compact.isascii() and compact.isdigit() and 4 <= len(compact) <= PAN_MAX_DIGITS:
        return compact[-4:]
    masked = _MASKED.fullmatch(compact)
    if masked:
        return masked.group(1)
    return None
