"""The clock the local Stripe server reads: wall time plus an offset, or frozen for tests."""

from __future__ import annotations

import time


class Clock:
    """Seconds since the epoch. ``Clock()`` follows wall time; ``Clock(start=t)`` stands still.

    :meth:`advance` moves either kind forward, which is how tests age idempotency
    keys past their 24 hours without waiting.
    """

    def __init__(self, start: float | None = None) -> None:
        self._frozen = start
        self._offset = 0.0

    def now(self) -> float:
        base = time.time() if self._frozen is None else self._frozen
        return base + self._offset

    def advance(self, seconds: float) -> None:
        self._offset += seconds
