"""The Stripe rail against the local Stripe-compatible server, in one process.

Everything real but the process boundary: the official SDK over HTTP, signed
webhooks to the service's endpoint, the driver, SQLite or PostgreSQL. Each test
ends by checking the payouts against Stripe's own records (transfers per
``transfer_group``, payouts per ``metadata[payout_id]``) and the money: what the
platform lost is exactly what was paid. Crashes *between* processes are in
test_payouts_crash.py; here a fault point raises and a fresh driver resumes.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import pytest
import sqlalchemy as sa

from seisan_payouts import handlers
from seisan_payouts.adapters.stripe_gateway import SdkStripeGateway
from seisan_payouts.adapters.tables import stripe_events
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.domain import ledger
from seisan_payouts.domain.model import Actor, ClaimStatus
from seisan_payouts.domain.payouts import TERMINAL, Payout, PayoutStatus, Rail
from seisan_payouts.domain.policy import PolicyConfig
from seisan_payouts.entrypoints.webhook import StripeWebhook, WebhookServer
from seisan_payouts.stripe_rail import StripeRail
from seisan_payouts.testing import approved_claim, audit_against_stripe
from seisan_shared import catalogue
from seisan_shared.faults import Faults, InjectedFault
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations
from seisan_shared.stripe_local import (
    DeliveryPolicy,
    FaultRule,
    LocalStripe,
    StripeSpec,
    signature_header,
)
from seisan_shared.stripe_local.spec import default_spec_path

KEY = "sk_test_seisan_payouts"
SECRET = "whsec_payouts_test"
TREASURY = Actor("daichi", frozenset({"treasury"}))
FUNDS = 50_000_000


@dataclass
class Rig:
    db: Database
    stripe: LocalStripe
    ports: handlers.PayoutsPorts
    gateway: SdkStripeGateway
    webhook: WebhookServer
    rails: list[StripeRail] = field(default_factory=list)
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def start_rail(self, faults: Faults | None = None) -> StripeRail:
        rail = StripeRail(
            self.ports,
            self.gateway,
            faults=faults or Faults(),
            concurrency=8,
            poll_interval=0.1,
            retry_after=0.1,
            reconcile_after=1.5,
        )
        self.ports.wake_rail = rail.wake
        self.rails.append(rail)
        self.tasks.append(asyncio.create_task(rail.run()))
        return rail

    @property
    def rail(self) -> StripeRail:
        return self.rails[-1]

    async def stop_rails(self) -> None:
        for rail, task in zip(self.rails, self.tasks, strict=True):
            await rail.stop(1.0)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, InjectedFault):
                await task

    async def employee(self, name: str, currency: str = "jpy") -> str:
        account = await self.gateway.create_test_account(name, currency)
        await handlers.link_payee(
            handlers.LinkPayee(TREASURY, name, stripe_account_id=account), self.ports
        )
        return account

    async def pay(self, *claims: tuple[str, int], currency: str = "JPY") -> list[Payout]:
        for claimant, amount in claims:
            await approved_claim(self.ports, claimant, [Money(amount, currency)])
        _, payouts = await handlers.create_payout_run(
            handlers.CreateRun(TREASURY, Rail.STRIPE), self.ports
        )
        return payouts

    async def payout(self, payout_id: str) -> Payout:
        async with self.ports.uow() as uow:
            found = await uow.payouts.get(payout_id)
        assert found is not None
        return found

    async def settled(self, payouts: list[Payout], within: float = 30.0) -> list[Payout]:
        deadline = asyncio.get_running_loop().time() + within
        while True:
            now = [await self.payout(p.payout_id) for p in payouts]
            if all(p.status in TERMINAL for p in now):
                return now
            if asyncio.get_running_loop().time() > deadline:
                pytest.fail(f"not settled: {[(p.payout_id, p.status.value) for p in now]}")
            await asyncio.sleep(0.05)

    def transfers_of(self, payout_id: str) -> list[dict[str, Any]]:
        return [t for t in self.stripe.store.transfers.values() if t["transfer_group"] == payout_id]

    def stripe_payouts_of(self, payout_id: str) -> list[dict[str, Any]]:
        return [
            p
            for p in self.stripe.store.payouts.values()
            if (p.get("metadata") or {}).get("payout_id") == payout_id
        ]

    def check_against_stripe(self, payouts: list[Payout]) -> None:
        """Stripe's records agree with ours: paid once, or failed with the money back."""
        paid_total: Counter[str] = Counter()
        for p in payouts:
            live = [t for t in self.transfers_of(p.payout_id) if not t["reversed"]]
            paid_out = [x for x in self.stripe_payouts_of(p.payout_id) if x["status"] == "paid"]
            if p.status is PayoutStatus.PAID:
                assert len(live) == 1 and live[0]["amount"] == p.amount.minor_units, p.payout_id
                assert len(paid_out) == 1 and paid_out[0]["id"] == p.stripe_payout_id
                paid_total[p.amount.currency.lower()] += p.amount.minor_units
            else:
                assert p.status is PayoutStatus.FAILED and p.failure_reason, p
                assert live == [] and paid_out == [], p.payout_id
        platform = self.stripe.balances()[self.stripe.platform_id]
        for currency in ("jpy", "usd"):
            assert platform.get(currency, 0) == FUNDS - paid_total[currency]
        for account, balance in self.stripe.balances().items():
            if account != self.stripe.platform_id:
                assert all(v == 0 for v in balance.values()), (account, balance)


