"""The local Stripe server's state: accounts, transfers, payouts, events and balances.

Objects are kept as the JSON the API returns (2023-08-16 shapes), so what is
stored is what is served and what a snapshot file holds. Every method runs
without awaiting, so on the event loop each one is atomic: a balance is checked
and debited in one step and can never go negative.

Money moves like this:

* platform available  --transfer-->  connected account available
* connected available  --reversal-->  platform available
* connected available  --payout (at creation)-->  out; a failed payout returns it
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from typing import Any

from seisan_shared.stripe_local import accounts as acc
from seisan_shared.stripe_local import params as p
from seisan_shared.stripe_local.clock import Clock
from seisan_shared.stripe_local.errors import StripeError, invalid, no_such
from seisan_shared.stripe_local.objects import (
    API_VERSION,
    RequestInfo,
    list_object,
    new_id,
    paginate,
    type_matches,
)

# Stripe's payout failure codes and the messages it gives for them.
FAILURE_MESSAGES = {
    "account_closed": "The bank account has been closed.",
    "account_frozen": "The bank account has been frozen.",
    "bank_account_restricted": "The bank account has restrictions on the payouts allowed.",
    "could_not_process": "The bank could not process this payout.",
    "debit_not_authorized": "Debit transactions are not approved on the bank account.",
    "declined": "The bank has declined this payout.",
    "insufficient_funds": "Your Stripe account has insufficient funds to cover the payout.",
    "invalid_account_number": "The routing number seems correct, but the account number is "
    "invalid.",
    "invalid_currency": "The bank was unable to process this payout because of its currency.",
    "no_account": "The bank account details on file are probably incorrect. No bank account "
    "could be located with those details.",
}

TRANSFER_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "destination",
        "description",
        "metadata",
        "transfer_group",
        "source_type",
        "expand",
    }
)
TRANSFER_UNSUPPORTED = frozenset({"source_transaction"})
REVERSAL_PARAMS = frozenset({"amount", "description", "metadata", "expand"})
REVERSAL_UNSUPPORTED = frozenset({"refund_application_fee"})
PAYOUT_PARAMS = frozenset(
    {
        "amount",
        "currency",
        "description",
        "destination",
        "metadata",
        "method",
        "source_type",
        "statement_descriptor",
        "expand",
    }
)
LIST_PARAMS = frozenset({"limit", "starting_after", "ending_before", "created", "expand"})
TRANSFER_LIST_PARAMS = LIST_PARAMS | {"destination", "transfer_group"}
PAYOUT_LIST_PARAMS = LIST_PARAMS | {"status", "destination", "arrival_date"}
EVENT_LIST_PARAMS = LIST_PARAMS | {"type", "types", "delivery_success"}
RETRIEVE_PARAMS = frozenset({"expand"})

INSUFFICIENT_PLATFORM = (
    "You have insufficient available funds in your Stripe account. Try adding funds directly "
    "to your available balance by creating Charges using the 4000000000000077 test card. See: "
    "https://stripe.com/docs/testing#available-balance"
)
INSUFFICIENT_ACCOUNT = (
    "You have insufficient funds in your Stripe account for this transfer. Your card balance "
    "is too low. You can use the /v1/balance endpoint to view your Stripe balance (for more "
    "details, see stripe.com/docs/api#balance)."
)


class Store:
    """All objects of one local Stripe platform and its connected accounts."""

    def __init__(self, clock: Clock, *, country: str = "US") -> None:
        self.clock = clock
        self.platform_id = new_id("acct_", 16)
        self.country = country
        self.accounts: dict[str, dict[str, Any]] = {}
        self.transfers: dict[str, dict[str, Any]] = {}
        self.payouts: dict[str, dict[str, Any]] = {}
        self.events: dict[str, dict[str, Any]] = {}
        self.balances: dict[str, dict[str, int]] = {}
        self.payout_owner: dict[str, str] = {}
        self.platform_banks: dict[str, dict[str, Any]] = {}  # by currency
        self.bank_failures: dict[str, str] = {}  # bank account id -> failure code
        self.payout_overrides: dict[str, str] = {}
        self.account_overrides: dict[str, str] = {}
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.endpoint_count: Callable[[str], int] = lambda event_type: 0

    def now(self) -> int:
        return int(self.clock.now())

    # ---- money -------------------------------------------------------------------------

    def available(self, account: str, currency: str) -> int:
        return self.balances.get(account, {}).get(currency, 0)

    def fund(self, account: str, currency: str, amount: int) -> None:
        """Add to an account's available balance (the platform's: test charges)."""
        if amount <= 0:
            raise ValueError("fund a positive amount")
        if account != self.platform_id and account not in self.accounts:
            raise KeyError(account)
        self._credit(account, currency.lower(), amount)

    def _credit(self, account: str, currency: str, amount: int) -> None:
        per_currency = self.balances.setdefault(account, {})
        per_currency[currency] = per_currency.get(currency, 0) + amount

    def _debit(self, account: str, currency: str, amount: int, message: str) -> None:
        """Take ``amount`` or refuse; a balance never goes below zero."""
        if self.available(account, currency) < amount:
            raise p.balance_insufficient(message)
        self.balances[account][currency] -= amount
        assert self.balances[account][currency] >= 0

    def balance(self, account: str) -> dict[str, Any]:
        amounts = self.balances.get(account, {})
        currencies = sorted(amounts) or [self._default_currency(account)]
        return {
            "object": "balance",
            "available": [
                {
                    "amount": amounts.get(c, 0),
                    "currency": c,
                    "source_types": {"card": amounts.get(c, 0)},
                }
                for c in currencies
            ],
            "livemode": False,
            "pending": [
                {"amount": 0, "currency": c, "source_types": {"card": 0}} for c in currencies
            ],
        }

    def _default_currency(self, account: str) -> str:
        if account in self.accounts:
            return str(self.accounts[account]["default_currency"])
        return acc.default_currency(self.country)

    # ---- events ------------------------------------------------------------------------

    def emit(
        self,
        event_type: str,
        obj: Mapping[str, Any],
        *,
        account: str | None,
        request: RequestInfo | None,
        previous: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        data: dict[str, Any] = {"object": copy.deepcopy(dict(obj))}
        if previous is not None:
            data["previous_attributes"] = dict(previous)
        event: dict[str, Any] = {
            "id": new_id("evt_"),
            "object": "event",
            "api_version": API_VERSION,
            "created": self.now(),
            "data": data,
            "livemode": False,
            "pending_webhooks": self.endpoint_count(event_type),
            "request": {
                "id": request.id if request else None,
                "idempotency_key": request.idempotency_key if request else None,
            },
            "type": event_type,
        }
        if account is not None:
            event["account"] = account
        self.events[event["id"]] = event
        for listener in self.listeners:
            listener(event)
        return event

    def delivered(self, event_id: str) -> None:
        event = self.events.get(event_id)
        if event is not None and event["pending_webhooks"] > 0:
            event["pending_webhooks"] -= 1

    def get_event(self, event_id: str, account: str | None) -> dict[str, Any]:
        event = self.events.get(event_id)
        if event is None or event.get("account") != account:
            raise no_such("event", event_id)
        return event

    def list_events(self, params: Mapping[str, Any], account: str | None) -> dict[str, Any]:
        p.check_names(params, EVENT_LIST_PARAMS)
        p.no_expand(params)
        types = set(params.get("types") or ())
        if params.get("type"):
            types.add(str(params["type"]))
        items = [
            e
            for e in reversed(self.events.values())
            if e.get("account") == account and (not types or type_matches(e["type"], types))
        ]
        if params.get("delivery_success") in ("true", "false"):
            wanted = params["delivery_success"] == "true"
            items = [e for e in items if (e["pending_webhooks"] == 0) == wanted]
        return paginate(items, params, "/v1/events")

    # ---- accounts ----------------------------------------------------------------------

    def platform_account(self) -> dict[str, Any]:
        currency = acc.default_currency(self.country)
        active = {name: "active" for name in acc.CAPABILITIES}
        account = acc.account_object(
            self.platform_id, "standard", self.country, currency, 0, active
        )
        account["payouts_enabled"] = True
        return account

    def create_account(self, params: Mapping[str, Any]) -> dict[str, Any]:
        account = acc.new_account(params, self.country, self.now())
        acc.apply_params(account, params, self.bank_failures)
        self.accounts[account["id"]] = account
        return account

    def update_account(self, account_id: str, params: Mapping[str, Any]) -> dict[str, Any]:
        account = self.get_account(account_id)
        p.check_names(
            params, acc.ACCOUNT_UPDATE_PARAMS, acc.ACCOUNT_UNSUPPORTED | {"type", "country"}
        )
        p.no_expand(params)
        trial = copy.deepcopy(account)  # all of the update or none of it
        acc.apply_params(trial, params, self.bank_failures)
        account.clear()
        account.update(trial)
        return account

    def get_account(self, account_id: str) -> dict[str, Any]:
        if account_id == self.platform_id:
            return self.platform_account()
        account = self.accounts.get(account_id)
        if account is None:
            raise StripeError(
                404, f"No such account: '{account_id}'", code="resource_missing", param="account"
            )
        return account

    def list_accounts(self, params: Mapping[str, Any]) -> dict[str, Any]:
        p.check_names(params, LIST_PARAMS)
        p.no_expand(params)
        return paginate(list(reversed(self.accounts.values())), params, "/v1/accounts")

    # ---- transfers ---------------------------------------------------------------------

    def create_transfer(
        self, params: Mapping[str, Any], acting: str, request: RequestInfo
    ) -> dict[str, Any]:
        p.check_names(params, TRANSFER_PARAMS, TRANSFER_UNSUPPORTED)
        p.no_expand(params)
        if acting != self.platform_id:
            raise invalid("Transfers are created by the platform, without Stripe-Account.")
        amount = p.positive_amount(params)
        currency = p.currency(params)
        destination = p.string(params, "destination", required=True)
        description = p.string(params, "description")
        transfer_group = p.string(params, "transfer_group")
        source_type = p.choice(params, "source_type", ("bank_account", "card", "fpx"), "card")
        metadata = p.metadata(params.get("metadata"))
        assert destination is not None
        account = self.accounts.get(destination)
        if account is None:
            raise no_such("destination", destination, param="destination")
        if account["capabilities"].get("transfers") != "active":
            raise StripeError(
                400,
                "Your destination account needs to have at least one of the following "
                "capabilities enabled: transfers, crypto_transfers, legacy_payments",
                code="insufficient_capabilities_for_transfer",
                param="destination",
            )
        self._debit(self.platform_id, currency, amount, INSUFFICIENT_PLATFORM)
        self._credit(destination, currency, amount)
        transfer_id = new_id("tr_")
        transfer = {
            "id": transfer_id,
            "object": "transfer",
            "amount": amount,
            "amount_reversed": 0,
            "balance_transaction": new_id("txn_"),
            "created": self.now(),
            "currency": currency,
            "description": description,
            "destination": destination,
            "destination_payment": new_id("py_"),
            "livemode": False,
            "metadata": metadata,
            "reversals": list_object([], f"/v1/transfers/{transfer_id}/reversals"),
            "reversed": False,
            "source_transaction": None,
            "source_type": source_type,
            "transfer_group": transfer_group,
        }
        self.transfers[transfer_id] = transfer
        self.emit("transfer.created", transfer, account=None, request=request)
        return transfer

    def get_transfer(self, transfer_id: str, acting: str) -> dict[str, Any]:
        transfer = self.transfers.get(transfer_id)
        if transfer is None or acting != self.platform_id:
            raise no_such("transfer", transfer_id)
        return transfer

    def list_transfers(self, params: Mapping[str, Any], acting: str) -> dict[str, Any]:
        p.check_names(params, TRANSFER_LIST_PARAMS)
        p.no_expand(params)
        items = list(reversed(self.transfers.values())) if acting == self.platform_id else []
        for key in ("destination", "transfer_group"):
            if params.get(key):
                items = [t for t in items if t[key] == params[key]]
        return paginate(items, params, "/v1/transfers")

    def reverse_transfer(
        self, transfer_id: str, params: Mapping[str, Any], acting: str, request: RequestInfo
    ) -> dict[str, Any]:
        p.check_names(params, REVERSAL_PARAMS, REVERSAL_UNSUPPORTED)
        p.no_expand(params)
        transfer = self.get_transfer(transfer_id, acting)
        remaining = transfer["amount"] - transfer["amount_reversed"]
        amount = p.integer(params, "amount")
        metadata = p.metadata(params.get("metadata"))
        amount = remaining if amount is None else amount
        if amount <= 0 or amount > remaining:
            raise StripeError(
                400,
                f"Amount {amount} is more than the unreversed amount of {transfer_id} "
                f"({remaining}).",
                param="amount",
            )
        self._debit(transfer["destination"], transfer["currency"], amount, INSUFFICIENT_ACCOUNT)
        self._credit(self.platform_id, transfer["currency"], amount)
        previous = {
            "amount_reversed": transfer["amount_reversed"],
            "reversed": transfer["reversed"],
        }
        reversal = {
            "id": new_id("trr_"),
            "object": "transfer_reversal",
            "amount": amount,
            "balance_transaction": new_id("txn_"),
            "created": self.now(),
            "currency": transfer["currency"],
            "destination_payment_refund": new_id("pyr_"),
            "metadata": metadata,
            "source_refund": None,
            "transfer": transfer_id,
        }
        transfer["amount_reversed"] += amount
        transfer["reversed"] = transfer["amount_reversed"] == transfer["amount"]
        transfer["reversals"]["data"].insert(0, reversal)
        self.emit("transfer.reversed", transfer, account=None, request=request, previous=previous)
        return reversal

    # ---- payouts -----------------------------------------------------------------------

    def _banks(self, acting: str, currency: str) -> list[dict[str, Any]]:
        if acting in self.accounts:
            return list(self.accounts[acting]["external_accounts"]["data"])
        if currency not in self.platform_banks:
            bank, _ = acc.bank_account(
                self.platform_account(),
                {"account_number": "000123456789", "currency": currency, "country": self.country},
            )
            self.platform_banks[currency] = bank
        return [self.platform_banks[currency]]

    def create_payout(
        self, params: Mapping[str, Any], acting: str, request: RequestInfo
    ) -> dict[str, Any]:
        p.check_names(params, PAYOUT_PARAMS)
        p.no_expand(params)
        amount = p.positive_amount(params)
        currency = p.currency(params)
        method = p.choice(params, "method", ("standard", "instant"), "standard")
        if method == "instant":
            raise invalid("The local Stripe server does not make instant payouts.", param="method")
        source_type = p.choice(params, "source_type", ("bank_account", "card", "fpx"), "card")
        statement_descriptor = p.string(params, "statement_descriptor", max_length=22)
        description = p.string(params, "description")
        metadata = p.metadata(params.get("metadata"))
        destination = p.string(params, "destination")
        banks = self._banks(acting, currency)
        if destination is not None:
            bank = next((b for b in banks if b["id"] == destination), None)
            if bank is None:
                raise no_such("external account", destination, param="destination")
        else:
            bank = next(
                (b for b in banks if b["currency"] == currency and b["default_for_currency"]),
                None,
            )
            if bank is None:
                raise StripeError(
                    400,
                    f"Sorry, you don't have any external accounts in that currency ({currency}).",
                    param="currency",
                )
        if bank["currency"] != currency:
            raise StripeError(
                400,
                f"The currency of the bank account ({bank['currency']}) does not match the "
                f"payout currency ({currency}).",
                param="currency",
            )
        self._debit(acting, currency, amount, INSUFFICIENT_ACCOUNT)
        created = self.now()
        payout = {
            "id": new_id("po_"),
            "object": "payout",
            "amount": amount,
            "arrival_date": (created // 86400 + 1) * 86400,
            "automatic": False,
            "balance_transaction": new_id("txn_"),
            "created": created,
            "currency": currency,
            "description": description,
            "destination": bank["id"],
            "failure_balance_transaction": None,
            "failure_code": None,
            "failure_message": None,
            "livemode": False,
            "metadata": metadata,
            "method": "standard",
            "original_payout": None,
            "reconciliation_status": "not_applicable",
            "reversed_by": None,
            "source_type": source_type,
            "statement_descriptor": statement_descriptor,
            "status": "pending",
            "type": "bank_account",
        }
        self.payouts[payout["id"]] = payout
        self.payout_owner[payout["id"]] = acting
        self.emit("payout.created", payout, account=self._event_account(acting), request=request)
        return payout

    def get_payout(self, payout_id: str, acting: str) -> dict[str, Any]:
        payout = self.payouts.get(payout_id)
        if payout is None or self.payout_owner[payout_id] != acting:
            raise no_such("payout", payout_id)
        return payout

    def list_payouts(self, params: Mapping[str, Any], acting: str) -> dict[str, Any]:
        p.check_names(params, PAYOUT_LIST_PARAMS)
        p.no_expand(params)
        items = [
            po for po in reversed(self.payouts.values()) if self.payout_owner[po["id"]] == acting
        ]
        for key in ("status", "destination"):
            if params.get(key):
                items = [po for po in items if po[key] == params[key]]
        return paginate(items, params, "/v1/payouts")

    def pending_payouts(self) -> list[str]:
        return [pid for pid, po in self.payouts.items() if po["status"] == "pending"]

    def planned_failure(self, payout_id: str) -> str | None:
        """How a payout will fail, if a test set it up: per payout, per account, test number."""
        if payout_id in self.payout_overrides:
            return self.payout_overrides[payout_id]
        owner = self.payout_owner[payout_id]
        if owner in self.account_overrides:
            return self.account_overrides[owner]
        return self.bank_failures.get(self.payouts[payout_id]["destination"])

    def settle_payout(self, payout_id: str, failure_code: str | None) -> bool:
        """Pending → paid, or → failed with its money back on the account. False if not pending."""
        payout = self.payouts[payout_id]
        if payout["status"] != "pending":
            return False
        owner = self.payout_owner[payout_id]
        if failure_code is None:
            payout["status"] = "paid"
            payout["reconciliation_status"] = "completed"
            event_type = "payout.paid"
        else:
            payout["status"] = "failed"
            payout["failure_code"] = failure_code
            payout["failure_message"] = FAILURE_MESSAGES.get(
                failure_code, "The bank could not process this payout."
            )
            payout["failure_balance_transaction"] = new_id("txn_")
            self._credit(owner, payout["currency"], payout["amount"])
            event_type = "payout.failed"
        self.emit(event_type, payout, account=self._event_account(owner), request=None)
        return True

    def _event_account(self, acting: str) -> str | None:
        return acting if acting != self.platform_id else None

    # ---- snapshot ----------------------------------------------------------------------

    _SNAPSHOT_FIELDS = (
        "platform_id",
        "country",
        "accounts",
        "transfers",
        "payouts",
        "events",
        "balances",
        "payout_owner",
        "platform_banks",
        "bank_failures",
        "payout_overrides",
        "account_overrides",
    )

    def snapshot(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in self._SNAPSHOT_FIELDS}

    def restore(self, data: Mapping[str, Any]) -> None:
        for name in self._SNAPSHOT_FIELDS:
            if name in data:
                setattr(self, name, data[name])
