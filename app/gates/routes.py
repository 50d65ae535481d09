"""Release gates over HTTP: the decision (and the same one for Argo Rollouts and Flagger), exceptions.

All answer any token (`read` reaches them: a deploy pipeline only asks); granting an exception needs
`change` and a place in the gate's `exceptions.by` list.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlmodel import Session

from app.api import API_PROBLEMS, CallerDep, IdPath, ServicesDep, authenticate_with, needs
from app.durations import parse_setting
from app.gates import service as gates
from app.gates.models import ExceptionCreate, GateCheck, GateException
from app.identity.logic import Scope

router = APIRouter(prefix="/gates", tags=["gates"])
# Flagger's webhooks send no headers of their own: its route authenticates the token in its metadata too.
flagger_router = APIRouter(prefix="/api/v1/gates", tags=["gates"], responses=API_PROBLEMS)
CHANGE = [needs(Scope.change)]
Name = Query(min_length=1, max_length=200)


def _answer(services: Any, model: str, version: str, to: str) -> dict[str, Any]:
    decision = gates.decide_now(services, model=model, version=version, environment=to, now=datetime.now(UTC))
    return {"model": model, "version": version, "to": to, **decision.as_dict()}


@router.post("/check")
def check(services: ServicesDep, body: GateCheck) -> dict[str, Any]:
    """May `model` move to `version` in `to`? `decision` is allowed, blocked or undecided (missing data
    is never allowed), with every reason and its figures."""
    return _answer(services, body.model, body.version, body.to)


@router.get("/argo")
def argo(
    services: ServicesDep,
    model: str = Name,
    version: str = Query(min_length=1, max_length=100),
    to: str = Query(min_length=1, max_length=50),
) -> dict[str, Any]:
    """For an Argo Rollouts `web` metric: `successCondition: result.decision == "allowed"` and
    `failureCondition: result.decision == "blocked"`, so that undecided is Argo's inconclusive."""
    return _answer(services, model, version, to)


class FlaggerMetadata(BaseModel):
    """What the Canary's webhook `metadata` says: the move, and the token (Flagger sends no headers)."""

    model_config = ConfigDict(extra="allow")

    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    to: str = Field(min_length=1, max_length=50)
    token: str | None = Field(default=None, max_length=200)


class FlaggerHook(BaseModel):
    """Flagger's webhook payload; `metadata` names the model, the version and the environment, and
    carries the token (`token`), since Flagger sends no headers of its own."""

    name: str = Field(default="", max_length=253)
    namespace: str = Field(default="", max_length=253)
    phase: str = Field(default="", max_length=40)
    metadata: FlaggerMetadata


def _inlined(schema: dict[str, Any]) -> dict[str, Any]:
    """A model's JSON schema with its `$defs` written in place (an operation's own schema has no room
    for them)."""
    defs = schema.pop("$defs", {})

    def walk(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return walk(defs[node["$ref"].rsplit("/", 1)[-1]])
            return {key: walk(value) for key, value in node.items()}
        if isinstance(node, list):
            return [walk(item) for item in node]
        return node

    return dict(walk(schema))


async def _payload(request: Request) -> Any:
    """The body as JSON, unvalidated (None when it is not JSON): the route authenticates first."""
    try:
        return json.loads(await request.body())
    except ValueError:
        return None


Payload = Annotated[Any, Depends(_payload)]


@flagger_router.post(
    "/flagger",
    responses={403: {"description": "Blocked or undecided: Flagger waits and asks again"}},
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _inlined(FlaggerHook.model_json_schema())}},
        }
    },
)
def flagger(request: Request, services: ServicesDep, payload: Payload) -> JSONResponse:
    """A Flagger `confirm-promotion` webhook: 200 lets the canary be promoted, 403 holds it (Flagger asks
    again at its next interval). Metadata: model, version, to, and token (or a bearer header). The token
    is checked before the payload, so a caller without one learns nothing else."""
    metadata = payload.get("metadata") if isinstance(payload, dict) else None
    token = metadata.get("token") if isinstance(metadata, dict) else None
    authenticate_with(request, token if isinstance(token, str) else None)
    try:
        body = FlaggerHook.model_validate(payload)
    except ValidationError as error:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in problem['loc']) or 'body'}: {problem['msg']}"
            for problem in error.errors(include_url=False, include_input=False)
        )
        return JSONResponse({"detail": problems}, status_code=422)
    meta = body.metadata
    answer = _answer(services, meta.model, meta.version, meta.to)
    return JSONResponse(answer, status_code=200 if answer["decision"] == "allowed" else 403)


def _read(row: GateException) -> dict[str, Any]:
    return row.model_dump()


@router.post("/exceptions", status_code=201, dependencies=CHANGE)
def grant(services: ServicesDep, caller: CallerDep, body: ExceptionCreate) -> dict[str, Any]:
    """Let one blocked move through, as the caller (named in the gate's `exceptions.by`), with a reason;
    with `two_person`, once a second person confirms it."""
    row = gates.grant(
        services.engine,
        services.config,
        model=body.model,
        version=body.version,
        environment=body.to,
        reason=body.reason,
        lifetime=parse_setting(body.expires),
        actor=caller.actor,
        now=datetime.now(UTC),
    )
    return _read(row)


@router.post("/exceptions/{exception_id}/confirm", dependencies=CHANGE)
def confirm(services: ServicesDep, caller: CallerDep, exception_id: IdPath) -> dict[str, Any]:
    row = gates.confirm_exception(
        services.engine, services.config, exception_id, caller.actor, datetime.now(UTC)
    )
    return _read(row)


@router.get("/exceptions")
def list_exceptions(
    services: ServicesDep, model: str | None = Query(default=None, max_length=200)
) -> list[dict[str, Any]]:
    with Session(services.engine) as session:
        return [_read(row) for row in gates.exceptions(session, model)]
