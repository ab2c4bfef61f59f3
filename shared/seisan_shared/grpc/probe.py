"""``python -m seisan_shared.grpc.probe HOST:PORT``: exit 0 when the gRPC server reports SERVING.

For container health checks (compose ``healthcheck``, a Kubernetes ``exec``
probe). Plaintext by default — point it at the service's health-only port
(``SEISAN_HEALTH_ADDRESS``); ``--tls`` uses ``SEISAN_TLS_*`` from the
environment to reach a TLS port instead. Exit 1 and the status (or error) on
stderr otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from seisan_shared.transport import load_transport


async def probe(
    address: str, *, service: str = "", tls: bool = False, deadline: float = 3.0
) -> str:
    """The status name the server reports for ``service`` ("" = the whole server)."""
    credentials = load_transport().client_tls() if tls else None
    if credentials is not None:
        ch = grpc.aio.secure_channel(address, credentials.credentials())
    else:
        ch = grpc.aio.insecure_channel(address)
    async with ch:
        try:
            reply = await health_pb2_grpc.HealthStub(ch).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=deadline
            )
        except grpc.aio.AioRpcError as exc:
            return f"UNREACHABLE ({exc.code().name}: {exc.details()})"
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="host:port of the gRPC (or health-only) port")
    parser.add_argument("--service", default="", help="a service name; default: the server")
    parser.add_argument("--tls", action="store_true", help="TLS with SEISAN_TLS_CA (+ cert/key)")
    parser.add_argument("--timeout", type=float, default=3.0)
    ns = parser.parse_args(argv)
    status = asyncio.run(probe(ns.address, service=ns.service, tls=ns.tls, deadline=ns.timeout))
    if status == "SERVING":
        return 0
    print(f"{ns.address}: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
