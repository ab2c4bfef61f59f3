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
