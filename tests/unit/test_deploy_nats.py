"""The generated NATS cluster and accounts files: up to date, valid, and derived from the code."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import yaml

from seisan_audit.entrypoints.consumer import DURABLE as AUDIT_DURABLE
from seisan_cards.entrypoints.receipt_consumer import DURABLE as CARDS_DURABLE
from seisan_intake.adapters.blobstore import ObjectStoreBlobStore
from seisan_intake.entrypoints.ocr_worker import DURABLE as OCR_DURABLE
from seisan_intake.entrypoints.status_consumer import DURABLE as STATUS_DURABLE
from seisan_payouts.entrypoints.consumers import DURABLE as PAYOUTS_DURABLE
from seisan_shared.bus import accounts
from seisan_shared.bus.natsserver import nats_server_binary
from seisan_shared.catalogue import CATALOGUE
from seisan_shared.certs import make_dev_certs

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("relative", sorted(accounts.generated_files()))
def test_committed_file_is_what_the_generator_writes(relative: str) -> None:
    committed = (ROOT / relative).read_text(encoding="utf-8")
    assert committed == accounts.generated_files()[relative], (
        f"{relative} is stale: run python tools/gen_nats_config.py"
    )


def test_durables_are_the_services_own() -> None:
    by_user = {u.name: set(u.durables) for u in accounts.SERVICE_USERS}
    assert by_user == {
        "intake": {STATUS_DURABLE, OCR_DURABLE},
        "cards": {CARDS_DURABLE},
        "payouts": {PAYOUTS_DURABLE},
        "audit": {AUDIT_DURABLE},
    }


def test_the_receipt_bucket_is_intakes_default() -> None:
    assert ObjectStoreBlobStore(js=None).bucket == accounts.RECEIPT_BUCKET


def test_every_event_has_exactly_its_publishers() -> None:
    published = {u.name: set(accounts.published_subjects(u.name)) for u in accounts.SERVICE_USERS}
    for spec in CATALOGUE:
        owners = {user for user, subjects in published.items() if spec.subject in subjects}
        assert owners, f"nobody may publish {spec.subject}"
        if spec.publisher != accounts.EVERY_SERVICE:
            assert len(owners) == 1, f"{spec.subject} publishable by {owners}"
    assert "seisan.receipt.captured" not in published["cards"]
    assert "seisan.payout.paid" in published["payouts"]


def test_no_service_may_publish_a_wildcard_event_or_delete_streams() -> None:
    for user in accounts.SERVICE_USERS:
        perms = accounts.service_permissions(user)
        for subject in perms.publish:
            if subject.startswith("seisan."):
                assert "*" not in subject and ">" not in subject, subject
            assert ".DELETE.SEISAN" not in subject and ".PURGE.SEISAN" not in subject, subject
        assert perms.subscribe == (f"_INBOX.{user.name}.>",)


def _env(tmp: Path) -> dict[str, str]:
    env = dict(os.environ, SERVER_NAME="nats-1")
    env.update({accounts.password_variable(u): "x" for u in accounts.all_users()})
    return env


def _kubernetes_files() -> dict[str, str]:
    configmap = yaml.safe_load((ROOT / "deploy/k8s/base/nats/configmap.yaml").read_text())
    data: dict[str, str] = configmap["data"]
    return data


@pytest.mark.parametrize(
    ("node", "layout"),
    [("compose", accounts.COMPOSE_LAYOUT), ("kubernetes", accounts.KUBERNETES_LAYOUT)],
)
def test_cluster_node_config_is_valid_for_nats_server(
    node: str, layout: accounts.NodeLayout, tmp_path: Path
) -> None:
    certs = tmp_path / "certs"
    make_dev_certs(certs, ["nats"])
    if node == "compose":
        text = (ROOT / "deploy/nats/cluster.conf").read_text()
        accounts_text = (ROOT / "deploy/nats/accounts.conf").read_text()
    else:
        text = _kubernetes_files()["nats.conf"]
        accounts_text = _kubernetes_files()["accounts.conf"]
    cert_dir = layout.cert_dir
    assert "sync_interval: always" in text
    assert text.count("nats-route://") == 3
    assert "verify: true" in text
    conf = tmp_path / "node.conf"
    conf.write_text(
        text.replace(cert_dir, str(certs)).replace("/data/jetstream", str(tmp_path / "js"))
    )
    (tmp_path / "accounts.conf").write_text(accounts_text)
    binary = str(nats_server_binary())
    checked = subprocess.run(
        [binary, "-t", "-c", str(conf)], env=_env(tmp_path), capture_output=True, text=True
    )
    assert checked.returncode == 0, checked.stderr + checked.stdout

    # Without the passwords in the environment the server refuses to start.
    bare = {k: v for k, v in _env(tmp_path).items() if not k.startswith("SEISAN_NATS_")}
    refused = subprocess.run(
        [binary, "-t", "-c", str(conf)], env=bare, capture_output=True, text=True
    )
    assert refused.returncode != 0
    assert "SEISAN_NATS_" in refused.stderr + refused.stdout
