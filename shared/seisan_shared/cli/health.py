"""`seisan health`: ask every gRPC service of the stack for its health status."""

from __future__ import annotations

import asyncio
import json

import grpc
import typer
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seisan_shared.cli.context import resolve
from seisan_shared.transport import load_transport


async def check(address: str, deadline_seconds: float = 2.0) -> str:
    """The service's overall status name (SERVING, NOT_SERVING…) or UNREACHABLE."""
    tls = load_transport().client_tls()  # SEISAN_TLS_CA (+ cert/key for mutual TLS) if set
    if tls is not None:
        opened = grpc.aio.secure_channel(address, tls.credentials())
    else:
        opened = grpc.aio.insecure_channel(address)
    async with opened as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        try:
            reply = await stub.Check(
                health_pb2.HealthCheckRequest(service=""), timeout=deadline_seconds
            )
        except grpc.aio.AioRpcError as exc:
            return f"UNREACHABLE ({exc.code().name})"
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


async def check_all(addresses: dict[str, str]) -> dict[str, str]:
    names = list(addresses)
    results = await asyncio.gather(*(check(addresses[n]) for n in names))
    return dict(zip(names, results, strict=True))


def health(
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    wait: float = typer.Option(
        0.0, help="Keep asking for up to this many seconds until all serve."
    ),
) -> None:
    """Show whether each service answers its gRPC health check (exit 1 unless all SERVING)."""
    target = resolve()

    async def run() -> dict[str, str]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            results = await check_all(target.addresses)
            if all(s == "SERVING" for s in results.values()) or loop.time() >= deadline:
                return results
            await asyncio.sleep(0.25)

    results = asyncio.run(run())
    if as_json:
        typer.echo(json.dumps(results))
    else:
        for name, status in results.items():
            colour = typer.colors.GREEN if status == "SERVING" else typer.colors.RED
            typer.echo(f"{name:<10} {target.addresses[name]:<22} ", nl=False)
            typer.secho(status, fg=colour)
    raise typer.Exit(0 if all(s == "SERVING" for s in results.values()) else 1)
