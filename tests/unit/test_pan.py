"""Card numbers in OCR text are masked to their last four digits."""

from __future__ import annotations

import random
import re

import pytest

from seisan_intake.domain.pan import card_last_four, luhn_valid, mask_card_numbers


def luhn_number(rng: random.Random, length: int) -> str:
    body = [rng.randrange(10) for _ in range(length - 1)]
    for check in range(10):
        candidate = "".join(map(str, body)) + str(check)
        if luhn_valid(candidate):
            return candidate
    raise AssertionError("unreachable: one check digit always fits")


@pytest.mark.parametrize(
    ("text", "masked"),
    [
        ("VISA 4111 1111 1111 1234", "VISA ************1234"),
        ("4111111111111111", "************1111"),
        ("4111-1111-1111-1111", "************1111"),
        ("AMEX 3782 822463 10005", "AMEX ***********0005"),
        ("カード番号 1234-5678-9012-3456", "カード番号 ************3456"),
        ("CARD 4111 1111 1111", "CARD ********1111"),  # a group lost by OCR, card context
        ("411111******1111", "************1111"),  # first six shown: too many
        ("Card No: ４１１１ １１１１ １１１１ １１１１", "Card No: ************１１１１"),
    ],
)
def test_card_numbers_are_masked_to_last_four(text: str, masked: str) -> None:
    assert mask_card_numbers(text) == masked


@pytest.mark.parametrize(
    "text",
    [
        "************1234",
        "XXXX XXXX XXXX 1234",
        "VISA ****1234",
        "登録番号 T7123456789012",  # qualified-invoice number: public, needed
        "GST Reg No.:001637511168",  # a tax registration number, not a card
        "9556939040116",  # an EAN-13 barcode (fails Luhn)
        "TEL 03-1234-5678",
        "TOTAL 1,234.50",
        "25/12/2018 20:13:39",
        "1234",
    ],
)
def test_other_text_is_left_alone(text: str) -> None:
    assert mask_card_numbers(text) == text


def test_masking_is_idempotent_and_keeps_no_more_than_four_digits() -> None:
    rng = random.Random(20261128)
    for length in range(13, 20):
        for _ in range(30):
            number = luhn_number(rng, length)
            groups = [number[i : i + 4] for i in range(0, len(number), 4)]
            for printed in (number, " ".join(groups), "-".join(groups)):
                masked = mask_card_numbers(f"paid {printed} thanks")
                assert number not in masked.replace(" ", "")
                digits = re.sub(r"\D", "", masked)
                assert digits == number[-4:], (printed, masked)
                assert mask_card_numbers(masked) == masked


def test_luhn() -> None:
    assert luhn_valid("4111111111111111")
    assert luhn_valid("378282246310005")
    assert not luhn_valid("4111111111111112")


@pytest.mark.parametrize(
    ("text", "last_four"),
    [
        ("VISA ************1234", "1234"),
        ("Card: XXXX-XXXX-XXXX-9876", "9876"),
        ("VISA 4111 1111 1111 4321", "4321"),
        ("カード番号 ****-****-****-5302", "5302"),
        ("TOTAL 12.50", None),
        ("TEL 03-1234-5678", None),
    ],
)
def test_card_last_four(text: str, last_four: str | None) -> None:
    assert card_last_four(text) == last_four
