"""A small chaos run against the local Stripe server: every fault kind at random, money exact.

Each payout is a transfer to an employee's connected account then a payout on
it, created the way a payout rail must: a stable ``Idempotency-Key`` per step,
retried with the same key on 429, 409, 5xx, timeouts and dropped connections;
and, when a 500 was *saved* under the key (Stripe replays it), a look-up of
what happened before a new key is tried. The test then checks that every
payout exists exactly once and settled exactly once, that the receiver saw a
terminal webhook for each despite duplicates and reordering, and that no money
appeared or vanished.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import stripe

from seisan_shared.stripe_local import DeliveryPolicy, FaultRule, LocalStripe, wire

SECRET = "whsec_chaos"
KEY = "sk_test_chaos"
PAYOUTS = 200
EMPLOYEES = 12
FUNDED = 50_000_000

RULES = [
    FaultRule("fail_before", method="POST", probability=0.05),
    FaultRule("rate_limit", method="POST", probability=0.04),
    FaultRule("lock_timeout", method="POST", probability=0.03),
    FaultRule("slow", method="POST", probability=0.03, seconds=0.05),
    FaultRule("fail_saved", method="POST", probability=0.02),
    FaultRule("fail_after", method="POST", probability=0.05),
    FaultRule("stall_after", method="POST", probability=0.02, seconds=1.5),
    FaultRule("drop_after", method="POST", probability=0.03),
    FaultRule("webhook_duplicate", probability=0.1),
    FaultRule("webhook_out_of_order", probability=0.1),
    FaultRule("payout_fail", probability=0.1, failure_code="could_not_process"),
]


@dataclass
class Inbox:
    events: list[Any] = field(default_factory=list)
    deliveries: int = 0

    async def handle(self, request: wire.Request) -> wire.Response:
        self.deliveries += 1
        event = stripe.Webhook.construct_event(
            request.body.decode(), request.header("stripe-signature"), SECRET
        )
        self.events.append(event)
        return wire.Response(200)

    def outcomes(self) -> dict[str, str]:
        """Terminal status per payout id, deduplicated by event id."""
        seen: set[str] = set()
        result: dict[str, str] = {}
        for event in self.events:
            if event.id in seen or event.type not in ("payout.paid", "payout.failed"):
                continue
            seen.add(event.id)
            payout_id = event.data.object.metadata["payout_id"]
            assert payout_id not in result, f"{payout_id} settled twice"
            result[payout_id] = event.data.object.status
        return result


def _meta(obj: Any, key: str) -> str | None:
    value: str | None = obj.metadata.to_dict().get(key)
    return value


def exactly_once(
    create: Callable[[str], Any], lookup: Callable[[], Any | None], key_base: str
) -> Any:
    """Create with a stable key; retry transient failures with it; after a saved 500, look up."""
    attempt = 0
    for _ in range(100):
        key = f"{key_base}:{attempt}"
        try:
            return create(key)
        except (stripe.RateLimitError, stripe.APIConnectionError):
            time.sleep(0.01)
        except stripe.APIError as e:
            replayed = (e.headers or {}).get("Idempotent-Replayed") == "true"
            if e.http_status and e.http_status >= 500 and replayed:
                found = lookup()
                if found is not None:
                    return found
                attempt += 1  # the key holds a 500 and nothing happened: a new key
    raise AssertionError(f"{key_base}: no success after 100 tries")


def pay(client: stripe.StripeClient, payout_id: str, account: str, amount: int) -> None:
    group = f"group-{payout_id}"

    def find_transfer() -> Any | None:
        return next(iter(client.v1.transfers.list({"transfer_group": group}).data), None)

    def find_payout() -> Any | None:
        pages = client.v1.payouts.list({"limit": 100}, {"stripe_account": account})
        matches = [p for p in pages.auto_paging_iter() if _meta(p, "payout_id") == payout_id]
        return matches[0] if matches else None

    transfer_params: Any = {
        "amount": amount,
        "currency": "usd",
        "destination": account,
        "transfer_group": group,
        "metadata": {"payout_id": payout_id},
    }
    payout_params: Any = {"amount": amount, "currency": "usd", "metadata": {"payout_id": payout_id}}
    exactly_once(
        lambda key: client.v1.transfers.create(transfer_params, {"idempotency_key": key}),
        find_transfer,
        f"{payout_id}:transfer",
    )
    exactly_once(
        lambda key: client.v1.payouts.create(
            payout_params, {"idempotency_key": key, "stripe_account": account}
        ),
        find_payout,
        f"{payout_id}:payout",
    )


def open_account(client: stripe.StripeClient, index: int) -> str:
    params: Any = {
        "type": "custom",
        "country": "US",
        "capabilities": {"transfers": {"requested": True}},
        "external_account": {
            "object": "bank_account",
            "country": "US",
            "currency": "usd",
            "account_number": "000123456789",
        },
        "metadata": {"employee": str(index)},
    }

    def find() -> Any | None:
        matches = [
            a
            for a in client.v1.accounts.list({"limit": 100}).auto_paging_iter()
            if _meta(a, "employee") == str(index)
        ]
        return matches[0] if matches else None

    account = exactly_once(
        lambda key: client.v1.accounts.create(params, {"idempotency_key": key}),
        find,
        f"employee-{index}",
    )
    return str(account.id)


async def test_random_faults_never_pay_twice_or_lose_a_payout() -> None:
    inbox = Inbox()
    receiver = wire.HttpServer(inbox.handle)
    await receiver.start()
    rng = random.Random(2024)
    try:
        async with LocalStripe(
            webhook_url=f"{receiver.base_url}/webhook",
            webhook_secret=SECRET,
            payout_delay=0.05,
            faults=RULES,
            seed=2024,
            platform_balance={"usd": FUNDED},
            delivery=DeliveryPolicy(max_attempts=10, first_retry=0.02, concurrency=4),
        ) as local:
            client = stripe.StripeClient(
                KEY,
                base_addresses={"api": local.api_base},
                http_client=stripe.RequestsClient(timeout=1.0),
            )
            accounts = [await asyncio.to_thread(open_account, client, i) for i in range(EMPLOYEES)]
            plan = [
                (f"pay-{i}", rng.choice(accounts), rng.randint(100, 50_000)) for i in range(PAYOUTS)
            ]
            await asyncio.gather(
                *(asyncio.to_thread(pay, client, pid, acct, amount) for pid, acct, amount in plan)
            )
            # Settlement timers and webhook retries run on; poll until every payout ended.
            for _ in range(600):
                if len(inbox.outcomes()) == PAYOUTS and await local.wait_webhooks_idle(0.1):
                    break
                await asyncio.sleep(0.1)

            store = local.store
            transfers = Counter(t["transfer_group"] for t in store.transfers.values())
            payouts = Counter(po["metadata"]["payout_id"] for po in store.payouts.values())
            duplicates = sum(n - 1 for n in transfers.values()) + sum(
                n - 1 for n in payouts.values()
            )
            outcomes = inbox.outcomes()
            lost = sum(1 for pid, _, _ in plan if pid not in outcomes)
            paid = sum(1 for s in outcomes.values() if s == "paid")
            failed = sum(1 for s in outcomes.values() if s == "failed")
            line = f"n={PAYOUTS} paid={paid} failed={failed} duplicates={duplicates} lost={lost}"
            print(f"payouts: {line}")
            assert (duplicates, lost, paid + failed) == (0, 0, PAYOUTS)
            assert len(store.accounts) == EMPLOYEES
            for po in store.payouts.values():
                assert outcomes[po["metadata"]["payout_id"]] == po["status"]

            balances = local.balances()
            assert all(v >= 0 for per in balances.values() for v in per.values())
            held = sum(per.get("usd", 0) for per in balances.values())
            paid_out = sum(po["amount"] for po in store.payouts.values() if po["status"] == "paid")
            assert held + paid_out == FUNDED
            assert balances[local.platform_id]["usd"] == FUNDED - sum(a for _, _, a in plan)

            injected = local.faults.injected
            assert set(injected) == {r.action for r in RULES}, injected
            stats = local.webhooks.stats
            assert stats.duplicates > 0 and stats.reordered > 0 and stats.given_up == 0
            assert inbox.deliveries > len(store.events)  # duplicates did arrive
    finally:
        await receiver.stop()
