"""Running the local Stripe server outside the caller's event loop, and steering it over HTTP.

* :class:`StripeControl` — a synchronous client of ``/__control/`` for a server
  anywhere (same process, thread or another process).
* :class:`LocalStripeThread` — the server on its own event loop in a thread, for
  synchronous code and tests (the ``stripe`` SDK blocks by default).
* :class:`LocalStripeProcess` — ``python -m seisan_shared.stripe_local`` as a
  child process, which survives crashes of the service under test.
"""

from __future__ import annotations

import asyncio
import json
import os
import select
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, TypeVar

from seisan_shared.stripe_local.faults import FaultRule
from seisan_shared.stripe_local.server import LocalStripe

T = TypeVar("T")


class ControlError(RuntimeError):
    """The server refused a control request."""


class StripeControl:
    """Faults, funding, payout outcomes and inspection of a running local Stripe server."""

    def __init__(self, api_base: str, timeout: float = 30.0) -> None:
        self.api_base = api_base.rstrip("/")
        self.timeout = timeout

    def _call(
        self, method: str, action: str, data: Any = None, timeout: float | None = None
    ) -> Any:
        body = None if data is None else json.dumps(data).encode()
        request = urllib.request.Request(
            f"{self.api_base}/__control/{action}",
            data=body,
            method=method,
            headers={"Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout or self.timeout) as response:
                return json.loads(response.read())
        except urllib.error.HTTPError as e:
            raise ControlError(e.read().decode(errors="replace")) from e

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "health")
        return result

    def set_faults(self, rules: Iterable[FaultRule], seed: int | None = None) -> None:
        self._call("POST", "faults", {"rules": [r.to_json() for r in rules], "seed": seed})

    def add_fault(self, rule: FaultRule) -> None:
        self._call("POST", "faults", {"rules": [rule.to_json()], "mode": "append"})

    def clear_faults(self) -> None:
        self._call("DELETE", "faults")

    def faults(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "faults")
        return result

    def fund(self, amount: int, currency: str, account: str | None = None) -> None:
        self._call("POST", "fund", {"amount": amount, "currency": currency, "account": account})

    def fail_payout(self, payout_id: str, failure_code: str) -> None:
        self._call("POST", "payouts/fail", {"payout": payout_id, "failure_code": failure_code})

    def fail_payouts_for(self, account: str, failure_code: str | None) -> None:
        self._call("POST", "payouts/fail", {"account": account, "failure_code": failure_code})

    def settle_payouts(self) -> int:
        return int(self._call("POST", "payouts/settle", {})["settled"])

    def balances(self) -> dict[str, dict[str, int]]:
        result: dict[str, dict[str, int]] = self._call("GET", "balances")["balances"]
        return result

    def platform_id(self) -> str:
        return str(self._call("GET", "balances")["platform"])

    def stats(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "stats")
        return result

    def wait_webhooks_idle(self, wait_seconds: float = 10.0) -> bool:
        """True once every webhook is delivered or given up (False after ``wait_seconds``)."""
        data = {"timeout": wait_seconds}
        return bool(self._call("POST", "webhooks/wait", data, timeout=wait_seconds + 5)["idle"])

    def resend_event(self, event_id: str) -> None:
        self._call("POST", "events/resend", {"event": event_id})

    def advance_clock(self, seconds: float) -> float:
        return float(self._call("POST", "clock", {"advance": seconds})["now"])

    def save_snapshot(self, path: str | None = None) -> str:
        return str(self._call("POST", "snapshot", {"path": path})["saved"])


class LocalStripeThread:
    """A :class:`LocalStripe` on its own event loop in a daemon thread.

    ``with LocalStripeThread(webhook_url=...) as s:`` gives ``s.api_base``,
    ``s.control`` (:class:`StripeControl`) and ``s.call(fn)``, which runs
    ``fn(server)`` on the server's loop (awaiting it if it returns an awaitable).
    """

    def __init__(self, **options: Any) -> None:
        self._options = options
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self.server: LocalStripe | None = None

    def start(self) -> LocalStripeThread:
        ready = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            try:
                self.server = LocalStripe(**self._options)
                loop.run_until_complete(self.server.start())
            except BaseException as e:
                failure.append(e)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.run_until_complete(self.server.stop())
            loop.close()

        self._thread = threading.Thread(target=run, name="local-stripe", daemon=True)
        self._thread.start()
        ready.wait(30)
        if failure:
            raise failure[0]
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None and self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(30)

    def __enter__(self) -> LocalStripeThread:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def api_base(self) -> str:
        assert self.server is not None
        return self.server.api_base

    @property
    def control(self) -> StripeControl:
        return StripeControl(self.api_base)

    def call(self, fn: Callable[[LocalStripe], Any], timeout: float = 60.0) -> Any:
        assert self._loop is not None and self.server is not None
        server = self.server

        async def run() -> Any:
            result = fn(server)
            if asyncio.iscoroutine(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(run(), self._loop).result(timeout)


class LocalStripeProcess:
    """``python -m seisan_shared.stripe_local`` in a child process; ``args`` are its options.

    Its first line of output is the address; its log goes to ``log_path`` (or is
    discarded). ``stop()`` sends SIGTERM (the server saves ``--state-file`` if given).
    """

    def __init__(self, args: Iterable[str] = (), log_path: Path | None = None) -> None:
        self.args = list(args)
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.api_base = ""

    def start(self, timeout: float = 30.0) -> LocalStripeProcess:
        stderr: Any = subprocess.DEVNULL
        if self.log_path is not None:
            stderr = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "seisan_shared.stripe_local", *self.args],
            stdout=subprocess.PIPE,
            stderr=stderr,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if self.log_path is not None:
            stderr.close()
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            readable, _, _ = select.select([self.proc.stdout], [], [], 0.1)
            if readable:
                line = self.proc.stdout.readline().decode().strip()
                if line.startswith("http"):
                    self.api_base = line
                    return self
            if self.proc.poll() is not None:
                break
        self.kill()
        raise RuntimeError(f"local stripe server did not start: {self.log()}")

    def log(self) -> str:
        if self.log_path is None or not self.log_path.exists():
            return ""
        return self.log_path.read_text(errors="replace")[-3000:]

    @property
    def control(self) -> StripeControl:
        return StripeControl(self.api_base)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            return self.proc.returncode

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(5)

    def __enter__(self) -> LocalStripeProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
