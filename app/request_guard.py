"""Checks every request passes before any route runs: a body-size limit, no NUL characters, and JSON of
a sane shape.

A body is read into memory up to the limit (413 past it, without reading the rest), so a route, bolt's
Slack handler included, never sees more. NUL characters are refused (400) wherever a request can carry
text to the database: PostgreSQL cannot store them in text columns and would fail the request with a
500 instead; refusing them at the door keeps SQLite and PostgreSQL answering alike. A JSON body nested
deeper than any route's schema (the parser would run out of stack) or holding a lone UTF-16 surrogate (no
driver can store it) is refused with the place named; malformed JSON is left to the route's own 422.
"""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_to_bytes

from starlette.responses import JSONResponse

from app.inputs import JsonProblem, check_json

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

REQUEST_MAX_BYTES = 1024 * 1024
# `\u0000` in JSON, unless its backslash is itself escaped (`\\u0000` is the text "\u0000").
_JSON_NUL = re.compile(rb"(?<!\\)(?:\\\\)*\\u0000")
NUL_REFUSED = "NUL characters (\\u0000) are not accepted"


def body_has_nul(body: bytes, content_type: str) -> bool:
    if b"\x00" in body:
        return True
    if "json" in content_type:
        return _JSON_NUL.search(body) is not None
    if "x-www-form-urlencoded" in content_type:
        return b"\x00" in unquote_to_bytes(body)
    return False


class RequestGuard:
    """Pure ASGI middleware. `own_body_paths` read and limit their bodies themselves (the webhook, whose
    limit is configurable and whose refusals are counted); they are still checked for NUL in the query."""

    def __init__(self, app: ASGIApp, max_bytes: int, own_body_paths: frozenset[str] = frozenset()) -> None:
        self.app, self.max_bytes, self.own_body_paths = app, max_bytes, own_body_paths

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if "\x00" in scope["path"] or b"\x00" in unquote_to_bytes(scope.get("query_string", b"")):
            await JSONResponse({"detail": f"{NUL_REFUSED} in the path or query"}, 400)(scope, receive, send)
            return
        if scope["path"] in self.own_body_paths:
            await self.app(scope, receive, send)
            return
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        declared = headers.get("content-length", "")
        if declared.isdigit() and int(declared) > self.max_bytes:
            refused = f"body is {declared} bytes; the limit is {self.max_bytes}"
            await JSONResponse({"detail": refused}, 413)(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > self.max_bytes:
                refused = f"body exceeds the limit of {self.max_bytes} bytes"
                await JSONResponse({"detail": refused}, 413)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break
        content_type = headers.get("content-type", "")
        if body_has_nul(bytes(body), content_type):
            await JSONResponse({"detail": f"{NUL_REFUSED} in the body"}, 400)(scope, receive, send)
            return
        if "json" in content_type and (problem := json_problem(bytes(body))):
            await JSONResponse({"detail": problem}, 422)(scope, receive, send)
            return
        await self.app(scope, _replay(bytes(body), receive), send)


def json_problem(body: bytes) -> str | None:
    """Why a JSON body is refused before any route sees it, or None (malformed JSON included: the
    route's own validation says what is wrong with it)."""
    if not body.strip():
        return None
    try:
        document = json.loads(body)
    except RecursionError:
        return "body: JSON nested too deep"
    except json.JSONDecodeError:
        return None
    except ValueError as exc:  # not UTF-8, or an integer past Python's digit limit
        return f"body: {exc}"
    try:
        check_json(document)
    except JsonProblem as exc:
        return str(exc)
    return None


def _replay(body: bytes, receive: Receive) -> Receive:
    """A `receive` that hands the app the body already read, then waits on the client (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
