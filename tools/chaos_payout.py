"""`make chaos-payout`: ≥ 1,000 payouts through crashes and a misbehaving Stripe, then the books.

What runs (all local, in a temp directory):

* a JetStream server (nats-server from the wheel) and the local Stripe-compatible
  server as its own process, with random faults: 500s before and after the
  work, saved 500s, 429s (rate limit and lock timeout), answers that never come
  (timeouts after the work), dropped connections, webhooks delivered twice or
  out of order, and some bank payouts failing;
* ``python -m seisan_payouts`` started again and again, each life with one
  random crash point from ``payout.before_stripe``, ``payout.after_stripe``,
  ``outbox.before_publish`` and ``webhook.mid_handle`` (``:exit@K``, K random:
  the process dies there like a SIGKILL), then a last life without faults
  until every payout is paid or failed.

Then every payout is checked against Stripe's own records (transfers by
``transfer_group``, the connected accounts' payouts by ``metadata[payout_id]``),
the outbox and JetStream (one paid-or-failed event per payout). The last line
is ``payouts: n=<N> paid=<P> failed=<F> duplicates=<D> lost=<L>``; the exit
status is 1 unless duplicates and lost are both 0.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import nats
import stripe

from seisan_payouts import handlers
from seisan_payouts.adapters.stripe_gateway import SdkStripeGateway
from seisan_payouts.adapters.uow import SqlUnitOfWork
from seisan_payouts.bootstrap import MIGRATIONS
from seisan_payouts.domain.model import Actor, PaidWith, ReceiptState
from seisan_payouts.domain.payouts import TERMINAL, Rail
from seisan_payouts.domain.policy import ClaimRequestItem
from seisan_payouts.domain.ports import PayeeAccount
from seisan_payouts.testing import StripeAudit, audit_against_stripe
from seisan_shared import events, subjects
from seisan_shared.auth import TokenStore
from seisan_shared.bus.client import stored_messages
from seisan_shared.bus.natsserver import NatsServer, free_port
from seisan_shared.money import Money
from seisan_shared.storage import Database, run_migrations, sqlite_url_for
from seisan_shared.stripe_local import FaultRule, LocalStripeProcess

KEY = "sk_test_seisan_chaos"
SECRET = "whsec_seisan_chaos"
TREASURY = Actor("treasury-bot", frozenset({"treasury"}))
APPROVER = "chaos-approver"
# Crash points and how many hits apart a crash may come (the outbox relay passes far
# less often than Stripe is called or webhooks arrive).
CRASH_POINTS = {
    "payout.before_stripe": 1.0,
    "payout.after_stripe": 1.0,
    "outbox.before_publish": 0.1,
    "webhook.mid_handle": 1.0,
}


def stripe_faults(rate: float) -> list[FaultRule]:
    """Trouble on every request kind; ``rate`` scales the request faults."""
    api, post = "/v1/*", "POST"
    return [
        FaultRule("fail_before", api, post, probability=rate),
        FaultRule("rate_limit", api, probability=rate),
        FaultRule("lock_timeout", api, post, probability=rate / 2),
        FaultRule("fail_after", api, post, probability=rate),
        FaultRule("fail_saved", api, post, probability=rate / 3),
        FaultRule("stall_after", api, post, probability=rate / 3, seconds=4.0),
        FaultRule("drop_after", api, post, probability=rate / 3),
        FaultRule("webhook_duplicate", probability=0.1),
        FaultRule("webhook_out_of_order", probability=0.05),
        FaultRule("payout_fail", probability=0.04, failure_code="account_closed"),
    ]


def log(message: str) -> None:
    print(message, flush=True)


async def seed(db_url: str, api_base: str, count: int, rng: random.Random) -> int:
    """``count`` employees, each with a connected account and one approved claim; two runs.

    Accounts and receipts are written in bulk (they are set-up, not what is tested);
    claims go through the real submit and approve handlers, runs through the real run.
    """
    db = await Database(db_url).open()
    try:
        await run_migrations(db, MIGRATIONS)
        gateway = SdkStripeGateway(KEY, api_base, timeout=10)
        ports = handlers.PayoutsPorts(uow=lambda: SqlUnitOfWork(db), stripe=gateway)
        names = [f"emp{i:05d}" for i in range(count)]
        accounts: list[str] = []
        for start in range(0, count, 50):
            chunk = names[start : start + 50]
            accounts += await asyncio.gather(
                *(gateway.create_test_account(name, "JPY") for name in chunk)
            )
        receipts: dict[str, str] = {}
        now = datetime.now(UTC)
        async with ports.uow() as uow:
            for name, account in zip(names, accounts, strict=True):
                await uow.payees.put(
                    PayeeAccount(name, account, updated_by=TREASURY.name, updated_at=now)
                )
                receipts[name] = f"rcpt-{name}"
                await handlers.record_receipt(
                    handlers.ReceiptFacts(
                        receipt_id=receipts[name],
                        submitter=name,
                        paid_with=PaidWith.PERSONAL,
                        state=ReceiptState.EXTRACTED,
                        total=Money(rng.randrange(500, 50_000), "JPY"),
                        transaction_date=now.date(),
                        merchant="JR East",
                        occurred_at=now,
                    ),
                    uow,
                )
            await uow.commit()
        approver = Actor(APPROVER, frozenset({"approver"}))
        made = 0
        for half in (names[: count // 2], names[count // 2 :]):
            for name in half:
                claim = await handlers.submit_claim(
                    handlers.SubmitClaim(
                        Actor(name, frozenset({"staff"})),
                        [ClaimRequestItem(receipts[name], "travel")],
                    ),
                    ports,
                )
                await handlers.approve_claim(claim.claim_id, "", approver, ports)
            _, payouts = await handlers.create_payout_run(
                handlers.CreateRun(TREASURY, Rail.STRIPE), ports
            )
            made += len(payouts)
        return made
    finally:
        await db.close()


async def count_unsettled(db_url: str) -> int:
    from sqlalchemy import func, select

    from seisan_payouts.adapters.tables import payouts

    db = await Database(db_url).open()
    try:
        async with db.transaction() as s:
            value = await s.scalar(
                select(func.count())
                .select_from(payouts)
                .where(payouts.c.status.not_in([t.value for t in TERMINAL]))
            )
        return int(value or 0)
    finally:
        await db.close()


async def events_on_the_bus(nats_url: str) -> Counter[str]:
    """payout.paid / payout.failed messages in SEISAN_EVENTS per payout id."""
    nc = await nats.connect(nats_url)
    seen: Counter[str] = Counter()
    try:
        js = nc.jetstream()
        for event_type in (subjects.PAYOUT_PAID, subjects.PAYOUT_FAILED):
            for data in await stored_messages(js, subjects.subject_for(event_type)):
                seen[events.decode(data).aggregate_id] += 1
    finally:
        await nc.close()
    return seen


class Service:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.proc: subprocess.Popen[bytes] | None = None
        self.lives = 0

    def start(self, fault: str | None) -> None:
        self.lives += 1
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        if fault:
            env["SEISAN_FAULTS"] = fault
        with (self.log_dir / f"payouts-{self.lives:03d}.log").open("wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "seisan_payouts"], env=env, stdout=out, stderr=out
            )

    def wait(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds."""
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        return self.proc.returncode


