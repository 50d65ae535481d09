"""The web console: pages at /, sign-in, and the forms that act (app/web/pages.py, actions.py)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException

from app.errors import ServiceError, SourceError
from app.web.auth import PAGE_HEADERS, SignInRequired, current_viewer, sign_in_url

# Paths that belong to the console: its refusals are pages, everyone else's stay JSON.
CONSOLE_PREFIXES = ("/slos", "/incidents", "/rollbacks", "/signin", "/signout")


def is_console(path: str) -> bool:
    return path == "/" or any(path == p or path.startswith(f"{p}/") for p in CONSOLE_PREFIXES)


def mount_console(app: FastAPI) -> None:
    from fastapi.staticfiles import StaticFiles

    from app.web import actions, oidc, pages, signin
    from app.web.render import render

    async def to_signin(_request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SignInRequired)
        return RedirectResponse(sign_in_url(exc.next_path), status_code=303, headers=PAGE_HEADERS)

    json_answers = {kind: app.exception_handlers.get(kind) for kind in (ServiceError, SourceError)}

    async def as_page(request: Request, exc: Exception) -> Response:
        """A console page's refusal as a page with its reason (and the status); others as before."""
        kind = ServiceError if isinstance(exc, ServiceError) else SourceError
        if not is_console(request.url.path):
            if isinstance(exc, HTTPException | RequestValidationError):
                from fastapi.exception_handlers import (
                    http_exception_handler,
                    request_validation_exception_handler,
                )

                if isinstance(exc, HTTPException):  # Starlette's own (an unknown path) and FastAPI's
                    return await http_exception_handler(request, exc)
                return await request_validation_exception_handler(request, exc)
            handler = json_answers[kind]
            assert handler is not None
            answer: Response = await handler(request, exc)  # type: ignore[misc]
            return answer
        if isinstance(exc, HTTPException):
            status, reason = exc.status_code, str(exc.detail)
        elif isinstance(exc, RequestValidationError):
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
            status, reason = 422, f"{where}: {first.get('msg', 'invalid')}"
        elif isinstance(exc, ServiceError):
            status, reason = exc.status_code, str(exc)
        else:
            status, reason = 503, f"a source did not answer: {exc}"
        who = current_viewer(request)
        if who is None and status != 403:
            return RedirectResponse(sign_in_url(request.url.path), status_code=303, headers=PAGE_HEADERS)
        context = {"viewer": who, "status": status, "reason": reason, "nav": ""}
        return render(request, "error.html", context, status=status)

    app.add_exception_handler(SignInRequired, to_signin)
    for kind in (ServiceError, SourceError, HTTPException, RequestValidationError):
        app.add_exception_handler(kind, as_page)
    app.mount("/static", StaticFiles(directory=pages.STATIC), name="static")
    app.include_router(signin.router)
    app.include_router(oidc.router)
    app.include_router(pages.router)
    app.include_router(actions.router)
