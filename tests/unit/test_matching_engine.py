"""Batch matching engine: tolerances, signals, assignment, splits, rejections, determinism."""

import datetime as dt

import pytest

from seisan_cards.domain.matching import (
    ChargeView,
    Match,
    MatchStatus,
    ReceiptView,
    Thresholds,
    reconcile,
)

DAY = dt.date(2026, 11, 3)


def charge(
    charge_id="c1",
    amount=1500,
    currency="JPY",
    *,
    holder="alice",
    last4="1234",
    merchant="SQ *BLUE BOTTLE",
    mcc=5814,
    lag=0,
    original=None,
    original_currency=None,
):
    day = DAY + dt.timedelta(days=lag)
    return ChargeView(
        charge_id=charge_id,
        card_last4=last4,
        cardholder=holder,
        transaction_date=day,
        posting_date=day + dt.timedelta(days=2),
        merchant=merchant,
        mcc=mcc,
        amount_minor=amount,
        currency=currency,
        original_amount_minor=original,
        original_currency=original_currency,
    )


def receipt(
    receipt_id="r1",
    total=1500,
    currency="JPY",
    *,
    submitter="alice",
    merchant="Blue Bottle Coffee",
    last4=None,
    tip=None,
    company_card=None,
):
    return ReceiptView(
        receipt_id=receipt_id,
        submitter=submitter,
        merchant=merchant,
        date=DAY,
        total_minor=total,
        currency=currency,
        card_last4=last4,
        tip_minor=tip,
        paid_with_company_card=company_card,
    )


def matches(charges, receipts, **kwargs) -> list[Match]:
    return reconcile(charges, receipts, **kwargs).matches()


def only(found: list[Match]) -> Match:
    assert len(found) == 1, found
    return found[0]


# ---- tips ----------------------------------------------------------------------------------


def test_tip_within_bound_is_confirmed_with_its_reasons_in_words():
    m = only(
        matches([charge(amount=1770, currency="USD", lag=1)], [receipt(total=1500, currency="USD")])
    )
    assert m.status is MatchStatus.AUTO
    assert m.pairs() == [("c1", "r1")]
    assert m.reasons[0] == "amount +18% consistent with tip"
    assert "merchant 'SQ *BLUE BOTTLE' ~ 'Blue Bottle Coffee'" in m.reasons
    assert "1 day posting lag" in m.reasons
    assert m.explanation.startswith(
        "amount +18% consistent with tip; merchant 'SQ *BLUE BOTTLE' ~ 'Blue Bottle Coffee'; "
        "1 day posting lag"
    )
    assert 0.0 <= m.score <= 1.0 and m.score >= Thresholds().auto_confirm
    assert set(m.signals.as_dict()) == {"amount", "date", "merchant", "cardholder"}
    assert m.threshold_version == Thresholds().version


def test_taxi_tip_is_understood_too():
    m = only(
        matches(
            [charge(amount=2400, currency="USD", mcc=4121, merchant="LYFT *RIDE SUN 8PM")],
            [receipt(total=2100, currency="USD", merchant="Lyft")],
        )
    )
    assert m.status is MatchStatus.AUTO
    assert "consistent with tip" in m.reasons[0]


def test_tip_beyond_the_bound_is_never_confirmed_automatically():
    found = matches([charge(amount=2100, currency="USD")], [receipt(total=1500, currency="USD")])
    assert all(m.status is not MatchStatus.AUTO for m in found)
    if found:  # +40%: at most a suggestion, saying why
        assert "beyond the 30% tip bound" in found[0].reasons[0]


def test_a_tip_where_no_tip_is_expected_is_not_confirmed():
    found = matches(
        [charge(amount=1770, currency="USD", mcc=5942, merchant="BLUE BOTTLE BOOKS")],
        [receipt(total=1500, currency="USD", merchant="Blue Bottle Books")],
    )
    assert all(m.status is not MatchStatus.AUTO for m in found)


def test_tip_line_on_the_receipt_explains_the_difference_at_any_merchant():
    m = only(
        matches(
            [charge(amount=5900, mcc=5942, merchant="BLUE BOTTLE BOOKS")],
            [receipt(total=5000, tip=900, merchant="Blue Bottle Books")],
        )
    )
    assert m.status is MatchStatus.AUTO
    assert m.reasons[0] == "amount = total 5000 JPY + tip line 900 JPY"


