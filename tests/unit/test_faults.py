"""Fault points: parsed from SEISAN_FAULTS, fire on the configured hit only."""

from __future__ import annotations

import subprocess
import sys

import pytest

from seisan_shared.faults import NO_FAULTS, Faults, InjectedFault


def test_nothing_happens_without_a_plan() -> None:
    for _ in range(3):
        NO_FAULTS.hit("outbox.after_publish")
    assert Faults.from_env({}).plan == {}


def test_plan_is_parsed_with_defaults() -> None:
    faults = Faults.from_env(
        {"SEISAN_FAULTS": "outbox.after_publish, consumer.after_handle:raise@3 ,x.y:exit@2"}
    )
    assert faults.plan == {
        "outbox.after_publish": ("exit", 1),
        "consumer.after_handle": ("raise", 3),
        "x.y": ("exit", 2),
    }


def test_raise_fires_on_the_nth_hit_only() -> None:
    faults = Faults.from_env({"SEISAN_FAULTS": "p:raise@2"})
    faults.hit("p")
    faults.hit("other")
    with pytest.raises(InjectedFault, match="p"):
        faults.hit("p")
    faults.hit("p")  # past the configured hit: nothing


def test_unknown_action_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown action"):
        Faults.from_env({"SEISAN_FAULTS": "p:explode"})


def test_exit_kills_the_process_like_sigkill() -> None:
    code = (
        "from seisan_shared.faults import Faults\n"
        "f = Faults.from_env({'SEISAN_FAULTS': 'p:exit'})\n"
        "f.hit('p')\n"
        "print('survived')\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert done.returncode == 137
    assert "survived" not in done.stdout
    assert "injected crash at p" in done.stderr
