"""`seisan`: start the stack, watch its events, check its health, and every service's commands.

Service command groups (``seisan receipts``, ``seisan audit``…) are discovered
from the ``seisan.cli`` entry point group, so this module names no service.
"""

from __future__ import annotations

import logging
import sys
from importlib.metadata import entry_points

import typer

from seisan_shared.cli import certs, events, health, tokens, up
from seisan_shared.cli.context import CliError

app = typer.Typer(
    name="seisan",
    help=(
        "Seisan 精算 — paperless, cashless expense settlement.\n\n"
        "Start here: `seisan up` runs the whole stack on this machine; in another terminal "
        "`seisan health` and `seisan events tail` show it working."
    ),
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
app.command("up")(up.up)
app.command("health")(health.health)
app.add_typer(events.app, name="events")
app.add_typer(tokens.app, name="tokens")
app.add_typer(certs.app, name="certs")


def _load_plugins() -> None:
    for ep in entry_points(group="seisan.cli"):
        try:
            sub = ep.load()
        except ImportError as exc:  # a service package not installed here
            logging.getLogger("seisan.cli").debug("skipping %s: %s", ep.name, exc)
            continue
        app.add_typer(sub, name=ep.name)


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    _load_plugins()
    try:
        app(prog_name="seisan")
    except CliError as exc:  # raised deep in a command: one red line, a meaningful exit code
        typer.secho(f"seisan: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)


if __name__ == "__main__":
    main()
