"""The Stripe rail's driver and webhook handling against in-memory fakes of its ports.

The fake store commits like a database (a unit of work works on a copy that
replaces the committed state only on commit), so "what was committed when
Stripe was called" can be asserted: the fake gateway looks at the committed
payout at the moment of each call.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import pytest

from seisan_payouts import handlers
from seisan_payouts.domain.ledger import JournalEntry
from seisan_payouts.domain.model import Actor, Claim, ClaimLine, ClaimStatus
from seisan_payouts.domain.payouts import Payout, PayoutRun, PayoutStatus, Rail
from seisan_payouts.domain.ports import (
    BankFileRepository,
    ClaimQuery,
    ClaimRepository,
    ConcurrentUpdate,
    DuplicateKey,
    LedgerRepository,
    PayeeAccount,
    PayeeRepository,
    PayoutQuery,
    PayoutRepository,
    RailDeclined,
    RailIndeterminate,
    RailPayout,
    RailTemporarilyDown,
    RailTransfer,
    ReceiptRefRepository,
    StoredBankFile,
    StripeEventLog,
    StripeGateway,
    UnitOfWork,
)
from seisan_payouts.stripe_rail import StripeRail
from seisan_shared.faults import Faults, InjectedFault
from seisan_shared.money import Money

NOW = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


@dataclass
class State:
    claims: dict[str, Claim] = field(default_factory=dict)
    payouts: dict[str, Payout] = field(default_factory=dict)
    payees: dict[str, PayeeAccount] = field(default_factory=dict)
    entries: list[JournalEntry] = field(default_factory=list)
    events_seen: set[str] = field(default_factory=set)
    emitted: list[tuple[str, str]] = field(default_factory=list)
    audits: list[str] = field(default_factory=list)


class Store:
    def __init__(self) -> None:
        self.committed = State()


class FakeClaims(ClaimRepository):
    def __init__(self, s: State) -> None:
        self.s = s

    async def add(self, claim: Claim) -> None:
        self.s.claims[claim.claim_id] = claim

    async def get(self, claim_id: str) -> Claim | None:
        return self.s.claims.get(claim_id)

    async def get_many(self, claim_ids: list[str]) -> list[Claim]:
        return [self.s.claims[c] for c in claim_ids if c in self.s.claims]

    async def update(self, claim: Claim) -> None:
        claim.version += 1
        self.s.claims[claim.claim_id] = claim

    async def query(self, q: ClaimQuery) -> list[Claim]:
        return list(self.s.claims.values())

    async def approved_unpaid(self, currency: str | None) -> list[Claim]:
        return [c for c in self.s.claims.values() if c.status is ClaimStatus.APPROVED]

    async def claims_holding(self, receipt_ids: list[str]) -> dict[str, str]:
        return {}


class FakePayouts(PayoutRepository):
    def __init__(self, s: State, committed: State) -> None:
        self.s = s
        self.committed = committed

    async def add(self, payout: Payout) -> None:
        self.s.payouts[payout.payout_id] = payout

    async def get(self, payout_id: str) -> Payout | None:
        return self.s.payouts.get(payout_id)

    async def update(self, payout: Payout) -> None:
        stored = self.s.payouts.get(payout.payout_id)
        if stored is not None and stored is not payout and stored.version != payout.version:
            raise ConcurrentUpdate(payout.payout_id)
        payout.version += 1
        self.s.payouts[payout.payout_id] = payout

    async def query(self, q: PayoutQuery) -> list[Payout]:
        return list(self.s.payouts.values())

    async def to_drive(self, rail: Rail, now: datetime, limit: int) -> list[str]:
        return [
            p.payout_id
            for p in self.s.payouts.values()
            if p.status
            in (
                PayoutStatus.CREATED,
                PayoutStatus.SENDING,
                PayoutStatus.TRANSFERRED,
                PayoutStatus.RETURNING,
            )
        ]

    async def sent_unsettled(self, rail: Rail, checked_before: datetime, limit: int) -> list[str]:
        return []

    async def add_run(self, run: PayoutRun) -> None: ...

    async def get_run(self, run_id: str) -> PayoutRun | None:
        return None

    async def run_by_request(self, request_id: str) -> PayoutRun | None:
        return None

    async def of_run(self, run_id: str) -> list[Payout]:
        return []


class FakePayees(PayeeRepository):
    def __init__(self, s: State) -> None:
        self.s = s

    async def get(self, employee: str) -> PayeeAccount | None:
        return self.s.payees.get(employee)

    async def put(self, account: PayeeAccount) -> None:
        self.s.payees[account.employee] = account


class FakeLedger(LedgerRepository):
    def __init__(self, s: State) -> None:
        self.s = s

    async def post(self, entry: JournalEntry) -> None:
        if await self.has(entry.kind.value, entry.reference):
            raise DuplicateKey(entry.reference)
        self.s.entries.append(entry)

    async def has(self, kind: str, reference: str) -> bool:
        return any(e.kind.value == kind and e.reference == reference for e in self.s.entries)

    async def balance(self, account: str, currency: str) -> int:
        return sum(
            leg.amount
            for e in self.s.entries
            if e.currency == currency
            for leg in e.legs
            if leg.account == account
        )

    async def balances(self) -> dict[tuple[str, str], int]:
        return {}


class FakeEvents(StripeEventLog):
    def __init__(self, s: State) -> None:
        self.s = s

    async def record(self, event_id: str, event_type: str, payout_id: str) -> bool:
        if event_id in self.s.events_seen:
            return False
        self.s.events_seen.add(event_id)
        return True


class NoReceipts(ReceiptRefRepository):
    async def get_many(self, receipt_ids: list[str]) -> dict:  # type: ignore[type-arg]
        return {}

    async def get(self, receipt_id: str) -> None:
        return None

    async def put(self, ref: object) -> None: ...

    async def matched_to(self, match_id: str) -> list:  # type: ignore[type-arg]
        return []


class NoBankFiles(BankFileRepository):
    async def get(self, run_id: str) -> StoredBankFile | None:
        return None

    async def add(self, file: StoredBankFile) -> None: ...


class FakeUow(UnitOfWork):
    def __init__(self, store: Store) -> None:
        self.store = store

    async def __aenter__(self) -> FakeUow:
        self.state = copy.deepcopy(self.store.committed)
        self.claims = FakeClaims(self.state)
        self.receipts = NoReceipts()
        self.payouts = FakePayouts(self.state, self.store.committed)
        self.payees = FakePayees(self.state)
        self.ledger = FakeLedger(self.state)
        self.stripe_events = FakeEvents(self.state)
        self.bank_files = NoBankFiles()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def commit(self) -> None:
        self.store.committed = copy.deepcopy(self.state)

    async def emit(
        self, event_type: str, aggregate_id: str, payload: Any, *, actor: str = ""
    ) -> None:
        self.state.emitted.append((event_type, aggregate_id))

    async def audit(
        self,
        *,
        actor: str,
        action: str,
        entity_type: str,
        entity_id: str,
        before: Mapping[str, Any] | None,
        after: Mapping[str, Any] | None,
        reason: str = "",
    ) -> None:
        self.state.audits.append(action)


@dataclass
class Call:
    step: str
    key: str
    committed_attempt: int
    committed_status: PayoutStatus


class FakeStripe(StripeGateway):
    """Remembers what it made per key (replays like Stripe) and fails as scripted."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.calls: list[Call] = []
        self.script: list[Exception | None] = []  # per create call: raise this, or work
        self.transfers: dict[str, RailTransfer] = {}  # by key
        self.payouts: dict[str, RailPayout] = {}
        self.reversals: dict[str, str] = {}
        self.lookups = 0

    def _record(self, step: str, key: str, payout_id: str) -> None:
        committed = self.store.committed.payouts[payout_id]
        self.calls.append(Call(step, key, committed.attempt, committed.status))
        if self.script:
            error = self.script.pop(0)
            if error is not None:
                raise error

    async def create_transfer(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailTransfer:
        self._record("transfer", key, payout_id)
        if key not in self.transfers:
            self.transfers[key] = RailTransfer(
                f"tr_{len(self.transfers) + 1}", amount, currency, account, attempt=attempt
            )
        return self.transfers[key]

    async def find_transfer(self, payout_id: str) -> RailTransfer | None:
        self.lookups += 1
        live = [t for t in self.transfers.values() if not t.fully_reversed]
        return live[0] if live else None

    async def get_transfer(self, transfer_id: str) -> RailTransfer:
        return next(t for t in self.transfers.values() if t.transfer_id == transfer_id)

    async def create_payout(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailPayout:
        self._record("payout", key, payout_id)
        if key not in self.payouts:
            self.payouts[key] = RailPayout(
                f"po_{len(self.payouts) + 1}", "pending", amount, currency
            )
        return self.payouts[key]

    async def find_payout(
        self, account: str, payout_id: str, attempt: int, since: object
    ) -> RailPayout | None:
        self.lookups += 1
        live = [p for p in self.payouts.values() if p.status != "failed"]
        failed = [p for p in self.payouts.values() if p.status == "failed" and p.attempt == attempt]
        found = live or failed
        return found[0] if found else None

    async def get_payout(self, account: str, stripe_payout_id: str) -> RailPayout:
        return next(p for p in self.payouts.values() if p.payout_id == stripe_payout_id)

    async def reverse_transfer(self, key: str, *, transfer_id: str, payout_id: str) -> str:
        self._record("reversal", key, payout_id)
        for k, t in self.transfers.items():
            if t.transfer_id == transfer_id:
                self.transfers[k] = RailTransfer(
                    t.transfer_id,
                    t.amount,
                    t.currency,
                    t.destination,
                    amount_reversed=t.amount,
                    attempt=t.attempt,
                    reversal_id="trr_1",
                )
        return self.reversals.setdefault(key, "trr_1")

    async def check_account(self, account: str) -> str:
        return ""

    async def create_test_account(self, employee: str, currency: str) -> str:
        return "acct_x"


@pytest.fixture
def store() -> Store:
    s = Store()
    claim = Claim("clm-1", "aiko", [ClaimLine("r-1", Money(5_000, "JPY"), "travel")], "", NOW)
    claim.approve(Actor("chika", frozenset({"approver"})), NOW)
    claim.enter_payout("pay-1")
    s.committed.claims[claim.claim_id] = claim
    s.committed.payouts["pay-1"] = Payout(
        "pay-1", "run-1", "aiko", Money(5_000, "JPY"), Rail.STRIPE, ["clm-1"], NOW
    )
    s.committed.payees["aiko"] = PayeeAccount("aiko", "acct_aiko")
    from seisan_payouts.domain import ledger

    s.committed.entries.append(ledger.claim_approved(claim))
    return s


def rail_for(store: Store, gateway: FakeStripe, faults: Faults | None = None) -> StripeRail:
    ports = handlers.PayoutsPorts(uow=lambda: FakeUow(store), clock=lambda: NOW)
    return StripeRail(ports, gateway, faults=faults or Faults(), retry_after=0.0)


def payout_of(store: Store) -> Payout:
    return store.committed.payouts["pay-1"]


async def test_attempt_is_committed_before_each_call_and_keys_follow_it(store: Store) -> None:
    stripe = FakeStripe(store)
    await rail_for(store, stripe).drive("pay-1")
    assert [(c.step, c.key, c.committed_attempt) for c in stripe.calls] == [
        ("transfer", "seisan-pay-1-a1-transfer", 1),
        ("payout", "seisan-pay-1-a1-payout", 1),
    ]
    assert [c.committed_status for c in stripe.calls] == [
        PayoutStatus.SENDING,
        PayoutStatus.TRANSFERRED,
    ]
    p = payout_of(store)
    assert (p.status, p.transfer_id, p.stripe_payout_id) == (PayoutStatus.SENT, "tr_1", "po_1")
    assert stripe.lookups == 0  # a fresh attempt needs no lookup
    assert store.committed.emitted == [("payout.sent", "pay-1")]


async def test_a_transient_failure_waits_then_resends_the_same_key_after_a_lookup(
    store: Store,
) -> None:
    stripe = FakeStripe(store)
    stripe.script = [RailTemporarilyDown("429 x5")]
    rail = rail_for(store, stripe)
    await rail.drive("pay-1")
    p = payout_of(store)
    assert p.status is PayoutStatus.SENDING and p.next_try_at is not None
    assert rail.stats.deferred == 1
    await rail.drive("pay-1")
    assert [c.key for c in stripe.calls] == ["seisan-pay-1-a1-transfer"] * 2 + [
        "seisan-pay-1-a1-payout"
    ]
    assert stripe.lookups == 1 and payout_of(store).status is PayoutStatus.SENT


async def test_a_key_spent_on_an_error_is_retired_after_the_lookup_finds_nothing(
    store: Store,
) -> None:
    stripe = FakeStripe(store)
    stripe.script = [RailIndeterminate("500 saved")]
    rail = rail_for(store, stripe)
    await rail.drive("pay-1")
    assert [(c.key, c.committed_attempt) for c in stripe.calls[:2]] == [
        ("seisan-pay-1-a1-transfer", 1),
        ("seisan-pay-1-a2-transfer", 2),
    ]
    assert rail.stats.new_keys == 1 and len(stripe.transfers) == 1


async def test_a_crash_after_stripe_worked_is_resumed_by_lookup_not_a_second_transfer(
    store: Store,
) -> None:
    stripe = FakeStripe(store)
    crashing = rail_for(
        store, stripe, Faults.from_env({"SEISAN_FAULTS": "payout.after_stripe:raise"})
    )
    with pytest.raises(InjectedFault):
        await crashing.drive("pay-1")
    assert payout_of(store).status is PayoutStatus.SENDING  # the result was never committed
    await rail_for(store, stripe).drive("pay-1")
    assert [c.step for c in stripe.calls] == ["transfer", "payout"]  # no second transfer
    assert stripe.lookups == 1 and payout_of(store).status is PayoutStatus.SENT


async def test_a_declined_transfer_fails_the_payout_and_releases_its_claims(store: Store) -> None:
    stripe = FakeStripe(store)
    stripe.script = [RailDeclined("insufficient funds", "balance_insufficient")]
    await rail_for(store, stripe).drive("pay-1")
    p = payout_of(store)
    assert p.status is PayoutStatus.FAILED
    assert p.failure_reason == (
        "Stripe refused the transfer: insufficient funds (balance_insufficient)"
    )
    claim = store.committed.claims["clm-1"]
    assert (claim.status, claim.payout_failure_reason) == (ClaimStatus.APPROVED, p.failure_reason)
    assert store.committed.emitted == [("payout.failed", "pay-1")]


def _event(event_id: str, event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {"id": event_id, "type": event_type, "data": {"object": obj}}


async def test_webhooks_settle_once_and_never_go_back(store: Store) -> None:
    stripe = FakeStripe(store)
    rail = rail_for(store, stripe)
    await rail.drive("pay-1")
    paid = _event("evt_2", "payout.paid", {"id": "po_1", "metadata": {"payout_id": "pay-1"}})
    created = _event("evt_1", "payout.created", {"id": "po_1", "metadata": {"payout_id": "pay-1"}})
    assert await rail.handle_event(paid) == "applied"
    assert await rail.handle_event(paid) == "duplicate"
    assert await rail.handle_event(created) == "no change"  # late: paid stays paid
    failed = _event("evt_3", "payout.failed", {"id": "po_1", "metadata": {"payout_id": "pay-1"}})
    assert await rail.handle_event(failed) == "no change"
    p = payout_of(store)
    assert p.status is PayoutStatus.PAID
    assert store.committed.claims["clm-1"].status is ClaimStatus.PAID
    assert [e for e, _ in store.committed.emitted] == ["payout.sent", "payout.paid"]
    kinds = [e.kind.value for e in store.committed.entries]
    assert kinds == ["claim.approved", "payout.sent", "payout.paid"]


async def test_a_failed_payout_is_reversed_before_its_claims_return(store: Store) -> None:
    stripe = FakeStripe(store)
    rail = rail_for(store, stripe)
    await rail.drive("pay-1")
    failed = _event(
        "evt_9",
        "payout.failed",
        {
            "id": "po_1",
            "metadata": {"payout_id": "pay-1"},
            "failure_code": "account_closed",
            "failure_message": "The bank account has been closed.",
        },
    )
    assert await rail.handle_event(failed) == "applied"
    assert payout_of(store).status is PayoutStatus.RETURNING
    assert store.committed.claims["clm-1"].status is ClaimStatus.PAYOUT_PENDING  # not yet
    await rail.drive("pay-1")
    p = payout_of(store)
    assert (p.status, p.reversal_id) == (PayoutStatus.FAILED, "trr_1")
    assert stripe.calls[-1].key == "seisan-pay-1-a1-reversal"
    claim = store.committed.claims["clm-1"]
    assert claim.status is ClaimStatus.APPROVED
    assert claim.payout_failure_reason == "The bank account has been closed. (account_closed)"
    kinds = [e.kind.value for e in store.committed.entries]
    assert kinds == ["claim.approved", "payout.sent", "payout.returned"]


async def test_no_connected_account_fails_without_calling_stripe(store: Store) -> None:
    del store.committed.payees["aiko"]
    stripe = FakeStripe(store)
    await rail_for(store, stripe).drive("pay-1")
    assert stripe.calls == []
    p = payout_of(store)
    assert (p.status, p.failure_reason) == (
        PayoutStatus.FAILED,
        "aiko has no Stripe account linked",
    )


async def test_late_events_of_an_earlier_attempt_leave_the_retry_alone(store: Store) -> None:
    stripe = FakeStripe(store)
    rail = rail_for(store, stripe)
    await rail.drive("pay-1")
    first_failed = _event(
        "evt_f1",
        "payout.failed",
        {
            "id": "po_1",
            "metadata": {"payout_id": "pay-1", "attempt": "1"},
            "failure_code": "account_closed",
        },
    )
    await rail.handle_event(first_failed)
    key = "seisan-pay-1-a1-payout"
    stripe.payouts[key] = dataclasses.replace(stripe.payouts[key], status="failed")
    await rail.drive("pay-1")
    assert payout_of(store).status is PayoutStatus.FAILED
    await handlers.retry_payout("pay-1", Actor("daichi", frozenset({"treasury"})), rail.ports)

    def stop_at(nth: int) -> StripeRail:
        plan = {"SEISAN_FAULTS": f"payout.before_stripe:raise@{nth}"}
        return rail_for(store, stripe, Faults.from_env(plan))

    with pytest.raises(InjectedFault):
        await stop_at(1).drive("pay-1")  # attempt 2 recorded, nothing sent yet
    late_transfer = _event(
        "evt_t1",
        "transfer.created",
        {
            "id": "tr_1",
            "transfer_group": "pay-1",
            "metadata": {"payout_id": "pay-1", "attempt": "1"},
            "reversed": False,
        },
    )
    assert await rail.handle_event(late_transfer) == "no change"
    assert (payout_of(store).status, payout_of(store).attempt) == (PayoutStatus.SENDING, 2)
    with pytest.raises(InjectedFault):
        await stop_at(2).drive("pay-1")  # transferred again (tr_2); the payout not yet made
    late_failure = _event(
        "evt_f1-again",
        "payout.failed",
        {"id": "po_1", "metadata": {"payout_id": "pay-1", "attempt": "1"}},
    )
    assert await rail.handle_event(late_failure) == "no change"
    assert payout_of(store).status is PayoutStatus.TRANSFERRED
    await rail.drive("pay-1")
    paid = _event(
        "evt_p2",
        "payout.paid",
        {"id": "po_2", "metadata": {"payout_id": "pay-1", "attempt": "2"}},
    )
    assert await rail.handle_event(paid) == "applied"
    p = payout_of(store)
    assert (p.status, p.transfer_id, p.stripe_payout_id) == (PayoutStatus.PAID, "tr_2", "po_2")
    assert store.committed.claims["clm-1"].status is ClaimStatus.PAID
