"""Where the CLI finds the stack: flags, then SEISAN_* environment, then ./var/stack.json."""

from __future__ import annotations

import os
from dataclasses import dataclass

import typer

from seisan_shared.cli.exitcodes import (
    EXIT_CONFLICT,
    EXIT_DENIED,
    EXIT_FAILURE,
    EXIT_INVALID,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_UNAVAILABLE,
    EXIT_USAGE,
    exit_code_for,
)
from seisan_shared.stack import GRPC_SERVICES, StackFile, var_dir

__all__ = [
    "EXIT_AUTH",
    "EXIT_CONFLICT",
    "EXIT_DENIED",
    "EXIT_FAILURE",
    "EXIT_INVALID",
    "EXIT_NOT_FOUND",
    "EXIT_OK",
    "EXIT_REFUSED",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "CliError",
    "Target",
    "address_of",
    "fail",
    "require_token",
    "resolve",
    "rpc_failure",
]


class CliError(Exception):
    """Shown to the user as one line; exit code given."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class Target:
    nats_url: str
    addresses: dict[str, str]
    token: str | None


def resolve(nats_url: str | None = None, token: str | None = None) -> Target:
    stack = StackFile.read(var_dir())
    url = nats_url or os.environ.get("SEISAN_NATS_URL") or (stack.nats_url if stack else "")
    addresses: dict[str, str] = {}
    for spec in GRPC_SERVICES:
        env = os.environ.get(spec.env_prefix + "ADDRESS")
        if env:
            addresses[spec.name] = env
        elif stack and spec.name in stack.services:
            addresses[spec.name] = stack.services[spec.name]
        else:
            addresses[spec.name] = f"127.0.0.1:{spec.grpc_port}"
    return Target(url, addresses, token or os.environ.get("SEISAN_TOKEN"))


def address_of(service: str) -> str:
    return resolve().addresses[service]


def require_token(token: str | None) -> str:
    resolved = token or os.environ.get("SEISAN_TOKEN")
    if not resolved:
        raise CliError(
            "no token: pass --token or set SEISAN_TOKEN (README lists the demo tokens)",
            EXIT_DENIED,
        )
    return resolved


def fail(message: str, exit_code: int = EXIT_FAILURE) -> typer.Exit:
    typer.secho(f"seisan: {message}", err=True, fg=typer.colors.RED)
    return typer.Exit(exit_code)


# Older names, kept for the service command groups.
EXIT_REFUSED = EXIT_FAILURE
EXIT_AUTH = EXIT_DENIED


def rpc_failure(exc: Exception, what: str) -> typer.Exit:
    """Turn a gRPC error into one red line naming the status and the service's message.

    The exit code comes from :data:`seisan_shared.cli.exitcodes.EXIT_BY_STATUS`.
    """
    import grpc

    if isinstance(exc, grpc.RpcError):
        status = exc.code()  # type: ignore[attr-defined]
        details = exc.details()  # type: ignore[attr-defined]
        hint = ""
        if status == grpc.StatusCode.UNAVAILABLE:
            hint = " — is `seisan up` running?"
        return fail(f"{what}: {status.name}: {details}{hint}", exit_code_for(status))
    return fail(f"{what}: {exc}", EXIT_FAILURE)
