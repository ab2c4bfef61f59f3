"""A local certificate authority and service certificates for TLS between Seisan's processes.

For development and test clusters only: ``seisan certs dev`` writes a CA and one
certificate per service (usable as TLS server *and* client certificate, for
mutual TLS) with SANs for the service's name, its Kubernetes and compose DNS
names, ``localhost``, ``127.0.0.1`` and ``::1``. Production uses the
organisation's own CA (or cert-manager); the file layout is the same.

Layout under ``out``: ``ca.pem`` + ``ca-key.pem``, and ``<name>.pem`` +
``<name>-key.pem`` per name. Keys are written 0600. An existing CA is reused,
so certificates issued later are trusted by everyone already holding ``ca.pem``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

# Every process that serves or connects; `nats` is the NATS servers' (client, route) cert.
DEFAULT_NAMES: tuple[str, ...] = (
    "audit",
    "intake",
    "intake-worker",
    "cards",
    "payouts",
    "gateway",
    "nats",
    "cli",
)
NAMESPACE = "seisan"
CA_DAYS = 3650
LEAF_DAYS = 397


@dataclass(frozen=True)
class Issued:
    name: str
    cert_path: Path
    key_path: Path
    sans: tuple[str, ...]


def dns_names(name: str, namespace: str = NAMESPACE) -> list[str]:
    """The names a process answers to: compose service, Kubernetes Service and pods, loopback."""
    names = [name, f"{name}.{namespace}", f"{name}.{namespace}.svc"]
    names.append(f"{name}.{namespace}.svc.cluster.local")
    if name == "nats":  # StatefulSet pods nats-0.nats… and compose hosts nats-1..3
        names += [f"nats-{i}" for i in range(1, 4)]
        names += [f"nats-{i}.nats" for i in range(3)]
        names += [f"*.nats.{namespace}.svc", f"*.nats.{namespace}.svc.cluster.local"]
        names += [f"*.nats-headless.{namespace}.svc.cluster.local"]
    return [*names, "localhost"]


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _write_key(path: Path, key: ec.EllipticCurvePrivateKey) -> None:
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    os.chmod(path, 0o600)


def _write_cert(path: Path, cert: x509.Certificate) -> None:
    path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def load_or_create_ca(
    out: Path, *, force: bool = False
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """The CA in ``out`` (``ca.pem``, ``ca-key.pem``), created when missing or ``force``."""
    cert_path, key_path = out / "ca.pem", out / "ca-key.pem"
    if not force and cert_path.is_file() and key_path.is_file():
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{key_path} is not an EC private key")
        return cert, key
    out.mkdir(parents=True, exist_ok=True)
    key = _key()
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Seisan development"),
            x509.NameAttribute(NameOID.COMMON_NAME, "Seisan development CA"),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return cert, key


def issue(
    out: Path,
    name: str,
    ca: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    extra_sans: Iterable[str] = (),
    namespace: str = NAMESPACE,
) -> Issued:
    """A certificate for ``name`` signed by ``ca``: server and client auth, SANs for its names."""
    key = _key()
    dns = list(dict.fromkeys([*dns_names(name, namespace), *extra_sans]))
    alt: list[x509.GeneralName] = [x509.DNSName(d) for d in dns]
    alt += [x509.IPAddress(ipaddress.ip_address(ip)) for ip in ("127.0.0.1", "::1")]
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            x509.Name(
                [
                    x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Seisan development"),
                    x509.NameAttribute(NameOID.COMMON_NAME, name),
                ]
            )
        )
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=LEAF_DAYS))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(
            x509.ExtendedKeyUsage(
                [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
            ),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert_path, key_path = out / f"{name}.pem", out / f"{name}-key.pem"
    _write_key(key_path, key)
    _write_cert(cert_path, cert)
    return Issued(name, cert_path, key_path, (*dns, "127.0.0.1", "::1"))


def make_dev_certs(
    out: Path,
    names: Sequence[str] = DEFAULT_NAMES,
    *,
    force_ca: bool = False,
    extra_sans: Iterable[str] = (),
    namespace: str = NAMESPACE,
) -> list[Issued]:
    """The CA (reused unless ``force_ca``) and a fresh certificate for each of ``names``."""
    ca, ca_key = load_or_create_ca(out, force=force_ca)
    sans = tuple(extra_sans)
    return [issue(out, n, ca, ca_key, extra_sans=sans, namespace=namespace) for n in names]
