"""Money: integer minor units plus an ISO 4217 currency code. Never a float.

The exponent (number of minor-unit digits) of every currency comes from the
one table below. Parsing accepts what people and receipts print ("1,112",
"¥1,112", "1,112円", "10.59", "$10.59", "RM 9.00", "-3.50") and refuses
anything ambiguous rather than guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

# ISO 4217 minor-unit exponents. Currencies not listed here are refused.
EXPONENTS: dict[str, int] = {
    # zero-decimal
    "JPY": 0,
    "KRW": 0,
    "VND": 0,
    "CLP": 0,
    "ISK": 0,
    "PYG": 0,
    "UGX": 0,
    "XAF": 0,
    "XOF": 0,
    "XPF": 0,
    "KMF": 0,
    "GNF": 0,
    "RWF": 0,
    "VUV": 0,
    "DJF": 0,
    # three-decimal
    "BHD": 3,
    "KWD": 3,
    "OMR": 3,
    "JOD": 3,
    "TND": 3,
    "LYD": 3,
    "IQD": 3,
    # two-decimal
    "USD": 2,
    "EUR": 2,
    "GBP": 2,
    "CHF": 2,
    "CAD": 2,
    "AUD": 2,
    "NZD": 2,
    "SGD": 2,
    "HKD": 2,
    "CNY": 2,
    "TWD": 2,
    "MYR": 2,
    "THB": 2,
    "IDR": 2,
    "PHP": 2,
    "INR": 2,
    "SEK": 2,
    "NOK": 2,
    "DKK": 2,
    "PLN": 2,
    "CZK": 2,
    "HUF": 2,
    "MXN": 2,
    "BRL": 2,
    "ZAR": 2,
    "AED": 2,
    "SAR": 2,
    "ILS": 2,
    "TRY": 2,
    "RUB": 2,
    "ARS": 2,
    "COP": 2,
    "PEN": 2,
    "EGP": 2,
    "NGN": 2,
    "KES": 2,
    "PKR": 2,
    "BDT": 2,
    "LKR": 2,
}

# Symbols and words that name a currency on a receipt. "$" alone means USD
# unless the caller says otherwise; "¥"/"円" mean JPY.
SYMBOLS: dict[str, str] = {
    "¥": "JPY",
    "￥": "JPY",
    "円": "JPY",
    "$": "USD",
    "US$": "USD",
    "€": "EUR",
    "£": "GBP",
    "RM": "MYR",
    "S$": "SGD",
    "HK$": "HKD",
    "A$": "AUD",
    "C$": "CAD",
    "₩": "KRW",
    "₹": "INR",
    "元": "CNY",
    "CHF": "CHF",
    "BD": "BHD",
}


class MoneyError(ValueError):
    """An amount or currency that cannot be represented exactly."""


def exponent(currency: str) -> int:
    """Minor-unit digits of ``currency`` (JPY 0, USD 2, BHD 3)."""
    try:
        return EXPONENTS[currency]
    except KeyError:
        raise MoneyError(f"unknown currency {currency!r} (not in the ISO 4217 table)") from None


def check_currency(currency: str) -> str:
    exponent(currency)
    return currency


@dataclass(frozen=True, order=True)
class Money:
    """An exact amount: ``minor_units`` of ``currency``. Arithmetic refuses mixed currencies."""

    minor_units: int
    currency: str

    def __post_init__(self) -> None:
        if isinstance(self.minor_units, bool) or not isinstance(self.minor_units, int):
            raise MoneyError(f"minor_units must be an int, got {type(self.minor_units).__name__}")
        check_currency(self.currency)

    @classmethod
    def parse(cls, text: str, currency: str) -> Money:
        return cls(parse_minor_units(text, currency), currency)

    def _same(self, other: Money) -> None:
        if not isinstance(other, Money):
            raise TypeError(f"cannot combine Money with {type(other).__name__}")
        if other.currency != self.currency:
            raise MoneyError(f"currency mismatch: {self.currency} vs {other.currency}")

    def __add__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor_units + other.minor_units, self.currency)

    def __sub__(self, other: Money) -> Money:
        self._same(other)
        return Money(self.minor_units - other.minor_units, self.currency)

    def __neg__(self) -> Money:
        return Money(-self.minor_units, self.currency)

    def is_zero(self) -> bool:
        return self.minor_units == 0

    def to_decimal(self) -> Decimal:
        return Decimal(self.minor_units).scaleb(-exponent(self.currency))

    def format(self) -> str:
        """Major units with the currency's digits: '1112 JPY', '10.59 USD'."""
        return f"{format_major(self.minor_units, self.currency)} {self.currency}"

    def __str__(self) -> str:
        return self.format()