def test_authorisation_capture_difference_is_small_and_said():
    m = only(matches([charge(amount=10_120, mcc=7011, merchant="HOTEL GRANVIA KYOTO")],
                     [receipt(total=10_000, merchant="Hotel Granvia Kyoto")]))  # fmt: skip
    assert m.status is MatchStatus.AUTO
    assert "authorisation vs capture" in m.reasons[0]


# ---- FX ------------------------------------------------------------------------------------


def test_receipt_in_the_original_currency_of_a_foreign_charge():
    m = only(
        matches(
            [
                charge(
                    amount=2000,
                    merchant="PARIS CAFE",
                    mcc=5812,
                    original=1250,
                    original_currency="EUR",
                )
            ],
            [receipt(total=1250, currency="EUR", merchant="Paris Café")],
        )
    )
    assert m.status is MatchStatus.AUTO
    assert m.reasons[0] == "original amount 12.50 EUR exact (billed 2000 JPY)"


def test_without_an_original_amount_the_reference_rate_band_applies():
    rates = {("EUR", "JPY"): "160"}
    inside = only(
        matches(
            [charge(amount=2050, merchant="PARIS CAFE", mcc=5812)],
            [receipt(total=1250, currency="EUR", merchant="Paris Café")],
            fx_rates=rates,
        )
    )
    assert inside.status is MatchStatus.AUTO
    assert "reference 160" in inside.reasons[0] and "12.50 EUR billed 2050 JPY" in inside.reasons[0]
    outside = matches(
        [charge(amount=2500, merchant="PARIS BOOKS", mcc=5942)],
        [receipt(total=1250, currency="EUR", merchant="Paris Books")],
        fx_rates=rates,
    )
    assert all(m.status is not MatchStatus.AUTO for m in outside)


def test_reference_rate_is_learned_from_the_feeds_own_foreign_charges():
    # two charges carry their original amounts (USD→JPY at ~150); the third does not
    charges = [
        charge(
            "c1",
            15_000,
            merchant="NEW YORK DELI",
            mcc=5812,
            original=10_000,
            original_currency="USD",
        ),
        charge(
            "c2", 3_000, merchant="HUDSON BOOKS", mcc=5942, original=2_000, original_currency="USD"
        ),
        charge("c3", 4_560, merchant="GOLDEN GATE GRILL", mcc=5812),
    ]
    receipts = [receipt("r3", 3_000, "USD", merchant="Golden Gate Grill")]
    m = only(matches(charges, receipts))
    assert m.pairs() == [("c3", "r3")]
    assert m.status is MatchStatus.AUTO


# ---- dates ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("lag", "proposed"), [(-2, False), (-1, True), (0, True), (5, True), (6, False)]
)
def test_posting_lag_window_edges(lag, proposed):
    found = matches([charge(lag=lag)], [receipt()])
    assert bool(found) is proposed
    if proposed and lag > 0:
        assert f"{lag} days posting lag" in found[0].reasons


# ---- people ----------------------------------------------------------------------------------


def test_decoy_of_the_same_amount_from_another_employee_loses_to_the_cardholder():
    charges = [charge()]
    receipts = [receipt("r-bob", submitter="bob"), receipt("r-alice")]
    m = only(matches(charges, receipts))
    assert m.pairs() == [("c1", "r-alice")]
    assert m.status is MatchStatus.AUTO
    assert "cardholder = submitter" in m.reasons


def test_another_employees_receipt_alone_is_at_most_a_suggestion():
    found = matches([charge()], [receipt("r-bob", submitter="bob")])
    assert all(m.status is MatchStatus.SUGGESTED for m in found)
    assert not found or "submitted by 'bob', card held by 'alice'" in found[0].reasons


def test_card_digits_on_the_receipt_count_and_contrary_digits_block_confirmation():
    plain = only(matches([charge()], [receipt()]))
    shown = only(matches([charge()], [receipt(last4="1234")]))
    assert shown.status is MatchStatus.AUTO and shown.score > plain.score
    assert "receipt shows card ending 1234" in shown.reasons
    # a delegate who submits the cardholder's receipt: the digits make it a proposal
    delegate = only(matches([charge()], [receipt(submitter="assistant", last4="1234")]))
    assert delegate.signals.card_last4 == 1.0 and delegate.signals.cardholder == 0.0
    other = matches([charge()], [receipt(last4="9999")])
    assert other and all(m.status is not MatchStatus.AUTO for m in other)
    assert "receipt shows card ending 9999, charge card ends 1234" in other[0].reasons


def test_a_receipt_paid_personally_is_never_matched():
    assert matches([charge()], [receipt(company_card=False)]) == []


