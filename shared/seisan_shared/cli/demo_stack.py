"""The stack `seisan demo` plays on: the running one (var/stack.json), or one it starts.

A stack it starts is `seisan up` in a folder of its own (a temporary one unless
``--var`` is given), on free loopback ports, with none of the caller's SEISAN_*
settings: the embedded default (SQLite, embedded NATS, the local Stripe-compatible
server). It is stopped (SIGTERM, so every service drains) when the demo ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from seisan_shared.bus.natsserver import free_port
from seisan_shared.cli.health import check_all
from seisan_shared.stack import GRPC_SERVICES, HTTP_SERVICES, StackFile, var_dir


class StackError(Exception):
    """The stack could not be found or started."""


@dataclass
class DemoStack:
    addresses: dict[str, str]
    started: bool
    var: Path
    log: Path | None = None
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False)


def loopback_env(folder: Path, base: Mapping[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """The environment for ``seisan up --var folder`` with every port a free one on loopback.

    None of `seisan up`'s fixed ports (gRPC 5070x, the gateway's 8080, webhooks, the local
    Stripe server, metrics) is used, so it runs beside another stack. ``base`` gives the
    non-Seisan variables (PATH …); its ``SEISAN_*`` ones are dropped. Returns the
    environment and the gRPC address of each service.
    """
    env = {k: v for k, v in base.items() if not k.startswith("SEISAN_")}
    addresses = {spec.name: f"127.0.0.1:{free_port()}" for spec in GRPC_SERVICES}
    env.update({spec.env_prefix + "GRPC_ADDRESS": addresses[spec.name] for spec in GRPC_SERVICES})
    env.update(
        {spec.env_prefix + "HTTP_ADDRESS": f"127.0.0.1:{free_port()}" for spec in HTTP_SERVICES}
    )
    env.update(
        {
            "SEISAN_VAR_DIR": str(folder),
            "SEISAN_TOKENS_FILE": str(folder / "tokens.toml"),
            "SEISAN_CARDS_WEBHOOK_PORT": str(free_port()),
            "SEISAN_PAYOUTS_WEBHOOK_PORT": str(free_port()),
            "SEISAN_PAYOUTS_STRIPE_LOCAL_PORT": str(free_port()),
            "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.3",
            "SEISAN_METRICS_ADDRESS": "127.0.0.1:0",  # /metrics on free ports, not up's fixed ones
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env, addresses


def _serving(addresses: dict[str, str]) -> bool:
    status = asyncio.run(check_all(addresses))
    return all(s == "SERVING" for s in status.values())


def running_stack() -> DemoStack | None:
    """The stack `seisan up` runs from ./var (or SEISAN_VAR_DIR), if every service serves."""
    var = var_dir()
    stack = StackFile.read(var)
    if stack is None:
        return None
    addresses = {s.name: stack.services[s.name] for s in GRPC_SERVICES if s.name in stack.services}
    if len(addresses) != len(GRPC_SERVICES) or not _serving(addresses):
        return None
    return DemoStack(addresses, started=False, var=var)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@contextlib.contextmanager
def demo_stack(var: Path | None, ready_timeout: float = 90.0) -> Iterator[DemoStack]:
    """Yield the running stack, or start one (and stop it afterwards)."""
    found = running_stack() if var is None else None
    if found is not None:
        yield found
        return
    made_temp = var is None
    # The stack started here is plaintext on loopback; the caller's TLS settings (meant for
    # another stack) must not make this process's health checks speak TLS to it.
    for name in [k for k in os.environ if k.startswith("SEISAN_TLS_")]:
        del os.environ[name]
    folder = Path(tempfile.mkdtemp(prefix="seisan-demo-")) if var is None else var.resolve()
    folder.mkdir(parents=True, exist_ok=True)
    env, addresses = loopback_env(folder, os.environ)
    log = folder / "stack.log"
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "seisan_shared.cli.main", "up", "--var", str(folder)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # a Ctrl-C on the demo reaches the supervisor only via us
        )
    stack = DemoStack(addresses, started=True, var=folder, log=log, _proc=proc)
    finished = False
    try:
        deadline = time.monotonic() + ready_timeout
        while not _serving(addresses):
            if proc.poll() is not None:
                tail = log.read_text(errors="replace")[-2000:]
                raise StackError(f"`seisan up` exited with {proc.returncode}:\n{tail}")
            if time.monotonic() > deadline:
                raise StackError(f"the stack was not SERVING after {ready_timeout:.0f}s ({log})")
            time.sleep(0.3)
        yield stack
        finished = True
    finally:
        _stop(proc)
        if made_temp and finished:  # after a failure the folder (and stack.log) stays
            shutil.rmtree(folder, ignore_errors=True)
