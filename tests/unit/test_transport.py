"""Transport settings (TLS, NATS credentials, stream replicas) and `seisan certs dev`."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID
from typer.testing import CliRunner

from seisan_shared.certs import make_dev_certs
from seisan_shared.cli.main import app
from seisan_shared.config import ConfigError
from seisan_shared.transport import TransportConfig, load_transport


def test_nothing_set_means_plaintext_and_one_replica() -> None:
    config = load_transport("intake", {})
    assert config.server_tls() is None
    assert config.client_tls() is None
    assert config.nats_tls() is None
    assert config.stream_replicas == 1
    assert config.bus_options() == {
        "user": None,
        "password": None,
        "inbox_prefix": None,
        "tls": None,
    }


def test_service_specific_settings_win(tmp_path: Path) -> None:
    env = {
        "SEISAN_STREAM_REPLICAS": "3",
        "SEISAN_NATS_USER": "everyone",
        "SEISAN_CARDS_NATS_USER": "cards",
        "SEISAN_NATS_PASSWORD": "pw",
    }
    config = load_transport("cards", env)
    assert config.stream_replicas == 3
    assert config.bus_options()["user"] == "cards"
    assert config.bus_options()["password"] == "pw"
    assert config.bus_options()["inbox_prefix"] == "_INBOX.cards"


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SEISAN_TLS_CERT": "a.pem"}, "SEISAN_TLS_KEY"),
        ({"SEISAN_TLS_CLIENT_AUTH": "maybe"}, "SEISAN_TLS_CLIENT_AUTH"),
        (
            {"SEISAN_TLS_CLIENT_AUTH": "require", "SEISAN_TLS_CERT": "a", "SEISAN_TLS_KEY": "b"},
            "SEISAN_TLS_CA",
        ),
        ({"SEISAN_STREAM_REPLICAS": "0"}, "SEISAN_STREAM_REPLICAS"),
        ({"SEISAN_STREAM_REPLICAS": "three"}, "SEISAN_STREAM_REPLICAS"),
    ],
)
def test_bad_settings_name_the_variable(env: dict[str, str], named: str) -> None:
    with pytest.raises(ConfigError, match=named):
        load_transport("intake", env)


def test_a_missing_certificate_file_is_named(tmp_path: Path) -> None:
    config = TransportConfig(tls_cert=tmp_path / "nope.pem", tls_key=tmp_path / "nope-key.pem")
    with pytest.raises(ConfigError, match=r"SEISAN_TLS_CERT: cannot read .*nope\.pem"):
        config.server_tls()


def test_client_auth_require_puts_the_ca_on_the_server(tmp_path: Path) -> None:
    make_dev_certs(tmp_path, ["intake"])
    config = TransportConfig(
        tls_cert=tmp_path / "intake.pem",
        tls_key=tmp_path / "intake-key.pem",
        tls_ca=tmp_path / "ca.pem",
        tls_client_auth="require",
    )
    server = config.server_tls()
    assert server is not None and server.client_ca == (tmp_path / "ca.pem").read_bytes()
    one_way = TransportConfig(
        tls_cert=tmp_path / "intake.pem",
        tls_key=tmp_path / "intake-key.pem",
        tls_ca=tmp_path / "ca.pem",
    ).server_tls()
    assert one_way is not None and one_way.client_ca is None


def test_dev_certs_have_service_names_loopback_and_both_usages(tmp_path: Path) -> None:
    issued = make_dev_certs(tmp_path, ["payouts", "nats"])
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.pem").read_bytes())
    for item in issued:
        cert = x509.load_pem_x509_certificate(item.cert_path.read_bytes())
        assert cert.issuer == ca.subject
        cert.verify_directly_issued_by(ca)
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        dns = sans.get_values_for_type(x509.DNSName)
        ips = [str(ip) for ip in sans.get_values_for_type(x509.IPAddress)]
        assert {item.name, "localhost", f"{item.name}.seisan.svc.cluster.local"} <= set(dns)
        assert {"127.0.0.1", "::1"} <= set(ips)
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert {ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH} <= set(usage)
        assert stat.S_IMODE(item.key_path.stat().st_mode) == 0o600
    nats_dns = x509.load_pem_x509_certificate((tmp_path / "nats.pem").read_bytes())
    names = nats_dns.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert {"nats-1", "nats-2", "nats-3"} <= set(names.get_values_for_type(x509.DNSName))


def test_the_ca_is_kept_when_certificates_are_issued_again(tmp_path: Path) -> None:
    make_dev_certs(tmp_path, ["intake"])
    first = (tmp_path / "ca.pem").read_bytes()
    make_dev_certs(tmp_path, ["cards"])
    assert (tmp_path / "ca.pem").read_bytes() == first
    make_dev_certs(tmp_path, ["cards"], force_ca=True)
    assert (tmp_path / "ca.pem").read_bytes() != first


def test_seisan_certs_dev_writes_the_files(tmp_path: Path) -> None:
    out = tmp_path / "certs"
    result = CliRunner().invoke(app, ["certs", "dev", "--out", str(out), "-n", "audit"])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == [
        "audit-key.pem",
        "audit.pem",
        "ca-key.pem",
        "ca.pem",
    ]
