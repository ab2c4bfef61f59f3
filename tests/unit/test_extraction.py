"""Field extraction from OCR lines written by hand: English, Malaysian, Japanese, US tips."""

from __future__ import annotations

import math
import re
from datetime import date, time

import pytest

from seisan_intake.domain.extraction import (
    ExtractedReceipt,
    OcrLine,
    PaymentMethod,
    extract,
    review_reasons,
)

Row = str | tuple[str, str]


def receipt(
    *rows: Row, angle: float = 0.0, confidence: float = 0.97, width: float = 600.0
) -> list[OcrLine]:
    """OCR lines for printed rows: "text" on the left, or ("label", "amount") across the row.

    ``angle`` tilts the page (degrees, clockwise): the right-hand cells sit lower.
    """
    lines = []
    slope = math.tan(math.radians(angle))
    for index, row in enumerate(rows):
        top = 40.0 + index * 36.0
        cells = [(row, 20.0)] if isinstance(row, str) else [(row[0], 20.0), (row[1], 420.0)]
        for text, left in cells:
            text_width = min(width - left, 14.0 * len(text))
            shift = slope * (left + text_width / 2)
            box = (
                left,
                top + shift,
                left + text_width,
                top + 26.0 + shift + abs(slope) * text_width,
            )
            lines.append(OcrLine(text, confidence, box, angle))
    return lines


MALAYSIAN = receipt(
    "tan woon yann",  # the scanner's hand-written name
    "SOON HUAT MACHINERY ENTERPRISE",
    "(JM0352019-K)",
    "NO.53 JALAN PUTRA 1,",
    "81200 JOHOR BAHRU",
    "GST ID: 002116837376",
    "CASH SALES",
    "Date:11/01/2019 Time:09:44:00",
    ("REPAIR ENGINE", "160.00"),
    ("Total Qty 9", "327.00"),
    ("Total Sales (Incl GST):", "327.00"),
    ("Rounding", "0.00"),
    ("Total:", "RM 327.00"),
    ("CASH", "350.00"),
    ("Change", "23.00"),
)


def test_malaysian_receipt() -> None:
    found = extract(MALAYSIAN)
    assert found.merchant is not None and found.merchant.value == "SOON HUAT MACHINERY ENTERPRISE"
    assert found.currency is not None and found.currency.value == "MYR"
    assert found.total is not None and found.total.value == 32700
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2019, 1, 11)  # day first outside the US
    assert found.transaction_time is not None and found.transaction_time.value == time(9, 44)
    assert found.cash_tendered is not None and found.cash_tendered.value == 35000
    assert found.change is not None and found.change.value == 2300
    assert found.payment_method is not None and found.payment_method.value is PaymentMethod.CASH
    assert found.total.confidence >= 0.8
    assert review_reasons(found) == []


def test_legal_name_with_registration_number_and_rounded_total() -> None:
    found = extract(
        receipt(
            "B.I.G.",
            "BENS INDEPENDENT GROCER SDN.BHD (913144-A)",
            "Lot 6, Jalan Batai,",
            "12/03/18 20:29:59",
            ("Total RM Incl. of GST", "49.39"),
            ("Rounding Adj", "0.01"),
            ("Total RM", "49.40"),
            ("Cash", "50.00"),
            ("CHANGE", "0.60"),
        )
    )
    assert found.merchant is not None and found.merchant.value == "BENS INDEPENDENT GROCER SDN.BHD"
    # Cash rounding to 5 sen: the rounded figure is what was paid.
    assert found.total is not None and found.total.value == 4940
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2018, 3, 12)


def test_ocr_glitches_in_keywords_and_dates() -> None:
    found = extract(
        receipt(
            "HOME MASTER HARDWARE &",
            "ELECTRICAL",
            "Date: 25/12/20188:13:39 PM",  # the date runs into the time
            ("Subtotai:", "15.90"),
            ("Round:d Totai (RM):", "15.90"),
            ("Payment:", "50.00"),
            ("Change Due:", "34.10"),
        )
    )
    assert (
        found.merchant is not None and found.merchant.value == "HOME MASTER HARDWARE & ELECTRICAL"
    )
    assert found.total is not None and found.total.value == 1590
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2018, 12, 25)
    assert found.transaction_time is not None and found.transaction_time.value == time(20, 13, 39)


def test_month_names_and_expiry_dates() -> None:
    found = extract(
        receipt(
            "UNIHAKKA INTERNATIONAL SDN BHD",
            "Member Card Expiry: 30/09/19",
            "05Mar201818:24",
            ("Nett Total:", "$8.20"),
        )
    )
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2018, 3, 5)
    assert found.total is not None and found.total.value == 820


US_TIP = receipt(
    "BLUE BOTTLE CAFE",
    "123 Main St, Oakland CA",
    "03/05/2024 7:42 PM",
    ("Latte", "$5.50"),
    ("Sandwich", "$14.50"),
    ("Subtotal", "$20.00"),
    ("Tax", "$1.75"),
    ("Tip", "$4.00"),
    ("Total", "$25.75"),
    "VISA ************1234",
    "Suggested tip: 18% $3.60",
)