@pytest.fixture(scope="module")
def spec() -> StripeSpec | None:
    """Stripe's OpenAPI description: every request and answer of these tests is checked."""
    return StripeSpec.load() if default_spec_path().exists() else None


@pytest.fixture
async def rig(database: Database, spec: StripeSpec | None) -> AsyncIterator[Rig]:
    async for r in _rig(database, spec):
        yield r


@pytest.fixture
async def sqlite_rig(sqlite_db: Database, spec: StripeSpec | None) -> AsyncIterator[Rig]:
    async for r in _rig(sqlite_db, spec):
        yield r


async def _rig(db: Database, spec: StripeSpec | None) -> AsyncIterator[Rig]:
    await run_migrations(db, MIGRATIONS)
    catalogue.import_all()
    holder: list[Rig] = []

    async def apply(event: dict[str, Any]) -> str:
        return await holder[0].rail.handle_event(event)

    webhook = await WebhookServer(StripeWebhook(apply, SECRET), port=0).start()
    stripe_server = LocalStripe(
        webhook_url=webhook.url,
        webhook_secret=SECRET,
        payout_delay=0.2,
        platform_balance={"jpy": FUNDS, "usd": FUNDS},
        country="JP",
        seed=7,
        record=True,
        spec=spec,
        delivery=DeliveryPolicy(first_retry=0.05, max_retry=0.5, max_attempts=20, timeout=5),
    )
    await stripe_server.start()
    gateway = SdkStripeGateway(KEY, stripe_server.api_base, timeout=1.0, retries=4, backoff=0.02)
    ports = handlers.PayoutsPorts(
        uow=lambda: SqlUnitOfWork(db), policy=PolicyConfig(), stripe=gateway
    )
    rig = Rig(db, stripe_server, ports, gateway, webhook)
    holder.append(rig)
    try:
        yield rig
        assert stripe_server.spec_violations == []
    finally:
        await rig.stop_rails()
        await stripe_server.stop()
        await webhook.stop(1.0)


async def _events(db: Database, event_type: str) -> list[str]:
    from seisan_shared import events
    from seisan_shared.storage.tables import outbox

    async with db.transaction() as s:
        rows = (await s.execute(sa.select(outbox.c.payload).order_by(outbox.c.seq))).all()
    return [e.aggregate_id for e in (events.decode(r[0]) for r in rows) if e.type == event_type]


