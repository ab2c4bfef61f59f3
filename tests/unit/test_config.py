from dataclasses import dataclass
from pathlib import Path

import pytest

from seisan_shared.config import ConfigError, load
from seisan_shared.faults import Faults, InjectedFault


@dataclass(frozen=True)
class Sample:
    nats_url: str
    port: int = 1
    debug: bool = False
    ratio: float = 0.5
    root: Path = Path("var")
    tags: tuple[str, ...] = ()
    optional: int | None = None


def test_reads_typed_values_and_service_prefix_wins():
    env = {
        "SEISAN_NATS_URL": "nats://a",
        "SEISAN_INTAKE_NATS_URL": "nats://b",
        "SEISAN_PORT": "7",
        "SEISAN_DEBUG": "yes",
        "SEISAN_RATIO": "0.25",
        "SEISAN_ROOT": "/tmp/x",
        "SEISAN_TAGS": "a, b",
        "SEISAN_OPTIONAL": "",
    }
    cfg = load(Sample, env, service="intake")
    assert cfg == Sample("nats://b", 7, True, 0.25, Path("/tmp/x"), ("a", "b"), None)
    assert load(Sample, env).nats_url == "nats://a"


def test_missing_and_malformed_values_name_the_variable():
    with pytest.raises(ConfigError, match="SEISAN_NATS_URL is required"):
        load(Sample, {})
    with pytest.raises(ConfigError, match="SEISAN_PORT: expected an integer"):
        load(Sample, {"SEISAN_NATS_URL": "x", "SEISAN_PORT": "seven"})
    with pytest.raises(ConfigError, match="SEISAN_DEBUG: expected a boolean"):
        load(Sample, {"SEISAN_NATS_URL": "x", "SEISAN_DEBUG": "maybe"})


def test_fault_points_fire_only_where_and_when_planned():
    faults = Faults.from_env({"SEISAN_FAULTS": "a.b:raise@2"})
    faults.hit("other")
    faults.hit("a.b")  # first hit passes
    with pytest.raises(InjectedFault):
        faults.hit("a.b")
    faults.hit("a.b")  # third passes again
    with pytest.raises(ValueError, match="unknown action"):
        Faults.from_env({"SEISAN_FAULTS": "a:explode"})
