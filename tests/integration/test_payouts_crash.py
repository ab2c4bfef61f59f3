"""The payout service really dies at each crash point, restarts, and pays exactly once.

``python -m seisan_payouts`` runs as a child process with ``SEISAN_FAULTS`` naming
one point (the process exits 137 there, like a SIGKILL); the local Stripe server
runs as its own process so it outlives the crash. The test then starts the
service again without faults and waits: the recovery loop resumes the payouts
in flight, Stripe's webhook retries reach the new process, and every payout must
end paid once at Stripe, with one ``payout.paid`` event on JetStream.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import nats
import pytest
import stripe

from seisan_payouts import handlers
from seisan_payouts.adapters.stripe_gateway import SdkStripeGateway
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.domain.model import Actor
from seisan_payouts.domain.payouts import TERMINAL, PayoutStatus, Rail
from seisan_payouts.testing import approved_claim, audit_against_stripe
from seisan_shared import events, subjects
from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import stored_messages
from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations, sqlite_url_for
from seisan_shared.stripe_local import LocalStripeProcess
from support.processes import ServiceProcess, free_port

pytestmark = pytest.mark.slow

KEY = "sk_test_seisan_crash"
SECRET = "whsec_crash_test"
TREASURY = Actor("daichi", frozenset({"treasury"}))
EMPLOYEES = ("aiko", "ben", "hana")


@dataclass
class Stack:
    tmp: Path
    nats_url: str
    stripe: LocalStripeProcess
    db_url: str
    env: dict[str, str]

    def service(self, name: str) -> ServiceProcess:
        return ServiceProcess("seisan_payouts", self.env, self.tmp, name)

    async def seed(self) -> list[str]:
        """Payee accounts, approved claims and a Stripe run, written before the service starts."""
        db = await Database(self.db_url).open()
        try:
            await run_migrations(db, MIGRATIONS)
            gateway = SdkStripeGateway(KEY, self.stripe.api_base)
            ports = handlers.PayoutsPorts(uow=lambda: SqlUnitOfWork(db), stripe=gateway)
            for i, name in enumerate(EMPLOYEES):
                account = await gateway.create_test_account(name, "JPY")
                await handlers.link_payee(
                    handlers.LinkPayee(TREASURY, name, stripe_account_id=account), ports
                )
                await approved_claim(ports, name, [Money(1_000 * (i + 1), "JPY")])
            _, payouts = await handlers.create_payout_run(
                handlers.CreateRun(TREASURY, Rail.STRIPE), ports
            )
            return [p.payout_id for p in payouts]
        finally:
            await db.close()

    async def statuses(self, ids: list[str]) -> dict[str, PayoutStatus]:
        db = await Database(self.db_url).open()
        try:
            async with SqlUnitOfWork(db) as uow:
                found = {i: await uow.payouts.get(i) for i in ids}
            return {i: p.status for i, p in found.items() if p is not None}
        finally:
            await db.close()

    async def settled(self, ids: list[str], proc: ServiceProcess, within: float = 60.0) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + within
        while loop.time() < deadline:
            statuses = await self.statuses(ids)
            if len(statuses) == len(ids) and all(s in TERMINAL for s in statuses.values()):
                return
            assert proc.proc is not None and proc.proc.poll() is None, proc.log()[-3000:]
            await asyncio.sleep(0.2)
        pytest.fail(f"not settled: {await self.statuses(ids)}\n{proc.log()[-3000:]}")

    async def audit(self, ids: list[str]) -> None:
        db = await Database(self.db_url).open()
        try:
            client = stripe.StripeClient(
                KEY,
                base_addresses={"api": self.stripe.api_base},
                http_client=stripe.HTTPXClient(timeout=10),
            )
            result = await audit_against_stripe(db, client, ids)
        finally:
            await db.close()
        assert (result.duplicates, result.lost) == (0, 0), result.problems
        assert result.paid == len(ids), result.line()

    async def paid_events_on_the_bus(self) -> Counter[str]:
        """payout.paid messages in SEISAN_EVENTS, by payout id (JetStream's own record)."""
        nc = await nats.connect(self.nats_url)
        try:
            js = nc.jetstream()
            seen: Counter[str] = Counter()
            for data in await stored_messages(js, subjects.subject_for(subjects.PAYOUT_PAID)):
                seen[events.decode(data).aggregate_id] += 1
            return seen
        finally:
            await nc.close()


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[Stack]:
    nats_server = NatsServer(tmp_path / "nats", name="payouts-crash")
    nats_server.start()
    webhook_port = free_port()
    local = LocalStripeProcess(
        [
            "--webhook-url",
            f"http://127.0.0.1:{webhook_port}/stripe/webhook",
            "--webhook-secret",
            SECRET,
            "--fund",
            "jpy:100000000",
            "--country",
            "JP",
            "--payout-delay",
            "0.3",
            "--webhook-first-retry",
            "0.2",
            "--webhook-max-attempts",
            "30",
            "--webhook-timeout",
            "5",
        ],
        log_path=tmp_path / "stripe.log",
    ).start()
    tokens = tmp_path / "tokens.toml"
    TokenStore.issue(tokens, "daichi", ["treasury"])
    db_url = sqlite_url_for(tmp_path / "payouts.sqlite")
    env = {
        "SEISAN_NATS_URL": nats_server.url,
        "SEISAN_PAYOUTS_TOKENS_FILE": str(tokens),
        "SEISAN_PAYOUTS_VAR_DIR": str(tmp_path / "var"),
        "SEISAN_PAYOUTS_DATABASE_URL": db_url,
        "SEISAN_PAYOUTS_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
        "SEISAN_PAYOUTS_WEBHOOK_PORT": str(webhook_port),
        "SEISAN_PAYOUTS_STRIPE_API_BASE": local.api_base,
        "SEISAN_PAYOUTS_STRIPE_API_KEY": KEY,
        "SEISAN_PAYOUTS_STRIPE_WEBHOOK_SECRET": SECRET,
        "SEISAN_PAYOUTS_STRIPE_TIMEOUT_SECONDS": "3",
        "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.2",
        "SEISAN_PAYOUTS_RECONCILE_AFTER_SECONDS": "5",
        "SEISAN_PAYOUTS_LOG_LEVEL": "INFO",
    }
    try:
        yield Stack(tmp_path, nats_server.url, local, db_url, env)
    finally:
        local.stop()
        nats_server.stop()


@pytest.mark.parametrize(
    "fault",
    [
        "payout.before_stripe:exit",  # dies before the first call to Stripe
        "payout.after_stripe:exit",  # Stripe made the transfer; the database never heard
        "payout.after_stripe:exit@2",  # Stripe accepted the payout; the database never heard
        "outbox.before_publish:exit@3",  # state committed, its events not yet published
        "webhook.mid_handle:exit",  # dies while applying a webhook (nothing committed)
    ],
)
async def test_crash_restart_pays_exactly_once(stack: Stack, fault: str) -> None:
    ids = await stack.seed()
    first = stack.service("first").start({"SEISAN_FAULTS": fault})
    code = await asyncio.to_thread(first.wait_exit, 60)
    assert code == 137, first.log()[-3000:]
    assert f"injected crash at {fault.split(':')[0]}" in first.log()

    second = stack.service("second").start()
    try:
        await stack.settled(ids, second)
        await asyncio.sleep(0.5)  # let the relay publish the last events
        await stack.audit(ids)
        assert all(s is PayoutStatus.PAID for s in (await stack.statuses(ids)).values())
    finally:
        assert second.terminate() == 0, second.log()[-3000:]
    on_bus = await stack.paid_events_on_the_bus()
    assert on_bus == Counter({pid: 1 for pid in ids}), json.dumps(on_bus)
