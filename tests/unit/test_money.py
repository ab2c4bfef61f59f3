from decimal import Decimal

import pytest

from seisan_shared.money import (
    EXPONENTS,
    Money,
    MoneyError,
    exponent,
    format_major,
    from_decimal,
    parse_minor_units,
)


@pytest.mark.parametrize(
    ("text", "currency", "expected"),
    [
        ("1,112", "JPY", 1112),
        ("¥1,112", "JPY", 1112),
        ("￥1,112", "JPY", 1112),
        ("1,112円", "JPY", 1112),
        ("1112", "JPY", 1112),
        ("10.59", "USD", 1059),
        ("$10.59", "USD", 1059),
        ("9", "USD", 900),
        ("9.5", "USD", 950),
        ("RM 9.00", "MYR", 900),
        ("1.234", "BHD", 1234),
        ("-3.50", "EUR", -350),
        ("€3.50", "EUR", 350),
        ("1,234,567.89", "USD", 123456789),
        ("１，１１２", "JPY", 1112),
        ("1,112-", "JPY", -1112),
        ("10.590", "USD", 1059),  # a trailing zero adds no precision
    ],
)
def test_parses_printed_amounts_into_minor_units(text, currency, expected):
    assert parse_minor_units(text, currency) == expected


@pytest.mark.parametrize(
    ("text", "currency", "problem"),
    [
        ("10.5", "JPY", "decimal digits"),
        ("10.591", "USD", "decimal digits"),
        ("¥1,112", "USD", "JPY"),
        ("abc", "USD", "not an amount"),
        ("", "USD", "not an amount"),
        ("1,12", "USD", "not an amount"),
        ("10", "XYZ", "unknown currency"),
    ],
)
def test_refuses_what_it_cannot_represent_exactly(text, currency, problem):
    with pytest.raises(MoneyError, match=problem):
        parse_minor_units(text, currency)


def test_refuses_floats_everywhere():
    with pytest.raises(MoneyError, match="float"):
        parse_minor_units(10.59, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(10.59, "USD")  # type: ignore[arg-type]
    with pytest.raises(MoneyError):
        Money(True, "USD")  # type: ignore[arg-type]


def test_exponent_table():
    assert (exponent("JPY"), exponent("USD"), exponent("BHD")) == (0, 2, 3)
    assert all(code.isupper() and len(code) == 3 for code in EXPONENTS)


def test_format_and_decimal_round_trip():
    assert format_major(1059, "USD") == "10.59"
    assert format_major(5, "USD") == "0.05"
    assert format_major(-5, "USD") == "-0.05"
    assert format_major(1112, "JPY") == "1112"
    assert format_major(1234, "BHD") == "1.234"
    assert Money(1059, "USD").to_decimal() == Decimal("10.59")
    assert from_decimal(Decimal("10.59"), "USD") == 1059
    with pytest.raises(MoneyError):
        from_decimal(Decimal("10.591"), "USD")


def test_arithmetic_refuses_mixed_currencies():
    assert Money(100, "JPY") + Money(12, "JPY") == Money(112, "JPY")
    assert Money(100, "USD") - Money(1, "USD") == Money(99, "USD")
    with pytest.raises(MoneyError, match="mismatch"):
        Money(100, "JPY") + Money(100, "USD")
