import pytest

from seisan_cards.adapters.statements.pan import (
    contains_pan,
    find_pans,
    is_pan,
    last4_of_account,
    luhn_valid,
    redact_pans,
)

# Published test card numbers (Visa, Mastercard, Amex, Diners, JCB) and a 19-digit one.
TEST_PANS = [
    "4111111111111111",
    "5555555555554444",
    "378282246310005",
    "36227206271667",
    "3530111333300000",
    "4000056655665556",
    "4617000000000000007",
]


@pytest.mark.parametrize("pan", TEST_PANS)
def test_test_card_numbers_pass_luhn_and_one_digit_changed_fails(pan):
    assert luhn_valid(pan)
    assert is_pan(pan)
    changed = pan[:-1] + str((int(pan[-1]) + 1) % 10)
    assert not luhn_valid(changed)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("4111111111111111", "************1111"),
        ("card 4111 1111 1111 1111 used", "card ************1111 used"),
        ("card 4111-1111-1111-1111.", "card ************1111."),
        ("REF4111111111111111X", "REF************1111X"),
        ("amex 3782 822463 10005 ok", "amex ***********0005 ok"),
        ("4111111111111111 and 5555555555554444", "************1111 and ************4444"),
        # A PAN glued by one space to a long reference is still found.
        ("4111111111111111 74463669002900021662792", "************1111 74463669002900021662792"),
    ],
)
def test_redaction_keeps_only_the_last_four(text, expected):
    assert redact_pans(text) == expected
    assert not contains_pan(redact_pans(text))


@pytest.mark.parametrize(
    "text",
    [
        "4111111111111112",  # fails Luhn
        "411111111111",  # 12 digits: too short
        "74463669002900021662792",  # 23-digit acquirer reference (Luhn-valid, not a card)
        "2026-11-30",
        "Total 1,112 JPY",
        "tel 03-1234-5678",
        "",
    ],
)
def test_what_is_not_a_card_number_is_left_alone(text):
    assert find_pans(text) == []
    assert redact_pans(text) == text


def test_luhn_rejects_non_digits():
    assert not luhn_valid("41111111111111a1")
    assert not luhn_valid("")


@pytest.mark.parametrize(
    ("raw", "last4"),
    [
        ("2344534566756756   ", "6756"),
        ("012345678910113", "0113"),
        ("************1234", "1234"),
        ("4111 XXXX XXXX 1234", "1234"),
        ("1234", "1234"),
        ("", None),
        ("123", None),
        ("ABCD", None),
        ("12345678901234567890", None),
    ],
)
def test_last_four_of_an_account_field(raw, last4):
    assert last4_of_account(raw) == last4
