"""Fault injection for the local Stripe server: what goes wrong, where, how often.

A :class:`FaultPlan` is an ordered list of :class:`FaultRule` and one seeded
random generator. Each API request, webhook delivery and payout settlement asks
the plan; the first matching rule that fires (its ``probability``, while it has
``times`` left) decides. Rules come from Python, from the command line
(``--fault 'fail_after:path=/v1/transfers,probability=0.1'``) or at run time
from ``POST /__control/faults``.

Request actions (they model the network and Stripe's front door, so they sit
outside the idempotency layer unless said otherwise):

``fail_before``   500 ``api_error``; nothing ran, the key is left unused.
``rate_limit``    429 ``rate_limit``; nothing ran. The SDK does not retry these.
``lock_timeout``  429 ``lock_timeout`` with ``Stripe-Should-Retry: true``; the SDK retries.
``slow``          wait ``seconds`` holding the key, then run (concurrent same-key
                  requests meanwhile get 409 ``idempotency_key_in_use``).
``fail_saved``    500 saved under the key without running: replays answer 500 too,
                  with ``Stripe-Should-Retry: false`` (what Stripe documents for 500s).
``fail_after``    run and save the real answer, then answer 500.
``stall_after``   run and save, then hold the connection ``seconds`` and close it
                  without an answer (a client timeout after the work was done).
``drop_after``    run and save, then reset the connection without an answer.

Webhook actions: ``webhook_duplicate`` (the event is delivered twice),
``webhook_out_of_order`` (the event is held back until a later one was delivered).

Payout action: ``payout_fail`` (the payout fails with ``failure_code`` when it settles).
"""

from __future__ import annotations

import fnmatch
import json
import random
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

REQUEST_ACTIONS = frozenset(
    {
        "fail_before",
        "rate_limit",
        "lock_timeout",
        "slow",
        "fail_saved",
        "fail_after",
        "stall_after",
        "drop_after",
    }
)
WEBHOOK_ACTIONS = frozenset({"webhook_duplicate", "webhook_out_of_order"})
PAYOUT_ACTIONS = frozenset({"payout_fail"})
ACTIONS = REQUEST_ACTIONS | WEBHOOK_ACTIONS | PAYOUT_ACTIONS


@dataclass(frozen=True)
class FaultRule:
    """One kind of trouble and where it applies.

    ``path`` and ``event_type`` are shell-style patterns (``/v1/payouts*``,
    ``payout.*``); ``method`` None means any; ``account`` limits ``payout_fail``
    to one connected account. ``times`` None means no limit.
    """

    action: str
    path: str | None = None
    method: str | None = None
    event_type: str | None = None
    account: str | None = None
    probability: float = 1.0
    times: int | None = None
    seconds: float = 30.0
    failure_code: str = "could_not_process"

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown fault action {self.action!r}; one of {sorted(ACTIONS)}")
        if not 0.0 <= self.probability <= 1.0:
            raise ValueError("probability must be within [0, 1]")
        if self.times is not None and self.times < 0:
            raise ValueError("times must be >= 0")

    @classmethod
    def parse(cls, text: str) -> FaultRule:
        """``action:key=value,...`` or JSON, e.g. ``rate_limit:path=/v1/transfers,times=2``."""
        text = text.strip()
        if text.startswith("{"):
            return cls.from_json(json.loads(text))
        action, _, rest = text.partition(":")
        values: dict[str, Any] = {"action": action.strip()}
        for item in filter(None, (p.strip() for p in rest.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"fault option {item!r} is not key=value")
            values[key.strip()] = value.strip()
        return cls.from_json(values)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FaultRule:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown fault option(s) {sorted(unknown)}")
        values = dict(data)
        for name in ("probability", "seconds"):
            if name in values:
                values[name] = float(values[name])
        if values.get("times") is not None:
            values["times"] = int(values["times"])
        if values.get("method"):
            values["method"] = str(values["method"]).upper()
        return cls(**values)

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}

    def matches_request(self, method: str, path: str) -> bool:
        return (
            self.action in REQUEST_ACTIONS
            and (self.method is None or self.method == method)
            and (self.path is None or fnmatch.fnmatchcase(path, self.path))
        )

    def matches_event(self, event_type: str) -> bool:
        return self.action in WEBHOOK_ACTIONS and (
            self.event_type is None or fnmatch.fnmatchcase(event_type, self.event_type)
        )


class FaultPlan:
    """The active rules, their remaining ``times`` and a seeded generator."""

    def __init__(self, rules: Iterable[FaultRule] = (), seed: int | None = None) -> None:
        self._rules: list[FaultRule] = []
        self._random = random.Random(seed)
        self.injected: Counter[str] = Counter()
        self.replace(rules, seed)

    @property
    def rules(self) -> list[FaultRule]:
        return list(self._rules)

    def replace(self, rules: Iterable[FaultRule], seed: int | None = None) -> None:
        self._rules = list(rules)
        if seed is not None:
            self._random.seed(seed)

    def add(self, rule: FaultRule) -> None:
        self._rules.append(rule)

    def clear(self) -> None:
        self._rules = []

    def _fire(self, index: int) -> bool:
        rule = self._rules[index]
        if rule.times == 0:
            return False
        if rule.probability < 1.0 and self._random.random() >= rule.probability:
            return False
        if rule.times is not None:
            self._rules[index] = replace(rule, times=rule.times - 1)
        self.injected[rule.action] += 1
        return True

    def for_request(self, method: str, path: str) -> FaultRule | None:
        for i, rule in enumerate(self._rules):
            if rule.matches_request(method, path) and self._fire(i):
                return rule
        return None

    def for_event(self, event_type: str) -> set[str]:
        """The webhook actions that fire for one event (each kind at most once)."""
        hit: set[str] = set()
        for i, rule in enumerate(self._rules):
            if rule.action not in hit and rule.matches_event(event_type) and self._fire(i):
                hit.add(rule.action)
        return hit

    def payout_failure(self, account: str | None) -> str | None:
        for i, rule in enumerate(self._rules):
            if (
                rule.action == "payout_fail"
                and (rule.account is None or rule.account == account)
                and self._fire(i)
            ):
                return rule.failure_code
        return None