# ---- assignment ------------------------------------------------------------------------------


def test_one_to_one_no_receipt_twice_and_no_charge_twice():
    charges = [charge("c1"), charge("c2", lag=1)]
    receipts = [receipt("r1")]
    found = matches(charges, receipts)
    assert [m.pairs() for m in found] == [[("c1", "r1")]]  # the same-day charge wins


def test_look_alikes_left_open_make_the_match_a_suggestion():
    charges = [charge("c1")]
    receipts = [receipt("r1"), receipt("r2")]  # indistinguishable
    m = only(matches(charges, receipts))
    assert m.status is MatchStatus.SUGGESTED


def test_rejected_pair_is_never_proposed_again():
    charges = [charge("c1")]
    receipts = [receipt("r1")]
    assert matches(charges, receipts)
    assert matches(charges, receipts, rejected={("c1", "r1")}) == []
    # and the charge is free to find another receipt
    more = matches(
        charges, [receipt("r1"), receipt("r2", merchant="Blue Bottle")], rejected={("c1", "r1")}
    )
    assert [m.pairs() for m in more] == [[("c1", "r2")]]


def test_two_receipts_for_one_charge_when_they_sum_exactly():
    charges = [charge("hotel", 30_000, mcc=7011, merchant="HOTEL GRANVIA KYOTO")]
    receipts = [
        receipt("room", 20_000, merchant="Hotel Granvia Kyoto"),
        receipt("dinner", 10_000, merchant="Hotel Granvia Kyoto"),
    ]
    m = only(matches(charges, receipts))
    assert m.is_split
    assert sorted(m.pairs()) == [("hotel", "dinner"), ("hotel", "room")]
    assert m.status is MatchStatus.AUTO
    assert m.reasons[0] == "2 receipts sum exactly to the charge: 20000 JPY + 10000 JPY = 30000 JPY"


def test_one_receipt_over_two_charges_when_they_sum_exactly():
    charges = [
        charge("c1", 5_000, mcc=5942, merchant="MARUZEN BOOKS"),
        charge("c2", 3_000, mcc=5942, merchant="MARUZEN BOOKS"),
    ]
    receipts = [receipt("r1", 8_000, merchant="Maruzen Books")]
    m = only(matches(charges, receipts))
    assert sorted(m.pairs()) == [("c1", "r1"), ("c2", "r1")]
    assert m.reasons[0].startswith("2 charges sum exactly to the receipt")


def test_jpy_amounts_are_whole_yen():
    m = only(
        matches(
            [charge(amount=1112, merchant="ｽﾀｰﾊﾞｯｸｽ")],
            [receipt(total=1112, merchant="スターバックス 春日井店")],
        )
    )
    assert m.status is MatchStatus.AUTO
    assert m.reasons[0] == "amount 1112 JPY exact"


def test_same_input_gives_the_same_output_in_the_same_order():
    charges = [charge(f"c{i}", 1000 + 10 * (i % 4), lag=i % 3) for i in range(30)]
    receipts = [receipt(f"r{i}", 1000 + 10 * (i % 4)) for i in range(30)]
    first = [(m.charge_ids, m.receipt_ids, m.score, m.status) for m in matches(charges, receipts)]
    again = [(m.charge_ids, m.receipt_ids, m.score, m.status) for m in matches(charges, receipts)]
    assert first == again
    used = [r for m in matches(charges, receipts) for r in m.receipt_ids]
    assert len(used) == len(set(used))


def test_refunds_are_not_matched_and_thresholds_are_checked():
    assert matches([charge(amount=-1500)], [receipt()]) == []
    with pytest.raises(ValueError):
        Thresholds(auto_confirm=0.5, suggest=0.9)


def test_a_rejected_part_keeps_a_split_from_being_proposed():
    charges = [charge("hotel", 30_000, mcc=7011, merchant="HOTEL GRANVIA KYOTO")]
    receipts = [
        receipt("room", 20_000, merchant="Hotel Granvia Kyoto"),
        receipt("dinner", 10_000, merchant="Hotel Granvia Kyoto"),
    ]
    found = matches(charges, receipts, rejected={("hotel", "room")})
    assert all(("hotel", "room") not in m.pairs() for m in found)
    assert not any(m.is_split for m in found)


def test_nothing_in_nothing_out():
    assert matches([], [receipt()]) == []
    assert matches([charge()], []) == []
    result = reconcile([], [])
    assert len(result) == 0 and list(result.rows()) == []
