"""Stripe Issuing: a verified ``issuing_transaction.created`` event becomes one CardCharge.

The HTTP endpoint verifies the signature (``stripe.Webhook.construct_event``)
and passes the event here, as a dict or as the ``stripe.Event`` it got back.

Stripe signs an Issuing transaction from the balance's side: a capture is
negative, a refund positive. The sign is turned around so a charge is positive.
Amounts are already integers in the currency's smallest unit. In a webhook the
``card`` and ``cardholder`` fields are ids, not objects, so the card's last four
digits come from the caller (looked up once per card and cached) unless the
event carries the expanded card.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any

from seisan_cards.adapters.statements.common import clean_text, currency_from_alpha, reject, shown
from seisan_cards.adapters.statements.pan import redact_pans
from seisan_cards.domain.charges import CardCharge, StatementFormat, charge_id_for
from seisan_shared.money import Money

EVENT_TYPE = "issuing_transaction.created"
_OBJECT = "issuing.transaction"


def charge_from_issuing_event(
    event: Mapping[str, Any] | Any,
    *,
    card_last4: str | None = None,
    cardholder: str | None = None,
) -> CardCharge:
    """The charge an ``issuing_transaction.created`` event reports."""
    payload = _as_dict(event)
    if payload.get("type") != EVENT_TYPE:
        raise reject(
            f"expected a {EVENT_TYPE} event, got {shown(str(payload.get('type')))}", field="type"
        )
    data = payload.get("data")
    obj = data.get("object") if isinstance(data, Mapping) else None
    if not isinstance(obj, Mapping):
        raise reject("the event carries no object", field="data.object")
    return charge_from_issuing_transaction(obj, card_last4=card_last4, cardholder=cardholder)


def charge_from_issuing_transaction(
    transaction: Mapping[str, Any] | Any,
    *,
    card_last4: str | None = None,
    cardholder: str | None = None,
) -> CardCharge:
    """The charge for one ``issuing.transaction`` object (from an event or the API)."""
    tx = _as_dict(transaction)
    if tx.get("object") != _OBJECT:
        raise reject(f"expected an {_OBJECT} object", field="object")
    transaction_id = tx.get("id")
    if not isinstance(transaction_id, str) or not transaction_id:
        raise reject("the transaction has no id", field="id")

    currency = currency_from_alpha(_text(tx, "currency"), line=None, field="currency")
    amount = Money(-_integer(tx, "amount"), currency)
    original = None
    merchant_currency_raw = tx.get("merchant_currency")
    if isinstance(merchant_currency_raw, str) and merchant_currency_raw:
        merchant_currency = currency_from_alpha(
            merchant_currency_raw, line=None, field="merchant_currency"
        )
        if merchant_currency != currency:
            original = Money(-_integer(tx, "merchant_amount"), merchant_currency)

    merchant_data = tx.get("merchant_data")
    merchant_data = merchant_data if isinstance(merchant_data, Mapping) else {}
    mcc = str(merchant_data.get("category_code") or "").strip()
    created = _timestamp(tx, "created")
    authorization = tx.get("authorization")
    authorized = (
        _timestamp(authorization, "created")
        if isinstance(authorization, Mapping) and authorization.get("created") is not None
        else created
    )
    issuer_id = f"{StatementFormat.STRIPE_ISSUING.value}:{redact_pans(transaction_id)}"
    return CardCharge(
        charge_id=charge_id_for(issuer_id),
        issuer_transaction_id=issuer_id,
        card_last4=_card_last4(tx.get("card"), card_last4),
        cardholder=_cardholder(tx.get("cardholder"), cardholder),
        transaction_date=authorized,
        posting_date=created,
        merchant=clean_text(str(merchant_data.get("name") or "")),
        mcc=mcc if re.fullmatch(r"[0-9]{4}", mcc) else "",
        amount=amount,
        original_amount=original,
        source_format=StatementFormat.STRIPE_ISSUING,
        source_line=0,
    )


def _as_dict(value: Mapping[str, Any] | Any) -> Mapping[str, Any]:
    if hasattr(value, "to_dict"):  # stripe.StripeObject is no dict since stripe 8
        value = value.to_dict()
    if not isinstance(value, Mapping):
        raise reject(f"expected a JSON object, got {type(value).__name__}")
    return value


def _text(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value:
        raise reject("missing", field=key)
    return value


def _integer(obj: Mapping[str, Any], key: str) -> int:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise reject(
            f"expected an integer amount in minor units, got {shown(str(value))}", field=key
        )
    return value


def _timestamp(obj: Mapping[str, Any], key: str) -> date:
    value = obj.get(key)
    if isinstance(value, bool) or not isinstance(value, int):
        raise reject(f"expected a Unix timestamp, got {shown(str(value))}", field=key)
    return datetime.fromtimestamp(value, tz=UTC).date()


def _card_last4(card: object, given: str | None) -> str:
    if isinstance(card, Mapping):
        last4 = card.get("last4")
        if isinstance(last4, str) and re.fullmatch(r"[0-9]{4}", last4):
            return last4
    if given is not None and re.fullmatch(r"[0-9]{4}", given):
        return given
    raise reject(
        "the card's last four digits are unknown: expand `card` or pass card_last4",
        field="card",
    )


def _cardholder(holder: object, given: str | None) -> str:
    if isinstance(holder, Mapping) and isinstance(holder.get("name"), str):
        return clean_text(holder["name"])
    return clean_text(given or "")
