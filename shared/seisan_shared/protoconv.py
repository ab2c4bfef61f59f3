"""Conversions between the common protobuf types (seisan.common.v1) and Python values.

Used at the edges of every service (servicers, event payloads), never in a domain.
"""

from __future__ import annotations

from datetime import date

from seisan.common.v1 import common_pb2
from seisan_shared.money import Money


def date_to_pb(value: date | None) -> common_pb2.Date:
    """A calendar date; ``None`` becomes the empty Date (year 0)."""
    if value is None:
        return common_pb2.Date()
    return common_pb2.Date(year=value.year, month=value.month, day=value.day)


def date_from_pb(value: common_pb2.Date) -> date | None:
    """The date, or ``None`` for the empty Date (year 0)."""
    if not value.year:
        return None
    return date(value.year, value.month, value.day)


def money_to_pb(value: Money) -> common_pb2.Money:
    return common_pb2.Money(minor_units=value.minor_units, currency=value.currency)
