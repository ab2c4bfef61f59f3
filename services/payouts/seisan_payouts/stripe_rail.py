"""The Stripe rail's driver: every payout to its end, exactly once, whatever crashes when.

A payout goes ``created → sending → transferred → sent → paid``, or through
``returning`` to ``failed``. Each arrow that calls Stripe is one *step*; the
driver runs a step as:

1. the attempt (and with it the idempotency key) is committed before the call;
2. ``faults.hit("payout.before_stripe")`` — a crash here resumes in step 4;
3. the POST, with the step's key; ``faults.hit("payout.after_stripe")`` — a crash
   here means Stripe did the work but the database does not know it yet;
4. the result is committed with the state change, its ledger posting and its
   event (outbox), in one transaction.

A step resumed after a restart, after a "try later", or past the key's 24-hour
life first *looks the object up* (the transfer by ``transfer_group`` = payout id,
the connected account's payouts by ``metadata[payout_id]``, the transfer's
reversals) and adopts what it finds; only if nothing is there does it POST
again, with the same key. A key that Stripe settled as an error without doing
the work (a saved 500) is retired: after a lookup proves nothing was created the
attempt number goes up, giving the step a new key. So Stripe sees at most one
transfer, one payout and one reversal per key, and the lookups stop a second
key from repeating work the first one did.

The same transitions arrive from webhooks (:meth:`StripeRail.handle_event`):
deduplicated by event id in the transaction that applies them, and applied only
when they move the payout forward (:data:`~seisan_payouts.domain.payouts.RANK`),
so duplicates and out-of-order deliveries change nothing. Payouts sent but not
heard of for ``reconcile_after`` seconds are checked with Stripe directly (a
webhook may have been given up while the service was down).

On start, :meth:`StripeRail.run` picks up every payout that is created or in
flight — the recovery loop — and keeps doing so every ``poll_interval``.

One driver per database: with several replicas on PostgreSQL only the holder of
``lease`` (an advisory lock) drives; the others stand by and take over when it
dies. The steps above are written for one driver: two would send every Stripe
request twice and race each other's lookups, attempt numbers and commits, with
only idempotency keys and version checks between them and a second payment.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from seisan_payouts import settlement
from seisan_payouts.domain.payouts import Payout, PayoutStatus, Rail, Step
from seisan_payouts.domain.ports import (
    ConcurrentUpdate,
    RailDeclined,
    RailIndeterminate,
    RailPayout,
    RailTemporarilyDown,
    StripeGateway,
    UnitOfWork,
)
from seisan_payouts.handlers import PayoutsPorts
from seisan_shared.faults import NO_FAULTS, Faults
from seisan_shared.storage.lease import Lease

log = logging.getLogger("seisan.payouts.rail")

ACTOR = "rail:stripe"
Transition = Callable[[UnitOfWork, Payout], Awaitable[bool]]


@dataclass
class RailStats:
    steps: int = 0
    adopted: int = 0  # a lookup found what an earlier attempt had done
    new_keys: int = 0  # an attempt retired after Stripe settled its key as an error
    deferred: int = 0  # "try later" after transient errors
    webhooks: int = 0
    duplicate_webhooks: int = 0
    reconciled: int = 0


@dataclass
class StripeRail:
    ports: PayoutsPorts
    gateway: StripeGateway
    faults: Faults = field(default_factory=lambda: NO_FAULTS)
    concurrency: int = 8
    poll_interval: float = 2.0
    retry_after: float = 3.0
    reconcile_after: float = 60.0
    max_attempts: int = 10
    lease: Lease | None = None
    stats: RailStats = field(default_factory=RailStats)
    _active: set[str] = field(default_factory=set)
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stopping: bool = False

    def wake(self) -> None:
        self._wake.set()

    # -- the recovery loop ------------------------------------------------------------------

    async def run(self) -> None:
        """Drive every payout with work to do, now and every ``poll_interval``, until stopped."""
        gate = asyncio.Semaphore(self.concurrency)
        while not self._stopping:
            self._wake.clear()
            try:
                if self.lease is None or await self.lease.held():
                    await self._pass(gate)
            except Exception as exc:  # the loop must outlive a database hiccup
                log.warning("stripe rail: pass failed (%r); retrying", exc)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.poll_interval)

    async def _pass(self, gate: asyncio.Semaphore) -> None:
        now = self.ports.clock()
        async with self.ports.uow() as uow:
            due = await uow.payouts.to_drive(Rail.STRIPE, now, self.concurrency * 8)
            stale = await uow.payouts.sent_unsettled(
                Rail.STRIPE, now - timedelta(seconds=self.reconcile_after), self.concurrency * 4
            )
        for payout_id in due:
            self._spawn(gate, payout_id, self.drive)
        for payout_id in stale:
            self._spawn(gate, payout_id, self.reconcile)

    def _spawn(
        self, gate: asyncio.Semaphore, payout_id: str, work: Callable[[str], Awaitable[None]]
    ) -> None:
        if payout_id in self._active:
            return
        self._active.add(payout_id)

        async def go() -> None:
            try:
                async with gate:
                    if not self._stopping:
                        await work(payout_id)
            except Exception:
                log.exception("stripe rail: payout %s", payout_id)
            finally:
                self._active.discard(payout_id)

        task = asyncio.create_task(go(), name=f"payout-{payout_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def stop(self, grace: float = 10.0) -> None:
        """Let steps in progress finish (up to ``grace`` s); anything left resumes on restart."""
        self._stopping = True
        self._wake.set()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=grace)
            for task in pending:
                task.cancel()
        if self.lease is not None:
            await self.lease.release()

    @property
    def busy(self) -> int:
        return len(self._active)

    # -- one payout ------------------------------------------------------------------------

    async def drive(self, payout_id: str) -> None:
        """Take one payout as far as Stripe lets it go now."""
        fresh = False  # True only right after this driver committed the state it acts on
        for _ in range(32):
            payout = await self._load(payout_id)
            if payout is None or payout.rail is not Rail.STRIPE:
                return
            self.stats.steps += 1
            try:
                if payout.status is PayoutStatus.CREATED:
                    fresh = await self._begin(payout)
                elif payout.status is PayoutStatus.SENDING:
                    fresh = await self._transfer(payout, fresh)
                elif payout.status is PayoutStatus.TRANSFERRED:
                    fresh = await self._payout(payout, fresh)
                elif payout.status is PayoutStatus.RETURNING:
                    fresh = await self._reverse(payout, fresh)
                else:
                    return
            except RailTemporarilyDown as exc:
                await self._later(payout_id, str(exc))
                return
            except ConcurrentUpdate:
                fresh = False  # a webhook moved it meanwhile: look again
        log.error("stripe rail: payout %s did not settle within 32 steps", payout_id)

    async def _load(self, payout_id: str) -> Payout | None:
        async with self.ports.uow() as uow:
            return await uow.payouts.get(payout_id)

    async def _apply(self, payout_id: str, transition: Transition) -> bool:
        """Reload the payout and apply ``transition`` in one transaction; whether it changed."""
        async with self.ports.uow() as uow:
            payout = await uow.payouts.get(payout_id)
            if payout is None:
                return False
            changed = await transition(uow, payout)
            if changed:
                await uow.commit()
            return changed

    async def _later(self, payout_id: str, reason: str) -> None:
        self.stats.deferred += 1
        delay = self.retry_after * random.uniform(0.75, 1.5)
        log.warning("stripe rail: payout %s waits %.1fs: %s", payout_id, delay, reason)

        async def defer(uow: UnitOfWork, payout: Payout) -> bool:
            payout.next_try_at = self.ports.clock() + timedelta(seconds=delay)
            await uow.payouts.update(payout)
            return True

        with contextlib.suppress(ConcurrentUpdate):
            await self._apply(payout_id, defer)

    async def _begin(self, payout: Payout) -> bool:
        async def begin(uow: UnitOfWork, p: Payout) -> bool:
            if p.status is not PayoutStatus.CREATED:
                return False
            payee = await uow.payees.get(p.employee)
            before = p.snapshot()
            account = payee.stripe_account_id if payee else ""
            p.begin_attempt(account, self.ports.clock())
            if not account:
                await settlement.refused(
                    uow, p, f"{p.employee} has no Stripe account linked", self.ports.clock(), ACTOR
                )
                return True
            await uow.payouts.update(p)
            await uow.audit(
                actor=ACTOR,
                action="payout.attempt",
                entity_type="payout",
                entity_id=p.payout_id,
                before=before,
                after=p.snapshot(),
            )
            return True

        return await self._apply(payout.payout_id, begin)

    async def _new_key(self, payout: Payout, why: str) -> bool:
        """Retire the attempt's keys (Stripe settled one as an error; nothing was created)."""
        self.stats.new_keys += 1
        log.warning("stripe rail: payout %s attempt %d: %s", payout.payout_id, payout.attempt, why)

        async def bump(uow: UnitOfWork, p: Payout) -> bool:
            if p.status is not payout.status or p.attempt != payout.attempt:
                return False
            if p.attempt >= self.max_attempts and p.status is PayoutStatus.SENDING:
                return await settlement.refused(
                    uow,
                    p,
                    f"Stripe kept failing ({why}); {p.attempt} attempts",
                    self.ports.clock(),
                    ACTOR,
                )
            before = p.snapshot()
            p.new_key_family(self.ports.clock())
            await uow.payouts.update(p)
            await uow.audit(
                actor=ACTOR,
                action="payout.attempt",
                entity_type="payout",
                entity_id=p.payout_id,
                before=before,
                after=p.snapshot(),
                reason=why,
            )
            return True

        return await self._apply(payout.payout_id, bump)

    # -- step 1: the transfer to the connected account --------------------------------------

    async def _transfer(self, payout: Payout, fresh: bool) -> bool:
        if not fresh:
            found = await self.gateway.find_transfer(payout.payout_id)
            if found is not None:
                self.stats.adopted += 1
                return await self._transferred(payout.payout_id, found.transfer_id)
        self.faults.hit("payout.before_stripe")
        try:
            transfer = await self.gateway.create_transfer(
                payout.idempotency_key(Step.TRANSFER),
                payout_id=payout.payout_id,
                attempt=payout.attempt,
                amount=payout.amount.minor_units,
                currency=payout.amount.currency,
                account=payout.destination_account,
            )
        except RailDeclined as exc:
            reason = f"Stripe refused the transfer: {exc.reason}" + (
                f" ({exc.code})" if exc.code else ""
            )
            now = self.ports.clock()
            await self._apply(
                payout.payout_id, lambda uow, p: settlement.refused(uow, p, reason, now, ACTOR)
            )
            return False
        except RailIndeterminate as exc:
            found = await self.gateway.find_transfer(payout.payout_id)
            if found is not None:
                self.stats.adopted += 1
                return await self._transferred(payout.payout_id, found.transfer_id)
            return await self._new_key(payout, str(exc))
        self.faults.hit("payout.after_stripe")
        return await self._transferred(payout.payout_id, transfer.transfer_id)

    async def _transferred(self, payout_id: str, transfer_id: str) -> bool:
        now = self.ports.clock()
        return await self._apply(
            payout_id, lambda uow, p: settlement.transferred(uow, p, transfer_id, now, ACTOR)
        )

    # -- step 2: the payout from the connected account to the bank --------------------------

    async def _payout(self, payout: Payout, fresh: bool) -> bool:
        account = payout.destination_account
        if not fresh:
            found = await self.gateway.find_payout(
                account, payout.payout_id, payout.attempt, payout.attempt_started_at
            )
            if found is not None:
                self.stats.adopted += 1
                return await self.adopt_payout(payout.payout_id, found)
        self.faults.hit("payout.before_stripe")
        try:
            made = await self.gateway.create_payout(
                payout.idempotency_key(Step.PAYOUT),
                payout_id=payout.payout_id,
                attempt=payout.attempt,
                amount=payout.amount.minor_units,
                currency=payout.amount.currency,
                account=account,
            )
        except RailDeclined as exc:
            reason = f"Stripe refused the payout: {exc.reason}" + (
                f" ({exc.code})" if exc.code else ""
            )
            await self._apply(
                payout.payout_id, lambda uow, p: settlement.returning(uow, p, reason, ACTOR)
            )
            return True
        except RailIndeterminate as exc:
            found = await self.gateway.find_payout(
                account, payout.payout_id, payout.attempt, payout.attempt_started_at
            )
            if found is not None:
                self.stats.adopted += 1
                return await self.adopt_payout(payout.payout_id, found)
            return await self._new_key(payout, str(exc))
        self.faults.hit("payout.after_stripe")
        await self.adopt_payout(payout.payout_id, made)
        return False

    async def adopt_payout(self, payout_id: str, found: RailPayout) -> bool:
        """Book what Stripe says about the connected account's payout."""
        now = self.ports.clock()

        async def adopt(uow: UnitOfWork, p: Payout) -> bool:
            if p.stripe_payout_id and p.stripe_payout_id != found.payout_id:
                return False  # about an earlier payout of ours, not the current one
            changed = await settlement.sent(uow, p, found.payout_id, now, ACTOR)
            if found.status == "paid":
                changed = await settlement.paid(uow, p, now, ACTOR) or changed
            elif found.status in ("failed", "canceled"):
                changed = await settlement.returning(uow, p, found.failure_reason, ACTOR) or changed
            elif p.status is PayoutStatus.SENT:
                p.checked_at = now
                await uow.payouts.update(p)
                changed = True
            return changed

        return await self._apply(payout_id, adopt)

    # -- step 3 (failure only): bring the money back -----------------------------------------

    async def _reverse(self, payout: Payout, fresh: bool) -> bool:
        if not fresh:
            transfer = await self.gateway.get_transfer(payout.transfer_id)
            if transfer.fully_reversed:
                self.stats.adopted += 1
                return await self._returned(payout.payout_id, transfer.reversal_id)
        self.faults.hit("payout.before_stripe")
        try:
            reversal_id = await self.gateway.reverse_transfer(
                payout.idempotency_key(Step.REVERSAL),
                transfer_id=payout.transfer_id,
                payout_id=payout.payout_id,
            )
        except RailDeclined as exc:
            transfer = await self.gateway.get_transfer(payout.transfer_id)
            if transfer.fully_reversed:
                return await self._returned(payout.payout_id, transfer.reversal_id)
            # The money is still on the connected account: the claims must wait.
            raise RailTemporarilyDown(f"Stripe refused the reversal: {exc.reason}") from exc
        except RailIndeterminate as exc:
            transfer = await self.gateway.get_transfer(payout.transfer_id)
            if transfer.fully_reversed:
                return await self._returned(payout.payout_id, transfer.reversal_id)
            return await self._new_key(payout, str(exc))
        self.faults.hit("payout.after_stripe")
        await self._returned(payout.payout_id, reversal_id)
        return False

    async def _returned(self, payout_id: str, reversal_id: str) -> bool:
        now = self.ports.clock()
        return await self._apply(
            payout_id,
            lambda uow, p: settlement.returned(uow, p, reversal_id or "reversed", now, ACTOR),
        )

    # -- sent, but not heard of ------------------------------------------------------------

    async def reconcile(self, payout_id: str) -> None:
        payout = await self._load(payout_id)
        if payout is None or payout.status is not PayoutStatus.SENT:
            return
        try:
            found = await self.gateway.get_payout(
                payout.destination_account, payout.stripe_payout_id
            )
        except RailTemporarilyDown as exc:
            log.info("stripe rail: cannot check payout %s now: %s", payout_id, exc)
            return
        except RailDeclined as exc:
            log.error(
                "stripe rail: payout %s: Stripe does not know %s: %s",
                payout_id,
                payout.stripe_payout_id,
                exc.reason,
            )
            return
        self.stats.reconciled += 1
        with contextlib.suppress(ConcurrentUpdate):
            await self.adopt_payout(payout_id, found)
        self.wake()

    # -- webhooks --------------------------------------------------------------------------

    async def handle_event(self, event: dict[str, Any]) -> str:
        """Apply one verified Stripe event; what was done, in a word (for the log)."""
        event_id = str(event.get("id") or "")
        event_type = str(event.get("type") or "")
        obj = (event.get("data") or {}).get("object") or {}
        payout_id = str((obj.get("metadata") or {}).get("payout_id") or "")
        if not payout_id and event_type.startswith("transfer."):
            payout_id = str(obj.get("transfer_group") or "")
        if not event_id or not payout_id:
            return "ignored"
        self.stats.webhooks += 1
        outcome = "ignored"

        async def apply() -> None:
            nonlocal outcome
            async with self.ports.uow() as uow:
                if not await uow.stripe_events.record(event_id, event_type, payout_id):
                    self.stats.duplicate_webhooks += 1
                    outcome = "duplicate"
                    return
                payout = await uow.payouts.get(payout_id)
                changed = False
                if payout is not None and payout.rail is Rail.STRIPE:
                    changed = await self._apply_event(uow, payout, event_type, obj)
                self.faults.hit("webhook.mid_handle")
                await uow.commit()
                outcome = "applied" if changed else "no change"

        for attempt in range(3):
            try:
                await apply()
                break
            except ConcurrentUpdate:
                if attempt == 2:
                    raise
        if outcome == "applied":
            self.wake()
        return outcome

    async def _apply_event(
        self, uow: UnitOfWork, payout: Payout, event_type: str, obj: dict[str, Any]
    ) -> bool:
        now = self.ports.clock()
        object_id = str(obj.get("id") or "")
        attempt = str((obj.get("metadata") or {}).get("attempt") or "")
        if event_type == "transfer.created":
            # Only this attempt's transfer: an earlier one (reversed since) may arrive late.
            if payout.status is PayoutStatus.SENDING and attempt == str(payout.attempt):
                return await settlement.transferred(uow, payout, object_id, now, ACTOR)
            return False
        if event_type in ("transfer.reversed", "transfer.updated"):
            reversed_all = int(obj.get("amount_reversed") or 0) >= int(obj.get("amount") or 1)
            if payout.transfer_id == object_id and reversed_all:
                reversals = (obj.get("reversals") or {}).get("data") or []
                reversal_id = str(reversals[0].get("id")) if reversals else "reversed"
                return await settlement.returned(uow, payout, reversal_id, now, ACTOR)
            return False
        if not event_type.startswith("payout."):
            return False
        if payout.stripe_payout_id:
            if payout.stripe_payout_id != object_id:
                return False  # an earlier Stripe payout of ours; never moves the current one
        elif attempt != str(payout.attempt):
            return False  # not this attempt's: a late event of a payout that failed before
        changed = False
        if event_type in ("payout.created", "payout.updated", "payout.paid", "payout.failed"):
            changed = await settlement.sent(uow, payout, object_id, now, ACTOR)
        if event_type == "payout.paid":
            changed = await settlement.paid(uow, payout, now, ACTOR) or changed
        elif event_type == "payout.failed":
            found = RailPayout(
                payout_id=object_id,
                status="failed",
                amount=int(obj.get("amount") or 0),
                currency=str(obj.get("currency") or "").upper(),
                failure_code=str(obj.get("failure_code") or ""),
                failure_message=str(obj.get("failure_message") or ""),
            )
            changed = (
                await settlement.returning(uow, payout, found.failure_reason, ACTOR) or changed
            )
        return changed
