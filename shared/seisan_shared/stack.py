"""What "the whole stack" is: the processes `seisan up` supervises and where the CLI finds them.

Processes are named by module string only — the supervisor starts them as
``python -m <module>`` and never imports a service.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class ProcessSpec:
    name: str
    module: str
    # gRPC port the process serves on by default; None for workers.
    grpc_port: int | None = None
    replicas: int = 1
    # /metrics port under `seisan up` (replica i of a worker: metrics_port + i - 1).
    metrics_port: int | None = None
    # HTTP port the process serves people on by default (the web app); None for the rest.
    http_port: int | None = None

    @property
    def env_prefix(self) -> str:
        return "SEISAN_" + self.name.upper().replace("-", "_") + "_"


STACK: tuple[ProcessSpec, ...] = (
    ProcessSpec("audit", "seisan_audit", 50704, metrics_port=50754),
    ProcessSpec("intake", "seisan_intake", 50701, metrics_port=50751),
    ProcessSpec("intake-worker", "seisan_intake.worker", metrics_port=50760),
    ProcessSpec("cards", "seisan_cards", 50702, metrics_port=50752),
    ProcessSpec("payouts", "seisan_payouts", 50703, metrics_port=50753),
    ProcessSpec("gateway", "seisan_gateway", metrics_port=50755, http_port=8080),
)

GRPC_SERVICES = tuple(p for p in STACK if p.grpc_port is not None)
HTTP_SERVICES = tuple(p for p in STACK if p.http_port is not None)


def var_dir(environ: dict[str, str] | None = None) -> Path:
    env = os.environ if environ is None else environ
    return Path(env.get("SEISAN_VAR_DIR", "var")).resolve()


@dataclass
class StackFile:
    """``var/stack.json``: written by `seisan up`, read by the CLI to find the running stack."""

    nats_url: str
    services: dict[str, str]
    supervisor_pid: int = 0
    # process label → its /metrics URL (only the ones `seisan up` turned on)
    metrics: dict[str, str] = field(default_factory=dict)
    # name → URL people open (the web app).
    web: dict[str, str] = field(default_factory=dict)

    @staticmethod
    def path(var: Path) -> Path:
        return var / "stack.json"

    def write(self, var: Path) -> None:
        var.mkdir(parents=True, exist_ok=True)
        tmp = self.path(var).with_suffix(".tmp")
        tmp.write_text(json.dumps(self.__dict__, indent=2))
        tmp.replace(self.path(var))

    @classmethod
    def read(cls, var: Path) -> StackFile | None:
        try:
            data = json.loads(cls.path(var).read_text())
        except (OSError, ValueError):
            return None
        return cls(**data)
