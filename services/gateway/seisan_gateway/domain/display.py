"""Amounts and dates as people read them: ¥1,112, $10.59, RM 9.00, 2026-11-02.

Exact: the digits come from :func:`seisan_shared.money.format_major` (integer
minor units, the currency's exponent from the one table), never a float.
"""

from __future__ import annotations

from datetime import date

from seisan_shared.money import MoneyError, format_major

# Prefix symbols for the currencies people here meet most; others print their code.
_PREFIX = {
    "JPY": "¥",
    "USD": "$",
    "EUR": "€",
    "GBP": "£",
    "MYR": "RM ",
    "SGD": "S$",
    "HKD": "HK$",
    "AUD": "A$",
    "CAD": "C$",
    "KRW": "₩",
    "INR": "₹",
    "CNY": "CN¥",
}


def group_thousands(major: str) -> str:
    """'1112' → '1,112'; '-1234567.50' → '-1,234,567.50'."""
    sign = "-" if major.startswith("-") else ""
    whole, dot, frac = major.lstrip("-").partition(".")
    groups: list[str] = []
    while len(whole) > 3:
        groups.insert(0, whole[-3:])
        whole = whole[:-3]
    groups.insert(0, whole)
    return sign + ",".join(groups) + dot + frac


def money(minor_units: int, currency: str) -> str:
    """¥1,112 · $10.59 · -$3.50 · 12.345 BHD; an unknown currency prints units and code."""
    if not currency:
        return ""
    try:
        major = group_thousands(format_major(minor_units, currency))
    except MoneyError:
        return f"{minor_units} {currency}"
    prefix = _PREFIX.get(currency)
    if prefix is None:
        return f"{major} {currency}"
    if major.startswith("-"):
        return f"-{prefix}{major[1:]}"
    return f"{prefix}{major}"


def day(value: date | None) -> str:
    return value.isoformat() if value else ""