def test_us_receipt_with_tip_and_card() -> None:
    found = extract(US_TIP)
    assert found.currency is not None and found.currency.value == "USD"
    assert found.total is not None and found.total.value == 2575
    assert found.subtotal is not None and found.subtotal.value == 2000
    assert found.tax is not None and found.tax.value == 175
    assert found.tip is not None and found.tip.value == 400  # not the suggestion
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2024, 3, 5)  # month first in the US
    assert found.transaction_time is not None and found.transaction_time.value == time(19, 42)
    assert found.card_last_four is not None and found.card_last_four.value == "1234"
    assert found.payment_method is not None and found.payment_method.value is PaymentMethod.CARD
    assert found.merchant is not None and found.merchant.value == "BLUE BOTTLE CAFE"


JAPANESE_CASH = receipt(
    "領収書",
    "ファミリーマート 新宿西口店",
    "東京都新宿区西新宿1-2-3",
    "TEL 03-1234-5678",
    "登録番号 T7123456789012",
    "令和6年5月12日(日) 14:32",
    ("おにぎり 鮭", "¥150※"),
    ("ボールペン", "¥220"),
    ("小計", "¥370"),
    ("(10%対象 ¥220", "内消費税 ¥20)"),
    ("(8%対象 ¥150", "内消費税 ¥11)"),
    ("合計", "¥370-"),
    ("お預り", "¥1,000"),
    ("お釣り", "¥630"),
)


def test_japanese_cash_receipt() -> None:
    found = extract(JAPANESE_CASH)
    assert found.merchant is not None and found.merchant.value == "ファミリーマート 新宿西口店"
    assert found.currency is not None and found.currency.value == "JPY"
    assert found.total is not None and found.total.value == 370  # "¥370-": not negative
    assert found.subtotal is not None and found.subtotal.value == 370
    assert found.tax is not None and found.tax.value == 31  # 8% and 10% lines added up
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2024, 5, 12)
    assert found.transaction_time is not None and found.transaction_time.value == time(14, 32)
    assert found.cash_tendered is not None and found.cash_tendered.value == 1000
    assert found.change is not None and found.change.value == 630
    assert found.invoice_number is not None and found.invoice_number.value == "T7123456789012"
    assert found.invoice_number_valid is True
    assert found.payment_method is not None and found.payment_method.value is PaymentMethod.CASH
    assert review_reasons(found) == []


def test_japanese_card_receipt_full_width_and_tax_exclusive() -> None:
    found = extract(
        receipt(
            "株式会社 山田文具店",
            "２０２４年１１月３日 ９：０５",
            ("ノート Ａ５", "１８０円"),
            ("小計", "1,180円"),
            ("消費税等(10%)", "118円"),
            ("合計", "1,298円"),
            ("クレジット VISA", "1,298円"),
            "カード番号 ************5302",
        )
    )
    assert found.merchant is not None and found.merchant.value == "株式会社 山田文具店"
    assert found.total is not None and found.total.value == 1298
    assert found.tax is not None and found.tax.value == 118
    assert found.transaction_date is not None
    assert found.transaction_date.value == date(2024, 11, 3)
    assert found.transaction_time is not None and found.transaction_time.value == time(9, 5)
    assert found.card_last_four is not None and found.card_last_four.value == "5302"
    assert found.payment_method is not None and found.payment_method.value is PaymentMethod.CARD


def test_electronic_money_and_simplified_chinese_ocr_forms() -> None:
    found = extract(
        receipt(
            "ローソン 梅田店",
            "2023/03/18(土) 16:35",
            ("消费税等(10%)", "¥436"),  # PP-OCR answers 费 for 費
            ("合計", "¥5,817"),
            ("交通系IC", "¥5,817"),
            "電子マネ一支払",
        )
    )
    assert found.total is not None and found.total.value == 5817
    assert found.tax is not None and found.tax.value == 436
    assert found.payment_method is not None
    assert found.payment_method.value is PaymentMethod.ELECTRONIC
    assert "電子マネー支払" in found.ocr_text


def test_tilted_photo_rows_still_pair_labels_with_amounts() -> None:
    found = extract(receipt(*JAPANESE_CASH_ROWS, angle=5.0))
    assert found.total is not None and found.total.value == 370
    assert found.change is not None and found.change.value == 630


JAPANESE_CASH_ROWS: tuple[Row, ...] = (
    "ファミリーマート 新宿西口店",
    "令和6年5月12日 14:32",
    ("小計", "¥370"),
    ("内消費税", "¥31"),
    ("合計", "¥370"),
    ("お預り", "¥1,000"),
    ("お釣り", "¥630"),
)


