"""Sign in with a personal token (OpenID Connect is app/web/oidc.py), and sign out.

The sign-in form is protected like every other: a random value in a cookie of its own and in a hidden
field must match (a cross-site page can set neither), so nobody can sign a browser in as someone else.
Failed tokens count against the client's address at the `console` door, as at the API's.
"""

from __future__ import annotations

import logging
import math
import secrets
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from app.api import client_address, services_of
from app.identity import service as identity
from app.identity.logic import Scope
from app.web import sessions
from app.web.auth import (
    PAGE_HEADERS,
    current_viewer,
    safe_next,
    same_origin,
    secure_cookies,
    set_session_cookie,
)
from app.web.render import render
from app.web.sessions import COOKIE

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)
SIGNIN_COOKIE = "sloguard_signin"


def signin_page(request: Request, next_path: str, problem: str | None = None, status: int = 200) -> Response:
    services = services_of(request)
    value = request.cookies.get(SIGNIN_COOKIE) or secrets.token_urlsafe(24)
    oidc = services.config.console.oidc
    response = render(
        request,
        "signin.html",
        {
            "next": safe_next(next_path),
            "signin_csrf": value,
            "problem": problem,
            "oidc_label": oidc.label if oidc is not None else None,
        },
        status=status,
    )
    response.set_cookie(
        SIGNIN_COOKIE,
        value,
        max_age=3600,
        httponly=True,
        samesite="lax",
        secure=secure_cookies(services.settings),
        path="/signin",
    )
    return response


@router.get("/signin", response_class=HTMLResponse)
def signin_form(request: Request, next: str = "/") -> Response:
    if current_viewer(request) is not None:
        return RedirectResponse(safe_next(next), status_code=303, headers=PAGE_HEADERS)
    return signin_page(request, next)


@router.post("/signin")
def signin_with_token(
    request: Request,
    token: Annotated[str, Form(max_length=200)] = "",
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    services = services_of(request)
    if not sessions.same_secret(csrf, request.cookies.get(SIGNIN_COOKIE) or "\x00"):
        return signin_page(request, next, "This sign-in form has expired; try again.", status=403)
    address = client_address(request)
    wait = services.throttle.retry_after(f"console {address}")
    if wait is not None:
        services.metrics.auth_throttled.labels("console").inc()
        seconds = max(1, math.ceil(wait))
        refused = signin_page(
            request, next, f"Too many failed attempts; try again in {seconds}s.", status=429
        )
        refused.headers["Retry-After"] = str(seconds)
        return refused
    now = datetime.now(UTC)
    found = identity.recognise(services.engine, token.strip(), now)
    if found.token is None or found.refusal is not None:
        reason = found.refusal or "unknown"
        if reason == "unknown":
            services.throttle.failed(f"console {address}")
        services.metrics.auth_failures.labels("console", reason).inc()
        log.warning("console sign-in refused", extra={"door": "console", "reason": reason, "client": address})
        shown = {
            "unknown": "That is not a personal token sloguard knows.",
            "revoked": "That token was revoked.",
            "expired": "That token has expired.",
        }[reason]
        return signin_page(request, next, shown, status=401)
    row = found.token
    assert row.id is not None
    ends = now + timedelta(hours=services.config.console.session_hours)
    if row.expires_at is not None:
        ends = min(ends, row.expires_at)
    secret = sessions.start(
        services.engine,
        user=row.user,
        display=row.user,
        scope=Scope(row.scope),
        via="token",
        token_id=row.id,
        expires_at=ends,
        now=now,
    )
    response = RedirectResponse(safe_next(next), status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(response, secret, services.settings, ends)
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    return response


@router.post("/signout")
def signout(request: Request, csrf: Annotated[str, Form(max_length=100)] = "") -> Response:
    """End the session (here and on every replica). A sign-out that is not this session's own form
    (no secret, another origin) ends nothing and leaves the cookie, so no other site can sign you out."""
    services = services_of(request)
    who = current_viewer(request)
    response = RedirectResponse("/signin", status_code=303, headers=PAGE_HEADERS)
    if who is not None:
        if not same_origin(request) or not sessions.same_secret(csrf, who.csrf):
            return RedirectResponse("/", status_code=303, headers=PAGE_HEADERS)
        sessions.end(services.engine, request.cookies.get(COOKIE))
    response.delete_cookie(COOKIE, path="/")
    return response
