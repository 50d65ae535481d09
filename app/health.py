"""Liveness, readiness and metrics: the routes an orchestrator and a Prometheus scrape use."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app import db
from app.api import EngineDep
from app.errors import SourceError
from app.incidents import service as incidents
from app.incidents.models import Severity

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/readyz")
def readyz(request: Request, engine: EngineDep) -> JSONResponse:
    """Ready when the database answers; sources are reported but never fail readiness.

    A Prometheus outage must not take sloguard out of the load balancer: it is exactly when people
    need the incident tooling to keep working.
    """
    body: dict[str, Any] = {"database": "ok", "sources": {}}
    status = 200
    try:
        db.ping(engine)
    except SQLAlchemyError as exc:
        log.warning("database not reachable", extra={"error": type(exc).__name__})
        body["database"] = f"unreachable: {type(exc).__name__}"
        status = 503
    for name, source in request.app.state.sources.items():
        try:
            source.ping()
            body["sources"][name] = "ok"
        except SourceError as exc:
            body["sources"][name] = f"error: {exc}"
    leadership = getattr(request.app.state, "leadership", None)
    if leadership is not None:
        body["scheduler"] = leadership.describe() | {"enabled": request.app.state.settings.scheduler_enabled}
    last_cycle = getattr(request.app.state, "last_evaluation", None)
    if last_cycle is not None:
        body["slo_evaluation"] = last_cycle
    body["status"] = "ready" if status == 200 else "not ready"
    return JSONResponse(body, status_code=status)


@router.get("/metrics")
def metrics(request: Request, engine: EngineDep) -> Response:
    registry = request.app.state.metrics
    try:
        with Session(engine) as session:
            counts = incidents.open_counts_by_severity(session)
        for severity in Severity:
            registry.incidents_open.labels(severity.value).set(counts.get(severity.value, 0))
    except SQLAlchemyError:
        log.warning("incident counts unavailable for /metrics")
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
