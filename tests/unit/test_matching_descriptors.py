"""Card descriptors vs receipt merchant names: normalisation and similarity."""

import pytest

from seisan_cards.domain.matching.descriptors import (
    merchant_key,
    merchant_signature,
    merchant_similarity,
    normalise_merchant,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("SQ *BLUE BOTTLE COF #0123 SAN FRANCISCO CA", "blue bottle cof"),
        ("SQ*BLUE BOTTLE", "blue bottle"),
        ("TST* THE MILL SAN FRANCISCO CA", "mill"),
        ("TST*SUNNY CEDAR GRILL", "sunny cedar grill"),
        ("PAYPAL *EBAY INC", "ebay"),
        ("AMZN Mktp US*2K3AB1CD0", "amazon"),
        ("Amazon.com*MK1234 Amzn.com/bill WA", "amazon"),
        ("UBER *TRIP HELP.UBER.COM CA", "uber"),
        ("STARBUCKS #12345 SEATTLE WA", "starbucks"),
        ("STARBUCKS STORE 0123", "starbucks"),
        ("Blue Bottle Coffee, Inc.", "blue bottle coffee"),
        ("The Teal Clover Taxi LLC", "teal clover taxi"),
        ("McDonald's #432", "mcdonalds"),
        ("Paris Café", "paris cafe"),
        # width folding: full-width Latin, half-width katakana
        ("ＢＬＵＥ　ＢＯＴＴＬＥ　ＣＯＦＦＥＥ", "blue bottle coffee"),
        ("ｻｸﾗｶﾌｪ", "サクラカフェ"),
        # Japanese corporate forms and branch suffixes
        ("株式会社サクラカフェ", "サクラカフェ"),
        ("サクラカフェ 名古屋駅店", "サクラカフェ"),
        ("(株)吉野家 名古屋駅店", "yoshinoya"),
        ("ｽﾀｰﾊﾞｯｸｽ 春日井店", "starbucks"),
        ("7-ELEVEN 12345 TOKYO JP", "7 eleven"),
        ("セブン-イレブン", "7 eleven"),
    ],
)
def test_normalises_descriptors_and_names(raw, expected):
    assert normalise_merchant(raw) == expected


@pytest.mark.parametrize(
    ("descriptor", "name"),
    [
        ("SQ *BLUE BOTTLE COF #0123 SAN FRANCISCO CA", "Blue Bottle Coffee"),
        ("TST* GOLDEN SPARROW GR   SAN FRANCISCO CA", "The Golden Sparrow Grill LLC"),
        ("ｻｸﾗﾐﾄﾞﾘｶﾌｪ", "株式会社サクラミドリカフェ"),
        ("AMZN Mktp JP*1A2B3C4D5", "Amazon.co.jp"),
        ("NIHON KOTSU TAXI TOKYO", "日本交通株式会社"),
    ],
)
def test_descriptor_resembles_its_merchant(descriptor, name):
    assert merchant_similarity(descriptor, name) >= 0.7


@pytest.mark.parametrize(
    ("a", "b"),
    [
        ("SQ *BLUE BOTTLE COF", "Golden Sparrow Grill"),
        ("ｻｸﾗｶﾌｪ", "ミドリホテル"),
        ("AMZN Mktp US*2K3AB1CD0", "Kobayashi Trading Co."),
    ],
)
def test_different_merchants_do_not_resemble(a, b):
    assert merchant_similarity(a, b) < 0.3


def test_signature_is_stable_and_blocking_key_is_the_first_word():
    # CRC-based bits: the same text gives the same fingerprint in any process
    assert merchant_signature("Blue Bottle Coffee") == merchant_signature("BLUE BOTTLE COFFEE")
    assert any(merchant_signature("Blue Bottle Coffee"))
    assert merchant_key(normalise_merchant("SQ *BLUE BOTTLE")) == "blue"
    assert merchant_key("") == ""
