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
from app.api import EngineDep, require_webhook_token

router = APIRouter(prefix="/webhooks", tags=["webhooks"])


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


@router.post("/alertmanager", dependencies=[Depends(require_webhook_token)])
async def alertmanager(request: Request, engine: EngineDep) -> dict[str, Any]:
    """Open, attach to or update incidents from one notification. Idempotent: resend at will."""
    state = request.app.state
    options = state.file_config.incidents
    metrics = state.metrics
    try:
        raw = await read_limited(request, options.webhook_max_bytes)
        try:
            document = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise HTTPException(400, f"body is not JSON: {exc}") from None
        if not isinstance(document, dict):
            raise HTTPException(422, "body: must be a JSON object")
        try:
            payload = WebhookPayload.model_validate(document)
        except ValidationError as exc:
            raise HTTPException(422, describe_validation_error(exc)) from None
    except HTTPException:
        metrics.webhook_notifications.labels("rejected").inc()
        raise
    now = datetime.now(UTC)
    result = await run_in_threadpool(alerts.ingest_alertmanager, engine, state.events, payload, options, now)
    metrics.webhook_notifications.labels(result.outcome).inc()
    if result.created and result.first_alert_start is not None:
        metrics.alert_to_incident.observe(max(0.0, (now - result.first_alert_start).total_seconds()))
    return result.as_dict()
