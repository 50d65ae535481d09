"""POST /webhooks/mlflow (MLflow's model-registry webhooks) and GET /api/v1/models/{model}/changes."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from app.api import OffsetQuery, ServicesDep, SessionDep, client_address, problems
from app.changes import logic
from app.changes import service as changes
from app.changes.models import ChangeRead

log = logging.getLogger(__name__)
webhook_router = APIRouter(prefix="/webhooks", tags=["webhooks"])
router = APIRouter(prefix="/models", tags=["changes"])
MLFLOW_PATH = "/webhooks/mlflow"


class MlflowData(BaseModel):
    """The changed object: a registered model's name, and the alias and version where they apply."""

    model_config = ConfigDict(extra="allow")

    name: str = Field(min_length=1, max_length=logic.NAME_LIMIT)
    alias: str | None = Field(default=None, max_length=logic.ALIAS_LIMIT)
    version: str | None = Field(default=None, max_length=logic.VERSION_LIMIT)


class MlflowWebhook(BaseModel):
    """MLflow's webhook body (for the document: the route reads the raw body, whose bytes are signed)."""

    model_config = ConfigDict(extra="allow")

    entity: str = Field(min_length=1, max_length=100, examples=["model_version_alias"])
    action: str = Field(min_length=1, max_length=100, examples=["created"])
    timestamp: str | None = Field(default=None, examples=["2026-12-04T19:00:00+00:00"])
    data: MlflowData


def _inline(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema with its one `$defs` entry written in place (OpenAPI has no `$defs` of its own)."""
    definitions = schema.pop("$defs", {})
    schema["properties"]["data"] = definitions["MlflowData"]
    return schema


SIGNED = {"in": "header", "required": True, "schema": {"type": "string"}}
PAYLOAD_DOC = {
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": _inline(MlflowWebhook.model_json_schema())}},
    },
    "parameters": [
        {"name": logic.SIGNATURE_HEADER, **SIGNED, "description": "v1,<base64 HMAC-SHA256>"},
        {"name": logic.DELIVERY_HEADER, **SIGNED},
        {"name": logic.TIMESTAMP_HEADER, **SIGNED, "description": "Unix seconds"},
    ],
}


@webhook_router.post("/mlflow", openapi_extra=PAYLOAD_DOC, responses=problems(400, 401, 409, 413, 422, 503))
async def mlflow(request: Request, services: ServicesDep) -> dict[str, Any]:
    """Record one registry change MLflow signed (alias set or deleted, version created); other events are
    acknowledged and ignored. Idempotent on the delivery id: MLflow's retries change nothing."""
    secret = services.settings.mlflow_webhook_secret
    if secret is None:
        raise HTTPException(401, "disabled: SLOGUARD_MLFLOW_WEBHOOK_SECRET is not set on the server")
    raw = await request.body()  # the request guard has held it to the body limit and refused NULs
    now = datetime.now(UTC)
    headers = {name: request.headers.get(name) for name in logic.SIGNED_HEADERS}
    try:
        delivery_id = logic.verify(secret.get_secret_value(), headers, raw, now)
    except logic.Refused as exc:
        services.metrics.auth_failures.labels("mlflow", "signature").inc()
        log.warning(
            "mlflow webhook refused",
            extra={"reason": str(exc), "client": client_address(request), "path": request.url.path},
        )
        raise HTTPException(exc.status, str(exc)) from None
    try:
        document = json.loads(raw)
    except RecursionError:
        raise HTTPException(400, "body is not MLflow's: JSON nested too deep") from None
    except ValueError as exc:
        raise HTTPException(400, f"body is not JSON: {exc}") from None
    sent_at = datetime.fromtimestamp(int(headers[logic.TIMESTAMP_HEADER] or 0), UTC)
    try:
        event = logic.parse(document, sent_at)
    except logic.Refused as exc:
        raise HTTPException(exc.status, str(exc)) from None
    if isinstance(event, logic.Ignored):
        return {
            "outcome": "ignored",
            "reason": f"sloguard records alias and version changes, not {event.entity}.{event.action}",
        }
    digest = hashlib.sha256(raw).hexdigest()
    result = await run_in_threadpool(
        changes.record, services.engine, services.events, services.config, delivery_id, digest, event
    )
    return result.as_dict()


ModelPath = Annotated[str, Path(min_length=1, max_length=200)]


# `path`: a registered model's name may hold a slash.
@router.get("/{model:path}/changes", response_model=list[ChangeRead])
def model_changes(
    session: SessionDep,
    model: ModelPath,
    limit: int = Query(default=50, ge=1, le=500),
    offset: OffsetQuery = 0,
) -> list[ChangeRead]:
    """The model's registry changes (sloguard.yaml's name or the registered model's), newest first."""
    return [changes.as_read(row) for row in changes.history(session, model, limit=limit, offset=offset)]