async def run(args: argparse.Namespace, workdir: Path) -> StripeAudit:
    rng = random.Random(args.seed)
    workdir.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    nats_server = NatsServer(workdir / "nats", name="chaos-payout")
    nats_server.start()
    webhook_port = free_port()
    stripe_process = LocalStripeProcess(
        [
            "--webhook-url",
            f"http://127.0.0.1:{webhook_port}/stripe/webhook",
            "--webhook-secret",
            SECRET,
            "--fund",
            "jpy:100000000000",
            "--country",
            "JP",
            "--payout-delay",
            "0.3",
            "--seed",
            str(args.seed),
            "--webhook-first-retry",
            "0.2",
            "--webhook-max-attempts",
            "40",
            "--webhook-timeout",
            "5",
            "--webhook-concurrency",
            "4",
            "--log-level",
            "WARNING",
        ],
        log_path=workdir / "stripe.log",
    ).start()
    service = None
    try:
        db_url = sqlite_url_for(workdir / "payouts.sqlite")
        n = await seed(db_url, stripe_process.api_base, args.payouts, rng)
        log(f"seeded {n} payouts in {time.monotonic() - started:.0f}s; faults on")
        stripe_process.control.set_faults(stripe_faults(args.fault_rate), seed=args.seed)
        tokens = workdir / "tokens.toml"
        if not tokens.exists():
            TokenStore.issue(tokens, "treasury-bot", ["treasury"])
        service = Service(
            {
                "SEISAN_NATS_URL": nats_server.url,
                "SEISAN_PAYOUTS_TOKENS_FILE": str(tokens),
                "SEISAN_PAYOUTS_VAR_DIR": str(workdir / "var"),
                "SEISAN_PAYOUTS_DATABASE_URL": db_url,
                "SEISAN_PAYOUTS_GRPC_ADDRESS": f"127.0.0.1:{free_port()}",
                "SEISAN_PAYOUTS_WEBHOOK_PORT": str(webhook_port),
                "SEISAN_PAYOUTS_STRIPE_API_BASE": stripe_process.api_base,
                "SEISAN_PAYOUTS_STRIPE_API_KEY": KEY,
                "SEISAN_PAYOUTS_STRIPE_WEBHOOK_SECRET": SECRET,
                "SEISAN_PAYOUTS_STRIPE_TIMEOUT_SECONDS": "2",
                "SEISAN_PAYOUTS_RAIL_CONCURRENCY": "16",
                "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.5",
                "SEISAN_PAYOUTS_RAIL_RETRY_AFTER_SECONDS": "1",
                "SEISAN_PAYOUTS_RECONCILE_AFTER_SECONDS": "10",
                "SEISAN_PAYOUTS_LOG_LEVEL": "WARNING",
            },
            workdir,
        )
        crashes: Counter[str] = Counter()
        order = sorted(CRASH_POINTS)
        rng.shuffle(order)  # every point comes up, in a random order
        for life in range(args.crashes):
            point = order[life % len(order)]
            nth = rng.randrange(2, max(3, int(args.crash_spacing * CRASH_POINTS[point])))
            service.start(f"{point}:exit@{nth}")
            while (code := await asyncio.to_thread(service.wait, 1.0)) is None:
                if await count_unsettled(db_url) == 0:  # all settled before the crash came
                    code = service.stop()
                    break
            if code == 137:
                crashes[point] += 1
            left = await count_unsettled(db_url)
            log(f"life {service.lives}: {point}@{nth} → exit {code}; {left} unsettled")
            if left == 0:
                break
        service.start(None)
        deadline = time.monotonic() + args.settle_timeout
        while True:
            left = await count_unsettled(db_url)
            if left == 0:
                break
            if time.monotonic() > deadline or not service.running():
                log(f"gave up waiting: {left} payouts unsettled")
                break
            await asyncio.sleep(0.5)
        stripe_process.control.clear_faults()
        stripe_process.control.wait_webhooks_idle(30)
        await asyncio.sleep(1.0)  # the relay's last pass
        final = service.stop()
        log(f"final life {service.lives} stopped with exit {final}")

        db = await Database(db_url).open()
        try:
            client = stripe.StripeClient(
                KEY,
                base_addresses={"api": stripe_process.api_base},
                http_client=stripe.HTTPXClient(timeout=30),
            )
            audit = await audit_against_stripe(db, client)
        finally:
            await db.close()
        on_bus = await events_on_the_bus(nats_server.url)
        bus_duplicates = sum(1 for count in on_bus.values() if count > 1)
        bus_missing = audit.n - len(on_bus)
        audit.duplicates += bus_duplicates
        if bus_missing > 0:
            audit.problems.append(f"{bus_missing} payouts without a settled event on JetStream")
            audit.lost += bus_missing
        stats = stripe_process.control.stats()
        log(f"crashes: {dict(crashes)} in {service.lives} lives")
        log(f"stripe faults injected: {json.dumps(stats['faults_injected'], sort_keys=True)}")
        log(f"webhooks: {json.dumps(stats['webhooks'], sort_keys=True)}")
        for problem in audit.problems[:20]:
            log(f"PROBLEM {problem}")
        log(f"took {time.monotonic() - started:.0f}s")
        return audit
    finally:
        if service is not None:
            service.stop()
        stripe_process.stop()
        nats_server.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--payouts", type=int, default=1000, help="how many payouts (employees)")
    ap.add_argument("--seed", type=int, default=20261130)
    ap.add_argument("--crashes", type=int, default=12, help="process lives with a crash point")
    ap.add_argument(
        "--crash-spacing", type=int, default=400, help="a crash point fires on hit 2..this"
    )
    ap.add_argument("--fault-rate", type=float, default=0.03, help="probability per request fault")
    ap.add_argument("--settle-timeout", type=float, default=240.0)
    ap.add_argument("--keep", help="work in this directory and keep it")
    args = ap.parse_args(argv)
    workdir = Path(args.keep) if args.keep else Path(tempfile.mkdtemp(prefix="chaos-payout-"))
    audit = asyncio.run(run(args, workdir))
    ok = audit.duplicates == 0 and audit.lost == 0 and audit.n >= 1
    if ok and not args.keep:
        shutil.rmtree(workdir, ignore_errors=True)
    else:
        log(f"logs, database and stores kept in {workdir}")
    print(audit.line(), flush=True)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
