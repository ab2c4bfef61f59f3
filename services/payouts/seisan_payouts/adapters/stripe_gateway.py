"""Stripe Connect through the official SDK: transfer to the employee's connected account,
then pay out from that account to the employee's bank.

Why this flow. Reimbursing an employee is paying a person who is not a Stripe
customer, so the money goes from the platform's balance to a connected account
the employee holds (``POST /v1/transfers`` with ``destination``), and from there
to their bank (``POST /v1/payouts`` made *on* the connected account, with the
``Stripe-Account`` header). Payouts from the platform's own balance can only go
to the platform's bank accounts, so this is Stripe's documented path for paying
third parties ("separate charges and transfers" + payouts on connected
accounts). Custom or Express accounts keep the employee's bank details at
Stripe, not here. When a payout fails, its money is back on the connected
account; we then reverse the transfer (``POST /v1/transfers/{id}/reversals``) so
it is back on the platform before the claims return to approved-unpaid — the
money is never stranded on an account we no longer track.

Every POST carries the idempotency key the domain derives from (payout id,
attempt, step). Errors are sorted for the driver:

* 429 (rate limit, lock timeout), 409 (key in use), retryable 5xx, timeouts and
  dropped connections: retried here with exponential backoff and jitter, *with
  the same key* (Stripe replays the first answer if the work was done); when the
  retries run out, :class:`RailTemporarilyDown` — the driver tries again later.
* A 500 that Stripe saved under the key (``Stripe-Should-Retry: false``) and an
  idempotency conflict: :class:`RailIndeterminate` — the key will never give
  another answer; the driver looks the object up and, if it is not there, starts
  a new attempt (new key).
* Any other 4xx: :class:`RailDeclined` with Stripe's message and code — nothing
  was done (insufficient funds, no such destination, capability missing).

The SDK's own retries are switched off (``max_network_retries=0``) so that every
retry is counted and logged here.
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from functools import partial
from typing import Any, TypeVar

import stripe

from seisan_payouts.domain.ports import (
    RailDeclined,
    RailIndeterminate,
    RailPayout,
    RailTemporarilyDown,
    RailTransfer,
    StripeGateway,
)

log = logging.getLogger("seisan.payouts.stripe")
T = TypeVar("T")

REAL_STRIPE_API = "https://api.stripe.com"
_COUNTRY_BY_CURRENCY = {"JPY": "JP", "USD": "US", "EUR": "DE", "GBP": "GB"}


def _status(exc: stripe.StripeError) -> int:
    return int(exc.http_status or 0)


def _should_retry_header(exc: stripe.StripeError) -> str:
    headers = exc.headers or {}
    for key, value in headers.items():
        if key.lower() == "stripe-should-retry":
            return str(value).lower()
    return ""


def _code(exc: stripe.StripeError) -> str:
    return str(exc.code or "")


def _message(exc: stripe.StripeError) -> str:
    return str(exc.user_message or exc or type(exc).__name__)


def _plain(obj: Any) -> dict[str, Any]:
    """A StripeObject as plain dicts and lists (they are not dicts themselves)."""
    data: dict[str, Any] = obj.to_dict() if hasattr(obj, "to_dict") else dict(obj)
    return data


def _transfer(obj: Any) -> RailTransfer:
    data = _plain(obj)
    reversals = (data.get("reversals") or {}).get("data") or []
    metadata = data.get("metadata") or {}
    return RailTransfer(
        transfer_id=str(data["id"]),
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        destination=str(data.get("destination") or ""),
        amount_reversed=int(data.get("amount_reversed") or 0),
        attempt=int(metadata.get("attempt") or 0),
        reversal_id=str(reversals[0]["id"]) if reversals else "",
    )


def _payout(obj: Any) -> RailPayout:
    data = _plain(obj)
    metadata = data.get("metadata") or {}
    return RailPayout(
        payout_id=str(data["id"]),
        status=str(data["status"]),
        amount=int(data["amount"]),
        currency=str(data["currency"]).upper(),
        failure_code=str(data.get("failure_code") or ""),
        failure_message=str(data.get("failure_message") or ""),
        attempt=int(metadata.get("attempt") or 0),
    )


def _payout_id_of(obj: Any) -> str:
    return str((_plain(obj).get("metadata") or {}).get("payout_id") or "")


class SdkStripeGateway(StripeGateway):
    """The rail's Stripe calls over ``stripe.StripeClient`` (async, httpx)."""

    def __init__(
        self,
        api_key: str,
        api_base: str = REAL_STRIPE_API,
        *,
        timeout: float = 10.0,
        retries: int = 4,
        backoff: float = 0.25,
        max_backoff: float = 4.0,
        statement_descriptor: str = "SEISAN REIMBURSE",
    ) -> None:
        self.client = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base},
            max_network_retries=0,
            http_client=stripe.HTTPXClient(timeout=timeout),
        )
        self.retries = retries
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.statement_descriptor = statement_descriptor
        self.calls = 0
        self.retried = 0

    async def _call(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call`` with retries on the transient errors; see the module docstring."""
        delay = self.backoff
        last = ""
        for attempt in range(self.retries + 1):
            if attempt:
                self.retried += 1
                await asyncio.sleep(min(delay, self.max_backoff) * random.uniform(0.5, 1.5))
                delay *= 2
            self.calls += 1
            try:
                return await call()
            except stripe.APIConnectionError as exc:
                last = f"no answer from Stripe ({_message(exc)})"
            except stripe.RateLimitError as exc:
                last = f"Stripe is throttling ({_code(exc) or 'rate_limit'})"
            except stripe.StripeError as exc:
                status = _status(exc)
                if isinstance(exc, stripe.IdempotencyError):
                    raise RailIndeterminate(f"{what}: {_message(exc)}") from exc
                if status == 409:
                    last = "another request with this idempotency key is in progress"
                elif status >= 500 or status == 0:
                    if _should_retry_header(exc) == "false":
                        raise RailIndeterminate(
                            f"{what}: Stripe answered {status} and saved it under the key"
                        ) from exc
                    last = f"Stripe answered {status}"
                elif status in (401, 403) and _code(exc) != "account_invalid":
                    # Our key or permissions are wrong: not the payout's fault; keep it waiting.
                    raise RailTemporarilyDown(
                        f"{what}: Stripe refused our key: {_message(exc)}"
                    ) from exc
                else:
                    raise RailDeclined(_message(exc), _code(exc)) from exc
            log.info("stripe %s: %s (try %d of %d)", what, last, attempt + 1, self.retries + 1)
        raise RailTemporarilyDown(f"{what}: {last}; gave up after {self.retries + 1} tries")

    # -- transfers --------------------------------------------------------------------------

    async def create_transfer(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailTransfer:
        params: Any = {
            "amount": amount,
            "currency": currency.lower(),
            "destination": account,
            "transfer_group": payout_id,
            "description": f"Seisan reimbursement {payout_id}",
            "metadata": {"payout_id": payout_id, "attempt": str(attempt)},
        }
        obj = await self._call(
            "create transfer",
            lambda: self.client.v1.transfers.create_async(params, {"idempotency_key": key}),
        )
        return _transfer(obj)

    async def find_transfer(self, payout_id: str) -> RailTransfer | None:
        page = await self._call(
            "list transfers",
            lambda: self.client.v1.transfers.list_async(
                {"transfer_group": payout_id, "limit": 100}
            ),
        )
        live = [_transfer(t) for t in page.data if not _transfer(t).fully_reversed]
        return live[0] if live else None

    async def get_transfer(self, transfer_id: str) -> RailTransfer:
        obj = await self._call(
            "retrieve transfer", lambda: self.client.v1.transfers.retrieve_async(transfer_id)
        )
        return _transfer(obj)

    async def reverse_transfer(self, key: str, *, transfer_id: str, payout_id: str) -> str:
        params: Any = {"metadata": {"payout_id": payout_id}}
        obj = await self._call(
            "reverse transfer",
            lambda: self.client.v1.transfers.reversals.create_async(
                transfer_id, params, {"idempotency_key": key}
            ),
        )
        return str(obj.id)

    # -- payouts on the connected account ----------------------------------------------------

    async def create_payout(
        self, key: str, *, payout_id: str, attempt: int, amount: int, currency: str, account: str
    ) -> RailPayout:
        params: Any = {
            "amount": amount,
            "currency": currency.lower(),
            "description": f"Seisan reimbursement {payout_id}",
            "statement_descriptor": self.statement_descriptor,
            "metadata": {"payout_id": payout_id, "attempt": str(attempt)},
        }
        obj = await self._call(
            "create payout",
            lambda: self.client.v1.payouts.create_async(
                params, {"idempotency_key": key, "stripe_account": account}
            ),
        )
        return _payout(obj)

    async def find_payout(
        self, account: str, payout_id: str, attempt: int, since: datetime | None
    ) -> RailPayout | None:
        params: dict[str, Any] = {"limit": 100}
        if since is not None:
            params["created"] = {"gte": int(since.timestamp()) - 600}
        mine: list[RailPayout] = []

        async def page_of(query: Any) -> Any:
            return await self.client.v1.payouts.list_async(query, {"stripe_account": account})

        while True:
            query: Any = dict(params)
            page = await self._call("list payouts", partial(page_of, query))
            mine += [_payout(item) for item in page.data if _payout_id_of(item) == payout_id]
            if not page.has_more or not page.data:
                break
            params["starting_after"] = page.data[-1].id
        live = [p for p in mine if p.status not in ("failed", "canceled")]
        if live:
            return live[0]
        # A failed payout of an earlier attempt is history (its transfer was reversed).
        this_attempt = [p for p in mine if p.attempt == attempt]
        return this_attempt[0] if this_attempt else None

    async def get_payout(self, account: str, stripe_payout_id: str) -> RailPayout:
        obj = await self._call(
            "retrieve payout",
            lambda: self.client.v1.payouts.retrieve_async(
                stripe_payout_id, None, {"stripe_account": account}
            ),
        )
        return _payout(obj)

    # -- accounts ----------------------------------------------------------------------------

    async def check_account(self, account: str) -> str:
        try:
            obj = await self._call(
                "retrieve account", lambda: self.client.v1.accounts.retrieve_async(account)
            )
        except RailDeclined as exc:
            return exc.reason
        data = _plain(obj)
        if (data.get("capabilities") or {}).get("transfers") != "active":
            return "its transfers capability is not active"
        if not data.get("payouts_enabled"):
            return "payouts are not enabled on it"
        return ""

    async def create_test_account(self, employee: str, currency: str) -> str:
        currency = currency.upper()
        country = _COUNTRY_BY_CURRENCY.get(currency, "US")
        params: Any = {
            "type": "custom",
            "country": country,
            "business_type": "individual",
            "capabilities": {"transfers": {"requested": True}},
            "external_account": {
                "object": "bank_account",
                "country": country,
                "currency": currency.lower(),
                "account_number": "000123456789",
                "routing_number": "110000000",
                "account_holder_name": employee,
            },
            "tos_acceptance": {"date": 1_700_000_000, "ip": "127.0.0.1"},
            "metadata": {"employee": employee},
        }
        key = f"seisan-test-account-{employee}-{uuid.uuid4().hex}"
        obj = await self._call(
            "create account",
            lambda: self.client.v1.accounts.create_async(params, {"idempotency_key": key}),
        )
        return str(obj.id)
