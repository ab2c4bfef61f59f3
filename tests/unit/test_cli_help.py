"""`--help` teaches: every command says what it does, shows an example and who may run it."""

from __future__ import annotations

from collections.abc import Iterator

import typer
from typer.testing import CliRunner

from seisan_shared.cli import main

# Operator and developer tools whose help predates the house style; checked for a summary only.
TOOLS = {"up", "events", "tokens", "eval", "audit", "certs"}


def _commands(app: typer.Typer, path: tuple[str, ...] = ()) -> Iterator[tuple[str, str]]:
    """(``"receipts upload"``, help text) for every command, walking typer's registry."""
    for info in app.registered_commands:
        assert info.callback is not None
        name = info.name or info.callback.__name__.replace("_", "-")
        yield " ".join((*path, name)), info.help or info.callback.__doc__ or ""
    for group in app.registered_groups:
        assert group.typer_instance is not None and group.name
        yield from _commands(group.typer_instance, (*path, group.name))


def test_every_people_facing_command_has_an_example_and_who() -> None:
    main._load_plugins()
    found = dict(_commands(main.app))
    for expected in (
        "receipts upload", "receipts list", "receipts show", "receipts correct",
        "receipts image", "receipts delete", "reconcile missing", "reconcile declare",
        "claims submit", "claims follow", "claims queue", "claims show", "claims approve",
        "claims reject", "statements import", "reconcile report", "reconcile suggestions",
        "reconcile charges", "reconcile confirm", "reconcile reject", "reconcile manual",
        "reconcile request-missing", "reconcile journal", "payouts run", "payouts list",
        "payouts show", "payouts retry", "payouts cancel", "payouts bank-file",
        "payouts confirm-paid", "audit verify", "demo", "health",
    ):  # fmt: skip
        assert expected in found, f"missing command: seisan {expected}"
    for name, text in found.items():
        assert text.strip(), f"seisan {name} has no help"
        if name.split()[0] in TOOLS and name != "audit verify":
            continue
        assert "Example: seisan " in text, f"seisan {name}: no example in its help"
        assert "Who: " in text, f"seisan {name}: its help does not say who may run it"


def test_top_level_help_documents_the_exit_codes() -> None:
    main._load_plugins()
    result = CliRunner().invoke(main.app, ["--help"], env={"COLUMNS": "120"})
    assert result.exit_code == 0
    assert "Exit codes" in result.output
    for code in range(8):
        assert f" {code}  " in result.output
    assert "seisan demo" in result.output
