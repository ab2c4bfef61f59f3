"""Sign in with a bearer token, sign out, switch language, and the front door."""

from __future__ import annotations

import hmac
import secrets

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import BaseRoute, Route

from seisan_gateway.domain import errors, i18n
from seisan_gateway.domain.sessions import Session
from seisan_gateway.entrypoints.web import (
    LANG_COOKIE,
    SESSION_COOKIE,
    SIGNIN_CSRF_COOKIE,
    deps,
    error_page,
    form_of,
    home_for,
    local_path,
    page,
    render,
    text_field,
)

YEAR = 365 * 24 * 3600


def _cookie(
    response: Response, request: Request, key: str, value: str, max_age: int | None
) -> None:
    response.set_cookie(
        key,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="lax",
        secure=deps(request).secure_cookies,
    )


async def front(request: Request) -> Response:
    session = deps(request).sessions.get(request.cookies.get(SESSION_COOKIE))
    return RedirectResponse(home_for(session) if session else "/signin", status_code=303)


async def signin_form(request: Request, *, failed: bool = False) -> Response:
    # Login CSRF: the form carries a random value that must come back in a cookie too.
    nonce = request.cookies.get(SIGNIN_CSRF_COOKIE) or secrets.token_urlsafe(24)
    response = render(
        request,
        "signin.html",
        {
            "signin_csrf": nonce,
            "next": local_path(request.query_params.get("next"), ""),
            "failed": failed,
        },
        status=401 if failed else 200,
    )
    _cookie(response, request, SIGNIN_CSRF_COOKIE, nonce, 3600)
    return response


async def signin(request: Request) -> Response:
    if request.method == "GET":
        return await signin_form(request)
    form = await form_of(request)
    cookie = request.cookies.get(SIGNIN_CSRF_COOKIE, "")
    sent = text_field(form, "csrf")
    if not cookie or not hmac.compare_digest(cookie, sent):
        return error_page(request, errors.CsrfFailed("sign-in form without its CSRF token"))
    token = text_field(form, "token")
    principal = deps(request).tokens.authenticate(token) if token else None
    if principal is None:
        return await signin_form(request, failed=True)
    sessions = deps(request).sessions
    sessions.end(request.cookies.get(SESSION_COOKIE))  # a new id at sign-in: no fixation
    session = sessions.create(principal.name, principal.roles, token)
    target = local_path(text_field(form, "next"), home_for(session))
    response = RedirectResponse(target, status_code=303)
    _cookie(response, request, SESSION_COOKIE, session.session_id, None)
    response.delete_cookie(SIGNIN_CSRF_COOKIE, path="/")
    return response


@page()
async def signout(request: Request, session: Session) -> Response:
    deps(request).sessions.end(session.session_id)
    response = RedirectResponse("/signin", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


async def switch_language(request: Request) -> Response:
    code = request.path_params["code"]
    if code not in i18n.LANGUAGES:
        return error_page(request, errors.NotFound(code))
    target = local_path(request.query_params.get("next"), "/")
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(
        LANG_COOKIE,
        code,
        max_age=YEAR,
        path="/",
        samesite="lax",
        secure=deps(request).secure_cookies,
        httponly=True,
    )
    return response


def routes() -> list[BaseRoute]:
    return [
        Route("/", front),
        Route("/signin", signin, methods=["GET", "POST"]),
        Route("/signout", signout, methods=["POST"]),
        Route("/lang/{code}", switch_language),
    ]
