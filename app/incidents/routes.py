"""HTTP routes for incidents (read side; opening and updating arrive with alert intake)."""

from __future__ import annotations

from fastapi import APIRouter, Query

from app.api import SessionDep
from app.incidents import service as incidents
from app.incidents.models import IncidentRead, IncidentStatus

router = APIRouter(prefix="/incidents", tags=["incidents"])


@router.get("", response_model=list[IncidentRead])
def list_incidents(
    session: SessionDep,
    status: IncidentStatus | None = None,
    service: str | None = None,
    model: str | None = None,
    limit: int = Query(default=100, ge=1, le=1000),
) -> list[IncidentRead]:
    rows = incidents.list_incidents(session, status=status, service=service, model=model, limit=limit)
    return [IncidentRead.model_validate(row) for row in rows]


@router.get("/{incident_id}", response_model=IncidentRead)
def get_incident(session: SessionDep, incident_id: int) -> IncidentRead:
    return IncidentRead.model_validate(incidents.get(session, incident_id))
