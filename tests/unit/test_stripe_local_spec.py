"""The spec checker itself, and the local server's routes against Stripe's OpenAPI description.

The description (../shared/data/stripe/spec3.json) is loaded once per session
(``StripeSpec.load`` caches it).
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from seisan_shared.stripe_local import ROUTES, StripeSpec
from seisan_shared.stripe_local.spec import default_spec_path

FIXTURES = default_spec_path().with_name("fixtures3.json")
OBJECTS = ["account", "balance", "bank_account", "event", "payout", "transfer", "transfer_reversal"]


@pytest.fixture(scope="module")
def spec() -> StripeSpec:
    if not default_spec_path().exists():
        pytest.skip(f"Stripe's spec is not at {default_spec_path()}")
    return StripeSpec.load()


@pytest.fixture(scope="module")
def fixtures() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(Path(FIXTURES).read_text())["resources"]
    return resources


@pytest.mark.parametrize("name", OBJECTS)
def test_stripes_own_example_objects_pass_the_strict_checker(
    spec: StripeSpec, fixtures: dict[str, Any], name: str
) -> None:
    assert spec.schema_problems(name, fixtures[name]) == []


def test_checker_catches_unknown_fields_wrong_types_and_missing_required(
    spec: StripeSpec, fixtures: dict[str, Any]
) -> None:
    transfer = copy.deepcopy(fixtures["transfer"])
    transfer["amount"] = "1100"
    transfer["payout_id"] = "po_1"
    del transfer["reversals"]
    problems = " | ".join(spec.schema_problems("transfer", transfer))
    assert "'1100' is not of type 'integer'" in problems
    assert "payout_id" in problems
    assert "'reversals' is a required property" in problems
    payout = copy.deepcopy(fixtures["payout"])
    payout["reconciliation_status"] = "done"
    assert spec.schema_problems("payout", payout)
    nested = copy.deepcopy(fixtures["account"])
    nested["external_accounts"]["data"] = [{"object": "bank_account", "id": "ba_1"}]
    assert spec.schema_problems("account", nested)  # bank account lacks country, last4...


def test_response_check_uses_the_operation_schema(
    spec: StripeSpec, fixtures: dict[str, Any]
) -> None:
    page = {
        "object": "list",
        "data": [fixtures["transfer"]],
        "has_more": False,
        "url": "/v1/transfers",
    }
    assert spec.response_problems("GET", "/v1/transfers", 200, page) == []
    wrong_page = {**page, "url": "/v1/payouts"}  # the list url pattern is ^/v1/transfers
    assert spec.response_problems("GET", "/v1/transfers", 200, wrong_page)
    error = {"error": {"type": "invalid_request_error", "message": "x", "code": "resource_missing"}}
    assert spec.response_problems("GET", "/v1/transfers/tr_1", 404, error) == []
    assert spec.response_problems("GET", "/v1/transfers/tr_1", 404, {"error": {"type": "oops"}})


def test_event_data_object_is_checked_against_its_own_schema(
    spec: StripeSpec, fixtures: dict[str, Any]
) -> None:
    event = copy.deepcopy(fixtures["event"])
    event["type"] = "transfer.created"
    event["data"]["object"] = copy.deepcopy(fixtures["transfer"])
    assert spec.response_problems("GET", "/v1/events/evt_1", 200, event) == []
    del event["data"]["object"]["amount"]
    assert spec.response_problems("GET", "/v1/events/evt_1", 200, event)


def test_request_check_knows_names_types_and_enums(spec: StripeSpec) -> None:
    ok = {
        "amount": "1500",
        "currency": "jpy",
        "destination": "acct_1",
        "metadata": {"claim_id": "c1"},
        "transfer_group": "run-1",
    }
    assert spec.request_problems("POST", "/v1/transfers", ok) == []
    assert spec.request_problems("POST", "/v1/transfers", {**ok, "amount": "15.5"})
    assert spec.request_problems("POST", "/v1/transfers", {**ok, "colour": "red"})
    assert spec.request_problems("POST", "/v1/transfers", {"amount": "1"})  # required missing
    assert spec.request_problems(
        "POST", "/v1/payouts", {"amount": "1", "currency": "usd", "method": "fast"}
    )
    assert spec.request_problems("GET", "/v1/events", {"type": "payout.paid", "limit": "3"}) == []
    assert spec.request_problems("GET", "/v1/events", {"colour": "red"})
    assert spec.request_problems("DELETE", "/v1/transfers", {})  # no such operation


def test_external_account_hash_is_checked_as_the_documented_bank_account(spec: StripeSpec) -> None:
    bank = {
        "object": "bank_account",
        "country": "JP",
        "currency": "jpy",
        "account_number": "0001234",
    }
    params = {"type": "custom", "external_account": {**bank, "account_type": "futsu"}}
    assert spec.request_problems("POST", "/v1/accounts", params) == []
    bad = {"type": "custom", "external_account": {**bank, "iban": "x"}}
    assert spec.request_problems("POST", "/v1/accounts", bad)
    missing = {"type": "custom", "external_account": {"object": "bank_account"}}
    assert spec.request_problems("POST", "/v1/accounts", missing)


@pytest.mark.parametrize("route", ROUTES, ids=lambda r: f"{r.method} {r.template}")
def test_every_route_and_parameter_of_the_server_exists_in_the_spec(
    spec: StripeSpec, route: Any
) -> None:
    found = spec.operation(route.method, route.template.replace("{", "x").replace("}", ""))
    assert found is not None and found[0] == route.template
    _, operation = found
    if route.method == "POST":
        body = operation["requestBody"]["content"]["application/x-www-form-urlencoded"]
        declared = set(body["schema"].get("properties", {}))
    else:
        declared = {p["name"] for p in operation.get("parameters", []) if p["in"] == "query"}
    assert set(route.params) <= declared, set(route.params) - declared