def format_major(minor_units: int, currency: str) -> str:
    """'1059','USD' → '10.59'; '1112','JPY' → '1112'; exact, no float."""
    exp = exponent(currency)
    sign = "-" if minor_units < 0 else ""
    digits = str(abs(minor_units))
    if exp == 0:
        return sign + digits
    digits = digits.rjust(exp + 1, "0")
    return f"{sign}{digits[:-exp]}.{digits[-exp:]}"


_STRIP = re.compile(r"[\s\u3000]")
_NUMBER = re.compile(r"^(?P<sign>[-+]?)(?P<int>\d{1,3}(?:,\d{3})+|\d+)(?:\.(?P<frac>\d+))?$")


def _strip_currency_marks(text: str, currency: str) -> str:
    out = text
    for mark in sorted(SYMBOLS, key=len, reverse=True):
        if mark in out:
            named = SYMBOLS[mark]
            # "$" is also part of S$, HK$...; only refuse a mark naming another currency
            # when that mark stands for a different currency and not a generic dollar.
            if named != currency and not (mark == "$" and currency.endswith("D")):
                raise MoneyError(f"{text!r} is marked {mark} ({named}), not {currency}")
            out = out.replace(mark, "")
    if currency in out:
        out = out.replace(currency, "")
    return out


def parse_minor_units(text: str, currency: str) -> int:
    """Parse a printed amount into integer minor units of ``currency``.

    "1,112" / "¥1,112" / "1112円" with JPY → 1112; "10.59" / "$10.59" with USD
    → 1059; "9" with USD → 900. Refuses floats, more fraction digits than the
    currency has (a JPY amount "10.5" is an error, not a rounding), and text
    naming a different currency.
    """
    if isinstance(text, float):
        raise MoneyError("refusing a float amount; pass the printed text or integer minor units")
    if not isinstance(text, str):
        raise MoneyError(f"expected text, got {type(text).__name__}")
    exp = exponent(currency)
    cleaned = _STRIP.sub("", text)
    cleaned = cleaned.replace("，", ",").replace("．", ".").replace("−", "-")
    cleaned = _strip_currency_marks(cleaned, currency)
    if cleaned.endswith("-"):  # "1,112-" as some Japanese receipts print negatives
        cleaned = "-" + cleaned[:-1]
    match = _NUMBER.match(cleaned)
    if not match:
        raise MoneyError(f"{text!r} is not an amount")
    whole = match.group("int").replace(",", "")
    frac = match.group("frac") or ""
    if len(frac) > exp:
        if frac.strip("0") and len(frac.rstrip("0")) > exp:
            raise MoneyError(f"{text!r} has {len(frac)} decimal digits; {currency} has {exp}")
        frac = frac[:exp]
    frac = frac.ljust(exp, "0")
    value = int(whole + frac) if exp else int(whole)
    return -value if match.group("sign") == "-" else value


def from_decimal(amount: Decimal, currency: str) -> int:
    """Exact conversion of a Decimal major amount into minor units (refuses rounding)."""
    exp = exponent(currency)
    try:
        scaled = amount.scaleb(exp)
    except InvalidOperation:
        raise MoneyError(f"{amount!r} is not a number") from None
    if scaled != scaled.to_integral_value():
        raise MoneyError(f"{amount} has more decimal digits than {currency} ({exp})")
    return int(scaled)
