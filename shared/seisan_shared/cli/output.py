"""What `seisan … --json` prints, and the progress bars of long commands.

The JSON shape is stable and the same for every command:

* every field of a message is present (defaults included), named as in the proto;
* money is ``{"amount_minor": 1112, "currency": "JPY", "formatted": "1,112 JPY"}``;
* a calendar date is ``"2026-11-02"`` (``null`` when unset), a timestamp RFC 3339 UTC;
* an enum is its value name without the type prefix, lower case
  (``RECEIPT_STATUS_NEEDS_REVIEW`` → ``"needs_review"``);
* 64-bit integers are JSON numbers (not strings, as protobuf's own mapping has them);
* an unset sub-message is ``null``.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any

import typer
from google.protobuf.descriptor import EnumDescriptor, FieldDescriptor
from google.protobuf.message import Message
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from seisan_shared.money import MoneyError, exponent

_MONEY = "seisan.common.v1.Money"
_DATE = "seisan.common.v1.Date"
_TIMESTAMP = "google.protobuf.Timestamp"
_DURATION = "google.protobuf.Duration"
_ANY = "google.protobuf.Any"


def money_json(minor_units: int, currency: str) -> dict[str, Any]:
    """Money as every `--json` output shows it."""
    return {
        "amount_minor": int(minor_units),
        "currency": currency,
        "formatted": money_text(minor_units, currency),
    }


def money_text(minor_units: int, currency: str) -> str:
    """``1,112 JPY``, ``-1,234.56 USD``; an empty currency (an unset amount) prints ``-``."""
    if not currency:
        return "-"
    try:
        major = Decimal(int(minor_units)).scaleb(-exponent(currency))
        return f"{major:,f} {currency}"
    except MoneyError:
        return f"{minor_units} (minor units) {currency}"


def _enum_prefix(enum: EnumDescriptor) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", enum.name).upper() + "_"


def enum_text(enum: EnumDescriptor, number: int) -> str:
    """``RECEIPT_STATUS_NEEDS_REVIEW`` → ``needs_review`` (unknown numbers stay numbers)."""
    value = enum.values_by_number.get(number)
    if value is None:
        return str(number)
    return value.name.removeprefix(_enum_prefix(enum)).lower()


def _scalar(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_ENUM:
        return enum_text(field.enum_type, value)
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return to_json(value)
    if field.type == FieldDescriptor.TYPE_BYTES:
        return len(value)  # raw bytes never go to a terminal; their size does
    return value


def to_json(message: Message) -> Any:
    """A protobuf message as plain JSON-able data, in the stable shape of the module doc."""
    name = message.DESCRIPTOR.full_name
    if name == _MONEY:
        return money_json(message.minor_units, message.currency)  # type: ignore[attr-defined]
    if name == _DATE:
        d = message
        if not d.year:  # type: ignore[attr-defined]
            return None
        return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"  # type: ignore[attr-defined]
    if name == _TIMESTAMP:
        if not message.seconds and not message.nanos:  # type: ignore[attr-defined]
            return None
        return message.ToJsonString()  # type: ignore[attr-defined]
    if name == _DURATION:
        return message.ToTimedelta().total_seconds()  # type: ignore[attr-defined]
    if name == _ANY:
        return {"type_url": message.type_url}  # type: ignore[attr-defined]
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            value_field = field.message_type.fields_by_name["value"]
            out[field.name] = {str(k): _scalar(value_field, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_scalar(field, v) for v in value]
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            out[field.name] = to_json(value) if message.HasField(field.name) else None
        else:
            out[field.name] = _scalar(field, value)
    return out


def _plain(value: Any) -> Any:
    if isinstance(value, Message):
        return to_json(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


def emit_json(value: Any) -> None:
    """Print ``value`` (messages, lists and dicts of them, plain data) as one JSON document."""
    typer.echo(json.dumps(_plain(value), ensure_ascii=False, indent=2))


def interactive(as_json: bool = False) -> bool:
    """Whether to draw live progress: not for `--json`, and only on a terminal."""
    return not as_json and sys.stderr.isatty()


@contextmanager
def progress_bar(as_json: bool, *, transfer: bool = False) -> Iterator[Progress]:
    """A progress bar on stderr, hidden for `--json` or when stderr is not a terminal."""
    columns: list[Any] = [TextColumn("{task.description}"), BarColumn()]
    if transfer:
        from rich.progress import DownloadColumn, TransferSpeedColumn

        columns += [DownloadColumn(), TransferSpeedColumn()]
    else:
        columns.append(MofNCompleteColumn())
    columns.append(TimeElapsedColumn())
    with Progress(
        *columns, console=Console(stderr=True), disable=not interactive(as_json)
    ) as progress:
        yield progress