# -- the happy path and a bank that refuses ----------------------------------------------------


async def test_paid_through_transfer_payout_and_webhook(rig: Rig) -> None:
    await rig.employee("aiko")
    await rig.employee("ben")
    rig.start_rail()
    payouts = await rig.pay(("aiko", 1_200), ("aiko", 800), ("ben", 3_000))
    assert sorted(p.amount.minor_units for p in payouts) == [2_000, 3_000]
    done = await rig.settled(payouts)
    assert [p.status for p in done] == [PayoutStatus.PAID, PayoutStatus.PAID]
    assert all(p.attempt == 1 and p.transfer_id and p.stripe_payout_id for p in done)
    rig.check_against_stripe(done)
    async with rig.ports.uow() as uow:
        for p in done:
            for claim in await uow.claims.get_many(p.claim_ids):
                assert claim.status is ClaimStatus.PAID
        balances = await uow.ledger.balances()
    assert balances[(ledger.payable_account("aiko"), "JPY")] == 0
    assert balances[(ledger.IN_TRANSIT, "JPY")] == 0
    assert balances[(ledger.cash_account(Rail.STRIPE), "JPY")] == -5_000
    assert balances[(ledger.expense_account("travel"), "JPY")] == 5_000
    for kind in ("payout.sent", "payout.paid"):
        assert sorted(await _events(rig.db, kind)) == sorted(p.payout_id for p in done)
    # Every Stripe POST carried a key derived from the payout id and attempt.
    keys = {x.idempotency_key for x in rig.stripe.exchanges if x.method == "POST"}
    for p in done:
        assert f"seisan-{p.payout_id}-a1-transfer" in keys
        assert f"seisan-{p.payout_id}-a1-payout" in keys


async def test_failed_payout_is_reversed_and_claims_return_then_retry_pays(rig: Rig) -> None:
    account = await rig.employee("aiko")
    rig.stripe.fail_payouts_for(account, "account_closed")
    rig.start_rail()
    (payout,) = await rig.pay(("aiko", 4_321))
    (failed,) = await rig.settled([payout])
    assert failed.status is PayoutStatus.FAILED
    assert "The bank account has been closed. (account_closed)" == failed.failure_reason
    assert failed.reversal_id.startswith("trr_")
    rig.check_against_stripe([failed])
    async with rig.ports.uow() as uow:
        (claim,) = await uow.claims.get_many(failed.claim_ids)
        assert claim.status is ClaimStatus.APPROVED
        assert claim.payout_failure_reason == failed.failure_reason
        assert await uow.ledger.balance(ledger.IN_TRANSIT, "JPY") == 0
        assert await uow.ledger.balance(ledger.payable_account("aiko"), "JPY") == -4_321
    assert await _events(rig.db, "payout.failed") == [failed.payout_id]

    rig.stripe.fail_payouts_for(account, None)
    await handlers.retry_payout(failed.payout_id, TREASURY, rig.ports)
    (paid,) = await rig.settled([failed])
    assert paid.status is PayoutStatus.PAID and paid.attempt == 2
    assert len(rig.transfers_of(paid.payout_id)) == 2  # the first one reversed
    rig.check_against_stripe([paid])


