"""Who is looking at a console page, and the checks every console form passes (CSRF, scope).

A page without a good session redirects to the sign-in page and shows nothing else. A form carries its
session's CSRF secret in a hidden field; a POST without it, or from another origin, is refused before it
reaches a service, and so is an action above the viewer's scope.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated
from urllib.parse import quote, urlsplit

from fastapi import Depends, Form, HTTPException, Request
from fastapi.responses import Response

from app.api import services_of
from app.config import Settings
from app.identity.logic import Scope
from app.web import sessions
from app.web.sessions import COOKIE, Viewer

# Answers of the console carry these: nothing from elsewhere is loaded, nothing runs but our own script,
# no page is framed, and no figure is cached by a shared proxy.
PAGE_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


class SignInRequired(Exception):
    """No good session: the answer is a redirect to /signin (app/web/pages.py maps it)."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(path: str | None) -> str:
    """A page of this console to go back to after signing in; anything else (another host, a scheme,
    `//evil`, a backslash trick) is `/`."""
    if not path or len(path) > 500 or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    parts = urlsplit(path)
    if parts.scheme or parts.netloc or not path.isascii() or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return "/"
    return path


def sign_in_url(next_path: str) -> str:
    return f"/signin?next={quote(safe_next(next_path), safe='/')}"


def current_viewer(request: Request) -> Viewer | None:
    services = services_of(request)
    return sessions.find(services.engine, request.cookies.get(COOKIE), datetime.now(UTC))


def viewer(request: Request) -> Viewer:
    """The signed-in viewer, or a redirect to sign in (nothing of the page is rendered)."""
    found = current_viewer(request)
    if found is None:
        if request.method != "GET":  # after signing in, back to the page the form was on, not the form
            raise SignInRequired(urlsplit(request.headers.get("referer", "/")).path or "/")
        path = quote(request.url.path) + (f"?{request.url.query}" if request.url.query else "")
        raise SignInRequired(path)
    return found


ViewerDep = Annotated[Viewer, Depends(viewer)]


def same_origin(request: Request) -> bool:
    """A browser's POST names where its page came from (Origin, else Referer): it must be this host, or
    the host people reach sloguard at (SLOGUARD_PUBLIC_URL: a proxy may rewrite Host)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if source is None:
        return True  # not a browser's cross-site form (those always send Origin); the CSRF field decides
    public = services_of(request).settings.public_url
    hosts = {request.headers.get("host", "")} | ({urlsplit(str(public)).netloc} if public else set())
    return urlsplit(source).netloc in hosts


def checked_form(request: Request, who: ViewerDep, csrf: Annotated[str, Form(max_length=100)] = "") -> Viewer:
    """A console POST: signed in, same origin, and carrying the session's CSRF secret."""
    if not same_origin(request) or not sessions.same_secret(csrf, who.csrf):
        raise HTTPException(403, "csrf: this form is not from this console session; reload the page")
    return who


FormViewerDep = Annotated[Viewer, Depends(checked_form)]


def require(who: Viewer, needed: Scope) -> None:
    if not who.may(needed):
        raise HTTPException(403, f"scope: you sign in with scope {who.scope}; this needs {needed}")


def set_session_cookie(response: Response, secret: str, settings: Settings, expires_at: datetime) -> None:
    response.set_cookie(
        COOKIE,
        secret,
        max_age=max(1, int((expires_at - datetime.now(UTC)).total_seconds())),
        httponly=True,
        samesite="lax",
        secure=secure_cookies(settings),
        path="/",
    )


def secure_cookies(settings: Settings) -> bool:
    """Secure in production, or whenever people reach sloguard over https."""
    public = str(settings.public_url or "")
    return settings.env == "production" or public.startswith("https://")
