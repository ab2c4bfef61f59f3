"""deploy/compose.yaml and deploy/Dockerfile, checked without a Docker engine.

The file is parsed as YAML (anchors and merge keys resolved) and its structure
and references checked: every SEISAN_* variable a container gets is a field of
the configuration that process loads, every depends_on target exists, three NATS
servers form one cluster from the generated config, each gRPC service has a
health check on its health port, and every secret compose interpolates is in
seisan.env.example.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from seisan_shared.bus import accounts
from seisan_shared.observability import ObservabilityConfig
from seisan_shared.transport import TransportConfig

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
COMPOSE = DEPLOY / "compose.yaml"

# compose service → (module:class of the config it loads, its SEISAN_<SVC>_ prefix, NATS user)
SEISAN_SERVICES: dict[str, tuple[str, str, str]] = {
    "audit": ("seisan_audit.config:AuditConfig", "audit", "audit"),
    "intake": ("seisan_intake.config:IntakeConfig", "intake", "intake"),
    "intake-worker": ("seisan_intake.config:IntakeConfig", "intake", "intake"),
    "cards": ("seisan_cards.config:CardsConfig", "cards", "cards"),
    "payouts": ("seisan_payouts.config:PayoutsConfig", "payouts", "payouts"),
    "gateway": ("seisan_gateway.config:GatewayConfig", "gateway", "gateway"),
}
GRPC_SERVICES = ("audit", "intake", "cards", "payouts")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def config_fields(target: str) -> set[str]:
    module, _, name = target.partition(":")
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed on this branch")
    cls = getattr(importlib.import_module(module), name)
    return {f.name for f in dataclasses.fields(cls)}


def test_every_seisan_process_and_the_infrastructure_is_there(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    assert set(SEISAN_SERVICES) <= names
    assert {"nats-1", "nats-2", "nats-3", "postgres"} <= names


@pytest.mark.parametrize("name", sorted(SEISAN_SERVICES))
def test_every_setting_a_container_gets_is_read_by_that_process(
    compose: dict[str, Any], name: str
) -> None:
    target, prefix, _ = SEISAN_SERVICES[name]
    fields = config_fields(target) | {f.name for f in dataclasses.fields(TransportConfig)}
    fields |= {f.name for f in dataclasses.fields(ObservabilityConfig)}
    fields.add("var_dir")  # seisan_shared.stack.var_dir
    environment = services(compose)[name]["environment"]
    unknown = []
    for variable in environment:
        assert variable.startswith("SEISAN_"), variable
        rest = variable.removeprefix("SEISAN_").lower()
        field = rest.removeprefix(f"{prefix}_") if rest.startswith(f"{prefix}_") else rest
        if field not in fields:
            unknown.append(variable)
    assert not unknown, f"{name}: no configuration field reads {unknown}"


def test_a_misspelt_setting_would_be_caught(compose: dict[str, Any]) -> None:
    # The check above is only worth something if it can fail.
    fields = config_fields("seisan_cards.config:CardsConfig")
    assert "databse_url" not in fields and "database_url" in fields


@pytest.mark.parametrize("name", sorted(SEISAN_SERVICES))
def test_each_process_signs_in_to_nats_as_its_own_user_over_tls(
    compose: dict[str, Any], name: str
) -> None:
    env = services(compose)[name]["environment"]
    user = SEISAN_SERVICES[name][2]
    assert env["SEISAN_NATS_USER"] == user
    assert f"${{{accounts.password_variable(user)}:" in env["SEISAN_NATS_PASSWORD"]
    urls = env["SEISAN_NATS_URL"].split(",")
    assert urls == [f"tls://nats-{i}:4222" for i in (1, 2, 3)]
    assert env["SEISAN_STREAM_REPLICAS"] == "3"
    assert env["SEISAN_TLS_CLIENT_AUTH"] == "require"
    cert = env["SEISAN_TLS_CERT"]
    assert cert == f"/certs/{name}.pem" and env["SEISAN_TLS_KEY"] == f"/certs/{name}-key.pem"


def test_depends_on_targets_exist(compose: dict[str, Any]) -> None:
    names = set(services(compose))
    conditions = {"service_started", "service_healthy", "service_completed_successfully"}
    for name, service in services(compose).items():
        depends = service.get("depends_on", {})
        for target, spec in depends.items():
            assert target in names, f"{name} depends on unknown {target}"
            assert spec["condition"] in conditions
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in services(compose)[target], f"{target} has no healthcheck"


def test_three_nats_servers_form_one_cluster_from_the_generated_config(
    compose: dict[str, Any],
) -> None:
    conf = (DEPLOY / "nats" / "cluster.conf").read_text()
    routes = re.findall(r'"nats-route://([a-z0-9-]+):6222"', conf)
    assert sorted(routes) == ["nats-1", "nats-2", "nats-3"]
    seen_names = set()
    for i in (1, 2, 3):
        node = services(compose)[f"nats-{i}"]
        assert node["hostname"] == f"nats-{i}"
        env = node["environment"]
        seen_names.add(env["SERVER_NAME"])
        assert {accounts.password_variable(u) for u in accounts.all_users()} <= set(env)
        mounts = {m.split(":")[1]: m.split(":")[0] for m in node["volumes"]}
        assert mounts["/etc/nats/cluster.conf"] == "./nats/cluster.conf"
        assert mounts["/etc/nats/accounts.conf"] == "./nats/accounts.conf"
        assert mounts["/etc/seisan/certs"] == "certs"  # where cluster.conf looks for nats.pem
        assert mounts["/data"] == f"nats-{i}"  # its own JetStream store
        assert node["command"] == ["-c", "/etc/nats/cluster.conf"]
    assert seen_names == {"nats-1", "nats-2", "nats-3"}
    assert accounts.COMPOSE_LAYOUT.cert_dir == "/etc/seisan/certs"
    assert accounts.COMPOSE_LAYOUT.store_dir.startswith("/data/")


@pytest.mark.parametrize("name", GRPC_SERVICES)
def test_grpc_services_have_a_health_check_on_their_health_port(
    compose: dict[str, Any], name: str
) -> None:
    service = services(compose)[name]
    health = service["environment"]["SEISAN_HEALTH_ADDRESS"]
    test = service["healthcheck"]["test"]
    assert test[:4] == ["CMD", "python", "-m", "seisan_shared.grpc.probe"]
    assert test[4] == health
    assert importlib.util.find_spec("seisan_shared.grpc.probe") is not None
    assert service["environment"][f"SEISAN_{name.upper()}_GRPC_ADDRESS"].startswith("0.0.0.0:")


def test_gateway_listens_on_8080(compose: dict[str, Any]) -> None:
    gateway = services(compose)["gateway"]
    assert gateway["environment"]["SEISAN_GATEWAY_HTTP_ADDRESS"] == "0.0.0.0:8080"
    assert "8080:8080" in gateway["ports"]
    for upstream in ("intake", "cards", "payouts"):
        address = gateway["environment"][f"SEISAN_GATEWAY_{upstream.upper()}_ADDRESS"]
        grpc_address = services(compose)[upstream]["environment"][
            f"SEISAN_{upstream.upper()}_GRPC_ADDRESS"
        ]
        assert address == f"{upstream}:{grpc_address.rsplit(':', 1)[1]}"


def test_two_ocr_workers(compose: dict[str, Any]) -> None:
    worker = services(compose)["intake-worker"]
    assert worker["deploy"]["replicas"] == 2
    assert worker["command"] == ["python", "-m", "seisan_intake.worker"]


@pytest.mark.parametrize("name", sorted(SEISAN_SERVICES))
def test_commands_name_modules_that_exist(compose: dict[str, Any], name: str) -> None:
    command = services(compose)[name]["command"]
    assert command[:2] == ["python", "-m"]
    module = command[2]
    if importlib.util.find_spec(module.split(".")[0]) is None:
        pytest.skip(f"{module} is not installed on this branch")
    assert importlib.util.find_spec(module) is not None


def test_every_service_database_exists_in_postgres_init(compose: dict[str, Any]) -> None:
    init = (DEPLOY / "postgres" / "init-databases.sh").read_text()
    assert "for svc in intake cards payouts audit" in init
    for name in ("intake", "cards", "payouts", "audit"):
        url = services(compose)[name]["environment"][f"SEISAN_{name.upper()}_DATABASE_URL"]
        assert url.startswith(f"postgresql://seisan_{name}:")
        assert url.endswith(f"@postgres:5432/seisan_{name}")
    mount = services(compose)["postgres"]["volumes"][0]
    assert mount.startswith("./postgres/init-databases.sh:/docker-entrypoint-initdb.d/")


def test_named_volumes_are_declared_and_local_files_exist(compose: dict[str, Any]) -> None:
    declared = set(compose["volumes"])
    for name, service in services(compose).items():
        for mount in service.get("volumes", []):
            source = mount.split(":")[0]
            if source.startswith("."):
                if source != "./tokens.toml":  # the operator's own file
                    assert (DEPLOY / source).exists(), f"{name}: {source} missing"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    text = COMPOSE.read_text()
    interpolated = set(re.findall(r"\$\{([A-Z0-9_]+)", text))
    example = (DEPLOY / "seisan.env.example").read_text()
    listed = set(re.findall(r"^#?([A-Z0-9_]+)=", example, flags=re.MULTILINE))
    assert interpolated - listed == set()
    # Secrets are required (compose refuses to start without them), never defaulted.
    for secret in re.findall(r"\$\{(SEISAN_(?:NATS|PG)_[A-Z_]+PASSWORD)([^}]*)\}", text):
        assert secret[1].startswith(":?") or secret[1] == "", secret


def test_dockerfile_builds_the_image_compose_uses(compose: dict[str, Any]) -> None:
    build = services(compose)["intake"]["build"]
    assert build["dockerfile"] == "deploy/Dockerfile"
    root = (DEPLOY / build["context"]).resolve()
    dockerfile = (root / build["dockerfile"]).read_text()
    for line in dockerfile.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            *sources, _ = line.split()[1:]
            for source in sources:
                assert (root / source).exists(), f"Dockerfile copies missing {source}"
    assert "pip install -c requirements.lock ." in dockerfile
    assert re.search(r"^USER 10001", dockerfile, flags=re.MULTILINE)  # never root
    for folder in ("/certs", "/var/lib/seisan-checkpoints"):
        assert folder in dockerfile  # created and owned by the user, for the volumes
