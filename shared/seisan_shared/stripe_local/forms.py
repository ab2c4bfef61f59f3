"""Stripe's form encoding: ``metadata[claim_id]=c1&expand[0]=x`` ⇄ nested dicts and lists."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import parse_qsl

_KEY = re.compile(r"^([^\[\]]+)((?:\[[^\[\]]*\])*)$")


class FormError(ValueError):
    """A key such as ``a[b`` or ``a[0]`` mixed with ``a[b]`` that has no nested meaning."""


def parse_pairs(raw: bytes | str) -> list[tuple[str, str]]:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    return parse_qsl(text, keep_blank_values=True, strict_parsing=False)


def decode(pairs: Iterable[tuple[str, str]]) -> dict[str, Any]:
    """Nest bracketed keys; a level keyed exactly ``0..n-1`` (or ``[]``) becomes a list."""
    root: dict[str, Any] = {}
    for key, value in pairs:
        match = _KEY.match(key)
        if match is None:
            raise FormError(f"Invalid parameter name: {key}")
        path = [match.group(1), *re.findall(r"\[([^\[\]]*)\]", match.group(2))]
        node = root
        for i, part in enumerate(path[:-1]):
            if part == "":
                part = str(len(node))
                path[i] = part
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise FormError(f"Invalid parameter name: {key}")
            node = child
        last = path[-1] if path[-1] != "" else str(len(node))
        if isinstance(node.get(last), dict):
            raise FormError(f"Invalid parameter name: {key}")
        node[last] = value
    for name, value in root.items():
        if isinstance(value, dict):
            root[name] = _listify(value)
    return root


def _listify(node: dict[str, Any]) -> Any:
    """Children first; then the level itself if its keys are exactly 0..n-1."""
    for key, value in node.items():
        if isinstance(value, dict):
            node[key] = _listify(value)
    if node and sorted(node, key=lambda k: (len(k), k)) == [str(i) for i in range(len(node))]:
        return [node[str(i)] for i in range(len(node))]
    return node


def encode(params: dict[str, Any], prefix: str = "") -> list[tuple[str, str]]:
    """The inverse of :func:`decode` (lists indexed, booleans lower-case), for tests."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        name = f"{prefix}[{key}]" if prefix else str(key)
        if isinstance(value, dict):
            pairs += encode(value, name)
        elif isinstance(value, list | tuple):
            pairs += encode({str(i): v for i, v in enumerate(value)}, name)
        elif isinstance(value, bool):
            pairs.append((name, "true" if value else "false"))
        elif value is not None:
            pairs.append((name, str(value)))
    return pairs
