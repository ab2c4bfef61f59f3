"""Named crash points for fault-injection tests and chaos runs.

Production code calls ``faults.hit("outbox.after_publish")`` at the moments a
crash matters. Nothing happens unless ``SEISAN_FAULTS`` names that point, e.g.
``SEISAN_FAULTS=outbox.after_publish:exit`` (the process dies at once with
exit code 137, like a SIGKILL) or ``...:exit@3`` (on the third hit), or
``...:raise`` (raises :class:`InjectedFault`). Read once in ``main`` via
:meth:`Faults.from_env`; the default instance does nothing.
"""

from __future__ import annotations

import os
import sys
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field


class InjectedFault(RuntimeError):
    """Raised at a fault point configured with ``raise``."""


@dataclass
class Faults:
    plan: dict[str, tuple[str, int]] = field(default_factory=dict)
    _hits: Counter[str] = field(default_factory=Counter)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Faults:
        env = os.environ if environ is None else environ
        plan: dict[str, tuple[str, int]] = {}
        for item in env.get("SEISAN_FAULTS", "").split(","):
            item = item.strip()
            if not item:
                continue
            point, _, action = item.partition(":")
            action = action or "exit"
            nth = 1
            if "@" in action:
                action, _, count = action.partition("@")
                nth = int(count)
            if action not in ("exit", "raise"):
                raise ValueError(f"SEISAN_FAULTS: unknown action {action!r} for {point!r}")
            plan[point] = (action, nth)
        return cls(plan)

    def hit(self, point: str) -> None:
        """Crash here if the plan names ``point`` and this is the configured hit."""
        if point not in self.plan:
            return
        action, nth = self.plan[point]
        self._hits[point] += 1
        if self._hits[point] != nth:
            return
        if action == "raise":
            raise InjectedFault(point)
        sys.stderr.write(f"seisan: injected crash at {point}\n")
        sys.stderr.flush()
        os._exit(137)


NO_FAULTS = Faults()
