"""The Stripe webhook endpoint: ``POST /stripe/webhook`` on a small asyncio HTTP server.

One route, bodies up to a limit, one request per connection — all Stripe needs,
without a web framework. Every request is verified with
``stripe.Webhook.construct_event`` (HMAC-SHA256 of the raw body with the
endpoint's secret, timestamp within the tolerance); a bad or missing signature
is answered 400 and nothing is written. A verified event is applied by
:meth:`seisan_payouts.stripe_rail.StripeRail.handle_event` (deduplicated by
event id in the same transaction). Answers: 200 (applied, duplicate, or of no
interest), 400 (signature, not JSON), 404/405, 413, 500 (applying failed — Stripe
delivers it again later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import stripe

log = logging.getLogger("seisan.payouts.webhook")

PATH = "/stripe/webhook"
_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    500: "Internal Server Error",
}
_MAX_HEADER_LINE = 8192
_MAX_HEADERS = 100

Apply = Callable[[dict[str, Any]], Awaitable[str]]


@dataclass
class StripeWebhook:
    """Verify, then apply (the endpoint's logic without HTTP)."""

    apply: Apply
    secret: str
    tolerance_seconds: int = 300

    async def __call__(self, payload: bytes, signature: str | None) -> tuple[int, dict[str, Any]]:
        try:
            event = stripe.Webhook.construct_event(
                payload, signature, self.secret, tolerance=self.tolerance_seconds
            )
        except stripe.SignatureVerificationError:
            log.warning("webhook: signature verification failed; nothing applied")
            return 400, {"error": "signature verification failed"}
        except ValueError:
            return 400, {"error": "the body is not a JSON event"}
        data = event.to_dict()
        try:
            outcome = await self.apply(data)
        except Exception as exc:  # Stripe retries a non-2xx answer later
            log.warning("webhook: %s %s not applied: %r", data.get("type"), data.get("id"), exc)
            return 500, {"error": "not applied; deliver again"}
        log.debug("webhook: %s %s → %s", data.get("type"), data.get("id"), outcome)
        return 200, {"received": True, "outcome": outcome}


class WebhookServer:
    """``POST {path}`` → :class:`StripeWebhook`. Port 0 picks a free port (see ``port``)."""

    def __init__(
        self,
        endpoint: StripeWebhook,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        path: str = PATH,
        max_body: int = 1024 * 1024,
        read_timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.requested_port = port
        self.path = path
        self.max_body = max_body
        self.read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    async def start(self) -> WebhookServer:
        self._server = await asyncio.start_server(self._serve, self.host, self.requested_port)
        log.info("stripe webhook endpoint on %s", self.url)
        return self

    @property
    def port(self) -> int:
        assert self._server is not None and self._server.sockets
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting; let requests in progress finish (up to ``grace`` s)."""
        if self._server is None:
            return
        self._server.close()
        if self._handlers:
            await asyncio.wait(set(self._handlers), timeout=grace)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self._server.wait_closed(), grace)
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            status, body = await asyncio.wait_for(self._exchange(reader), self.read_timeout * 3)
        except (TimeoutError, asyncio.IncompleteReadError, ConnectionError, ValueError):
            status, body = 400, {"error": "bad request"}
        try:
            data = json.dumps(body).encode()
            head = (
                f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n"
            )
            writer.write(head.encode() + data)
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _exchange(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        request_line = await asyncio.wait_for(reader.readline(), self.read_timeout)
        parts = request_line.decode("latin-1").split()
        if len(parts) != 3:
            return 400, {"error": "bad request line"}
        method, target, _ = parts
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = await asyncio.wait_for(reader.readline(), self.read_timeout)
            if len(line) > _MAX_HEADER_LINE:
                return 400, {"error": "header line too long"}
            if line in (b"\r\n", b"\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            headers[name.strip().lower()] = value.strip()
        else:
            return 400, {"error": "too many headers"}
        if target.split("?", 1)[0] != self.path:
            return 404, {"error": "not found"}
        if method != "POST":
            return 405, {"error": "POST only"}
        if "content-length" not in headers:
            return 411, {"error": "Content-Length required"}
        length = int(headers["content-length"])
        if length > self.max_body:
            return 413, {"error": "body too large"}
        payload = await asyncio.wait_for(reader.readexactly(length), self.read_timeout)
        return await self.endpoint(payload, headers.get("stripe-signature"))
