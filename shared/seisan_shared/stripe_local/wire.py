"""A small HTTP/1.1 server and client on asyncio streams.

Enough HTTP for the local Stripe server and its webhook deliveries: keep-alive,
``Content-Length`` and chunked bodies. It is hand-written rather than a framework
because the fault injection needs to misbehave at the connection level: answer
nothing and drop the connection (:attr:`Response.disposition` ``"drop"``), or
hold the connection open past the client's timeout (``"stall"``).
"""

from __future__ import annotations

import asyncio
import contextlib
import http
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Literal
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

MAX_BODY = 1 << 20
MAX_HEAD = 64 * 1024


class HttpProtocolError(Exception):
    """The peer sent something that is not HTTP/1.1 we understand."""


@dataclass
class Request:
    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    keep_alive: bool = True

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name.lower(), default)


Disposition = Literal["send", "drop", "stall"]


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    disposition: Disposition = "send"
    stall_seconds: float = 0.0


Handler = Callable[[Request], Awaitable[Response]]


async def _read_head(reader: asyncio.StreamReader) -> tuple[str, dict[str, str]] | None:
    try:
        raw = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError as e:
        if not e.partial.strip():
            return None
        raise HttpProtocolError("connection closed inside the header") from e
    except asyncio.LimitOverrunError as e:
        raise HttpProtocolError("header too large") from e
    lines = raw.decode("latin-1").split("\r\n")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep:
            raise HttpProtocolError(f"bad header line {line!r}")
        headers[name.strip().lower()] = value.strip()
    return lines[0], headers


async def _read_body(
    reader: asyncio.StreamReader, headers: Mapping[str, str], *, until_eof: bool
) -> bytes:
    if "chunked" in headers.get("transfer-encoding", "").lower():
        chunks: list[bytes] = []
        size_total = 0
        while True:
            size_line = await reader.readuntil(b"\r\n")
            size = int(size_line.split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return b"".join(chunks)
            size_total += size
            if size_total > MAX_BODY:
                raise HttpProtocolError("body too large")
            chunks.append(await reader.readexactly(size))
            await reader.readexactly(2)
    if "content-length" in headers:
        length = int(headers["content-length"])
        if length > MAX_BODY:
            raise HttpProtocolError("body too large")
        return await reader.readexactly(length)
    if until_eof:
        return await reader.read(MAX_BODY)
    return b""


async def read_request(reader: asyncio.StreamReader) -> Request | None:
    """Read one request; None when the peer closed the connection between requests."""
    head = await _read_head(reader)
    if head is None:
        return None
    request_line, headers = head
    parts = request_line.split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        raise HttpProtocolError(f"bad request line {request_line!r}")
    method, target, version = parts
    body = await _read_body(reader, headers, until_eof=False)
    path, _, query = target.partition("?")
    connection = headers.get("connection", "").lower()
    keep_alive = connection != "close" if version == "HTTP/1.1" else connection == "keep-alive"
    return Request(method.upper(), path, query, headers, body, keep_alive)


def encode_response(response: Response, *, keep_alive: bool) -> bytes:
    try:
        reason = http.HTTPStatus(response.status).phrase
    except ValueError:
        reason = "Unknown"
    lines = [f"HTTP/1.1 {response.status} {reason}"]
    for name, value in response.headers.items():
        lines.append(f"{name}: {value}")
    lines.append(f"Content-Length: {len(response.body)}")
    lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + response.body


class HttpServer:
    """Serve ``handler`` on ``host:port`` (0 picks a free port) until :meth:`stop`."""

    def __init__(self, handler: Handler, host: str = "127.0.0.1", port: int = 0) -> None:
        self._handler = handler
        self._host = host
        self._port = port
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._serve, self._host, self._port, limit=MAX_HEAD
        )

    @property
    def port(self) -> int:
        assert self._server is not None, "server not started"
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self.port}"

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        if self._connections:
            await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            while True:
                try:
                    request = await read_request(reader)
                except HttpProtocolError as e:
                    body = str(e).encode()
                    writer.write(encode_response(Response(400, body), keep_alive=False))
                    await writer.drain()
                    return
                if request is None:
                    return
                try:
                    response = await self._handler(request)
                except Exception:
                    log.exception("handler failed for %s %s", request.method, request.path)
                    response = Response(500, b"internal error")
                if response.disposition == "drop":
                    writer.transport.abort()
                    return
                if response.disposition == "stall":
                    await asyncio.sleep(response.stall_seconds)
                    writer.transport.abort()
                    return
                writer.write(encode_response(response, keep_alive=request.keep_alive))
                await writer.drain()
                if not request.keep_alive:
                    return
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            return
        except asyncio.CancelledError:
            # stop() cancels open connections. Ending normally matters: asyncio's stream
            # callback (3.11) calls task.exception(), which raises on a cancelled task.
            return
        finally:
            self._connections.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()


async def post(url: str, body: bytes, headers: Mapping[str, str], time_limit: float) -> int:
    """POST ``body`` to ``url`` on a fresh connection; return the response status.

    Raises ``OSError`` / ``TimeoutError`` / :class:`HttpProtocolError` when no
    well-formed answer arrives within ``time_limit`` seconds in total.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"unsupported URL {url!r}")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    async def exchange() -> int:
        reader, writer = await asyncio.open_connection(
            parts.hostname, port, ssl=True if parts.scheme == "https" else None
        )
        try:
            lines = [f"POST {target} HTTP/1.1", f"Host: {parts.netloc}"]
            lines += [f"{name}: {value}" for name, value in headers.items()]
            lines += [f"Content-Length: {len(body)}", "Connection: close"]
            writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            await writer.drain()
            head = await _read_head(reader)
            if head is None:
                raise HttpProtocolError("connection closed without a response")
            status_line, response_headers = head
            fields = status_line.split(" ", 2)
            if len(fields) < 2 or not fields[1].isdigit():
                raise HttpProtocolError(f"bad status line {status_line!r}")
            await _read_body(reader, response_headers, until_eof=True)
            return int(fields[1])
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    return await asyncio.wait_for(exchange(), time_limit)
