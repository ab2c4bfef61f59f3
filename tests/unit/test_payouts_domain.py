"""The payout domain without I/O: claims, policy findings, the payout state machine, the ledger."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from seisan_payouts.domain import ledger
from seisan_payouts.domain.errors import InvalidRequest, LedgerError, NotAllowed, WrongState
from seisan_payouts.domain.model import (
    Actor,
    Claim,
    ClaimLine,
    ClaimStatus,
    PaidWith,
    ReceiptRef,
    ReceiptState,
    Rule,
    Severity,
)
from seisan_payouts.domain.payouts import RANK, Payout, PayoutStatus, Rail, Step
from seisan_payouts.domain.policy import ClaimRequestItem, PolicyConfig, assess
from seisan_shared.money import Money

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)
TODAY = NOW.date()
AIKO = Actor("aiko", frozenset({"staff"}))
CHIKA = Actor("chika", frozenset({"staff", "approver"}))


def ref(rid: str, amount: int = 1_000, **kw: object) -> ReceiptRef:
    values: dict[str, object] = {
        "receipt_id": rid,
        "submitter": "aiko",
        "paid_with": PaidWith.PERSONAL,
        "state": ReceiptState.EXTRACTED,
        "total": Money(amount, "JPY"),
        "transaction_date": TODAY,
        "merchant": "Lawson",
    }
    values.update(kw)
    return ReceiptRef(**values)  # type: ignore[arg-type]


def claim(*amounts: int, claimant: str = "aiko", currency: str = "JPY") -> Claim:
    return Claim(
        claim_id="clm-1",
        claimant=claimant,
        lines=[
            ClaimLine(f"r-{i}", Money(a, currency), "travel" if i % 2 else "meals")
            for i, a in enumerate(amounts)
        ],
        description="",
        submitted_at=NOW,
    )


def payout(amount: int = 5_000, rail: Rail = Rail.STRIPE) -> Payout:
    return Payout("pay-1", "run-1", "aiko", Money(amount, "JPY"), rail, ["clm-1"], NOW)


# -- policy -----------------------------------------------------------------------------------


POLICY = PolicyConfig(
    payout_currencies=frozenset({"JPY", "USD"}),
    max_receipt_age_days=90,
    category_limits={("meals", "JPY"): 5_000},
)


def findings_of(items: list[ClaimRequestItem], refs: dict[str, ReceiptRef], **kw: object) -> set:
    held = kw.pop("held", {})
    policy = kw.pop("policy", POLICY)
    result = assess("aiko", items, refs, held, policy, TODAY)  # type: ignore[arg-type]
    return {(f.rule, f.severity, f.receipt_id) for f in result.findings}


def test_a_clean_receipt_has_no_findings_and_becomes_a_line() -> None:
    result = assess(
        "aiko", [ClaimRequestItem("r1", "Meals ")], {"r1": ref("r1")}, {}, POLICY, TODAY
    )
    assert result.findings == []
    (line,) = result.lines
    assert (line.receipt_id, line.amount, line.category) == ("r1", Money(1_000, "JPY"), "meals")


@pytest.mark.parametrize(
    ("receipt", "held", "rule", "severity"),
    [
        (
            ref("r1", match_id="m-1", matched_charge_ids=("ch-1",)),
            {},
            Rule.MATCHED_TO_CARD,
            Severity.BLOCKING,
        ),
        (ref("r1"), {"r1": "clm-9"}, Rule.DUPLICATE_CLAIM, Severity.BLOCKING),
        (ref("r1", 6_000), {}, Rule.CATEGORY_LIMIT, Severity.WARNING),
        (
            ref("r1", transaction_date=TODAY - timedelta(days=91)),
            {},
            Rule.RECEIPT_TOO_OLD,
            Severity.WARNING,
        ),
        (ref("r1", total=Money(100, "EUR")), {}, Rule.CURRENCY_NOT_SUPPORTED, Severity.BLOCKING),
        (
            ref("r1", paid_with=PaidWith.COMPANY_CARD),
            {},
            Rule.RECEIPT_NOT_ELIGIBLE,
            Severity.BLOCKING,
        ),
        (
            ref("r1", paid_with=PaidWith.UNSPECIFIED),
            {},
            Rule.RECEIPT_NOT_ELIGIBLE,
            Severity.WARNING,
        ),
        (
            ref("r1", state=ReceiptState.NEEDS_REVIEW),
            {},
            Rule.RECEIPT_NOT_ELIGIBLE,
            Severity.WARNING,
        ),
        (ref("r1", submitter="ben"), {}, Rule.RECEIPT_NOT_ELIGIBLE, Severity.BLOCKING),
        (ref("r1", state=ReceiptState.DELETED), {}, Rule.RECEIPT_NOT_ELIGIBLE, Severity.BLOCKING),
        (ref("r1", total=None), {}, Rule.RECEIPT_NOT_ELIGIBLE, Severity.BLOCKING),
    ],
)
def test_each_rule(
    receipt: ReceiptRef, held: dict[str, str], rule: Rule, severity: Severity
) -> None:
    found = findings_of([ClaimRequestItem("r1", "meals")], {"r1": receipt}, held=held)
    assert found == {(rule, severity, "r1")}


def test_receipt_at_the_limit_and_age_is_fine() -> None:
    edge = ref("r1", 5_000, transaction_date=TODAY - timedelta(days=90))
    assert findings_of([ClaimRequestItem("r1", "meals")], {"r1": edge}) == set()


def test_severity_is_configurable_but_unusable_receipts_always_block() -> None:
    lenient = PolicyConfig(blocking=frozenset(), payout_currencies=frozenset({"JPY"}))
    found = findings_of(
        [ClaimRequestItem("r1", "x"), ClaimRequestItem("r2", "x")],
        {"r1": ref("r1", match_id="m"), "r2": ref("r2", submitter="ben")},
        policy=lenient,
    )
    assert found == {
        (Rule.MATCHED_TO_CARD, Severity.WARNING, "r1"),
        (Rule.RECEIPT_NOT_ELIGIBLE, Severity.BLOCKING, "r2"),
    }
    strict = PolicyConfig.from_settings(
        payout_currencies=["JPY"],
        max_receipt_age_days=30,
        category_limits=["meals:JPY:3,000"],
        blocking_rules=["category_limit", "receipt_too_old"],
    )
    assert strict.category_limits == {("meals", "JPY"): 3_000}
    found = findings_of([ClaimRequestItem("r1", "meals")], {"r1": ref("r1", 3_001)}, policy=strict)
    assert found == {(Rule.CATEGORY_LIMIT, Severity.BLOCKING, "r1")}


def test_bad_settings_and_requests_are_refused() -> None:
    with pytest.raises(ValueError, match="CATEGORY:CURRENCY:AMOUNT"):
        PolicyConfig.from_settings(
            payout_currencies=["JPY"],
            max_receipt_age_days=1,
            category_limits=["meals:10"],
            blocking_rules=[],
        )
    with pytest.raises(ValueError, match="known"):
        PolicyConfig.from_settings(
            payout_currencies=["JPY"],
            max_receipt_age_days=1,
            category_limits=[],
            blocking_rules=["no_such_rule"],
        )
    with pytest.raises(InvalidRequest, match="at least one receipt"):
        assess("aiko", [], {}, {}, POLICY, TODAY)
    with pytest.raises(InvalidRequest, match="one currency"):
        assess(
            "aiko",
            [ClaimRequestItem("a", "x"), ClaimRequestItem("b", "x")],
            {"a": ref("a"), "b": ref("b", total=Money(100, "USD"))},
            {},
            POLICY,
            TODAY,
        )


def test_messages_explain_in_words() -> None:
    result = assess(
        "aiko", [ClaimRequestItem("r1", "meals")], {"r1": ref("r1", 12_000)}, {}, POLICY, TODAY
    )
    (finding,) = result.findings
    assert finding.message == "Receipt r1 (12000 JPY) is above the meals limit of 5000 JPY."


# -- claims -----------------------------------------------------------------------------------


def test_claim_total_is_the_exact_sum_in_one_currency() -> None:
    assert claim(1_000, 2_345).total == Money(3_345, "JPY")
    with pytest.raises(InvalidRequest):
        Claim("c", "aiko", [], "", NOW)
    with pytest.raises(InvalidRequest, match="positive"):
        claim(0)


def test_decisions() -> None:
    c = claim(1_000)
    with pytest.raises(NotAllowed, match="own claim"):
        c.approve(Actor("aiko", frozenset({"approver"})), NOW)
    with pytest.raises(NotAllowed, match="approver"):
        c.approve(Actor("ben", frozenset({"staff"})), NOW)
    with pytest.raises(InvalidRequest, match="reason"):
        c.reject(CHIKA, "  ", NOW)
    c.approve(CHIKA, NOW)
    assert (c.status, c.decided_by) == (ClaimStatus.APPROVED, "chika")
    with pytest.raises(WrongState):
        c.reject(CHIKA, "late", NOW)


def test_blocking_findings_stop_approval() -> None:
    from seisan_payouts.domain.model import PolicyFinding

    c = claim(1_000)
    c.findings = [PolicyFinding(Rule.MATCHED_TO_CARD, Severity.BLOCKING, "paid by card", "r-0")]
    with pytest.raises(WrongState, match="paid by card"):
        c.approve(CHIKA, NOW)


def test_claim_through_a_payout() -> None:
    c = claim(1_000)
    with pytest.raises(WrongState):
        c.enter_payout("pay-1")  # not approved yet
    c.approve(CHIKA, NOW)
    c.enter_payout("pay-1")
    with pytest.raises(WrongState):
        c.enter_payout("pay-2")  # in one unsettled payout at a time
    with pytest.raises(WrongState):
        c.payout_paid("pay-2")
    c.payout_released("pay-1", "account closed")
    assert (c.status, c.payout_failure_reason) == (ClaimStatus.APPROVED, "account closed")
    c.enter_payout("pay-2")
    c.payout_paid("pay-2")
    assert c.status is ClaimStatus.PAID


# -- payouts ----------------------------------------------------------------------------------


def test_keys_derive_from_payout_attempt_and_step() -> None:
    p = payout()
    p.begin_attempt("acct_1", NOW)
    assert p.idempotency_key(Step.TRANSFER) == "seisan-pay-1-a1-transfer"
    assert p.idempotency_key(Step.PAYOUT) == "seisan-pay-1-a1-payout"
    p.new_key_family(NOW)
    assert p.idempotency_key(Step.TRANSFER) == "seisan-pay-1-a2-transfer"
    assert p.status is PayoutStatus.SENDING  # a new key, not a new step


def test_stripe_payout_life_and_no_way_back() -> None:
    p = payout()
    assert not p.transferred("tr_1", NOW)  # not before an attempt
    p.begin_attempt("acct_1", NOW)
    with pytest.raises(WrongState):
        p.cancel("too late", NOW)
    assert p.transferred("tr_1", NOW) and p.money_may_be_out
    assert not p.refused("no", NOW)  # money is out: only a return can fail it
    assert p.sent("po_1", NOW)
    assert not p.sent("po_2", NOW)
    assert not p.advance(PayoutStatus.TRANSFERRED)
    assert p.paid(NOW)
    for late in (
        lambda: p.returning("failed"),
        lambda: p.reversed("trr", NOW),
        lambda: p.advance(PayoutStatus.SENT),
    ):
        assert late() is False
    assert p.status is PayoutStatus.PAID
    with pytest.raises(WrongState):
        p.retry()


def test_failed_after_transfer_goes_through_returning() -> None:
    p = payout()
    p.begin_attempt("acct_1", NOW)
    p.transferred("tr_1", NOW)
    p.sent("po_1", NOW)
    assert p.returning("account closed (account_closed)")
    assert p.status is PayoutStatus.RETURNING and p.money_may_be_out
    assert not p.paid(NOW)
    assert p.reversed("trr_1", NOW) and p.status is PayoutStatus.FAILED
    p.retry()
    assert (p.status, p.transfer_id, p.attempt) == (PayoutStatus.CREATED, "", 1)
    p.begin_attempt("acct_1", NOW)
    assert p.attempt == 2


def test_ranks_only_grow_along_the_happy_path() -> None:
    path = [
        PayoutStatus.CREATED,
        PayoutStatus.SENDING,
        PayoutStatus.TRANSFERRED,
        PayoutStatus.SENT,
        PayoutStatus.PAID,
    ]
    assert [RANK[s] for s in path] == sorted({RANK[s] for s in path})


def test_bank_file_payout() -> None:
    p = payout(rail=Rail.BANK_FILE)
    assert p.sent("pay-1", NOW) and p.status is PayoutStatus.SENT
    assert p.refused("bank rejected it: closed", NOW) and p.status is PayoutStatus.FAILED
    with pytest.raises(WrongState):
        Payout("pay-2", "run", "aiko", Money(0, "JPY"), Rail.BANK_FILE, ["c"], NOW)


# -- ledger -----------------------------------------------------------------------------------


def test_entries_must_balance() -> None:
    with pytest.raises(LedgerError, match="differ by 1"):
        ledger.JournalEntry(
            ledger.EntryKind.CLAIM_APPROVED,
            "x",
            "JPY",
            (ledger.Leg("a", 10), ledger.Leg("b", -9)),
        )
    with pytest.raises(LedgerError, match="two legs"):
        ledger.JournalEntry(ledger.EntryKind.CLAIM_APPROVED, "x", "JPY", (ledger.Leg("a", 0),))
    with pytest.raises(LedgerError, match="zero"):
        ledger.JournalEntry(
            ledger.EntryKind.CLAIM_APPROVED, "x", "JPY", (ledger.Leg("a", 0), ledger.Leg("b", 0))
        )


def test_claim_to_cash_leaves_nothing_owed_and_books_the_expense() -> None:
    c = claim(1_000, 2_000, 500)  # meals 1,500 and travel 2,000
    p = payout(3_500)
    p.begin_attempt("acct", NOW)
    entries = [ledger.claim_approved(c), ledger.payout_sent(p, "tr_1")]
    balances = ledger.trial_balance(entries)
    entries.append(ledger.payout_paid(p, balances[(ledger.payable_account("aiko"), "JPY")]))
    balances = ledger.trial_balance(entries)
    assert balances == {
        ("expense:meals", "JPY"): 1_500,
        ("expense:travel", "JPY"): 2_000,
        (ledger.payable_account("aiko"), "JPY"): 0,
        (ledger.IN_TRANSIT, "JPY"): 0,
        ("asset:cash:stripe", "JPY"): -3_500,
    }
    assert sum(balances.values()) == 0


def test_paying_more_than_is_owed_is_refused() -> None:
    with pytest.raises(LedgerError, match="exceeds what aiko is owed"):
        ledger.payout_paid(payout(5_000), payable_balance=-4_999)


def test_returned_payout_puts_cash_back() -> None:
    p = payout(800)
    balances = ledger.trial_balance([ledger.payout_sent(p, "tr"), ledger.payout_returned(p, "tr")])
    assert set(balances.values()) == {0}
