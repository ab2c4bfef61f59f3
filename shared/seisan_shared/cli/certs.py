"""`seisan certs dev`: a local CA and TLS certificates for every Seisan process."""

from __future__ import annotations

from pathlib import Path

import typer

from seisan_shared.certs import DEFAULT_NAMES, NAMESPACE, make_dev_certs

app = typer.Typer(help="TLS certificates for gRPC and NATS between Seisan's processes.")


@app.command()
def dev(
    out: Path = typer.Option(Path("var/certs"), "--out", help="Folder for the PEM files."),
    names: list[str] = typer.Option(
        list(DEFAULT_NAMES), "--name", "-n", help="Repeat to choose which certificates to issue."
    ),
    san: list[str] = typer.Option(
        [], "--san", help="An extra DNS name on every certificate (repeat)."
    ),
    namespace: str = typer.Option(NAMESPACE, help="Kubernetes namespace for the SANs."),
    new_ca: bool = typer.Option(False, "--new-ca", help="Replace the CA in OUT (re-trust it!)."),
) -> None:
    """A development CA (kept if OUT has one) and a server+client certificate per NAME.

    SANs: the name, NAME.NAMESPACE(.svc(.cluster.local)), localhost, 127.0.0.1, ::1.
    Not for production: use your organisation's CA or cert-manager there.
    """
    issued = make_dev_certs(out, names, force_ca=new_ca, extra_sans=san, namespace=namespace)
    typer.echo(f"CA            {out / 'ca.pem'}")
    for cert in issued:
        typer.echo(f"{cert.name:<14}{cert.cert_path}  {cert.key_path}")
    typer.echo(
        "Use: SEISAN_TLS_CA=ca.pem SEISAN_TLS_CERT=<name>.pem SEISAN_TLS_KEY=<name>-key.pem"
        " (SEISAN_TLS_CLIENT_AUTH=require for mutual TLS)"
    )
