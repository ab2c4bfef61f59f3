from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from seisan_shared.bus.natsserver import NatsServer
from support.processes import ServiceProcess, free_port


@dataclass
class Stack:
    nats: NatsServer
    var: Path
    env: dict[str, str]

    def service(self, module: str, name: str, **env: str) -> ServiceProcess:
        return ServiceProcess(module, {**self.env, **env}, self.var, name)


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    var = tmp_path / "var"
    var.mkdir()
    tokens = var / "tokens.toml"
    tokens.write_text(resources.files("seisan_shared").joinpath("demo_tokens.toml").read_text())
    with NatsServer(tmp_path / "nats") as nats:
        yield Stack(
            nats,
            var,
            {
                "SEISAN_NATS_URL": nats.url,
                "SEISAN_VAR_DIR": str(var),
                "SEISAN_TOKENS_FILE": str(tokens),
            },
        )


@pytest.fixture
def intake_address() -> str:
    return f"127.0.0.1:{free_port()}"


@dataclass
class RunningStack:
    """Every process of `seisan up`, started from the `stack` fixture, found via stack.json."""

    stack: Stack
    addresses: dict[str, str]
    processes: dict[str, ServiceProcess]

    def logs(self) -> str:
        return "\n".join(f"== {n}\n{p.log()[-2000:]}" for n, p in self.processes.items())


@pytest.fixture
def running_stack(stack: Stack) -> Iterator[RunningStack]:
    """The whole stack on free ports, with var/stack.json written as `seisan up` does."""
    from seisan_shared.stack import GRPC_SERVICES, STACK, StackFile

    addresses = {spec.name: f"127.0.0.1:{free_port()}" for spec in GRPC_SERVICES}
    env = {spec.env_prefix + "GRPC_ADDRESS": addresses[spec.name] for spec in GRPC_SERVICES}
    env.update(
        {
            "SEISAN_CARDS_WEBHOOK_PORT": str(free_port()),
            "SEISAN_PAYOUTS_WEBHOOK_PORT": str(free_port()),
            "SEISAN_PAYOUTS_STRIPE_LOCAL_PORT": str(free_port()),
            "SEISAN_PAYOUTS_RAIL_POLL_SECONDS": "0.3",
        }
    )
    processes = {spec.name: stack.service(spec.module, spec.name, **env) for spec in STACK}
    for process in processes.values():
        process.start()
    running = RunningStack(stack, addresses, processes)
    try:
        for name, address in addresses.items():
            processes[name].wait_serving(address, timeout=60)
        StackFile(stack.nats.url, addresses).write(stack.var)
        yield running
    finally:
        for process in processes.values():
            process.terminate()
