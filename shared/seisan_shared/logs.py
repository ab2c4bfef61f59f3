"""Log setup for every Seisan process: plain text or one JSON object per line.

``SEISAN_LOG_FORMAT=json`` writes each record as one JSON object with
``ts``, ``level``, ``logger``, ``message``, ``service`` and — for every line
logged inside a gRPC call or while an event is handled — ``correlation_id``
(and ``trace_id`` / ``span_id`` when tracing is on), plus whatever the call
site passed in ``extra`` (``grpc_method``, ``grpc_code``, ``duration_ms`` …).
The ids come from :mod:`contextvars` through :class:`CorrelationFilter`, so no
call site has to pass them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

from seisan_shared import context, tracing
from seisan_shared.config import ConfigError

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"

# Attributes every LogRecord has; anything else on a record came from ``extra``.
_STANDARD = frozenset(
    set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__)
    | {"message", "asctime", "correlation_id", "trace_id", "span_id", "service"}
)


class CorrelationFilter(logging.Filter):
    """Puts the bound correlation id (and trace/span ids) on every record that passes.

    A record that already carries ``correlation_id`` (the gRPC call line sets
    it through ``extra``) keeps it. Outside a call or event the attribute is
    None, never a freshly made-up id.
    """

    def __init__(self, service: str = "") -> None:
        super().__init__()
        self.service = service

    def filter(self, record: logging.LogRecord) -> bool:
        if getattr(record, "correlation_id", None) is None:
            record.correlation_id = context.correlation_id_or_none()
        if not hasattr(record, "trace_id"):
            ids = tracing.current_ids()
            record.trace_id, record.span_id = ids if ids else (None, None)
        if self.service and not hasattr(record, "service"):
            record.service = self.service
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record (see the module docstring); never raises on odd extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key in ("service", "correlation_id", "trace_id", "span_id"):
            value = getattr(record, key, None)
            if value:
                entry[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_"):
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            entry["stack"] = self.formatStack(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def handler(fmt: str = "text", service: str = "", stream: TextIO | None = None) -> logging.Handler:
    """A stream handler (stderr by default) in ``fmt`` with the correlation filter on it."""
    choice = (fmt or "text").strip().lower()
    if choice not in FORMATS:
        raise ConfigError(f"SEISAN_LOG_FORMAT: 'text' or 'json', not {fmt!r}")
    out = logging.StreamHandler(stream or sys.stderr)
    out.addFilter(CorrelationFilter(service))
    out.setFormatter(JsonFormatter() if choice == "json" else logging.Formatter(TEXT_FORMAT))
    return out


def configure(level: str = "INFO", fmt: str = "text", service: str = "") -> None:
    """Set the root logger up once, in ``main``: ``level`` and ``fmt`` (text or json)."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler(fmt, service))
    root.setLevel(level.upper())
