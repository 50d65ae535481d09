"""POST /slack/events: the one HTTP door into the bolt app, and everything a request passes on the way.

In order, each failure answered at once with a short reason and nothing logged past debug (these
requests are unauthenticated, so a log line per request would let anyone flood the logs):

1. exactly one `X-Slack-Signature` (`v0=` and 64 lowercase hex digits) and exactly one
   `X-Slack-Request-Timestamp` (ASCII digits only) — else 401;
2. the timestamp within five minutes of now — else 401;
3. the body is UTF-8 (Slack's always is) — else 400;
4. the HMAC of `v0:<timestamp>:<body>` matches, checked by slack_sdk's `SignatureVerifier` — else 401;
5. the same signature was not seen before (`deliveries`): a replay is acknowledged (200) and dropped;
6. the body is parsed here, once: a form body with a `payload` field is an interactive payload (JSON), any
   other form body is a slash command (or `ssl_check`), a JSON body is an Events API callback — a body of
   any other shape is a 400;
7. bolt gets a request rebuilt from what was verified and parsed (single-valued headers, the parsed body
   as a JSON object), so nothing it reads can differ from what was checked.

Bolt's own signature check is off for HTTP (`bolt.build_bolt_app`): the body bolt sees is the canonical
re-encoding, not the signed bytes, and every HTTP request reaching bolt came through here. Socket Mode
requests are not signed at all (they arrive over the websocket sloguard opened with its app token) and do
not use this door.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import JSONResponse
from slack_bolt.adapter.starlette.async_handler import to_starlette_response
from slack_bolt.async_app import AsyncApp, AsyncBoltRequest
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers

from app.chat import deliveries
from app.chat.bolt import build_bolt_app
from app.config import Settings
from app.services import ServicesRef

log = logging.getLogger(__name__)

PATH = "/slack/events"
SIGNATURE_HEADER = "X-Slack-Signature"
TIMESTAMP_HEADER = "X-Slack-Request-Timestamp"
SIGNATURE = re.compile(r"v0=[0-9a-f]{64}")
TIMESTAMP = re.compile(r"[0-9]{1,12}")  # ASCII digits: int() would also take " 17", "+17", "1_7", "١٧"
WINDOW_SECONDS = 300  # Slack's five minutes
MAX_FORM_FIELDS = 100  # a slash command has about a dozen


class Refused(Exception):
    """The request is answered with `status` and `reason` and goes no further."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason


def single_header(headers: Headers, name: str) -> str:
    values = headers.getlist(name)
    if not values:
        raise Refused(401, f"{name} header missing")
    if len(values) > 1:
        raise Refused(401, f"{name} header repeated")
    return values[0]


def signed_headers(headers: Headers, now: float) -> tuple[str, str]:
    """The (timestamp, signature) pair to verify, each present once and well formed, or Refused."""
    signature = single_header(headers, SIGNATURE_HEADER)
    timestamp = single_header(headers, TIMESTAMP_HEADER)
    if SIGNATURE.fullmatch(signature) is None:
        raise Refused(401, f"{SIGNATURE_HEADER} is not v0= and 64 lowercase hex digits")
    if TIMESTAMP.fullmatch(timestamp) is None:
        raise Refused(401, f"{TIMESTAMP_HEADER} is not a Unix time in digits")
    if abs(now - int(timestamp)) > WINDOW_SECONDS:
        raise Refused(401, f"{TIMESTAMP_HEADER} is more than 5 minutes from now")
    return timestamp, signature


def media_type(headers: Headers) -> str:
    return headers.get("content-type", "").split(";", 1)[0].strip().lower()


def parse_body(text: str, content_type: str) -> dict[str, Any]:
    """What Slack sent, as bolt expects it: an interactive payload, a command's fields, or an event.

    Bolt's own parser takes any form body containing the characters "payload" for an interactive one,
    so a command like `/incident note 3 payload grew` was lost; here only a `payload` *field* is.
    """
    if content_type == "application/json":
        return _json_object(text, "body")
    if content_type not in ("application/x-www-form-urlencoded", ""):
        raise Refused(415, "Content-Type must be application/x-www-form-urlencoded or application/json")
    try:
        pairs = parse_qsl(text, keep_blank_values=True, max_num_fields=MAX_FORM_FIELDS)
    except ValueError as exc:
        raise Refused(400, f"form body: {exc}") from None
    fields: dict[str, str] = {}
    for key, value in pairs:
        if key in fields:
            raise Refused(400, f"form field {key[:40]!r} repeated")
        fields[key] = value
    if "payload" in fields:
        return _json_object(fields["payload"], "payload")
    return fields


