"""POST /webhooks/alertmanager: Alertmanager's webhook receiver."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from app.alerts import service as alerts
from app.alerts.alertmanager import WebhookPayload, describe_validation_error
from app.api import WEBHOOK_PROBLEMS, ServicesDep, require_webhook_token
from app.inputs import JsonTooDeep, check_json, repair_surrogates
from app.request_guard import NUL_REFUSED, body_has_nul

router = APIRouter(prefix="/webhooks", tags=["webhooks"])
# Reads its own body (configurable limit, refusals counted), so the request guard leaves it alone.
ALERTMANAGER_PATH = "/webhooks/alertmanager"


def _inline_definitions(schema: dict[str, Any]) -> dict[str, Any]:
    """The payload's JSON schema with its `$defs` written in place (OpenAPI has no `$defs` of its own)."""
    definitions = schema.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            reference = node.get("$ref", "")
            if reference.startswith("#/$defs/"):
                return resolve(definitions[reference.removeprefix("#/$defs/")])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(item) for item in node]
        return node

    resolved: dict[str, Any] = resolve(schema)
    return resolved


# The route reads the raw body itself (size limit first, then JSON, then the model), so FastAPI cannot
# describe it; this puts Alertmanager's payload in /openapi.json for clients and for the fuzz tests.
PAYLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline_definitions(WebhookPayload.model_json_schema())}},
    }
}


async def read_limited(request: Request, limit: int) -> bytes:
    """The body, refused with 413 past `limit` bytes without reading the rest."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HTTPException(413, f"body is {declared} bytes; the limit is {limit}")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise HTTPException(413, f"body exceeds the limit of {limit} bytes")
    return bytes(body)


@router.post(
    "/alertmanager",
    dependencies=[Depends(require_webhook_token)],
    openapi_extra=PAYLOAD_DOC,
    responses=WEBHOOK_PROBLEMS,
)
async def alertmanager(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Open, attach to or update incidents from one notification. Idempotent: resend at will."""
    options = services.config.incidents
    metrics = services.metrics
    try:
        raw = await read_limited(request, options.webhook_max_bytes)
        if body_has_nul(raw, "json"):
            raise HTTPException(400, f"{NUL_REFUSED} in the body")
        try:
            document = json.loads(raw)
        except RecursionError:
            raise HTTPException(400, "body is not Alertmanager's: JSON nested too deep") from None
        except ValueError as exc:  # not JSON, not UTF-8, or a number past Python's digit limit
            raise HTTPException(400, f"body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise HTTPException(422, "body: must be a JSON object")
        try:
            check_json(document, surrogates=True)
        except JsonTooDeep as exc:
            raise HTTPException(422, str(exc)) from None
        # A lone surrogate is valid JSON but no text: repaired as Alertmanager's own encoder would, rather
        # than refused (a 4xx is never retried, and the page would be lost).
        if b"\\u" in raw:  # only an escape can spell a lone surrogate
            document = repair_surrogates(document)
        try:
            payload = WebhookPayload.model_validate(document)
        except ValidationError as exc:
            raise HTTPException(422, describe_validation_error(exc)) from None
    except HTTPException:
        metrics.webhook_notifications.labels("rejected").inc()
        raise
    now = datetime.now(UTC)
    result = await run_in_threadpool(
        alerts.ingest_alertmanager, services.engine, services.events, payload, options, now
    )
    metrics.webhook_notifications.labels(result.outcome).inc()
    if result.created and result.first_alert_start is not None:
        metrics.alert_to_incident.observe(max(0.0, (now - result.first_alert_start).total_seconds()))
    return result.as_dict()
