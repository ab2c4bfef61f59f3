"""Checks of requests and responses against Stripe's OpenAPI description (spec3.json).

The spec is OpenAPI 3.0, whose schemas are JSON Schema plus ``nullable``; it is
converted once (``nullable: true`` → ``anyOf [schema, null]``) and, in strict
mode, every object schema that lists its ``properties`` refuses others, so a
field the 2023-08-16 API does not have is caught. Responses are checked against
the operation's declared response schema (``200`` or ``default`` = ``error``);
an event's ``data.object`` is checked against the schema its ``object`` names.

Requests are checked by name and by form value: every parameter (nested keys
too) must be declared by the operation's form-encoded ``requestBody`` (POST) or
its query ``parameters`` (GET), and a value must parse as its declared type
(integer, boolean, enum member).

:meth:`StripeSpec.load` caches one instance per path for the process (so a test
session loads the 2.7 MB file once). ``jsonschema`` is imported only here, when a
check runs, so the server itself does not need it.
"""

from __future__ import annotations

import functools
import json
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

SPEC_ENV = "SEISAN_STRIPE_SPEC"
SCHEMA_BY_OBJECT = {
    "account": "account",
    "balance": "balance",
    "bank_account": "bank_account",
    "event": "event",
    "payout": "payout",
    "transfer": "transfer",
    "transfer_reversal": "transfer_reversal",
}


def default_spec_path() -> Path:
    """``$SEISAN_STRIPE_SPEC``, else ``shared/data/stripe/spec3.json`` beside the repository."""
    if os.environ.get(SPEC_ENV):
        return Path(os.environ[SPEC_ENV])
    repo = Path(__file__).resolve().parents[3]
    return repo.parent / "shared" / "data" / "stripe" / "spec3.json"


def _convert(node: Any, strict: bool) -> Any:
    if isinstance(node, list):
        return [_convert(item, strict) for item in node]
    if not isinstance(node, dict):
        return node
    out = {k: _convert(v, strict) for k, v in node.items() if not k.startswith("x-")}
    if strict and "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    if out.pop("nullable", False):
        return {"anyOf": [out, {"type": "null"}]}
    return out


def _path_pattern(template: str) -> re.Pattern[str]:
    parts = re.split(r"(\{[^}]+\})", template)
    regex = "".join("[^/]+" if part.startswith("{") else re.escape(part) for part in parts)
    return re.compile(f"^{regex}$")


