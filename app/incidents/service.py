"""Incident storage and commands; the only place incident rows are written."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from app.errors import NotFound
from app.incidents.models import Incident, IncidentStatus


def get(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def list_incidents(
    session: Session,
    *,
    status: IncidentStatus | None = None,
    service: str | None = None,
    model: str | None = None,
    limit: int = 100,
) -> Sequence[Incident]:
    query = select(Incident).order_by(col(Incident.detected_at).desc()).limit(limit)
    if status is not None:
        query = query.where(Incident.status == status)
    if service is not None:
        query = query.where(Incident.service == service)
    if model is not None:
        query = query.where(Incident.model == model)
    return session.exec(query).all()
