"""The reconciliation model: match decisions, charge ownership, the close check, the directory."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from seisan_cards.adapters.directory import CardEntry, DirectoryError, StaticCardDirectory
from seisan_cards.domain.charges import CardCharge, StatementFormat, StatementRejected
from seisan_cards.domain.errors import (
    CardsError,
    ChargeStateError,
    MatchStateError,
    NotYourCharge,
)
from seisan_cards.domain.model import (
    Actor,
    ChargeRecord,
    ChargeStatus,
    Match,
    MatchOrigin,
    MatchStatus,
    MissingReceiptDeclaration,
    PaidWith,
    ReceiptRef,
    ReceiptState,
    ReconciliationReport,
    Statement,
    Tally,
    charge_status_for,
    receipt_state_for,
    reconcile_statement,
    tally_charges,
)
from seisan_shared.errors import InvalidArgument, status_for
from seisan_shared.money import Money

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
AIKO = Actor("aiko", frozenset({"staff"}))
DAICHI = Actor("daichi", frozenset({"treasury"}))


def charge(cid: str, amount: int, *, holder: str = "aiko", currency: str = "JPY") -> ChargeRecord:
    return ChargeRecord(
        charge=CardCharge(
            charge_id=cid,
            issuer_transaction_id=f"generic_csv:{cid}",
            card_last4="4242",
            cardholder=holder,
            transaction_date=date(2026, 11, 2),
            posting_date=None,
            merchant="SQ *BLUE BOTTLE",
            mcc="5814",
            amount=Money(amount, currency),
            original_amount=None,
            source_format=StatementFormat.GENERIC_CSV,
            source_line=2,
        ),
        statement_id="st_x",
        imported_at=NOW,
    )


def proposal(**overrides: object) -> Match:
    values: dict = {
        "match_id": "mt_1",
        "charge_ids": ("c1",),
        "receipt_ids": ("r1",),
        "status": MatchStatus.PROPOSED,
        "origin": MatchOrigin.ENGINE,
        "score": 0.7,
        "signals": {"amount": 1.0},
        "reasons": ("amount exact",),
        "threshold_version": "match-1",
        "proposed_at": NOW,
    }
    values.update(overrides)
    return Match(**values)


def test_a_proposal_is_confirmed_or_rejected_once_and_only_a_confirmed_one_unmatched():
    m = proposal()
    with pytest.raises(MatchStateError):
        m.unmatch("daichi", "", NOW)
    m.confirm("daichi", NOW)
    assert (m.status, m.decided_by, m.decided_at) == (MatchStatus.CONFIRMED, "daichi", NOW)
    with pytest.raises(MatchStateError, match="use unmatch"):
        m.reject("daichi", "no", NOW)
    with pytest.raises(MatchStateError):
        m.confirm("emi", NOW)
    m.unmatch("emi", "wrong trip", NOW)
    assert (m.status, m.decision_reason, m.live) == (MatchStatus.UNMATCHED, "wrong trip", False)
    for decide in (m.confirm, lambda a, t: m.reject(a, "", t), lambda a, t: m.unmatch(a, "", t)):
        with pytest.raises(MatchStateError):
            decide("daichi", NOW)
    r = proposal()
    r.reject("daichi", "not hers", NOW)
    assert not r.live and r.pairs() == [("c1", "r1")]


def test_a_split_is_one_side_several_never_both():
    split = proposal(receipt_ids=("r1", "r2"))
    assert split.is_split and split.pairs() == [("c1", "r1"), ("c1", "r2")]
    with pytest.raises(ValueError):
        proposal(charge_ids=("c1", "c2"), receipt_ids=("r1", "r2"))
    with pytest.raises(ValueError):
        proposal(receipt_ids=())


def test_states_follow_the_match_and_the_declaration():
    live = proposal()
    assert charge_status_for(live, declared=False) is ChargeStatus.SUGGESTED
    assert receipt_state_for(live) is ReceiptState.SUGGESTED
    live.confirm("daichi", NOW)
    assert charge_status_for(live, declared=False) is ChargeStatus.MATCHED
    assert receipt_state_for(live) is ReceiptState.MATCHED
    assert charge_status_for(None, declared=True) is ChargeStatus.DECLARED_MISSING
    assert charge_status_for(None, declared=False) is ChargeStatus.UNMATCHED
    assert receipt_state_for(None) is ReceiptState.OPEN


def test_staff_read_and_declare_only_their_own_unmatched_charges():
    mine = charge("c1", 1112)
    mine.check_can_read(AIKO)
    mine.check_can_read(DAICHI)
    with pytest.raises(NotYourCharge):
        mine.check_can_read(Actor("ben", frozenset({"staff"})))
    mine.check_can_declare(AIKO)
    with pytest.raises(NotYourCharge):
        mine.check_can_declare(DAICHI)  # treasury may not sign for a cardholder
    with pytest.raises(ChargeStateError):
        replace(mine, status=ChargeStatus.SUGGESTED).check_can_declare(AIKO)
    text = MissingReceiptDeclaration.attestation_for(mine)
    assert "aiko" in text and "1112 JPY" in text and "2026-11-02" in text and "c1" in text


def test_errors_are_rooted_in_cards_error_with_their_kind():
    assert issubclass(StatementRejected, CardsError)
    assert issubclass(StatementRejected, InvalidArgument)
    assert status_for(StatementRejected("bad", line=2, field="amount")).name == "INVALID_ARGUMENT"
    assert status_for(NotYourCharge("x")).name == "PERMISSION_DENIED"
    assert status_for(MatchStateError("x")).name == "FAILED_PRECONDITION"


def _statement(totals: dict[str, int]) -> Statement:
    return Statement(
        statement_id="st_1",
        format=StatementFormat.GENERIC_CSV,
        filename="nov.csv",
        sha256="0" * 64,
        period_start=date(2026, 11, 1),
        period_end=date(2026, 11, 30),
        totals=totals,
        charge_count=4,
        imported_by="daichi",
        imported_at=NOW,
    )


def test_the_close_check_holds_when_every_line_is_in_one_state():
    lines = [
        replace(charge("c1", 1112), status=ChargeStatus.MATCHED),
        replace(charge("c2", 480), status=ChargeStatus.SUGGESTED),
        replace(charge("c3", 3200), status=ChargeStatus.DECLARED_MISSING),
        replace(charge("c4", -500, holder="ben"), status=ChargeStatus.UNMATCHED),
        replace(charge("c5", 1598, currency="USD"), status=ChargeStatus.UNMATCHED),
    ]
    (jpy, usd) = reconcile_statement(
        _statement({"JPY": 1112 + 480 + 3200 - 500, "USD": 1598}), tally_charges(lines)
    )
    assert (jpy.close_check.currency, usd.close_check.currency) == ("JPY", "USD")
    c = jpy.close_check
    assert (c.statement_total, c.matched, c.declared, c.open) == (4292, 1112, 3200, -20)
    assert c.balanced and c.difference == 0 and not c.settled
    assert jpy.totals.count == 4 and jpy.totals.unmatched_count == 1
    assert usd.close_check.balanced and usd.totals.unmatched == 1598


def test_the_close_check_names_a_difference():
    lines = [charge("c1", 1112)]
    (entry,) = reconcile_statement(_statement({"JPY": 1200}), tally_charges(lines))
    assert not entry.close_check.balanced and entry.close_check.difference == 88
    (missing,) = reconcile_statement(_statement({"JPY": 1112}), [])
    assert missing.close_check.difference == 1112
    (empty,) = reconcile_statement(_statement({}), [])
    assert empty.close_check.currency == "" and empty.close_check.balanced
    report = ReconciliationReport.build(
        [(_statement({"JPY": 1200}), tally_charges(lines))],
        [Tally("aiko", "JPY", ChargeStatus.UNMATCHED, 1, 1112)],
        generated_at=NOW,
        threshold_version="match-1",
    )
    assert [e.statement.statement_id for e in report.unbalanced] == ["st_1"]
    assert report.cardholders["aiko"][0].unmatched == 1112


def test_a_receipt_is_matchable_only_when_open_dated_positive_and_not_personal():
    base = ReceiptRef(
        receipt_id="r1",
        submitter="aiko",
        merchant="Blue Bottle",
        receipt_date=date(2026, 11, 2),
        total=Money(1112, "JPY"),
        tip_minor=None,
        card_last4=None,
        paid_with=PaidWith.UNSPECIFIED,
        updated_at=NOW,
    )
    assert base.matchable
    assert not replace(base, paid_with=PaidWith.PERSONAL).matchable
    assert not replace(base, total=None).matchable
    assert not replace(base, receipt_date=None).matchable
    assert not replace(base, total=Money(0, "JPY")).matchable
    assert not replace(base, state=ReceiptState.SUGGESTED).matchable
    kept = replace(base, state=ReceiptState.MATCHED, match_id="mt_1").with_fields(
        replace(base, merchant="Blue Bottle Coffee")
    )
    assert (kept.merchant, kept.state, kept.match_id) == (
        "Blue Bottle Coffee",
        ReceiptState.MATCHED,
        "mt_1",
    )


def test_the_card_directory_resolves_principals(tmp_path: Path):
    directory = StaticCardDirectory(
        [
            CardEntry("4242", "aiko", name="Aiko Tanaka", stripe_card="ic_a"),
            CardEntry("1111", "ben", name="Ben Ito", stripe_cardholder="ich_b"),
            CardEntry("1111", "chika", name="Chika Mori"),
        ]
    )
    assert directory.principal_for("4242", "") == "aiko"
    assert directory.principal_for("1111", "CHIKA  MORI") == "chika"  # shared digits: by name
    assert directory.principal_for("1111", "") is None
    assert directory.principal_for("9999", "ben ito") == "ben"
    assert directory.principal_for("9999", "nobody") is None
    assert directory.stripe_card("ic_a") == ("4242", "aiko")
    assert directory.stripe_card("") is None
    assert directory.stripe_cardholder("ich_b") == "ben"

    path = tmp_path / "cards.toml"
    path.write_text('[[card]]\nlast4 = "4242"\nprincipal = "aiko"\nname = "Aiko Tanaka"\n')
    assert StaticCardDirectory.load(path).principal_for("4242", "") == "aiko"
    assert StaticCardDirectory.load(None).entries == []
    path.write_text('[[card]]\nlast4 = "4111111111111111"\nprincipal = "aiko"\n')
    with pytest.raises(DirectoryError, match="four digits"):
        StaticCardDirectory.load(path)
