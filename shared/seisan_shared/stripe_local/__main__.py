"""``python -m seisan_shared.stripe_local`` — run the local Stripe server until SIGTERM/SIGINT.

Prints its address (``http://127.0.0.1:PORT``) as the first line of output.
Example::

    python -m seisan_shared.stripe_local --port 0 \\
        --webhook-url http://127.0.0.1:8081/stripe/webhook --webhook-secret whsec_test \\
        --fund usd:100000000 --payout-delay 0.5 --seed 7 \\
        --fault 'fail_after:path=/v1/transfers,probability=0.05'
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import signal
import sys
from pathlib import Path

from seisan_shared.stripe_local.faults import FaultRule
from seisan_shared.stripe_local.server import LocalStripe
from seisan_shared.stripe_local.webhooks import DeliveryPolicy


def _funding(text: str) -> tuple[str, int]:
    currency, _, amount = text.partition(":")
    if not amount.isdigit():
        raise argparse.ArgumentTypeError("--fund takes CURRENCY:AMOUNT in minor units")
    return currency.lower(), int(amount)


def _delay(text: str) -> float | None:
    return None if text in ("manual", "never") else float(text)


def parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m seisan_shared.stripe_local", description=__doc__)
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=0, help="0 picks a free port")
    ap.add_argument("--webhook-url", help="where events are POSTed")
    ap.add_argument("--webhook-secret", help="whsec_... signing secret (generated if omitted)")
    ap.add_argument("--country", default="US", help="the platform's country")
    ap.add_argument(
        "--fund", type=_funding, action="append", default=[], help="platform balance CUR:AMOUNT"
    )
    ap.add_argument(
        "--payout-delay",
        type=_delay,
        default=1.0,
        help="seconds until a payout is paid or failed; 'manual' = only via control",
    )
    ap.add_argument("--fault", action="append", default=[], help="action:key=value,... or JSON")
    ap.add_argument("--faults-file", type=Path, help="JSON list of fault rules")
    ap.add_argument("--seed", type=int, help="seed for probabilistic faults")
    ap.add_argument("--state-file", type=Path, help="JSON snapshot loaded at start, saved at stop")
    ap.add_argument("--webhook-max-attempts", type=int, default=8)
    ap.add_argument("--webhook-first-retry", type=float, default=0.1)
    ap.add_argument("--webhook-timeout", type=float, default=10.0)
    ap.add_argument("--webhook-concurrency", type=int, default=1)
    ap.add_argument(
        "--validate",
        nargs="?",
        const="",
        help="check every request and response against spec3.json (optionally its path)",
    )
    ap.add_argument("--log-level", default="INFO")
    return ap


async def serve(args: argparse.Namespace) -> None:
    rules = [FaultRule.parse(text) for text in args.fault]
    if args.faults_file:
        rules += [FaultRule.from_json(r) for r in json.loads(args.faults_file.read_text())]
    spec = None
    if args.validate is not None:
        from seisan_shared.stripe_local.spec import StripeSpec  # needs jsonschema

        spec = StripeSpec.load(args.validate or None)
    server = LocalStripe(
        host=args.host,
        port=args.port,
        webhook_url=args.webhook_url,
        webhook_secret=args.webhook_secret,
        payout_delay=args.payout_delay,
        faults=rules,
        seed=args.seed,
        platform_balance=dict(args.fund),
        country=args.country,
        delivery=DeliveryPolicy(
            max_attempts=args.webhook_max_attempts,
            first_retry=args.webhook_first_retry,
            timeout=args.webhook_timeout,
            concurrency=args.webhook_concurrency,
        ),
        spec=spec,
        state_file=args.state_file,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        print(server.api_base, flush=True)
        logging.getLogger(__name__).info(
            "local stripe on %s, platform %s, webhook secret %s",
            server.api_base,
            server.platform_id,
            server.webhook_secret,
        )
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    args = parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        stream=sys.stderr,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(serve(args))


if __name__ == "__main__":
    main()