async def test_transfer_refused_for_lack_of_funds_fails_with_the_reason(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    await rig.employee("aiko")
    rig.start_rail()
    (payout,) = await rig.pay(("aiko", FUNDS + 1))
    (failed,) = await rig.settled([payout])
    assert failed.status is PayoutStatus.FAILED
    assert failed.failure_reason.startswith("Stripe refused the transfer: You have insufficient")
    assert rig.transfers_of(failed.payout_id) == []
    async with rig.ports.uow() as uow:
        (claim,) = await uow.claims.get_many(failed.claim_ids)
    assert claim.status is ClaimStatus.APPROVED


# -- Stripe misbehaving -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rules",
    [
        pytest.param([FaultRule("fail_before", path="/v1/*", method="POST", times=3)], id="500"),
        pytest.param([FaultRule("rate_limit", path="/v1/*", method="POST", times=3)], id="429"),
        pytest.param([FaultRule("lock_timeout", path="/v1/transfers", times=2)], id="lock"),
        pytest.param(
            [FaultRule("fail_after", path="/v1/*", method="POST", times=2)], id="500-after-work"
        ),
        pytest.param(
            [FaultRule("stall_after", path="/v1/*", method="POST", times=2, seconds=3)],
            id="timeout-after-work",
        ),
        pytest.param(
            [FaultRule("drop_after", path="/v1/payouts", method="POST", times=1)],
            id="dropped-after-work",
        ),
        pytest.param(
            [FaultRule("fail_saved", path="/v1/*", method="POST", times=2)], id="500-saved"
        ),
        pytest.param(
            [FaultRule("rate_limit", path="/v1/*", probability=0.9, times=12)],
            id="429-beyond-retries",
        ),
    ],
)
async def test_stripe_errors_never_pay_twice(sqlite_rig: Rig, rules: list[FaultRule]) -> None:
    rig = sqlite_rig
    for name in ("aiko", "ben", "hana"):
        await rig.employee(name)
    rig.stripe.set_faults(rules)
    rig.start_rail()
    payouts = await rig.pay(("aiko", 1_000), ("ben", 2_000), ("hana", 3_000))
    done = await rig.settled(payouts)
    assert [p.status for p in done] == [PayoutStatus.PAID] * 3
    assert sum(rig.stripe.faults.injected.values()) >= 1
    rig.check_against_stripe(done)
    assert sorted(await _events(rig.db, "payout.paid")) == sorted(p.payout_id for p in done)


