"""deploy/k8s: the kustomize base and overlays render and pass the Kubernetes schemas, offline.

``tools/kustomize_lite.py`` renders them (resources, namespace, labels, images,
replicas, strategic-merge patches) and ``kubernetes-validate`` checks every
object against the JSON schemas shipped in its wheel (strict: an unknown field
fails). On top of the schemas: gRPC probes on the health port, requests and
limits, a PodDisruptionBudget per workload, references that resolve.
"""

from __future__ import annotations

import copy
import dataclasses
import importlib
import importlib.util
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from seisan_shared.bus import accounts
from seisan_shared.observability import ObservabilityConfig
from seisan_shared.transport import TransportConfig

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
OVERLAYS = ("dev", "production")
# Created by the operator, never committed (README "Running in production").
EXTERNAL_SECRETS = {"seisan-secrets", "seisan-certs"}
HEALTH_PORT = 50790
CONFIG_CLASSES = {
    "audit": "seisan_audit.config:AuditConfig",
    "intake": "seisan_intake.config:IntakeConfig",
    "cards": "seisan_cards.config:CardsConfig",
    "payouts": "seisan_payouts.config:PayoutsConfig",
}

Obj = dict[str, Any]


def _load_renderer() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "kustomize_lite", ROOT / "tools" / "kustomize_lite.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


kl = _load_renderer()


@pytest.fixture(scope="module", params=OVERLAYS)
def rendered(request: pytest.FixtureRequest) -> tuple[str, list[Obj]]:
    return request.param, kl.render(K8S / "overlays" / request.param)


def by_kind(objects: list[Obj], kind: str) -> dict[str, Obj]:
    return {o["metadata"]["name"]: o for o in objects if o["kind"] == kind}


def pod_spec(workload: Obj) -> Obj:
    spec: Obj = workload["spec"]["template"]["spec"]
    return spec


def test_every_object_passes_the_kubernetes_schemas(rendered: tuple[str, list[Obj]]) -> None:
    name, objects = rendered
    assert len(objects) > 20
    assert kl.validate(objects) == [], name


def test_the_schemas_come_from_the_wheel_not_the_network() -> None:
    import kubernetes_validate

    package = Path(kubernetes_validate.__file__).parent
    version = kl.KUBERNETES_VERSION
    schemas = package / "kubernetes-json-schema" / f"v{version}-local-strict"
    assert (schemas / "deployment-apps-v1.json").is_file()