class StripeSpec:
    def __init__(self, document: Mapping[str, Any], *, strict: bool = True) -> None:
        self._paths: dict[str, dict[str, Any]] = document["paths"]
        self._root = {"components": _convert(document["components"], strict)}
        self._strict = strict
        self._validators: dict[str, Any] = {}
        self._bank_hash = _find_titled(self._paths, "external_account_payout_bank_account") or {}
        templates = sorted(self._paths, key=lambda t: (t.count("{"), -len(t)))
        self._patterns = [(_path_pattern(t), t) for t in templates]

    @classmethod
    def load(cls, path: Path | str | None = None, *, strict: bool = True) -> StripeSpec:
        return _load(str(path or default_spec_path()), strict)

    # ---- schemas ------------------------------------------------------------------------

    def _validator(self, key: str, schema: Mapping[str, Any]) -> Any:
        import jsonschema

        if key not in self._validators:
            converted = _convert(dict(schema), self._strict)
            self._validators[key] = jsonschema.Draft7Validator({**self._root, **converted})
        return self._validators[key]

    def schema_problems(self, schema_name: str, instance: Any) -> list[str]:
        """Problems of ``instance`` against ``#/components/schemas/<schema_name>``."""
        ref = {"$ref": f"#/components/schemas/{schema_name}"}
        return self._problems(self._validator(schema_name, ref), instance, schema_name)

    def _problems(self, validator: Any, instance: Any, label: str) -> list[str]:
        from jsonschema.exceptions import best_match

        problems = []
        for error in sorted(validator.iter_errors(instance), key=lambda e: list(e.path)):
            where = "/".join(str(x) for x in error.absolute_path) or "(top)"
            detail = error.message
            if error.context:  # anyOf: say what the closest branch wanted
                best = best_match(error.context)
                detail = f"{detail[:200]} ({best.message[:200]})"
            problems.append(f"{label}: {where}: {detail}")
        return problems[:10]

    # ---- operations ---------------------------------------------------------------------

    def operation(self, method: str, path: str) -> tuple[str, dict[str, Any]] | None:
        for pattern, template in self._patterns:
            if pattern.match(path):
                op = self._paths[template].get(method.lower())
                return (template, op) if op is not None else None
        return None

    def response_problems(
        self, method: str, path: str, status: int, body: Mapping[str, Any]
    ) -> list[str]:
        """Problems of a response body against what the operation declares for ``status``."""
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the spec"]
        template, op = found
        code = str(status) if str(status) in op["responses"] else "default"
        schema = op["responses"][code]["content"]["application/json"]["schema"]
        label = f"{method} {template} {status}"
        validator = self._validator(f"{method} {template} {code}", schema)
        problems = self._problems(validator, body, label)
        for event in self._events_in(body):
            problems += self.event_object_problems(event)
        return problems

    def event_object_problems(self, event: Mapping[str, Any]) -> list[str]:
        obj = event.get("data", {}).get("object", {})
        schema = SCHEMA_BY_OBJECT.get(obj.get("object", ""))
        if schema is None:
            return [f"event {event.get('id')}: no known schema for {obj.get('object')!r}"]
        return self.schema_problems(schema, obj)

    @staticmethod
    def _events_in(body: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        if body.get("object") == "event":
            return [body]
        if body.get("object") == "list":
            return [item for item in body.get("data", []) if item.get("object") == "event"]
        return []

    def request_problems(self, method: str, path: str, params: Mapping[str, Any]) -> list[str]:
        """Problems of decoded request parameters against the operation's declaration."""
        found = self.operation(method, path)
        if found is None:
            return [f"{method} {path}: no such operation in the spec"]
        template, op = found
        label = f"{method} {template}"
        if method.upper() == "POST":
            schema = op["requestBody"]["content"]["application/x-www-form-urlencoded"]["schema"]
            problems = [
                f"{label}: missing required {name}"
                for name in schema.get("required", [])
                if name not in params
            ]
            return problems + self._form_problems(label, "", params, schema)
        declared = {p["name"]: p.get("schema", {}) for p in op.get("parameters", [])}
        problems = []
        for name, value in params.items():
            if (
                name not in declared
                or next((p["in"] for p in op["parameters"] if p["name"] == name), "") != "query"
            ):
                problems.append(f"{label}: unknown query parameter {name}")
            else:
                problems += self._value_problems(label, name, value, declared[name])
        return problems

    def _resolve(self, schema: Mapping[str, Any]) -> Mapping[str, Any]:
        while "$ref" in schema:
            name = schema["$ref"].rsplit("/", 1)[-1]
            schema = self._root["components"]["schemas"][name]
        return schema

    def _form_problems(
        self, label: str, prefix: str, params: Mapping[str, Any], schema: Mapping[str, Any]
    ) -> list[str]:
        props = schema.get("properties", {})
        problems = []
        for name, value in params.items():
            full = f"{prefix}[{name}]" if prefix else name
            if name in props:
                problems += self._value_problems(label, full, value, props[name])
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += self._value_problems(label, full, value, schema["additionalProperties"])
            elif schema.get("additionalProperties") is not True:
                problems.append(f"{label}: unknown parameter {full}")
        return problems

    def _value_problems(
        self, label: str, name: str, value: Any, schema: Mapping[str, Any]
    ) -> list[str]:
        schema = self._resolve(schema)
        if schema.get("x-stripeBypassValidation") and isinstance(value, dict):
            # Stripe marks parameters whose hash form the spec cannot express; for
            # external_account that hash is the bank account its description points to.
            return self._form_problems(label, name, value, self._bank_hash) + [
                f"{label}: missing required {name}[{req}]"
                for req in self._bank_hash.get("required", [])
                if req not in value
            ]
        branches = schema.get("anyOf") or schema.get("oneOf")
        if branches:
            # A form cannot send null, so a nullable schema's null branch never applies.
            branches = [b for b in branches if b.get("type") != "null"]
            outcomes = [self._value_problems(label, name, value, b) for b in branches]
            return [] if any(not o for o in outcomes) else outcomes[0]
        if schema.get("type") is None and not schema.get("properties"):
            return []
        kind = schema.get("type", "object")
        if isinstance(value, dict):
            if kind != "object":
                return [f"{label}: {name} should be {kind}, got a hash"]
            return self._form_problems(label, name, value, schema)
        if isinstance(value, list):
            if kind != "array":
                return [f"{label}: {name} should be {kind}, got a list"]
            items = schema.get("items", {})
            return [
                problem
                for i, item in enumerate(value)
                for problem in self._value_problems(label, f"{name}[{i}]", item, items)
            ]
        return self._scalar_problems(label, name, str(value), schema, kind)

    @staticmethod
    def _scalar_problems(
        label: str, name: str, value: str, schema: Mapping[str, Any], kind: str
    ) -> list[str]:
        if kind == "integer" and not re.fullmatch(r"-?\d+", value):
            return [f"{label}: {name}={value!r} is not an integer"]
        if kind == "number" and not re.fullmatch(r"-?\d+(\.\d+)?", value):
            return [f"{label}: {name}={value!r} is not a number"]
        if kind == "boolean" and value not in ("true", "false"):
            return [f"{label}: {name}={value!r} is not a boolean"]
        if kind in ("object", "array"):
            return [f"{label}: {name} should be {kind}, got {value!r}"]
        if "enum" in schema and value not in schema["enum"]:
            return [f"{label}: {name}={value!r} is not one of {schema['enum']}"]
        if "maxLength" in schema and len(value) > schema["maxLength"]:
            return [f"{label}: {name} is longer than {schema['maxLength']}"]
        return []


def _find_titled(node: Any, title: str) -> dict[str, Any] | None:
    if isinstance(node, dict):
        if node.get("title") == title:
            return node
        children: Any = node.values()
    elif isinstance(node, list):
        children = node
    else:
        return None
    for child in children:
        found = _find_titled(child, title)
        if found is not None:
            return found
    return None


@functools.lru_cache(maxsize=4)
def _load(path: str, strict: bool) -> StripeSpec:
    with open(path, encoding="utf-8") as f:
        return StripeSpec(json.load(f), strict=strict)
