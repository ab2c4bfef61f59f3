"""Japanese eras, full-width text and qualified-invoice numbers."""

from __future__ import annotations

from datetime import date

import pytest

from seisan_intake.domain.japanese import (
    era_to_gregorian,
    find_era_date,
    find_invoice_number,
    invoice_check_digit,
    is_valid_invoice_number,
    kanji_number,
    normalize,
    repair_ocr,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("令和6年5月12日", date(2024, 5, 12)),
        ("令和元年5月1日", date(2019, 5, 1)),  # 元年: the first year of the era
        ("令和1年5月1日", date(2019, 5, 1)),
        ("平成31年4月30日", date(2019, 4, 30)),  # the last day of Heisei
        ("平成元年1月8日", date(1989, 1, 8)),
        ("昭和64年1月7日", date(1989, 1, 7)),
        ("昭和50年10月1日", date(1975, 10, 1)),
        ("令和６年１２月３１日", date(2024, 12, 31)),  # full-width digits
        ("令和 6 年 5 月 12 日", date(2024, 5, 12)),
        ("令和六年五月十二日", date(2024, 5, 12)),  # kanji numerals
        ("令和七年十一月三十日", date(2025, 11, 30)),
        ("㋿6年5月12日", date(2024, 5, 12)),  # the one-character era sign
        ("ご利用日 R6.5.12 14:32", date(2024, 5, 12)),
        ("R06/05/12", date(2024, 5, 12)),
        ("H31-04-30", date(2019, 4, 30)),
        ("発行 令和8年11月1日(日) 10:05", date(2026, 11, 1)),
    ],
)
def test_era_dates_become_gregorian(text: str, expected: date) -> None:
    assert find_era_date(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "令和1年4月30日",  # Reiwa began on 2019-05-01
        "平成元年1月7日",  # Heisei began on 1989-01-08
        "令和6年2月30日",  # no such day
        "2024年5月12日",  # Gregorian, not an era date
        "TEL 03-1234-5678",
    ],
)
def test_impossible_or_absent_era_dates_are_none(text: str) -> None:
    assert find_era_date(text) is None


def test_era_by_letter_and_refusals() -> None:
    assert era_to_gregorian("R", 6, 5, 12) == date(2024, 5, 12)
    assert era_to_gregorian("h", 2, 1, 1) == date(1990, 1, 1)
    with pytest.raises(ValueError, match="unknown era"):
        era_to_gregorian("X", 1, 1, 1)
    with pytest.raises(ValueError, match="≥ 1"):
        era_to_gregorian("令和", 0, 5, 1)
    # Printed after the era ended (old POS software): still a real date, so accepted.
    assert era_to_gregorian("平成", 31, 6, 1) == date(2019, 6, 1)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("元", 1),
        ("六", 6),
        ("十", 10),
        ("十二", 12),
        ("二十", 20),
        ("三十一", 31),
        ("二〇二四", 2024),
        ("１２", 12),
        ("百", None),
        ("", None),
    ],
)
def test_kanji_numbers(text: str, value: int | None) -> None:
    assert kanji_number(text) == value


def test_normalize_folds_full_width_forms() -> None:
    assert normalize("ＴＯＴＡＬ　￥１，２３４") == "TOTAL ¥1,234"
    assert normalize("ｺｰﾋｰ") == "コーヒー"  # half-width katakana


def test_repair_ocr_fixes_lookalikes_in_japanese_context() -> None:
    assert repair_ocr("消费税等(10%)") == "消費税等(10%)"
    assert repair_ocr("力一ド番号") == "カード番号"
    assert repair_ocr("電子マネ一支払") == "電子マネー支払"
    assert repair_ocr("梅田ニ丁目") == "梅田二丁目"
    # Real kanji and real katakana are left alone.
    assert repair_ocr("一万円 スターバックス 二丁目") == "一万円 スターバックス 二丁目"


def test_invoice_check_digit_known_example() -> None:
    assert invoice_check_digit("123456789012") == 7
    assert is_valid_invoice_number("T7123456789012")
    assert is_valid_invoice_number("7123456789012")
    assert is_valid_invoice_number("Ｔ７１２３４５６７８９０１２")  # full width
    assert is_valid_invoice_number("T7-1234-5678-9012")


@pytest.mark.parametrize("position", range(13))
def test_changing_any_one_digit_breaks_the_check(position: int) -> None:
    digits = list("7123456789012")
    digits[position] = "8" if digits[position] == "9" else str(int(digits[position]) + 1)
    assert not is_valid_invoice_number("T" + "".join(digits))


def test_the_mod_9_check_cannot_tell_0_from_9() -> None:
    # A property of the National Tax Agency's rule, not of our code: 0 and 9 weigh the same.
    assert is_valid_invoice_number("T7123456780012")


@pytest.mark.parametrize("text", ["T712345678901", "T71234567890123", "TX123456789012", "", "T"])
def test_malformed_invoice_numbers_are_invalid(text: str) -> None:
    assert not is_valid_invoice_number(text)


def test_check_digit_needs_twelve_digits() -> None:
    with pytest.raises(ValueError, match="12 digits"):
        invoice_check_digit("12345")


def test_find_invoice_number_in_a_receipt_line() -> None:
    assert find_invoice_number("登録番号 T7123456789012") == ("T7123456789012", True)
    assert find_invoice_number("登録番号：Ｔ７１２３４５６７８９０１２") == ("T7123456789012", True)
    assert find_invoice_number("登録番号 T7123456789013") == ("T7123456789013", False)
    assert find_invoice_number("TEL 03-1234-5678") is None
