"""One call in each process's ``main`` sets up logs, tracing and the /metrics endpoint.

Read from the environment, the process-specific variable winning over the general one
(``PROCESS`` is ``AUDIT``, ``INTAKE``, ``INTAKE_WORKER``, ``CARDS`` or ``PAYOUTS``):

* ``SEISAN_<PROCESS>_METRICS_ADDRESS`` / ``SEISAN_METRICS_ADDRESS`` — ``host:port`` of
  ``/metrics`` (port 0 picks a free one; it is logged). Empty (the default) or ``off``:
  no endpoint. ``seisan up`` gives every process its own port.
* ``SEISAN_<PROCESS>_LOG_FORMAT`` / ``SEISAN_LOG_FORMAT`` — ``text`` (default) or ``json``.
* ``SEISAN_<PROCESS>_TRACING`` / ``SEISAN_TRACING`` — ``none`` (default), ``console`` or
  ``otlp``.
"""

from __future__ import annotations

from collections.abc import Mapping
from contextlib import AsyncExitStack
from dataclasses import dataclass

from seisan_shared import config, logs, metrics, tracing


@dataclass(frozen=True)
class ObservabilityConfig:
    metrics_address: str = ""
    log_format: str = "text"
    tracing: str = "none"
    log_level: str = "INFO"


def load(process: str, environ: Mapping[str, str] | None = None) -> ObservabilityConfig:
    """The settings of ``process`` (``intake-worker`` reads ``SEISAN_INTAKE_WORKER_*``)."""
    return config.load(ObservabilityConfig, environ, service=process.replace("-", "_"))


def start(process: str, stack: AsyncExitStack, *, log_level: str | None = None) -> metrics.Metrics:
    """Configure logging and tracing, serve /metrics if asked; ``stack`` undoes it all.

    Returns the process's :class:`~seisan_shared.metrics.Metrics` for wiring into the
    gRPC server, the outbox relay and the event consumers.
    """
    cfg = load(process)
    logs.configure(log_level or cfg.log_level, cfg.log_format, process)
    stack.callback(tracing.configure(process, cfg.tracing))
    registry = metrics.Metrics()
    try:
        server = metrics.serve(registry.registry, cfg.metrics_address)
    except ValueError as exc:
        prefix = process.upper().replace("-", "_")
        raise config.ConfigError(f"SEISAN_{prefix}_METRICS_ADDRESS: {exc}") from None
    if server is not None:
        stack.callback(server.close)
    return registry
