"""`seisan tokens`: issue bearer tokens (stored hashed) and list who holds which roles."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from seisan_shared.auth import ROLES, TokenStore
from seisan_shared.cli.output import emit_json
from seisan_shared.stack import var_dir

app = typer.Typer(help="Manage bearer tokens (the file stores only their SHA-256).")


def tokens_path() -> Path:
    return Path(os.environ.get("SEISAN_TOKENS_FILE") or var_dir() / "tokens.toml")


@app.command()
def add(
    name: str = typer.Argument(..., help="The principal's name, e.g. an employee id."),
    roles: list[str] = typer.Option(
        ..., "--role", "-r", help=f"Repeat for several: {', '.join(ROLES)}."
    ),
    as_json: bool = typer.Option(False, "--json", help="Print {name, roles, token}."),
) -> None:
    """Issue a new token for NAME with the given roles; the token is printed once.

    Example: seisan tokens add hanako --role staff --role approver

    Who: whoever may write the token file (an administrator on the server).
    """
    bad = [r for r in roles if r not in ROLES]
    if bad:
        typer.secho(f"seisan: unknown role(s) {bad}; choose from {ROLES}", err=True, fg="red")
        raise typer.Exit(2)
    path = tokens_path()
    token = TokenStore.issue(path, name, roles)
    if as_json:
        emit_json({"name": name, "roles": sorted(roles), "token": token})
    else:
        typer.echo(token)
    typer.secho(f"(stored hashed in {path}; this is the only time it is shown)", err=True)


@app.command("list")
def list_(as_json: bool = typer.Option(False, "--json", help="Print [{name, roles}].")) -> None:
    """List principals and roles in the token file (never the tokens).

    Example: seisan tokens list --json

    Who: whoever may read the token file.
    """
    store = TokenStore.load(tokens_path())
    if as_json:
        emit_json([{"name": p.name, "roles": sorted(p.roles)} for p in store.principals()])
        return
    for principal in store.principals():
        typer.echo(f"{principal.name:<16} {','.join(sorted(principal.roles))}")