async def test_saved_500_retires_the_key_and_a_new_attempt_pays(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    await rig.employee("aiko")
    rig.stripe.set_faults([FaultRule("fail_saved", path="/v1/transfers", times=1)])
    rig.start_rail()
    (payout,) = await rig.pay(("aiko", 777))
    (done,) = await rig.settled([payout])
    assert done.status is PayoutStatus.PAID and done.attempt == 2
    assert rig.rail.stats.new_keys == 1
    (transfer,) = rig.transfers_of(done.payout_id)
    assert transfer["metadata"]["attempt"] == "2"
    rig.check_against_stripe([done])


async def test_webhooks_twice_and_out_of_order_change_nothing(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    for name in ("aiko", "ben"):
        await rig.employee(name)
    rig.stripe.set_faults(
        [
            FaultRule("webhook_duplicate", probability=1.0),
            FaultRule("webhook_out_of_order", event_type="payout.created", probability=1.0),
        ]
    )
    rig.start_rail()
    payouts = await rig.pay(("aiko", 500), ("ben", 600))
    done = await rig.settled(payouts)
    assert [p.status for p in done] == [PayoutStatus.PAID] * 2
    await rig.stripe.wait_webhooks_idle(10)
    assert rig.rail.stats.duplicate_webhooks >= 4
    async with rig.db.transaction() as s:
        seen = (await s.execute(sa.select(sa.func.count()).select_from(stripe_events))).scalar()
    assert seen == len(rig.stripe.store.events) == 6  # transfer, payout created, paid: x2
    assert sorted(await _events(rig.db, "payout.paid")) == sorted(p.payout_id for p in done)
    rig.check_against_stripe(done)
    # A late payout.created (resent now) does not move a paid payout back.
    created = [e for e in rig.stripe.store.events.values() if e["type"] == "payout.created"]
    rig.stripe.resend_event(created[0]["id"])
    await rig.stripe.wait_webhooks_idle(10)
    assert [(await rig.payout(p.payout_id)).status for p in done] == [PayoutStatus.PAID] * 2


async def test_webhook_with_a_bad_signature_is_refused(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    rig.start_rail()
    body = b'{"id": "evt_x", "type": "payout.paid", "data": {"object": {}}}'
    status, _ = await rig.webhook.endpoint(body, signature_header(body.decode(), "whsec_wrong"))
    assert status == 400
    status, reply = await rig.webhook.endpoint(body, signature_header(body.decode(), SECRET))
    assert status == 200 and reply["outcome"] == "ignored"


# -- a crash at each point, then a fresh driver ------------------------------------------------


@pytest.mark.parametrize(
    "plan",
    [
        "payout.before_stripe:raise@1",
        "payout.after_stripe:raise@1",
        "payout.before_stripe:raise@2",
        "payout.after_stripe:raise@2",
    ],
)
async def test_a_fresh_driver_resumes_after_a_crash(sqlite_rig: Rig, plan: str) -> None:
    rig = sqlite_rig
    await rig.employee("aiko")
    crashing = Faults.from_env({"SEISAN_FAULTS": plan})
    rail = StripeRail(rig.ports, rig.gateway, faults=crashing)
    rig.rails.append(rail)
    rig.tasks.append(asyncio.create_task(asyncio.sleep(0)))
    (payout,) = await rig.pay(("aiko", 2_468))
    with pytest.raises(InjectedFault):
        await rail.drive(payout.payout_id)
    stuck = await rig.payout(payout.payout_id)
    # Stripe did the work the database never recorded; its webhook may already have
    # told the service (SENT) before the check — the outcome below is what must hold.
    allowed = [PayoutStatus.SENDING, PayoutStatus.TRANSFERRED]
    if plan.startswith("payout.after_stripe"):
        allowed.append(PayoutStatus.SENT)
    assert stuck.status in allowed
    rig.start_rail()  # the recovery loop of a restarted process
    (done,) = await rig.settled([payout])
    assert done.status is PayoutStatus.PAID and done.attempt == 1
    rig.check_against_stripe([done])
    if plan.startswith("payout.after_stripe"):
        assert rig.rail.stats.adopted + rig.rail.stats.webhooks >= 1


async def test_sent_payout_whose_webhooks_were_lost_is_reconciled(sqlite_rig: Rig) -> None:
    rig = sqlite_rig
    await rig.employee("aiko")
    await rig.webhook.stop(0.5)  # the endpoint is down: every delivery fails
    rig.start_rail()
    (payout,) = await rig.pay(("aiko", 1_111))
    (done,) = await rig.settled([payout], within=20)
    assert done.status is PayoutStatus.PAID
    assert rig.rail.stats.reconciled >= 1 and rig.rail.stats.webhooks == 0
    rig.check_against_stripe([done])


async def test_the_stripe_audit_catches_a_second_transfer_and_an_unsettled_payout(
    sqlite_rig: Rig,
) -> None:
    """The chaos run's checker is not vacuous: it sees what it is there to see."""
    rig = sqlite_rig
    account = await rig.employee("aiko")
    await rig.employee("ben")
    rig.start_rail()
    first, second = await rig.pay(("aiko", 1_000), ("ben", 2_000))
    await rig.settled([first, second])
    client = rig.gateway.client
    audit = await audit_against_stripe(rig.db, client)
    assert (audit.n, audit.paid, audit.duplicates, audit.lost) == (2, 2, 0, 0)

    aiko = first if first.employee == "aiko" else second
    await client.v1.transfers.create_async(
        {
            "amount": 1_000,
            "currency": "jpy",
            "destination": account,
            "transfer_group": aiko.payout_id,
        }
    )
    await rig.stop_rails()
    (third,) = await rig.pay(("aiko", 3_000))  # created, never sent: not settled
    audit = await audit_against_stripe(rig.db, client)
    assert (audit.n, audit.paid, audit.duplicates, audit.lost) == (3, 1, 1, 1)
    assert any(third.payout_id in p and "still created" in p for p in audit.problems)
    assert audit.line() == "payouts: n=3 paid=1 failed=0 duplicates=1 lost=1"
