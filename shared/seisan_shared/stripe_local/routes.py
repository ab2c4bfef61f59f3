"""The API's routes: method, path template (as in Stripe's spec), accepted parameters, endpoint."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from seisan_shared.stripe_local import accounts as acc
from seisan_shared.stripe_local import objects as ob
from seisan_shared.stripe_local import params as p
from seisan_shared.stripe_local import store as st


@dataclass
class Call:
    """One routed API call, as an endpoint sees it."""

    params: dict[str, Any]
    acting: str  # the account the request acts for: Stripe-Account, else the platform
    request: ob.RequestInfo
    ident: str | None = None  # the {id} of the path


Endpoint = Callable[[st.Store, Call], dict[str, Any]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str  # as in the spec: /v1/transfers/{id}
    params: frozenset[str]  # what the endpoint takes (checked against the spec in tests)
    endpoint: Endpoint

    @property
    def pattern(self) -> re.Pattern[str]:
        return re.compile("^" + re.sub(r"\{[^}]+\}", "(?P<ident>[^/]+)", self.template) + "$")


def _retrieve(getter: Callable[[st.Store, str, Call], dict[str, Any]]) -> Endpoint:
    def endpoint(store: st.Store, call: Call) -> dict[str, Any]:
        p.check_names(call.params, st.RETRIEVE_PARAMS)
        p.no_expand(call.params)
        assert call.ident is not None
        return getter(store, call.ident, call)

    return endpoint


def _event_scope(store: st.Store, call: Call) -> str | None:
    return None if call.acting == store.platform_id else call.acting


def _own_account(store: st.Store, call: Call) -> dict[str, Any]:
    p.check_names(call.params, st.RETRIEVE_PARAMS)
    return store.get_account(call.acting)


def _balance(store: st.Store, call: Call) -> dict[str, Any]:
    p.check_names(call.params, st.RETRIEVE_PARAMS)
    p.no_expand(call.params)
    return store.balance(call.acting)


def _list_reversals(store: st.Store, call: Call) -> dict[str, Any]:
    p.check_names(call.params, st.LIST_PARAMS - {"created"})
    assert call.ident is not None
    transfer = store.get_transfer(call.ident, call.acting)
    return ob.paginate(
        transfer["reversals"]["data"], call.params, f"/v1/transfers/{call.ident}/reversals"
    )


ROUTES: tuple[Route, ...] = (
    Route("POST", "/v1/accounts", acc.ACCOUNT_PARAMS, lambda s, c: s.create_account(c.params)),
    Route("GET", "/v1/accounts", st.LIST_PARAMS, lambda s, c: s.list_accounts(c.params)),
    Route(
        "GET",
        "/v1/accounts/{account}",
        st.RETRIEVE_PARAMS,
        _retrieve(lambda s, ident, c: s.get_account(ident)),
    ),
    Route(
        "POST",
        "/v1/accounts/{account}",
        acc.ACCOUNT_UPDATE_PARAMS,
        lambda s, c: s.update_account(str(c.ident), c.params),
    ),
    Route("GET", "/v1/account", st.RETRIEVE_PARAMS, _own_account),
    Route(
        "POST",
        "/v1/transfers",
        st.TRANSFER_PARAMS,
        lambda s, c: s.create_transfer(c.params, c.acting, c.request),
    ),
    Route(
        "GET",
        "/v1/transfers",
        st.TRANSFER_LIST_PARAMS,
        lambda s, c: s.list_transfers(c.params, c.acting),
    ),
    Route(
        "GET",
        "/v1/transfers/{transfer}",
        st.RETRIEVE_PARAMS,
        _retrieve(lambda s, ident, c: s.get_transfer(ident, c.acting)),
    ),
    Route(
        "POST",
        "/v1/transfers/{id}/reversals",
        st.REVERSAL_PARAMS,
        lambda s, c: s.reverse_transfer(str(c.ident), c.params, c.acting, c.request),
    ),
    Route("GET", "/v1/transfers/{id}/reversals", st.LIST_PARAMS - {"created"}, _list_reversals),
    Route(
        "POST",
        "/v1/payouts",
        st.PAYOUT_PARAMS,
        lambda s, c: s.create_payout(c.params, c.acting, c.request),
    ),
    Route(
        "GET", "/v1/payouts", st.PAYOUT_LIST_PARAMS, lambda s, c: s.list_payouts(c.params, c.acting)
    ),
    Route(
        "GET",
        "/v1/payouts/{payout}",
        st.RETRIEVE_PARAMS,
        _retrieve(lambda s, ident, c: s.get_payout(ident, c.acting)),
    ),
    Route("GET", "/v1/balance", st.RETRIEVE_PARAMS, _balance),
    Route(
        "GET",
        "/v1/events",
        st.EVENT_LIST_PARAMS,
        lambda s, c: s.list_events(c.params, _event_scope(s, c)),
    ),
    Route(
        "GET",
        "/v1/events/{id}",
        st.RETRIEVE_PARAMS,
        _retrieve(lambda s, ident, c: s.get_event(ident, _event_scope(s, c))),
    ),
)
COMPILED = [(route, route.pattern) for route in ROUTES]
