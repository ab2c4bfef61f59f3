"""``python -m seisan_audit``: the audit service (consumer, checkpoints, gRPC AuditTrail)."""

from __future__ import annotations

import asyncio
import logging
import sys
from contextlib import AsyncExitStack

from seisan_audit.bootstrap import start
from seisan_audit.config import AuditConfig, load_config
from seisan_shared import observability
from seisan_shared.config import ConfigError
from seisan_shared.faults import Faults
from seisan_shared.grpc import wait_for_termination_signal
from seisan_shared.transport import TransportConfig, load_transport

log = logging.getLogger("seisan.audit")


async def run(config: AuditConfig, transport: TransportConfig) -> None:
    async with AsyncExitStack() as stack:
        metrics = observability.start("audit", stack)
        service = await start(
            config, stack, faults=Faults.from_env(), transport=transport, metrics=metrics
        )
        log.info(
            "audit: consuming %s as %r, AuditTrail on %s, checkpoints in %s",
            "seisan.audit.recorded",
            config.durable,
            service.server.address,
            service.checkpoints.path,
        )
        await wait_for_termination_signal()


def main() -> int:
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    try:
        config = load_config()
        transport = load_transport("audit")
    except ConfigError as exc:
        log.error("audit: %s", exc)
        return 2
    asyncio.run(run(config, transport))
    return 0


if __name__ == "__main__":
    sys.exit(main())