def test_a_broken_manifest_fails_validation(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    intake = copy.deepcopy(by_kind(objects, "Deployment")["intake"])
    container = pod_spec(intake)["containers"][0]
    container["readinessProbe"]["grpc"]["port"] = "health"  # grpc probes take a number only
    errors = kl.validate([intake])
    assert len(errors) == 1 and "readinessProbe" in errors[0] and "integer" in errors[0]

    typo = copy.deepcopy(by_kind(objects, "Deployment")["cards"])
    pod_spec(typo)["containers"][0]["resource"] = {"limits": {"cpu": "1"}}  # not "resources"
    assert any("resource" in e for e in kl.validate([typo]))

    no_selector = copy.deepcopy(by_kind(objects, "PodDisruptionBudget")["nats"])
    no_selector["spec"]["maxUnavailable"] = {"nodes": 1}
    assert kl.validate([no_selector]) != []


def test_a_broken_file_in_a_kustomization_fails(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: [deployment.yaml]\n")
    (tmp_path / "deployment.yaml").write_text(
        "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: x}\n"
        "spec:\n  replicas: two\n  selector: {matchLabels: {a: b}}\n"
        "  template:\n    metadata: {labels: {a: b}}\n"
        "    spec: {containers: [{name: c, image: i}]}\n"
    )
    errors = kl.validate(kl.render(tmp_path))
    assert len(errors) == 1 and "replicas" in errors[0]


def test_the_renderer_refuses_what_it_does_not_understand(tmp_path: Path) -> None:
    (tmp_path / "kustomization.yaml").write_text("resources: []\nhelmCharts: [{name: nats}]\n")
    with pytest.raises(kl.KustomizeError, match="helmCharts"):
        kl.render(tmp_path)


def test_strategic_merge_merges_named_lists_and_deletes_with_null() -> None:
    base = {"containers": [{"name": "a", "image": "x", "env": [{"name": "A", "value": "1"}]}]}
    patch = {"containers": [{"name": "a", "env": [{"name": "B", "value": "2"}]}, {"name": "b"}]}
    merged = kl.merge(base, patch)
    assert merged["containers"][0]["image"] == "x"
    assert [e["name"] for e in merged["containers"][0]["env"]] == ["A", "B"]
    assert [c["name"] for c in merged["containers"]] == ["a", "b"]
    assert kl.merge({"a": 1, "b": 2}, {"a": None}) == {"b": 2}


def test_every_object_lands_in_the_overlays_namespace(rendered: tuple[str, list[Obj]]) -> None:
    name, objects = rendered
    expected = {"dev": "seisan-dev", "production": "seisan"}[name]
    assert {o["metadata"]["namespace"] for o in objects} == {expected}


def test_grpc_services_have_grpc_probes_on_the_plaintext_health_port(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    config = by_kind(objects, "ConfigMap")["seisan-config"]["data"]
    assert config["SEISAN_HEALTH_ADDRESS"] == f"0.0.0.0:{HEALTH_PORT}"
    for name in ("audit", "intake", "cards", "payouts"):
        container = pod_spec(by_kind(objects, "Deployment")[name])["containers"][0]
        for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
            assert container[probe]["grpc"] == {"port": HEALTH_PORT}, (name, probe)
        ports = {p["name"]: p["containerPort"] for p in container["ports"]}
        grpc_port = int(config[f"SEISAN_{name.upper()}_GRPC_ADDRESS"].rsplit(":", 1)[1])
        assert ports == {**ports, "grpc": grpc_port, "health": HEALTH_PORT}


def test_every_container_has_requests_and_limits(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    for workload in objects:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        for container in pod_spec(workload)["containers"]:
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), workload["metadata"]["name"]
            assert {"cpu", "memory"} <= set(resources["limits"]), workload["metadata"]["name"]


def test_every_workload_has_a_disruption_budget_that_selects_it(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    budgets = list(by_kind(objects, "PodDisruptionBudget").values())
    for workload in objects:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        if workload["metadata"]["name"] == "postgres":
            continue  # the dev database: one pod, nothing to budget
        labels = workload["spec"]["template"]["metadata"]["labels"]
        matching = [
            b for b in budgets if b["spec"]["selector"]["matchLabels"].items() <= labels.items()
        ]
        assert len(matching) == 1, workload["metadata"]["name"]
        budget = matching[0]["spec"]
        if workload["spec"]["replicas"] == 1:
            # a minAvailable: 1 budget on one pod would block every node drain
            assert budget.get("maxUnavailable") == 1, workload["metadata"]["name"]


def test_services_select_pods_and_ports_that_exist(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    workloads = [o for o in objects if o["kind"] in ("Deployment", "StatefulSet")]
    for service in by_kind(objects, "Service").values():
        selector = service["spec"]["selector"]
        pods = [
            w
            for w in workloads
            if selector.items() <= w["spec"]["template"]["metadata"]["labels"].items()
        ]
        assert len(pods) == 1, service["metadata"]["name"]
        container_ports = {
            p[key]
            for c in pod_spec(pods[0])["containers"]
            for p in c.get("ports", [])
            for key in ("name", "containerPort")
        }
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, (service["metadata"]["name"], port)


def test_config_and_secret_references_resolve(rendered: tuple[str, list[Obj]]) -> None:
    name, objects = rendered
    config_maps = set(by_kind(objects, "ConfigMap"))
    secrets = by_kind(objects, "Secret")
    dev_secret = kl.render(K8S / "overlays" / "dev")
    secret_keys = set(by_kind(dev_secret, "Secret")["seisan-secrets"]["stringData"])
    for workload in objects:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        spec = pod_spec(workload)
        for container in spec["containers"]:
            for source in container.get("envFrom", []):
                assert source["configMapRef"]["name"] in config_maps
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert ref["name"] in secrets or ref["name"] in EXTERNAL_SECRETS
                    assert ref["key"] in secret_keys, (workload["metadata"]["name"], ref)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in config_maps
            if "secret" in volume:
                assert volume["secret"]["secretName"] in set(secrets) | EXTERNAL_SECRETS
    if name == "production":
        assert secrets == {}  # no secret value is committed for production


def test_each_pod_gets_only_its_own_certificate_and_key(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    for workload in objects:
        if workload["kind"] not in ("Deployment", "StatefulSet"):
            continue
        name = workload["metadata"]["name"]
        for volume in pod_spec(workload).get("volumes", []):
            if volume.get("secret", {}).get("secretName") == "seisan-certs":
                keys = {item["key"] for item in volume["secret"]["items"]}
                assert keys == {"ca.pem", f"{name}.pem", f"{name}-key.pem"}


def test_services_sign_in_to_nats_as_their_accounts_users(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    users = {u.name for u in accounts.SERVICE_USERS} | {accounts.GATEWAY_USER}
    for name, deployment in by_kind(objects, "Deployment").items():
        env = {e["name"]: e for e in pod_spec(deployment)["containers"][0]["env"]}
        user = env["SEISAN_NATS_USER"]["value"]
        assert user in users
        assert user == ("intake" if name == "intake-worker" else name)
        key = env["SEISAN_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"]["key"]
        assert key == f"nats-{user}-password"


def test_nats_is_a_three_node_statefulset_running_the_generated_config(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    nats = by_kind(objects, "StatefulSet")["nats"]
    assert nats["spec"]["replicas"] == 3
    assert nats["spec"]["serviceName"] == "nats"
    headless = by_kind(objects, "Service")["nats"]["spec"]
    assert headless["clusterIP"] == "None" and headless["publishNotReadyAddresses"] is True
    container = pod_spec(nats)["containers"][0]
    env = {e["name"] for e in container["env"]}
    assert {accounts.password_variable(u) for u in accounts.all_users()} | {"SERVER_NAME"} <= env
    data = by_kind(objects, "ConfigMap")["nats-config"]["data"]
    assert (
        data["nats.conf"].rstrip()
        == accounts.render_cluster_node(accounts.KUBERNETES_LAYOUT).rstrip()
    )
    assert data["accounts.conf"].rstrip() == accounts.render_accounts().rstrip()
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/nats/config", accounts.KUBERNETES_LAYOUT.cert_dir, "/data"} <= mounts
    assert container["args"] == ["-c", "/etc/nats/config/nats.conf"]
    # the route names in nats.conf are the StatefulSet's pods behind the headless Service
    assert all(f"nats-{i}.nats:6222" in data["nats.conf"] for i in range(3))
    # and the services' seeds are the same pods
    url = by_kind(objects, "ConfigMap")["seisan-config"]["data"]["SEISAN_NATS_URL"]
    assert url.split(",") == [f"tls://nats-{i}.nats:4222" for i in range(3)]


def test_every_shared_setting_is_read_by_some_process(rendered: tuple[str, list[Obj]]) -> None:
    _, objects = rendered
    data = by_kind(objects, "ConfigMap")["seisan-config"]["data"]
    fields: dict[str, set[str]] = {}
    for service, target in CONFIG_CLASSES.items():
        module, _, cls = target.partition(":")
        config = getattr(importlib.import_module(module), cls)
        fields[service] = {f.name for f in dataclasses.fields(config)}
    transport = {f.name for f in dataclasses.fields(TransportConfig)} | {"var_dir"}
    transport |= {f.name for f in dataclasses.fields(ObservabilityConfig)}
    gateway_fields = {
        "http_address",
        "intake_address",
        "cards_address",
        "payouts_address",
        "secure_cookies",
    }
    for variable in data:
        rest = variable.removeprefix("SEISAN_").lower()
        if rest in transport or any(rest in f for f in fields.values()):
            continue
        service, _, field = rest.partition("_")
        if service == "gateway":
            assert field in gateway_fields, variable
            continue
        assert service in fields and field in fields[service], f"nobody reads {variable}"


def test_dev_postgres_runs_the_same_init_script_as_compose() -> None:
    objects = kl.render(K8S / "overlays" / "dev")
    script = by_kind(objects, "ConfigMap")["postgres-init"]["data"]["init-databases.sh"]
    assert script == (ROOT / "deploy" / "postgres" / "init-databases.sh").read_text()


def test_production_pins_the_image_and_keeps_audit_checkpoints_on_a_volume() -> None:
    objects = kl.render(K8S / "overlays" / "production")
    for deployment in by_kind(objects, "Deployment").values():
        image = pod_spec(deployment)["containers"][0]["image"]
        assert not image.endswith(":latest") and ":" in image
    audit = by_kind(objects, "Deployment")["audit"]
    volumes = {v["name"]: v for v in pod_spec(audit)["volumes"]}
    assert volumes["checkpoints"] == {
        "name": "checkpoints",
        "persistentVolumeClaim": {"claimName": "audit-checkpoints"},
    }
    assert "audit-checkpoints" in by_kind(objects, "PersistentVolumeClaim")
    assert yaml.safe_dump_all(objects)  # serialisable as kubectl input


def _selects(selector: Obj, labels: dict[str, str]) -> bool:
    if not selector:
        return True
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In"
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_network_policies_let_through_exactly_what_the_services_expose(
    rendered: tuple[str, list[Obj]],
) -> None:
    _, objects = rendered
    policies = list(by_kind(objects, "NetworkPolicy").values())
    assert any(p["spec"]["podSelector"] == {} and "ingress" not in p["spec"] for p in policies)
    pods = {
        w["metadata"]["name"]: w["spec"]["template"]["metadata"]["labels"]
        for w in objects
        if w["kind"] in ("Deployment", "StatefulSet")
    }
    for service in by_kind(objects, "Service").values():
        name = service["metadata"]["name"]
        labels = pods[name]
        for port in service["spec"]["ports"]:
            number = port["port"]
            allowing = [
                rule
                for p in policies
                if _selects(p["spec"]["podSelector"], labels)
                for rule in p["spec"].get("ingress", [])
                if any(x["port"] == number for x in rule.get("ports", []))
            ]
            assert allowing, f"no NetworkPolicy lets anyone reach {name}:{number}"
            for rule in allowing:
                for source in rule.get("from", []):
                    # every "from" must select pods that exist (labels on the pod templates)
                    assert any(_selects(source["podSelector"], pod) for pod in pods.values()), rule
