"""A local Stripe-compatible API server for tests, demos and chaos runs (not a service).

It speaks what a payout rail uses — connected accounts, transfers (and their
reversals), payouts, balances, events — with Stripe's idempotency rules,
Stripe-shaped errors, signed webhooks with retries, and injectable faults. Point
the official SDK at it::

    async with LocalStripe(webhook_url=url, webhook_secret="whsec_test") as s:
        client = stripe.StripeClient("sk_test_local", base_addresses={"api": s.api_base})

See :mod:`.server` (in-process), :mod:`.control` (thread, child process, HTTP
control), :mod:`.faults`, :mod:`.idempotency`, :mod:`.webhooks` and :mod:`.spec`
(checks against Stripe's OpenAPI description).
"""

from seisan_shared.stripe_local.clock import Clock
from seisan_shared.stripe_local.control import (
    ControlError,
    LocalStripeProcess,
    LocalStripeThread,
    StripeControl,
)
from seisan_shared.stripe_local.errors import StripeError
from seisan_shared.stripe_local.faults import FaultPlan, FaultRule
from seisan_shared.stripe_local.routes import ROUTES
from seisan_shared.stripe_local.server import Exchange, LocalStripe
from seisan_shared.stripe_local.spec import StripeSpec
from seisan_shared.stripe_local.webhooks import (
    DeliveryPolicy,
    WebhookEndpoint,
    signature_header,
)

__all__ = [
    "ROUTES",
    "Clock",
    "ControlError",
    "DeliveryPolicy",
    "Exchange",
    "FaultPlan",
    "FaultRule",
    "LocalStripe",
    "LocalStripeProcess",
    "LocalStripeThread",
    "StripeControl",
    "StripeError",
    "StripeSpec",
    "WebhookEndpoint",
    "signature_header",
]
