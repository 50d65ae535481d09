"""Release gates over HTTP: the decision (and the same one for Argo Rollouts and Flagger), exceptions.

All answer any token (`read` reaches them: a deploy pipeline only asks); granting an exception needs
`change` and a place in the gate's `exceptions.by` list.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
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


class FlaggerHook(BaseModel):
    """Flagger's webhook payload; `metadata` names the model, the version and the environment, and
    carries the token (`token`), since Flagger sends no headers of its own."""

    name: str = Field(default="", max_length=253)
    namespace: str = Field(default="", max_length=253)
    phase: str = Field(default="", max_length=40)
    metadata: dict[str, str] = Field(default_factory=dict)


@flagger_router.post(
    "/flagger", responses={403: {"description": "Blocked or undecided: Flagger waits and asks again"}}
)
def flagger(request: Request, services: ServicesDep, body: FlaggerHook) -> JSONResponse:
    """A Flagger `confirm-promotion` webhook: 200 lets the canary be promoted, 403 holds it (Flagger asks
    again at its next interval). Metadata: model, version, to, and token (or a bearer header)."""
    authenticate_with(request, body.metadata.get("token"))
    meta = body.metadata
    missing = [key for key in ("model", "version", "to") if not meta.get(key)]
    if missing:
        return JSONResponse({"detail": f"metadata: needs {', '.join(missing)}"}, status_code=422)
    answer = _answer(services, meta["model"][:200], meta["version"][:100], meta["to"][:50])
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
