"""The Starlette app: sessions, CSRF, language, error pages, and the routes of every page.

Routes stay thin: read the form, call :class:`..adapters.services.Services`
with the signed-in person's token, render a template. Page modules
(:mod:`.staff`, :mod:`.approver`, :mod:`.treasury`) hold the handlers; this
module holds what they share.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import jinja2
from starlette.applications import Starlette
from starlette.datastructures import FormData, MutableHeaders
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import (
    HTMLResponse,
    JSONResponse,
    PlainTextResponse,
    RedirectResponse,
    Response,
)
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from seisan_gateway.adapters.feed import ReceiptFeed
from seisan_gateway.adapters.services import Services
from seisan_gateway.domain import display, errors, i18n
from seisan_gateway.domain.sessions import Session, SessionStore
from seisan_gateway.entrypoints import labels
from seisan_shared.auth import ADMIN, APPROVER, STAFF, TREASURY, TokenStore
from seisan_shared.protoconv import date_from_pb

log = logging.getLogger("seisan.gateway.web")

SESSION_COOKIE = "seisan_session"
LANG_COOKIE = "seisan_lang"
SIGNIN_CSRF_COOKIE = "seisan_signin_csrf"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

STAFF_ROLES = (STAFF, ADMIN)
APPROVER_ROLES = (APPROVER, ADMIN)
TREASURY_ROLES = (TREASURY, ADMIN)

SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}


@dataclass
class Deps:
    """What the pages need, built once in bootstrap."""

    services: Services
    tokens: TokenStore
    sessions: SessionStore
    feed: ReceiptFeed | None
    secure_cookies: bool
    max_upload_bytes: int
    stopping: asyncio.Event


def deps(request: Request) -> Deps:
    return request.app.state.deps  # type: ignore[no-any-return]


def language(request: Request) -> str:
    return i18n.negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("seisan_gateway", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["money"] = lambda m: display.money(m.minor_units, m.currency) if m else ""
    env.filters["day"] = lambda d: display.day(date_from_pb(d)) if d else ""
    env.filters["when"] = lambda ts: (
        ts.ToDatetime().strftime("%Y-%m-%d %H:%M UTC") if ts and ts.seconds else ""
    )
    env.filters["pct"] = lambda x: f"{round(100 * x)}%"
    return env


def render(
    request: Request,
    template: str,
    context: dict[str, Any] | None = None,
    *,
    status: int = 200,
    session: Session | None = None,
) -> HTMLResponse:
    lang = language(request)
    session = session or getattr(request.state, "session", None)

    def t(text: str, **values: object) -> str:
        return i18n.translate(lang, text, **values)

    env: jinja2.Environment = request.app.state.templates
    html = env.get_template(template).render(
        {
            "t": t,
            "lang": lang,
            "session": session,
            "csrf": session.csrf_token if session else "",
            "path": request.url.path,
            "label": functools.partial(labels.label, t),
            "nav": _nav(session),
            "msg": t(labels.MESSAGES.get(request.query_params.get("msg", ""), "")) or "",
            **(context or {}),
        }
    )
    return HTMLResponse(html, status_code=status)


def _nav(session: Session | None) -> list[tuple[str, str]]:
    if session is None:
        return []
    items = []
    if session.has_any(*STAFF_ROLES):
        items += [
            ("/receipts", "My receipts"),
            ("/charges", "Needs a receipt"),
            ("/claims", "My claims"),
        ]
    if session.has_any(*APPROVER_ROLES):
        items.append(("/approvals", "Approvals"))
    if session.has_any(*TREASURY_ROLES):
        items += [("/statements", "Statements"), ("/payouts", "Payouts"), ("/charts", "Charts")]
    return items


def home_for(session: Session) -> str:
    nav = _nav(session)
    return nav[0][0] if nav else "/signin"


def error_page(request: Request, exc: errors.GatewayError) -> Response:
    if isinstance(exc, errors.NotSignedIn):
        return RedirectResponse("/signin", status_code=303)
    titles = {
        403: ("Forbidden", "You are not allowed to see this page."),
        404: ("Not found", "There is nothing here, or it is not yours to see."),
        503: ("Service unavailable", "A service did not answer; try again in a moment."),
    }
    title, text = titles.get(exc.status, ("Refused", ""))
    if isinstance(exc, errors.CsrfFailed):
        text = "The form expired; reload the page and try again."
    detail = str(exc) if isinstance(exc, errors.Refused) else ""
    if exc.status >= 500 and not isinstance(exc, errors.Unavailable):
        log.error("gateway: unexpected service error: %s", exc)
    wants_json = "application/json" in request.headers.get("accept", "")
    if wants_json:
        return JSONResponse({"error": title, "detail": detail or text}, status_code=exc.status)
    return render(
        request, "error.html", {"title": title, "text": text, "detail": detail}, status=exc.status
    )


Handler = Callable[[Request, Session], Awaitable[Response]]


def page(*roles: str) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A handler for a signed-in person holding one of ``roles`` (any role when none given).

    POSTs must carry the session's CSRF token (form field ``csrf`` or header
    ``X-CSRF-Token``) or are refused with 403 before anything is called.
    """

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        @functools.wraps(handler)
        async def endpoint(request: Request) -> Response:
            session = deps(request).sessions.get(request.cookies.get(SESSION_COOKIE))
            if session is None:
                if request.method != "GET":
                    return error_page(request, errors.Forbidden("not signed in"))
                target = quote(request.url.path, safe="/")
                return RedirectResponse(f"/signin?next={target}", status_code=303)
            request.state.session = session
            try:
                if request.method == "POST":
                    await check_csrf(request, session)
                if roles and not session.has_any(*roles):
                    raise errors.Forbidden(f"{session.principal} lacks role {'/'.join(roles)}")
                return await handler(request, session)
            except errors.GatewayError as exc:
                return error_page(request, exc)

        return endpoint

    return wrap


