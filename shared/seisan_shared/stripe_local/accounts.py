"""Connected accounts and their bank accounts, built from ``POST /v1/accounts`` parameters.

Only what a payout rail needs is modelled: type, country, email, business
profile, capabilities (``transfers``, ``card_payments``; requested means active
here, as for a fully verified test account), terms acceptance, metadata, and an
external bank account. ``individual`` and ``company`` are accepted and not kept.
A bank account keeps only its fingerprint and last four digits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from seisan_shared.stripe_local import params as p
from seisan_shared.stripe_local.errors import invalid, missing_param, no_such
from seisan_shared.stripe_local.objects import empty_requirements, list_object, new_id

DEFAULT_CURRENCY_BY_COUNTRY = {
    "US": "usd",
    "JP": "jpy",
    "GB": "gbp",
    "CA": "cad",
    "AU": "aud",
    "SG": "sgd",
    "MY": "myr",
    "DE": "eur",
    "FR": "eur",
    "IE": "eur",
    "NL": "eur",
}

# Stripe's test bank account numbers that make payouts fail (US numbers, any country here).
TEST_ACCOUNT_FAILURES = {
    "000111111116": "no_account",
    "000111111113": "account_closed",
    "000222222227": "insufficient_funds",
    "000333333335": "debit_not_authorized",
    "000444444440": "invalid_currency",
}

CAPABILITIES = ("card_payments", "transfers")
BUSINESS_PROFILE_KEYS = (
    "mcc",
    "name",
    "product_description",
    "support_email",
    "support_phone",
    "support_url",
    "url",
)
ACCOUNT_PARAMS = frozenset(
    {
        "type",
        "country",
        "email",
        "business_type",
        "business_profile",
        "capabilities",
        "external_account",
        "metadata",
        "tos_acceptance",
        "default_currency",
        "individual",
        "company",
        "expand",
    }
)
ACCOUNT_UNSUPPORTED = frozenset({"account_token", "bank_account", "documents", "settings"})
ACCOUNT_UPDATE_PARAMS = ACCOUNT_PARAMS - {"type", "country"}
BANK_PARAMS = (
    "object",
    "country",
    "currency",
    "account_number",
    "routing_number",
    "account_holder_name",
    "account_holder_type",
    "account_type",
)


def default_currency(country: str) -> str:
    return DEFAULT_CURRENCY_BY_COUNTRY.get(country, "usd")


def account_object(
    account_id: str,
    account_type: str,
    country: str,
    currency: str,
    created: int,
    capabilities: Mapping[str, str],
) -> dict[str, Any]:
    return {
        "id": account_id,
        "object": "account",
        "business_profile": {k: None for k in (*BUSINESS_PROFILE_KEYS, "support_address")},
        "business_type": None,
        "capabilities": dict(capabilities),
        "charges_enabled": capabilities.get("card_payments") == "active",
        "country": country,
        "created": created,
        "default_currency": currency,
        "details_submitted": account_type != "express",
        "email": None,
        "external_accounts": list_object([], f"/v1/accounts/{account_id}/external_accounts"),
        "future_requirements": empty_requirements(),
        "metadata": {},
        "payouts_enabled": False,
        "requirements": empty_requirements(),
        "tos_acceptance": {"date": None, "ip": None, "user_agent": None},
        "type": account_type,
    }


def new_account(params: Mapping[str, Any], platform_country: str, created: int) -> dict[str, Any]:
    """The account ``POST /v1/accounts`` creates, before :func:`apply_params`."""
    p.check_names(params, ACCOUNT_PARAMS, ACCOUNT_UNSUPPORTED)
    p.no_expand(params)
    account_type = p.choice(params, "type", ("custom", "express", "standard"))
    if account_type is None:
        raise missing_param("type")
    country = (p.string(params, "country") or platform_country).upper()
    if len(country) != 2:
        raise invalid(f"Invalid country: {country}", param="country")
    currency = (p.string(params, "default_currency") or default_currency(country)).lower()
    # A standard account manages its own capabilities; they are on from the start.
    capabilities = {name: "active" for name in CAPABILITIES} if account_type == "standard" else {}
    return account_object(
        new_id("acct_", 16), account_type, country, currency, created, capabilities
    )


def apply_params(
    account: dict[str, Any], params: Mapping[str, Any], bank_failures: dict[str, str]
) -> None:
    """Apply create/update parameters to ``account`` (a new bank account is the default)."""
    if (email := p.string(params, "email")) is not None:
        account["email"] = email
    if "business_type" in params:
        account["business_type"] = p.choice(
            params, "business_type", ("company", "government_entity", "individual", "non_profit")
        )
    if currency := p.string(params, "default_currency"):
        account["default_currency"] = currency.lower()
    profile = p.dict_param(params, "business_profile")
    p.check_names(
        profile,
        BUSINESS_PROFILE_KEYS,
        ("support_address", "monthly_estimated_revenue"),
        "business_profile",
    )
    for key in BUSINESS_PROFILE_KEYS:
        if key in profile:
            account["business_profile"][key] = p.string(profile, key)
    _apply_capabilities(account, p.dict_param(params, "capabilities"))
    _apply_tos(account, p.dict_param(params, "tos_acceptance"))
    account["metadata"] = p.metadata(params.get("metadata"), account["metadata"])
    if "external_account" in params:
        bank, failure = bank_account(account, params["external_account"])
        if failure is not None:
            bank_failures[bank["id"]] = failure
        for other in account["external_accounts"]["data"]:
            if other["currency"] == bank["currency"]:
                other["default_for_currency"] = False
        account["external_accounts"]["data"].insert(0, bank)
    account["payouts_enabled"] = (
        bool(account["external_accounts"]["data"])
        and account["capabilities"].get("transfers") == "active"
    )


def _apply_capabilities(account: dict[str, Any], wishes: Mapping[str, Any]) -> None:
    for name, wish in wishes.items():
        if name not in CAPABILITIES:
            raise invalid(
                f"The local Stripe server does not support the capability {name}.",
                param=f"capabilities[{name}]",
            )
        if not isinstance(wish, dict):
            raise invalid("Invalid hash", param=f"capabilities[{name}]")
        p.check_names(wish, ("requested",), (), f"capabilities[{name}]")
        requested = p.boolean(wish.get("requested"), f"capabilities[{name}][requested]")
        account["capabilities"][name] = "active" if requested else "inactive"
    account["charges_enabled"] = account["capabilities"].get("card_payments") == "active"


def _apply_tos(account: dict[str, Any], tos: Mapping[str, Any]) -> None:
    p.check_names(tos, ("date", "ip", "user_agent", "service_agreement"), (), "tos_acceptance")
    if "date" in tos:
        account["tos_acceptance"]["date"] = p.integer(tos, "date")
    for key in ("ip", "user_agent"):
        if key in tos:
            account["tos_acceptance"][key] = p.string(tos, key)
    if "service_agreement" in tos:
        account["tos_acceptance"]["service_agreement"] = p.choice(
            tos, "service_agreement", ("full", "recipient")
        )


def bank_account(owner: Mapping[str, Any], value: Any) -> tuple[dict[str, Any], str | None]:
    """A bank account from ``external_account`` (a test token ``btok_...`` or a hash), and the
    payout failure its number stands for among Stripe's test numbers, if any."""
    if isinstance(value, str):
        if not value.startswith("btok_"):
            raise no_such("token", value, param="external_account")
        fields: dict[str, Any] = {
            "object": "bank_account",
            "account_number": "000123456789",
            "routing_number": "110000000",
            "country": owner["country"],
        }
    elif isinstance(value, dict):
        fields = value
    else:
        raise invalid("Invalid external_account", param="external_account")
    p.check_names(fields, BANK_PARAMS, ("documents",), "external_account")
    if fields.get("object", "bank_account") != "bank_account":
        raise invalid(
            "The local Stripe server only takes bank accounts as external accounts.",
            param="external_account[object]",
        )
    for required in ("account_number", "country"):
        if not fields.get(required):
            raise missing_param(f"external_account[{required}]")
    number = str(p.string(fields, "account_number"))
    if not number.isdigit():
        raise invalid(
            "You must use a test bank account number in test mode.",
            param="external_account[account_number]",
        )
    country = str(p.string(fields, "country")).upper()
    bank = {
        "id": new_id("ba_"),
        "object": "bank_account",
        "account": owner["id"],
        "account_holder_name": p.string(fields, "account_holder_name"),
        "account_holder_type": p.choice(fields, "account_holder_type", ("individual", "company")),
        "account_type": p.choice(fields, "account_type", ("checking", "futsu", "savings", "toza")),
        "available_payout_methods": ["standard"],
        "bank_name": "STRIPE TEST BANK",
        "country": country,
        "currency": (p.string(fields, "currency") or default_currency(country)).lower(),
        "default_for_currency": True,
        # Only a fingerprint and the last four digits are kept, never the full number.
        "fingerprint": hashlib.sha256(number.encode()).hexdigest()[:16],
        "last4": number[-4:],
        "metadata": {},
        "routing_number": p.string(fields, "routing_number"),
        "status": "new",
    }
    return bank, TEST_ACCOUNT_FAILURES.get(number)