def test_card_numbers_never_leave_extraction_unmasked() -> None:
    found = extract(
        receipt(
            "CORNER SHOP LTD",
            "01/02/2024",
            ("TOTAL", "£12.00"),
            "VISA 4111 1111 1111 1111",
            "AUTH 123456",
        )
    )
    everything = repr(found)
    assert "4111 1111" not in everything and "4111111111111111" not in everything
    assert "************1111" in found.ocr_text
    assert found.card_last_four is not None and found.card_last_four.value == "1111"
    assert all(
        not re.search(r"\d{5,}", source) for source in _sources(found) if "AUTH" not in source
    )
    assert found.currency is not None and found.currency.value == "GBP"


def _sources(found: ExtractedReceipt) -> list[str]:
    return [
        value.source
        for value in vars(found).values()
        if hasattr(value, "source") and isinstance(value.source, str)
    ]


def test_a_loyalty_card_number_is_not_the_payment_card() -> None:
    found = extract(
        receipt(
            "POPULAR BOOK CO. (M) SDN BHD",
            "01/03/18 19:14",
            "Member Card No:2008011381468",
            ("Total RM", "49.40"),
            ("Cash", "50.00"),
        )
    )
    assert found.card_last_four is None
    assert found.payment_method is not None and found.payment_method.value is PaymentMethod.CASH
    assert "2008011381468" not in found.ocr_text  # masked all the same


def test_review_reasons_when_fields_are_missing_or_weak() -> None:
    empty = extract([])
    assert review_reasons(empty) == [
        "total not found",
        "date not found",
        "merchant not found",
        "currency not found",
    ]
    weak = extract(receipt("Some Shop", "01/02/2024", ("Total", "9.99")), default_currency="USD")
    reasons = review_reasons(weak)
    assert weak.currency is not None and weak.currency.confidence == 0.5
    assert "currency confidence 0.50 < 0.6" in reasons
    assert review_reasons(weak, threshold=0.4) == []


def test_review_flags_low_total_confidence_bad_invoice_and_future_date() -> None:
    lines = receipt(
        "居酒屋 はなまる", "令和6年5月12日", "登録番号 T7123456789013", ("合計", "¥3,300")
    )
    blurry = [OcrLine(line.text, 0.45, line.box) for line in lines]
    found = extract(blurry)
    reasons = review_reasons(found, today=date(2024, 5, 1))
    assert any(re.fullmatch(r"total confidence 0\.\d\d < 0\.6", reason) for reason in reasons)
    assert "invoice number T7123456789013 fails its check digit" in reasons
    assert "date 2024-05-12 is in the future" in reasons
    assert found.invoice_number_valid is False


def test_no_currency_without_evidence_or_default() -> None:
    found = extract(receipt("ACME", "2024-01-02", ("TOTAL", "12.50")))
    assert found.currency is None and found.total is None
    with_default = extract(
        receipt("ACME", "2024-01-02", ("TOTAL", "12.50")), default_currency="EUR"
    )
    assert with_default.total is not None and with_default.total.value == 1250


def test_a_jpy_default_refuses_cents() -> None:
    found = extract(receipt("ACME", "2024-01-02", ("TOTAL", "12.50")), default_currency="JPY")
    assert found.total is None  # yen have no cents: "12.50" is not a yen amount
    assert "total not found" in review_reasons(found)


def test_fields_dict_is_json_ready() -> None:
    fields = extract(JAPANESE_CASH).fields_dict()
    assert fields["total"] == {
        "minor_units": 370,
        "currency": "JPY",
        "confidence": fields["total"]["confidence"],
    }
    assert fields["transaction_date"]["value"] == "2024-05-12"
    assert fields["transaction_time"]["value"] == "14:32"
    assert fields["payment_method"]["value"] == "cash"
    assert fields["invoice_number"]["valid"] is True
    assert 0 < fields["merchant"]["confidence"] <= 1


@pytest.mark.parametrize("text", ["", "   "])
def test_blank_lines_are_ignored(text: str) -> None:
    found = extract([OcrLine(text, 0.9, (0, 0, 10, 10))])
    assert found.ocr_text == "" and found.total is None


@pytest.mark.parametrize(
    ("rows", "currency"),
    [
        (("SHOP", ("TOTAL", "RM 9.00")), "MYR"),
        (("SHOP SDN BHD", ("TOTAL", "$8.20")), "MYR"),  # Malaysian receipts print $ for ringgit
        (("DINER", ("TOTAL", "$8.20")), "USD"),
        (("DINER", ("TOTAL", "US$8.20")), "USD"),
        (("HAWKER", ("TOTAL", "S$8.20")), "SGD"),
        (("CAFE", ("TOTAL", "€8,20")), "EUR"),
        (("PUB", ("TOTAL", "£8.20")), "GBP"),
        (("SHOP", ("TOTAL", "CHF 8.20")), "CHF"),
        (("店", ("合計", "1,234円")), "JPY"),
        (("ローソン", ("合計", "1,234")), "JPY"),  # kana alone says Japan
    ],
)
def test_currency_from_symbols_codes_and_context(rows: tuple[Row, ...], currency: str) -> None:
    found = extract(receipt(*rows))
    assert found.currency is not None and found.currency.value == currency
    assert found.total is not None