async def check_csrf(request: Request, session: Session) -> None:
    presented = request.headers.get(CSRF_HEADER)
    if not presented:
        form = await form_of(request)
        value = form.get(CSRF_FIELD)
        presented = value if isinstance(value, str) else None
    if not session.csrf_ok(presented):
        raise errors.CsrfFailed("missing or wrong CSRF token")


async def form_of(request: Request) -> FormData:
    """The request's form, parsed once (Starlette caches it), with upload limits."""
    limit = deps(request).max_upload_bytes
    return await request.form(max_files=50, max_fields=200, max_part_size=limit)


def text_field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def local_path(target: str | None, default: str = "/") -> str:
    """Only paths on this site (no scheme, no //host): no open redirect."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return default


class SecurityHeaders:
    """Plain ASGI (a streaming response such as the live feed passes straight through)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        cacheable = path == "/healthz" or path.startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    headers.setdefault(key, value)
                if not cacheable:
                    headers.setdefault("cache-control", "no-store")
            await send(message)

        await self.app(scope, receive, send_with_headers)


async def healthz(request: Request) -> Response:
    if deps(request).stopping.is_set():
        return PlainTextResponse("stopping", status_code=503)
    return PlainTextResponse("ok")


def routes() -> Sequence[BaseRoute]:
    from seisan_gateway.entrypoints import approver, signin, staff, treasury

    return [
        Route("/healthz", healthz),
        Mount("/static", StaticFiles(packages=[("seisan_gateway", "static")]), name="static"),
        *signin.routes(),
        *staff.routes(),
        *approver.routes(),
        *treasury.routes(),
    ]


def create_app(dependencies: Deps) -> Starlette:
    app = Starlette(routes=list(routes()), middleware=[Middleware(SecurityHeaders)])
    app.state.deps = dependencies
    app.state.templates = _environment()
    return app


__all__ = [
    "APPROVER_ROLES",
    "STAFF_ROLES",
    "TREASURY_ROLES",
    "Deps",
    "create_app",
    "page",
    "render",
]