def _json_object(text: str, where: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):
        raise Refused(400, f"{where} is not valid JSON") from None
    if not isinstance(value, dict):
        raise Refused(400, f"{where} is not a JSON object")
    return value


# Top-level fields bolt reads as it builds a request's context, and the shapes Slack gives them.
ID_OR_OBJECT = ("team", "enterprise", "user", "channel")
OBJECT = ("event", "view", "container", "message", "item")
LIST_OF_OBJECTS = ("authorizations", "actions")


def check_shape(body: dict[str, Any]) -> None:
    """Refuse, naming the field, a signed body whose ids and objects are of a type Slack never sends."""
    for name in ID_OR_OBJECT:
        if body.get(name) is not None and not isinstance(body[name], str | dict):
            raise Refused(400, f"field {name!r} must be an id or an object")
    for name in OBJECT:
        if body.get(name) is not None and not isinstance(body[name], dict):
            raise Refused(400, f"field {name!r} must be an object")
    for name in LIST_OF_OBJECTS:
        value = body.get(name)
        if value is not None and not (isinstance(value, list) and all(isinstance(v, dict) for v in value)):
            raise Refused(400, f"field {name!r} must be a list of objects")


def bolt_request(body: dict[str, Any]) -> AsyncBoltRequest:
    """Bolt's view of the request: the parsed body re-encoded as JSON, with one header bolt reads.

    Dropped on purpose: every client header (bolt would honour `x-slack-bolt-lazy-only` and friends from
    anyone) and the signed raw bytes (verified already; bolt's check is off for HTTP).
    """
    check_shape(body)
    try:
        return AsyncBoltRequest(body=json.dumps(body), headers={"content-type": "application/json"})
    except (TypeError, ValueError, AttributeError, KeyError, RecursionError):
        # Deeper in the body bolt reads more ids (an event's team, an authorization's enterprise); a shape
        # it cannot read there is refused too, not a 500.
        raise Refused(400, "body has fields of an unexpected type") from None


async def admit(request: Request, verifier: SignatureVerifier, engine: Any) -> AsyncBoltRequest | None:
    """Checks 1-7 above: the request for bolt, None for a replay, or Refused."""
    now = datetime.now(UTC)
    timestamp, signature = signed_headers(request.headers, now.timestamp())
    raw = await request.body()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused(400, "body is not UTF-8") from None
    if not verifier.is_valid(text, timestamp, signature):
        raise Refused(401, f"{SIGNATURE_HEADER} does not match the body")
    # Only verified signatures are recorded, so forged requests cannot fill the table.
    if not await run_in_threadpool(deliveries.first_delivery, engine, signature, now):
        log.warning("replayed Slack request ignored")
        return None
    return bolt_request(parse_body(text, media_type(request.headers)))


def mount_slack(fastapi_app: FastAPI, settings: Settings, ref: ServicesRef) -> AsyncApp:
    """POST /slack/events: slash commands, buttons and events, verified by their Slack signature. Without a
    signing secret (Socket Mode alone) there is no HTTP door: Slack's requests come over the websocket."""
    assert settings.slack_bot_token is not None
    client = AsyncWebClient(
        token=settings.slack_bot_token.get_secret_value(), base_url=str(settings.slack_api_url)
    )
    bolt: AsyncApp = build_bolt_app(settings, ref, client)
    if settings.slack_signing_secret is None:
        return bolt
    verifier = SignatureVerifier(settings.slack_signing_secret.get_secret_value())

    @fastapi_app.post(PATH, tags=["slack"], include_in_schema=False)
    async def slack_events(request: Request) -> Response:
        try:
            admitted = await admit(request, verifier, ref.get().engine)
        except Refused as refused:
            log.debug("Slack request refused", extra={"status": refused.status, "reason": refused.reason})
            return JSONResponse({"detail": refused.reason}, status_code=refused.status)
        if admitted is None:
            return Response(status_code=200)  # a replay: acknowledged, so Slack would not retry it either
        response: Response = to_starlette_response(await bolt.async_dispatch(admitted))
        return response

    return bolt  # Socket Mode (app/main.py) hands its requests to the same app
