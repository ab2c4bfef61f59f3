"""The local Stripe-compatible API server: routes, auth, idempotency, faults, control.

Start it in-process::

    async with LocalStripe(webhook_url="http://127.0.0.1:8080/stripe", webhook_secret=secret) as s:
        client = stripe.StripeClient("sk_test_x", base_addresses={"api": s.api_base})
        s.fund(1_000_000, "jpy")  # the platform's available balance

or as its own process (``python -m seisan_shared.stripe_local``, see
:mod:`.control`), so that it outlives crashes of the service under test.

A request goes through: auth (any ``sk_test_``/``rk_test_`` key, Bearer or
Basic) → parameters (form-encoded, nested keys) → route → ``Stripe-Account`` →
injected faults that act before the work → idempotency → the endpoint → optional
spec check (``spec=``) → injected faults that act after the work. See
:mod:`.faults` for what each fault does and :mod:`.idempotency` for the key rules.

Control from Python (methods here) or over HTTP under ``/__control/`` (JSON;
:class:`~seisan_shared.stripe_local.control.StripeControl` wraps it).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from seisan_shared.stripe_local import forms, wire
from seisan_shared.stripe_local import objects as ob
from seisan_shared.stripe_local import params as p
from seisan_shared.stripe_local import store as st
from seisan_shared.stripe_local.clock import Clock
from seisan_shared.stripe_local.errors import StripeError
from seisan_shared.stripe_local.faults import FaultPlan, FaultRule
from seisan_shared.stripe_local.idempotency import (
    MAX_KEY_LENGTH,
    IdempotencyKeys,
    InUse,
    Mismatch,
    Replay,
    SavedResponse,
    fingerprint,
)
from seisan_shared.stripe_local.routes import COMPILED, Call, Route
from seisan_shared.stripe_local.webhooks import DeliveryPolicy, WebhookDispatcher, WebhookEndpoint

if TYPE_CHECKING:
    from seisan_shared.stripe_local.spec import StripeSpec

log = logging.getLogger(__name__)

_KEY = re.compile(r"^(sk|rk)_test_[A-Za-z0-9_]+$")


@dataclass
class Exchange:
    """One API request as the server saw it and what the client got (``record=True``)."""

    method: str
    path: str
    params: dict[str, Any]
    stripe_account: str | None
    idempotency_key: str | None
    status: int | None  # None: the connection was dropped or stalled
    body: dict[str, Any] | None
    fault: str | None = None
    replayed: bool = False


def _api_error(message: str = "An unknown error occurred.") -> StripeError:
    return StripeError(500, message, type="api_error", saved=False)


def _encode(body: Mapping[str, Any]) -> bytes:
    return json.dumps(body, indent=2).encode()


class LocalStripe:
    """A Stripe-compatible API for one platform, its connected accounts and webhooks."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        endpoints: Sequence[WebhookEndpoint] = (),
        payout_delay: float | None = 1.0,
        faults: Iterable[FaultRule] = (),
        seed: int | None = None,
        platform_balance: Mapping[str, int] | None = None,
        country: str = "US",
        clock: Clock | None = None,
        delivery: DeliveryPolicy | None = None,
        spec: StripeSpec | None = None,
        record: bool = False,
        state_file: Path | str | None = None,
    ) -> None:
        self.clock = clock or Clock()
        self.store = st.Store(self.clock, country=country)
        self.keys = IdempotencyKeys(self.clock)
        self.faults = FaultPlan(faults, seed)
        self.payout_delay = payout_delay
        self.spec = spec
        self.record = record
        self.exchanges: list[Exchange] = []
        self.spec_violations: list[str] = []
        self.state_file = Path(state_file) if state_file else None
        self.webhook_secret = webhook_secret or ob.new_id("whsec_", 32)
        all_endpoints = list(endpoints)
        if webhook_url:
            all_endpoints.insert(0, WebhookEndpoint(webhook_url, self.webhook_secret))
        self.webhooks = WebhookDispatcher(
            all_endpoints,
            events=lambda event_id: self.store.events[event_id],
            on_delivered=self.store.delivered,
            faults=self.faults,
            policy=delivery,
        )
        self.store.endpoint_count = lambda t: len(self.webhooks.endpoints_for(t))
        self.store.listeners.append(self._on_event)
        self._http = wire.HttpServer(self._handle, host, port)
        self._settle_timers: dict[str, asyncio.TimerHandle] = {}
        self._statuses: Counter[int] = Counter()
        for currency, amount in (platform_balance or {}).items():
            self.store.fund(self.store.platform_id, currency, amount)

    # ---- lifecycle ---------------------------------------------------------------------

    async def start(self) -> LocalStripe:
        if self.state_file and self.state_file.exists():
            self._load(self.state_file)
        await self._http.start()
        self.webhooks.start()
        for payout_id in self.store.pending_payouts():
            self._schedule_settlement(payout_id)
        for event in self.store.events.values():
            if event["pending_webhooks"] > 0:
                self.webhooks.resend(event)
        return self

    async def stop(self) -> None:
        for timer in self._settle_timers.values():
            timer.cancel()
        self._settle_timers.clear()
        await self._http.stop()
        await self.webhooks.stop()
        if self.state_file:
            self.save_snapshot(self.state_file)

    async def __aenter__(self) -> LocalStripe:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def port(self) -> int:
        return self._http.port

    @property
    def api_base(self) -> str:
        """What to give the SDK: ``StripeClient(key, base_addresses={"api": api_base})``."""
        return self._http.base_url

    @property
    def platform_id(self) -> str:
        return self.store.platform_id

    # ---- control (also served under /__control/) ----------------------------------------

    def set_faults(self, rules: Iterable[FaultRule], seed: int | None = None) -> None:
        self.faults.replace(rules, seed)

    def add_fault(self, rule: FaultRule) -> None:
        self.faults.add(rule)

    def clear_faults(self) -> None:
        self.faults.clear()

    def fund(self, amount: int, currency: str, account: str | None = None) -> None:
        """Add ``amount`` (minor units) to the available balance of the platform or ``account``."""
        self.store.fund(account or self.store.platform_id, currency, amount)

    def fail_payout(self, payout_id: str, failure_code: str) -> None:
        """Make a pending payout fail with ``failure_code`` when it settles."""
        if payout_id not in self.store.payouts:
            raise KeyError(payout_id)
        self.store.payout_overrides[payout_id] = failure_code

    def fail_payouts_for(self, account: str, failure_code: str | None) -> None:
        """Make every payout of ``account`` fail (None: stop doing so)."""
        if failure_code is None:
            self.store.account_overrides.pop(account, None)
        else:
            self.store.account_overrides[account] = failure_code

    def settle_payouts(self) -> int:
        """Settle every pending payout now (paid, or failed as planned); return how many."""
        settled = 0
        for payout_id in self.store.pending_payouts():
            settled += self._settle(payout_id)
        return settled

    def balances(self) -> dict[str, dict[str, int]]:
        return {account: dict(amounts) for account, amounts in self.store.balances.items()}

    def stats(self) -> dict[str, Any]:
        payouts = Counter(po["status"] for po in self.store.payouts.values())
        return {
            "requests": sum(self._statuses.values()),
            "by_status": {str(k): v for k, v in sorted(self._statuses.items())},
            "faults_injected": dict(self.faults.injected),
            "webhooks": self.webhooks.stats.to_json(),
            "objects": {
                "accounts": len(self.store.accounts),
                "transfers": len(self.store.transfers),
                "payouts": len(self.store.payouts),
                "events": len(self.store.events),
            },
            "payouts_by_status": dict(payouts),
            "idempotency_keys": len(self.keys),
        }

    async def wait_webhooks_idle(self, wait_seconds: float = 10.0) -> bool:
        """True once every webhook is delivered or given up (False after ``wait_seconds``)."""
        return await self.webhooks.wait_idle(wait_seconds)

    def advance_clock(self, seconds: float) -> float:
        self.clock.advance(seconds)
        return self.clock.now()

    def resend_event(self, event_id: str) -> None:
        self.webhooks.resend(self.store.events[event_id])

    def save_snapshot(self, path: Path | str) -> None:
        target = Path(path)
        state = {"store": self.store.snapshot(), "idempotency": self.keys.snapshot()}
        tmp = target.with_suffix(target.suffix + ".tmp")
        tmp.write_text(json.dumps(state))
        os.replace(tmp, target)

    def _load(self, path: Path) -> None:
        state = json.loads(path.read_text())
        self.store.restore(state["store"])
        self.keys.restore(state["idempotency"])

    # ---- payouts and events ------------------------------------------------------------

    def _on_event(self, event: dict[str, Any]) -> None:
        if self.spec is not None:
            problems = self.spec.response_problems("GET", f"/v1/events/{event['id']}", 200, event)
            self.spec_violations += problems
        self.webhooks.publish(event)
        if event["type"] == "payout.created":
            self._schedule_settlement(event["data"]["object"]["id"])

    def _schedule_settlement(self, payout_id: str) -> None:
        if self.payout_delay is None:
            return
        with contextlib.suppress(RuntimeError):  # no running loop: settled by hand
            loop = asyncio.get_running_loop()
            self._settle_timers[payout_id] = loop.call_later(
                self.payout_delay, self._settle, payout_id
            )

    def _settle(self, payout_id: str) -> bool:
        self._settle_timers.pop(payout_id, None)
        if self.store.payouts[payout_id]["status"] != "pending":
            return False
        owner = self.store.payout_owner[payout_id]
        failure = self.store.planned_failure(payout_id) or self.faults.payout_failure(owner)
        return self.store.settle_payout(payout_id, failure)

    # ---- HTTP --------------------------------------------------------------------------

    async def _handle(self, request: wire.Request) -> wire.Response:
        if request.path.startswith("/__control/"):
            return await self._control(request)
        request_id = ob.new_id("req_", 14)
        response = await self._api(request, request_id)
        self._statuses[response.status if response.disposition == "send" else 0] += 1
        return response

    def _respond(
        self,
        status: int,
        body: Mapping[str, Any] | bytes,
        request_id: str,
        headers: Mapping[str, str] | None = None,
    ) -> wire.Response:
        all_headers = {
            "Content-Type": "application/json",
            "Request-Id": request_id,
            "Stripe-Version": ob.API_VERSION,
            **(headers or {}),
        }
        payload = body if isinstance(body, bytes) else _encode(body)
        return wire.Response(status, payload, all_headers)

    async def _api(self, request: wire.Request, request_id: str) -> wire.Response:
        method, path = request.method, request.path
        key = (request.header("idempotency-key") or None) if method == "POST" else None
        exchange = Exchange(
            method, path, {}, request.header("stripe-account") or None, key, None, None
        )
        try:
            api_key = self._authenticate(request)
            pairs, exchange.params = self._parameters(request)
            route, ident = self._route(method, path)
            acting = self._acting(request, api_key)
        except StripeError as e:
            return self._finish(exchange, self._respond(e.status, e.body(), request_id, e.headers))

        rule = self.faults.for_request(method, path)
        action = rule.action if rule else None
        exchange.fault = action
        if action == "fail_before":
            return self._finish(exchange, self._error(_api_error(), request_id))
        if action in ("rate_limit", "lock_timeout"):
            return self._finish(exchange, self._error(_throttled(action), request_id))

        headers = {"Idempotency-Key": key} if key else {}
        if key is not None:
            if len(key) > MAX_KEY_LENGTH:
                error = p.invalid(f"Idempotency-Key is longer than {MAX_KEY_LENGTH} characters.")
                return self._finish(exchange, self._error(error, request_id))
            outcome = self.keys.begin(acting, key, fingerprint(method, path, pairs))
            if isinstance(outcome, Replay):
                exchange.replayed = True
                saved = outcome.response
                replay = self._respond(
                    saved.status,
                    saved.body,
                    request_id,
                    {
                        **dict(saved.headers),
                        "Idempotent-Replayed": "true",
                        "Original-Request": saved.request_id,
                    },
                )
                return self._finish(exchange, self._after_work(rule, replay, request_id))
            if isinstance(outcome, InUse):
                return self._finish(exchange, self._error(_key_in_use(), request_id))
            if isinstance(outcome, Mismatch):
                return self._finish(exchange, self._error(_key_mismatch(key), request_id))

        info = ob.RequestInfo(request_id, key)
        status, body, saved_flag, extra = await self._execute(
            rule, route, ident, exchange.params, acting, info
        )
        headers.update(extra)
        if self.spec is not None:
            status, body, saved_flag = self._check_spec(
                method, path, exchange.params, status, body, saved_flag
            )
        payload = _encode(body)
        if key is not None:
            if saved_flag:
                self.keys.finish(
                    acting, key, SavedResponse(status, payload, request_id, tuple(headers.items()))
                )
            else:
                self.keys.abandon(acting, key)
        response = self._respond(status, payload, request_id, headers)
        return self._finish(exchange, self._after_work(rule, response, request_id))

    async def _execute(
        self,
        rule: FaultRule | None,
        route: Route,
        ident: str | None,
        params: dict[str, Any],
        acting: str,
        info: ob.RequestInfo,
    ) -> tuple[int, dict[str, Any], bool, dict[str, str]]:
        """Run the endpoint; (status, body, keep-for-the-key, extra headers)."""
        try:
            if rule is not None and rule.action == "slow":
                await asyncio.sleep(rule.seconds)
            if rule is not None and rule.action == "fail_saved":
                error = _api_error()
                return 500, error.body(), True, {"Stripe-Should-Retry": "false"}
            return 200, route.endpoint(self.store, Call(params, acting, info, ident)), True, {}
        except StripeError as e:
            return e.status, e.body(), e.saved, dict(e.headers)
        except asyncio.CancelledError:
            if info.idempotency_key:
                self.keys.abandon(acting, info.idempotency_key)
            raise
        except Exception:
            log.exception("local stripe: %s failed", route.template)
            return 500, _api_error().body(), False, {}

    def _check_spec(
        self,
        method: str,
        path: str,
        params: Mapping[str, Any],
        status: int,
        body: dict[str, Any],
        saved: bool,
    ) -> tuple[int, dict[str, Any], bool]:
        assert self.spec is not None
        problems = self.spec.response_problems(method, path, status, body)
        if status < 400:
            problems = self.spec.request_problems(method, path, params) + problems
        if not problems:
            return status, body, saved
        self.spec_violations += problems
        log.error("local stripe: spec violation: %s", "; ".join(problems))
        error = _api_error("Local Stripe server: spec violation: " + "; ".join(problems[:3]))
        return 500, error.body(), False

    def _after_work(
        self, rule: FaultRule | None, response: wire.Response, request_id: str
    ) -> wire.Response:
        if rule is None:
            return response
        if rule.action == "fail_after":
            return self._error(_api_error(), request_id)
        if rule.action == "stall_after":
            return wire.Response(0, disposition="stall", stall_seconds=rule.seconds)
        if rule.action == "drop_after":
            return wire.Response(0, disposition="drop")
        return response

    def _error(self, error: StripeError, request_id: str) -> wire.Response:
        return self._respond(error.status, error.body(), request_id, error.headers)

    def _finish(self, exchange: Exchange, response: wire.Response) -> wire.Response:
        if self.record:
            if response.disposition == "send":
                exchange.status = response.status
                exchange.body = json.loads(response.body)
            self.exchanges.append(exchange)
        return response

    def _authenticate(self, request: wire.Request) -> str:
        header = request.header("authorization")
        scheme, _, credentials = header.partition(" ")
        key = ""
        if scheme.lower() == "bearer":
            key = credentials.strip()
        elif scheme.lower() == "basic":
            with contextlib.suppress(ValueError):
                key = base64.b64decode(credentials).decode().partition(":")[0]
        if not key:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY'). See https://stripe.com/docs/api#authentication for details.",
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'},
            )
        if not _KEY.match(key):
            raise StripeError(
                401,
                f"Invalid API Key provided: {_mask(key)}",
                code="api_key_invalid" if key.startswith(("sk_", "rk_")) else None,
                headers={"WWW-Authenticate": 'Basic realm="Stripe"'},
            )
        return key

    def _parameters(self, request: wire.Request) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        raw: bytes | str = request.body if request.method == "POST" else request.query
        content_type = request.header("content-type", "application/x-www-form-urlencoded")
        if request.method == "POST" and raw and "x-www-form-urlencoded" not in content_type:
            raise p.invalid(
                f"Invalid request: unsupported Content-Type {content_type}. If error "
                "persists and you need assistance, please contact support@stripe.com."
            )
        try:
            pairs = forms.parse_pairs(raw)
            return pairs, forms.decode(pairs)
        except (forms.FormError, UnicodeDecodeError) as e:
            raise p.invalid(str(e)) from e

    def _route(self, method: str, path: str) -> tuple[Route, str | None]:
        for route, pattern in COMPILED:
            match = pattern.match(path)
            if match and route.method == method:
                return route, match.groupdict().get("ident")
        raise StripeError(
            404,
            f"Unrecognized request URL ({method}: {path}). Please see https://stripe.com/docs "
            "or we can help at https://support.stripe.com/.",
        )

    def _acting(self, request: wire.Request, api_key: str) -> str:
        account = request.header("stripe-account")
        if not account or account == self.store.platform_id:
            return self.store.platform_id
        if account not in self.store.accounts:
            raise StripeError(
                403,
                f"The provided key '{_mask(api_key)}' does not have access to account "
                f"'{account}' (or that account does not exist). Application access may have "
                "been revoked.",
                code="account_invalid",
            )
        return account

    # ---- /__control/ -------------------------------------------------------------------

    async def _control(self, request: wire.Request) -> wire.Response:
        try:
            data = json.loads(request.body) if request.body else {}
            result = await self._control_action(request.method, request.path, data)
            return wire.Response(200, _encode(result), {"Content-Type": "application/json"})
        except (KeyError, ValueError, TypeError) as e:
            body = _encode({"error": f"{type(e).__name__}: {e}"})
            return wire.Response(400, body, {"Content-Type": "application/json"})

    async def _control_action(self, method: str, path: str, data: dict[str, Any]) -> Any:
        action = (method, path.removeprefix("/__control/").rstrip("/"))
        if action == ("GET", "health"):
            return {"ok": True, "platform": self.platform_id}
        if action[1] == "faults":
            if method == "POST":
                rules = [FaultRule.from_json(r) for r in data.get("rules", [])]
                if data.get("mode", "replace") == "append":
                    for rule in rules:
                        self.add_fault(rule)
                else:
                    self.set_faults(rules, data.get("seed"))
            elif method == "DELETE":
                self.clear_faults()
            return {
                "rules": [r.to_json() for r in self.faults.rules],
                "injected": dict(self.faults.injected),
            }
        if action == ("POST", "fund"):
            self.fund(int(data["amount"]), str(data["currency"]), data.get("account"))
            return {"balances": self.balances()}
        if action == ("POST", "payouts/fail"):
            if data.get("payout"):
                self.fail_payout(data["payout"], data["failure_code"])
            else:
                self.fail_payouts_for(data["account"], data.get("failure_code"))
            return {"ok": True}
        if action == ("POST", "payouts/settle"):
            return {"settled": self.settle_payouts()}
        if action == ("GET", "balances"):
            return {"platform": self.platform_id, "balances": self.balances()}
        if action == ("GET", "stats"):
            return self.stats()
        if action == ("POST", "webhooks/wait"):
            return {"idle": await self.wait_webhooks_idle(float(data.get("timeout", 10.0)))}
        if action == ("POST", "events/resend"):
            self.resend_event(data["event"])
            return {"ok": True}
        if action == ("POST", "clock"):
            return {"now": self.advance_clock(float(data.get("advance", 0.0)))}
        if action == ("POST", "snapshot"):
            target = data.get("path") or self.state_file
            if not target:
                raise ValueError("no path given and no state file configured")
            self.save_snapshot(target)
            return {"saved": str(target)}
        raise KeyError(f"no control action {method} {path}")


def _throttled(action: str) -> StripeError:
    if action == "lock_timeout":
        return StripeError(
            429,
            "This object cannot be accessed right now because another API request or Stripe "
            "process is currently accessing it. If you see this error intermittently, retry "
            "the request.",
            code="lock_timeout",
            saved=False,
            headers={"Stripe-Should-Retry": "true"},
        )
    return StripeError(
        429,
        "Request rate limit exceeded. Learn more about rate limits here "
        "https://stripe.com/docs/rate-limits.",
        code="rate_limit",
        saved=False,
    )


def _key_in_use() -> StripeError:
    return StripeError(
        409,
        "There is currently another in-progress request using this Stripe-Idempotency-Key "
        "(that you passed in the `Idempotency-Key` header). Try again later.",
        code="idempotency_key_in_use",
        saved=False,
    )


def _key_mismatch(key: str) -> StripeError:
    return StripeError(
        400,
        "Keys for idempotent requests can only be used with the same parameters they were "
        f"first used with. Try using a key other than '{key}' if you meant to execute a "
        "different request.",
        type="idempotency_error",
        saved=False,
    )


def _mask(key: str) -> str:
    return key[:8] + "*" * max(0, len(key) - 12) + key[-4:] if len(key) > 12 else "****"
