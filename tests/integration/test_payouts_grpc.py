"""ReimbursementPayout over real gRPC, on SQLite and PostgreSQL: claims, policy, who may do
what, payout runs, cancellation, the ledger and its database constraint.

Receipts are recorded through the same handler intake's events reach; the Stripe
rail's calls are a fake gateway here (tests/integration/test_payouts_stripe.py runs
them against the local Stripe server).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import grpc
import pytest
import sqlalchemy as sa

from seisan.payouts.v1 import payouts_pb2, payouts_pb2_grpc
from seisan_payouts import handlers
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.domain import ledger
from seisan_payouts.domain.model import PaidWith, ReceiptState
from seisan_payouts.domain.policy import PolicyConfig
from seisan_payouts.domain.ports import RailPayout, RailTransfer, StripeGateway
from seisan_payouts.entrypoints.grpc_servicer import ReimbursementPayoutServicer
from seisan_payouts.testing import seed_receipt
from seisan_shared import catalogue, events
from seisan_shared.auth import Principal, TokenStore
from seisan_shared.grpc.client import channel
from seisan_shared.grpc.server import ServiceRegistration, start_server
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations
from seisan_shared.storage.tables import outbox

TOKENS = {
    "t-aiko": Principal("aiko", frozenset({"staff"})),
    "t-ben": Principal("ben", frozenset({"staff"})),
    "t-chika": Principal("chika", frozenset({"staff", "approver"})),
    "t-daichi": Principal("daichi", frozenset({"treasury"})),
    "t-emi": Principal("emi", frozenset({"admin"})),
}
JPY = "JPY"


class AccountsOnly(StripeGateway):
    """Knows which connected accounts exist; moves no money (not needed for these tests)."""

    def __init__(self, accounts: set[str]) -> None:
        self.accounts = accounts

    async def check_account(self, account: str) -> str:
        return "" if account in self.accounts else f"No such account: '{account}'"

    async def create_test_account(self, employee: str, currency: str) -> str:
        account = f"acct_test_{employee}"
        self.accounts.add(account)
        return account

    async def create_transfer(self, key: str, **kw: object) -> RailTransfer:
        raise AssertionError("no money moves in these tests")

    async def find_transfer(self, payout_id: str) -> RailTransfer | None:
        raise AssertionError("no money moves in these tests")

    async def get_transfer(self, transfer_id: str) -> RailTransfer:
        raise AssertionError("no money moves in these tests")

    async def create_payout(self, key: str, **kw: object) -> RailPayout:
        raise AssertionError("no money moves in these tests")

    async def find_payout(
        self, account: str, payout_id: str, attempt: int, since: object
    ) -> RailPayout | None:
        raise AssertionError("no money moves in these tests")

    async def get_payout(self, account: str, stripe_payout_id: str) -> RailPayout:
        raise AssertionError("no money moves in these tests")

    async def reverse_transfer(self, key: str, **kw: object) -> str:
        raise AssertionError("no money moves in these tests")


@dataclass
class Payouts:
    address: str
    db: Database
    ports: handlers.PayoutsPorts
    channels: dict[str, grpc.aio.Channel] = field(default_factory=dict)

    def stub(self, token: str) -> payouts_pb2_grpc.ReimbursementPayoutStub:
        if token not in self.channels:
            self.channels[token] = channel(self.address, token)
        return payouts_pb2_grpc.ReimbursementPayoutStub(self.channels[token])

    async def receipt(self, submitter: str, amount: int, currency: str = JPY, **kw: object) -> str:
        return await seed_receipt(self.ports, submitter, Money(amount, currency), **kw)  # type: ignore[arg-type]

    async def submit(
        self, token: str, *receipts: str, category: str = "travel"
    ) -> payouts_pb2.Claim:
        reply = await self.stub(token).SubmitClaim(
            payouts_pb2.SubmitClaimRequest(
                items=[payouts_pb2.ClaimItem(receipt_id=r, category=category) for r in receipts],
                description="trip to Osaka",
            )
        )
        return reply.claim

    async def approve(self, claim_id: str, token: str = "t-chika") -> payouts_pb2.Claim:
        reply = await self.stub(token).ApproveClaim(
            payouts_pb2.ApproveClaimRequest(claim_id=claim_id, note="fine")
        )
        return reply.claim

    async def events_of(self, event_type: str) -> list[object]:
        async with self.db.transaction() as s:
            rows = (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).all()
        envelopes = [events.decode(r[0]) for r in rows]
        return [events.unpack_payload(e) for e in envelopes if e.type == event_type]

    async def balance(self, account: str, currency: str = JPY) -> int:
        async with self.ports.uow() as uow:
            return await uow.ledger.balance(account, currency)


@pytest.fixture
async def payouts(database: Database) -> AsyncIterator[Payouts]:
    await run_migrations(database, MIGRATIONS)
    catalogue.import_all()
    ports = handlers.PayoutsPorts(
        uow=lambda: SqlUnitOfWork(database),
        policy=PolicyConfig(
            category_limits={("meals", JPY): 10_000},
            max_receipt_age_days=90,
        ),
        stripe=AccountsOnly({"acct_aiko", "acct_ben"}),
    )
    server = await start_server(
        [
            ServiceRegistration(
                "seisan.payouts.v1.ReimbursementPayout",
                ReimbursementPayoutServicer(ports, None),
                payouts_pb2_grpc.add_ReimbursementPayoutServicer_to_server,
            )
        ],
        tokens=TokenStore.from_principals(TOKENS),
    )
    harness = Payouts(server.address, database, ports)
    try:
        yield harness
    finally:
        for ch in harness.channels.values():
            await ch.close()
        await server.stop(0)


async def _code(call: object) -> tuple[grpc.StatusCode, str]:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call  # type: ignore[misc]
    return err.value.code(), err.value.details() or ""


# -- claims -----------------------------------------------------------------------------------


async def test_submit_claim_with_warnings_queues_event_and_audit(payouts: Payouts) -> None:
    old = (datetime.now(UTC) - timedelta(days=120)).date()
    r1 = await payouts.receipt("aiko", 12_000, day=date.today())
    r2 = await payouts.receipt("aiko", 3_000, day=old)
    claim = await payouts.submit("t-aiko", r1, r2, category="meals")
    assert claim.status == payouts_pb2.CLAIM_STATUS_SUBMITTED
    assert (claim.total.minor_units, claim.total.currency) == (15_000, JPY)
    assert [line.receipt_id for line in claim.lines] == [r1, r2]
    rules = {(f.rule, f.receipt_id, f.severity) for f in claim.findings}
    assert (
        payouts_pb2.POLICY_RULE_CATEGORY_LIMIT,
        r1,
        payouts_pb2.FINDING_SEVERITY_WARNING,
    ) in rules
    assert (
        payouts_pb2.POLICY_RULE_RECEIPT_TOO_OLD,
        r2,
        payouts_pb2.FINDING_SEVERITY_WARNING,
    ) in rules
    assert any("above the meals limit of 10000 JPY" in f.message for f in claim.findings)
    submitted = await payouts.events_of("claim.submitted")
    assert len(submitted) == 1 and submitted[0].claim.claim_id == claim.claim_id  # type: ignore[attr-defined]
    audits = await payouts.events_of("audit.recorded")
    assert [a.action for a in audits] == ["claim.submit"]  # type: ignore[attr-defined]


async def test_blocking_findings_refuse_the_claim_and_store_nothing(payouts: Payouts) -> None:
    others = await payouts.receipt("ben", 1_000)
    company = await payouts.receipt("aiko", 1_000, paid_with=PaidWith.COMPANY_CARD)
    matched = await payouts.receipt("aiko", 2_000)
    usd_only = await payouts.receipt("aiko", 500, currency="GBP")
    deleted = await payouts.receipt("aiko", 800)
    async with payouts.ports.uow() as uow:
        await handlers.record_match("m-1", [matched], ["ch-88"], True, uow)
        ref = await uow.receipts.get(deleted)
        assert ref is not None
        ref.state = ReceiptState.DELETED
        await uow.receipts.put(ref)
        await uow.commit()
    cases = {
        others: "uploaded by someone else",
        company: "paid with a company card",
        matched: "matched to card charge ch-88; the company already paid it",
        usd_only: "payouts are made in EUR, JPY, USD only",
        deleted: "was deleted",
        "no-such-receipt": "not known to payouts yet",
    }
    for receipt_id, words in cases.items():
        code, details = await _code(payouts.submit("t-aiko", receipt_id))
        assert code == grpc.StatusCode.FAILED_PRECONDITION, receipt_id
        assert words in details, (receipt_id, details)
    reply = await payouts.stub("t-aiko").ListClaims(payouts_pb2.ListClaimsRequest())
    assert list(reply.claims) == []
    assert await payouts.events_of("claim.submitted") == []


async def test_same_receipt_cannot_be_claimed_twice_until_rejected(payouts: Payouts) -> None:
    rid = await payouts.receipt("aiko", 4_400)
    first = await payouts.submit("t-aiko", rid)
    code, details = await _code(payouts.submit("t-aiko", rid))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert f"already in claim {first.claim_id}" in details
    code, details = await _code(payouts.submit("t-aiko", rid, rid))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "listed twice" in details

    code, details = await _code(
        payouts.stub("t-chika").RejectClaim(payouts_pb2.RejectClaimRequest(claim_id=first.claim_id))
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "reason" in details
    rejected = await payouts.stub("t-chika").RejectClaim(
        payouts_pb2.RejectClaimRequest(claim_id=first.claim_id, reason="no business purpose")
    )
    assert rejected.claim.status == payouts_pb2.CLAIM_STATUS_REJECTED
    assert rejected.claim.rejection_reason == "no business purpose"
    again = await payouts.submit("t-aiko", rid)
    assert again.claim_id != first.claim_id
    events_seen = await payouts.events_of("claim.rejected")
    assert [e.reason for e in events_seen] == ["no business purpose"]  # type: ignore[attr-defined]


async def test_approval_rules_and_ledger(payouts: Payouts) -> None:
    rid = await payouts.receipt("chika", 7_000)
    own = await payouts.submit("t-chika", rid)
    code, details = await _code(payouts.approve(own.claim_id, "t-chika"))
    assert code == grpc.StatusCode.PERMISSION_DENIED and "own claim" in details

    rid = await payouts.receipt("aiko", 5_500)
    claim = await payouts.submit("t-aiko", rid, category="travel")
    code, _ = await _code(payouts.approve(claim.claim_id, "t-ben"))  # staff: not an approver
    assert code == grpc.StatusCode.PERMISSION_DENIED
    approved = await payouts.approve(claim.claim_id)
    assert approved.status == payouts_pb2.CLAIM_STATUS_APPROVED and approved.decided_by == "chika"
    code, details = await _code(payouts.approve(claim.claim_id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "approved, not submitted" in details

    assert await payouts.balance(ledger.expense_account("travel")) == 5_500
    assert await payouts.balance(ledger.payable_account("aiko")) == -5_500
    async with payouts.ports.uow() as uow:
        assert sum((await uow.ledger.balances()).values()) == 0
    approvals = await payouts.events_of("claim.approved")
    assert [e.approved_by for e in approvals] == ["chika"]  # type: ignore[attr-defined]


async def test_approval_rechecks_policy_when_a_card_match_arrived(payouts: Payouts) -> None:
    rid = await payouts.receipt("aiko", 2_500)
    claim = await payouts.submit("t-aiko", rid)
    async with payouts.ports.uow() as uow:
        await handlers.record_match("m-7", [rid], ["ch-7"], True, uow)
        await uow.commit()
    code, details = await _code(payouts.approve(claim.claim_id))
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    assert "matched to card charge ch-7" in details
    got = await payouts.stub("t-aiko").GetClaim(
        payouts_pb2.GetClaimRequest(claim_id=claim.claim_id)
    )
    assert any(
        f.rule == payouts_pb2.POLICY_RULE_MATCHED_TO_CARD
        and f.severity == payouts_pb2.FINDING_SEVERITY_BLOCKING
        for f in got.claim.findings
    )
    assert await payouts.balance(ledger.payable_account("aiko")) == 0
    async with payouts.ports.uow() as uow:  # the match is undone: approvable again
        await handlers.record_match("m-7", [rid], ["ch-7"], False, uow)
        await uow.commit()
    assert (await payouts.approve(claim.claim_id)).status == payouts_pb2.CLAIM_STATUS_APPROVED


async def test_staff_see_only_their_own_claims(payouts: Payouts) -> None:
    mine = await payouts.submit("t-aiko", await payouts.receipt("aiko", 100))
    theirs = await payouts.submit("t-ben", await payouts.receipt("ben", 200))
    listed = await payouts.stub("t-aiko").ListClaims(
        payouts_pb2.ListClaimsRequest(claimant="ben")  # asking for ben's changes nothing
    )
    assert [c.claim_id for c in listed.claims] == [mine.claim_id]
    code, _ = await _code(
        payouts.stub("t-aiko").GetClaim(payouts_pb2.GetClaimRequest(claim_id=theirs.claim_id))
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    everyone = await payouts.stub("t-chika").ListClaims(payouts_pb2.ListClaimsRequest())
    assert {c.claim_id for c in everyone.claims} == {mine.claim_id, theirs.claim_id}
    page = await payouts.stub("t-chika").ListClaims(payouts_pb2.ListClaimsRequest(page_size=1))
    assert len(page.claims) == 1 and page.next_page_token
    rest = await payouts.stub("t-chika").ListClaims(
        payouts_pb2.ListClaimsRequest(page_size=1, page_token=page.next_page_token)
    )
    assert {page.claims[0].claim_id, rest.claims[0].claim_id} == {mine.claim_id, theirs.claim_id}


# -- payout runs ------------------------------------------------------------------------------


async def _link(payouts: Payouts, employee: str, account: str) -> None:
    await payouts.stub("t-daichi").LinkPayeeAccount(
        payouts_pb2.LinkPayeeAccountRequest(employee=employee, stripe_account_id=account)
    )


async def test_run_groups_per_employee_and_currency(payouts: Payouts) -> None:
    for claimant, token, amounts in (
        ("aiko", "t-aiko", [(1_000, JPY), (2_000, JPY), (1_250, "USD")]),
        ("ben", "t-ben", [(3_000, JPY)]),
        ("chika", "t-chika", [(400, JPY)]),
    ):
        for amount, currency in amounts:
            claim = await payouts.submit(token, await payouts.receipt(claimant, amount, currency))
            await payouts.approve(claim.claim_id, "t-emi" if claimant == "chika" else "t-chika")
    code, details = await _code(
        payouts.stub("t-daichi").LinkPayeeAccount(
            payouts_pb2.LinkPayeeAccountRequest(employee="ben", stripe_account_id="acct_nope")
        )
    )
    assert code == grpc.StatusCode.INVALID_ARGUMENT and "No such account" in details
    await _link(payouts, "aiko", "acct_aiko")
    await _link(payouts, "ben", "acct_ben")

    code, _ = await _code(
        payouts.stub("t-aiko").CreatePayoutRun(payouts_pb2.CreatePayoutRunRequest())
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED
    request = payouts_pb2.CreatePayoutRunRequest(
        rail=payouts_pb2.PAYOUT_RAIL_STRIPE, request_id="run-2026-11-30"
    )
    run = (await payouts.stub("t-daichi").CreatePayoutRun(request)).run
    got = {(p.employee, p.amount.currency): p.amount.minor_units for p in run.payouts}
    assert got == {("aiko", JPY): 3_000, ("aiko", "USD"): 1_250, ("ben", JPY): 3_000}
    assert all(p.status == payouts_pb2.PAYOUT_STATUS_CREATED for p in run.payouts)
    assert [n.split(":")[0] for n in run.notes] == ["chika"]
    assert "no Stripe account linked" in run.notes[0]
    again = (await payouts.stub("t-daichi").CreatePayoutRun(request)).run
    assert again.run_id == run.run_id and len(again.payouts) == 3  # same request, same run

    aiko_jpy = next(p for p in run.payouts if p.employee == "aiko" and p.amount.currency == JPY)
    for claim_id in aiko_jpy.claim_ids:
        claim = (
            await payouts.stub("t-aiko").GetClaim(payouts_pb2.GetClaimRequest(claim_id=claim_id))
        ).claim
        assert claim.status == payouts_pb2.CLAIM_STATUS_PAYOUT_PENDING
        assert claim.payout_id == aiko_jpy.payout_id
    assert len(await payouts.events_of("payout.created")) == 3

    mine = await payouts.stub("t-aiko").ListPayouts(payouts_pb2.ListPayoutsRequest())
    assert {p.employee for p in mine.payouts} == {"aiko"} and len(mine.payouts) == 2
    ben_payout = next(p for p in run.payouts if p.employee == "ben")
    code, _ = await _code(
        payouts.stub("t-aiko").GetPayout(
            payouts_pb2.GetPayoutRequest(payout_id=ben_payout.payout_id)
        )
    )
    assert code == grpc.StatusCode.PERMISSION_DENIED

    code, details = await _code(
        payouts.stub("t-daichi").CreatePayoutRun(payouts_pb2.CreatePayoutRunRequest())
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "nothing to pay" in details


async def test_cancel_returns_claims_to_approved_only_before_money_moved(
    payouts: Payouts,
) -> None:
    claim = await payouts.submit("t-aiko", await payouts.receipt("aiko", 9_900))
    await payouts.approve(claim.claim_id)
    await _link(payouts, "aiko", "acct_aiko")
    run = (await payouts.stub("t-daichi").CreatePayoutRun(payouts_pb2.CreatePayoutRunRequest())).run
    payout_id = run.payouts[0].payout_id
    cancelled = await payouts.stub("t-daichi").CancelPayout(
        payouts_pb2.CancelPayoutRequest(payout_id=payout_id, reason="wrong month")
    )
    assert cancelled.payout.status == payouts_pb2.PAYOUT_STATUS_CANCELLED
    got = (
        await payouts.stub("t-aiko").GetClaim(payouts_pb2.GetClaimRequest(claim_id=claim.claim_id))
    ).claim
    assert got.status == payouts_pb2.CLAIM_STATUS_APPROVED
    assert "cancelled: wrong month" in got.payout_failure_reason
    code, details = await _code(
        payouts.stub("t-daichi").CancelPayout(payouts_pb2.CancelPayoutRequest(payout_id=payout_id))
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION and "money may already be moving" in details

    # A payout being sent cannot be cancelled.
    second = (
        await payouts.stub("t-daichi").CreatePayoutRun(payouts_pb2.CreatePayoutRunRequest())
    ).run.payouts[0]
    async with payouts.ports.uow() as uow:
        p = await uow.payouts.get(second.payout_id)
        assert p is not None
        p.begin_attempt("acct_aiko", datetime.now(UTC))
        await uow.payouts.update(p)
        await uow.commit()
    code, _ = await _code(
        payouts.stub("t-daichi").CancelPayout(
            payouts_pb2.CancelPayoutRequest(payout_id=second.payout_id)
        )
    )
    assert code == grpc.StatusCode.FAILED_PRECONDITION
    listed = await payouts.stub("t-daichi").ListPayouts(
        payouts_pb2.ListPayoutsRequest(status=payouts_pb2.PAYOUT_STATUS_SENDING)
    )
    assert [p.payout_id for p in listed.payouts] == [second.payout_id]


# -- the ledger's database constraint ---------------------------------------------------------


async def test_database_refuses_unbalanced_or_edited_ledger_entries(payouts: Payouts) -> None:
    legs = sa.text("INSERT INTO ledger_legs (transaction_id, account, amount) VALUES (:t, :a, :m)")
    header = sa.text(
        "INSERT INTO ledger_transactions (id, kind, reference, currency, description, posted_at)"
        " VALUES (:t, 'test', :t, 'JPY', '', :at)"
    )
    now = datetime.now(UTC)

    async def attempt(rows: list[tuple[str, int]], tid: str, with_header: bool = True) -> None:
        async with payouts.db.transaction() as s:
            for account, amount in rows:
                await s.execute(legs, {"t": tid, "a": account, "m": amount})
            if with_header:
                await s.execute(header, {"t": tid, "at": now})

    with pytest.raises(sa.exc.IntegrityError):
        await attempt([("expense:x", 500), ("liability:y", -499)], "t-unbalanced")
    with pytest.raises(sa.exc.IntegrityError):
        await attempt([("expense:x", 500)], "t-one-leg")
    with pytest.raises(sa.exc.IntegrityError):  # legs never sealed by a header
        await attempt([("expense:x", 500), ("liability:y", -500)], "t-orphan", with_header=False)
    await attempt([("expense:x", 500), ("liability:y", -500)], "t-ok")
    with pytest.raises(sa.exc.IntegrityError):  # a leg added to a posted entry
        await attempt([("expense:x", 1)], "t-ok", with_header=False)
    for statement in (
        "UPDATE ledger_legs SET amount = 501 WHERE transaction_id = 't-ok' AND amount = 500",
        "DELETE FROM ledger_legs WHERE transaction_id = 't-ok'",
        "DELETE FROM ledger_transactions WHERE id = 't-ok'",
    ):
        with pytest.raises(sa.exc.DBAPIError):
            async with payouts.db.transaction() as s:
                await s.execute(sa.text(statement))
    async with payouts.ports.uow() as uow:
        assert await uow.ledger.balances() == {("expense:x", JPY): 500, ("liability:y", JPY): -500}
