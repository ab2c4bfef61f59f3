"""The shipped NATS configuration is valid and keeps the money settings."""

from __future__ import annotations

import subprocess
from pathlib import Path

from seisan_shared.bus.natsserver import nats_server_binary

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_nats_config_is_valid_and_fsyncs_every_write():
    config = DEPLOY / "nats" / "nats-server.conf"
    checked = subprocess.run(
        [str(nats_server_binary()), "-c", str(config), "-t"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stderr
    text = config.read_text()
    assert "sync_interval: always" in text
    assert ":4222" not in text  # never the machine's own NATS port


def test_env_example_names_only_known_settings():
    lines = (DEPLOY / "seisan.env.example").read_text().splitlines()
    names = [line.lstrip("#").split("=", 1)[0] for line in lines if "=" in line]
    assert names and all(name.startswith("SEISAN_") for name in names)
