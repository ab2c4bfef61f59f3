"""The Stripe Issuing webhook: ``issuing_transaction.created`` in, one card charge stored.

A small HTTP/1.1 server on asyncio streams (one POST route, bodies up to a limit, one
request per connection): the endpoint needs nothing more, and it keeps the service free
of a web framework. Every request is verified with ``stripe.Webhook.construct_event``
(HMAC-SHA256 over the raw body with the endpoint secret, and a timestamp tolerance):
a bad or missing signature is answered 400 and nothing is written. A verified event
becomes a charge through the same idempotent path as statement import, so Stripe's
retries and duplicate deliveries never store a charge twice.

Answers: 200 (stored, already known, or an event type we do not use), 400 (bad
signature, not JSON, an event we cannot read), 404/405 (wrong path or method), 413
(body too large), 503 (storing failed: Stripe retries later).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import stripe

from seisan_cards import handlers
from seisan_cards.adapters.statements.stripe_issuing import EVENT_TYPE, charge_from_issuing_event
from seisan_cards.domain.charges import StatementRejected

log = logging.getLogger("seisan.cards.webhook")

Endpoint = Callable[[bytes, Mapping[str, str]], Awaitable[tuple[int, dict[str, Any]]]]

_REASONS = {
    200: "OK",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    408: "Request Timeout",
    411: "Length Required",
    413: "Payload Too Large",
    431: "Request Header Fields Too Large",
    500: "Internal Server Error",
    503: "Service Unavailable",
}
_MAX_HEADER_LINE = 8192
_MAX_HEADERS = 100


@dataclass
class StripeIssuingWebhook:
    """Verifies and imports Stripe Issuing transactions (the endpoint's logic, no HTTP)."""

    ports: handlers.CardsPorts
    secret: str
    tolerance_seconds: int = 300

    async def __call__(
        self, payload: bytes, headers: Mapping[str, str]
    ) -> tuple[int, dict[str, Any]]:
        try:
            event = stripe.Webhook.construct_event(
                payload,
                headers.get("stripe-signature"),
                self.secret,
                tolerance=self.tolerance_seconds,
            )
        except stripe.SignatureVerificationError:
            log.warning("webhook: signature verification failed; nothing stored")
            return 400, {"error": "signature verification failed"}
        except ValueError:
            return 400, {"error": "the body is not a JSON event"}
        data = event.to_dict()
        if data.get("type") != EVENT_TYPE:
            return 200, {"ignored": str(data.get("type"))}
        last4, cardholder = self._card_facts(data)
        try:
            charge = charge_from_issuing_event(data, card_last4=last4, cardholder=cardholder)
        except StatementRejected as exc:
            log.warning("webhook: event %s refused: %s", data.get("id"), exc)
            return 400, {"error": str(exc)}
        try:
            record, created = await handlers.import_feed_charge(charge, self.ports)
        except Exception:
            log.exception("webhook: storing the charge of event %s failed", data.get("id"))
            return 503, {"error": "could not store the charge; retry later"}
        log.info(
            "webhook: charge %s %s (%s)",
            record.charge_id,
            "stored" if created else "already known",
            record.amount.format(),
        )
        return 200, {"charge_id": record.charge_id, "created": created}

    def _card_facts(self, event: Mapping[str, Any]) -> tuple[str | None, str | None]:
        """Last four digits and principal from the directory (a webhook carries ids only)."""
        obj = (event.get("data") or {}).get("object") or {}
        card = obj.get("card")
        card_id = card.get("id") if isinstance(card, Mapping) else card
        holder = obj.get("cardholder")
        holder_id = holder.get("id") if isinstance(holder, Mapping) else holder
        known = self.ports.directory.stripe_card(str(card_id or ""))
        last4, principal = known if known else (None, None)
        principal = self.ports.directory.stripe_cardholder(str(holder_id or "")) or principal
        return last4, principal


class WebhookServer:
    """A minimal HTTP/1.1 server for one POST endpoint (see the module docstring)."""

    def __init__(
        self,
        endpoint: Endpoint,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/webhooks/stripe-issuing",
        max_body_bytes: int = 1024 * 1024,
        read_timeout: float = 10.0,
    ) -> None:
        self.endpoint = endpoint
        self.host = host
        self.port = port
        self.path = path
        self.max_body_bytes = max_body_bytes
        self.read_timeout = read_timeout
        self._server: asyncio.Server | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}{self.path}"

    async def start(self) -> WebhookServer:
        self._server = await asyncio.start_server(
            self._connection, self.host, self.port, limit=_MAX_HEADER_LINE
        )
        self.port = self._server.sockets[0].getsockname()[1]
        log.info("Stripe Issuing webhook listening on %s", self.url)
        return self

    async def stop(self, grace: float = 5.0) -> None:
        """Stop accepting, let requests in hand finish for ``grace`` seconds, then close."""
        if self._server is None:
            return
        self._server.close()
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=grace)
        for task in self._inflight:
            task.cancel()
        with contextlib.suppress(Exception):
            await self._server.wait_closed()
        self._server = None

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._inflight.add(task)
        try:
            status, body = await self._request(reader)
            await self._respond(writer, status, body)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self._inflight.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _request(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        try:
            head = await asyncio.wait_for(self._read_head(reader), self.read_timeout)
        except TimeoutError:
            return 408, {"error": "request head not received in time"}
        except ValueError as exc:
            return int(exc.args[0]), {"error": exc.args[1]}
        method, target, headers = head
        if target.split("?", 1)[0] != self.path:
            return 404, {"error": "no such endpoint"}
        if method != "POST":
            return 405, {"error": "POST only"}
        raw_length = headers.get("content-length")
        if raw_length is None or not raw_length.isdigit():
            return 411, {"error": "Content-Length is required"}
        length = int(raw_length)
        if length > self.max_body_bytes:
            return 413, {"error": f"body larger than {self.max_body_bytes} bytes"}
        try:
            payload = await asyncio.wait_for(reader.readexactly(length), self.read_timeout)
        except TimeoutError:
            return 408, {"error": "body not received in time"}
        return await self.endpoint(payload, headers)

    async def _read_head(self, reader: asyncio.StreamReader) -> tuple[str, str, dict[str, str]]:
        try:
            request_line = (await reader.readline()).decode("latin-1").strip()
        except (asyncio.LimitOverrunError, ValueError):
            raise ValueError(431, "request line too long") from None
        parts = request_line.split()
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise ValueError(400, "not an HTTP/1.x request")
        headers: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            try:
                line = (await reader.readline()).decode("latin-1")
            except (asyncio.LimitOverrunError, ValueError):
                raise ValueError(431, "header line too long") from None
            if line in ("\r\n", "\n", ""):
                return parts[0].upper(), parts[1], headers
            name, sep, value = line.partition(":")
            if not sep:
                raise ValueError(400, "malformed header line")
            headers[name.strip().lower()] = value.strip()
        raise ValueError(431, "too many header lines")

    @staticmethod
    async def _respond(writer: asyncio.StreamWriter, status: int, body: dict[str, Any]) -> None:
        data = json.dumps(body, sort_keys=True).encode()
        head = (
            f"HTTP/1.1 {status} {_REASONS.get(status, 'Status')}\r\n"
            "Content-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n"
            "Connection: close\r\n\r\n"
        )
        writer.write(head.encode("latin-1") + data)
        await writer.drain()
