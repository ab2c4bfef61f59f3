"""Typed configuration read from the environment (``SEISAN_*``), once, in ``main``.

Each service declares a frozen dataclass; :func:`load` fills it from the
environment by field name (``database_url`` ← ``SEISAN_INTAKE_DATABASE_URL`` or
``SEISAN_DATABASE_URL``) and converts by annotation. Nothing reads the
environment at import time.
"""

from __future__ import annotations

import dataclasses
import os
import types
import typing
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value is missing or malformed; the message names the variable."""


def _convert(name: str, raw: str, annotation: Any) -> Any:
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if raw == "":
            return None
        return _convert(name, raw, args[0])
    if annotation is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off", ""):
            return False
        raise ConfigError(f"{name}: expected a boolean (true/false), got {raw!r}")
    if annotation is int:
        try:
            return int(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from None
    if annotation is float:
        try:
            return float(raw)
        except ValueError:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if annotation is Path:
        return Path(raw)
    if origin is tuple:
        return tuple(part.strip() for part in raw.split(",") if part.strip())
    return raw


def load(cls: type[T], environ: Mapping[str, str] | None = None, service: str = "") -> T:
    """Build ``cls`` (a dataclass) from the environment.

    For a field ``foo`` the service-specific ``SEISAN_<SERVICE>_FOO`` wins over
    ``SEISAN_FOO``; a field without either keeps its default, and a field
    without a default is required (ConfigError names the variable).
    """
    env = os.environ if environ is None else environ
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for field in dataclasses.fields(cls):  # type: ignore[arg-type]
        names = [f"SEISAN_{field.name.upper()}"]
        if service:
            names.insert(0, f"SEISAN_{service.upper()}_{field.name.upper()}")
        for name in names:
            if name in env:
                values[field.name] = _convert(name, env[name], hints[field.name])
                break
        else:
            no_default = (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            )
            if no_default:
                raise ConfigError(f"{names[-1]} is required")
    return cls(**values)
