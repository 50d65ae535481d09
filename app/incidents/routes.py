"""HTTP routes for incidents: read, declare, update, timeline notes, action items."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter, Query, Response
from sqlalchemy.engine import Engine

from app.api import CallerDep, EngineDep, IdPath, OffsetQuery, ServicesDep, SessionDep, needs
from app.identity.logic import Scope
from app.incidents import service as incidents
from app.incidents.models import (
    ActionItemCreate,
    ActionItemRead,
    ActionItemUpdate,
    AlertLinkRead,
    ImpactRead,
    Incident,
    IncidentCreate,
    IncidentDetail,
    IncidentRead,
    IncidentStatus,
    IncidentUpdate,
    NoteCreate,
    Severity,
    TimelineEventRead,
)
from app.ml import service as ml

router = APIRouter(prefix="/incidents", tags=["incidents"])
RESPOND = [needs(Scope.respond)]


def read_model(incident: Incident) -> IncidentRead:
    times = incidents.response_times(incident)
    stored = {
        field: getattr(incident, field) for field in IncidentRead.model_fields if hasattr(incident, field)
    }
    impact = {
        "method": incident.impact_method or "not_measured",
        **{name: getattr(incident, f"impact_{name}") for name in ImpactRead.model_fields if name != "method"},
    }
    return IncidentRead.model_validate({**stored, **times, "impact": impact})


def detail(engine: Engine, incident_id: int) -> IncidentDetail:
    from sqlmodel import Session

    with Session(engine) as session:
        incident = incidents.get(session, incident_id)
        return IncidentDetail.model_validate(
            {
                **dict(read_model(incident)),
                "timeline": [
                    TimelineEventRead.model_validate(e) for e in incidents.timeline(session, incident_id)
                ],
                "alerts": [AlertLinkRead.model_validate(a) for a in incidents.alerts(session, incident_id)],
                "action_items": [
                    ActionItemRead.model_validate(i) for i in incidents.action_items(session, incident_id)
                ],
                **ml.evidence_dicts(session, incident_id),
                "budget_by_version": ml.budget_of(session, incident),
            }
        )


@router.get("", response_model=list[IncidentRead])
def list_incidents(
    session: SessionDep,
    status: IncidentStatus | None = None,
    service: str | None = None,
    model: str | None = None,
    severity: Severity | None = None,
    limit: int = Query(default=50, ge=1, le=500),
    offset: OffsetQuery = 0,
) -> list[IncidentRead]:
    rows = incidents.list_incidents(
        session, status=status, service=service, model=model, severity=severity, limit=limit, offset=offset
    )
    return [read_model(row) for row in rows]


@router.get("/{incident_id}", response_model=IncidentDetail)
def get_incident(engine: EngineDep, incident_id: IdPath) -> IncidentDetail:
    return detail(engine, incident_id)


@router.post("", response_model=IncidentDetail, status_code=201, dependencies=RESPOND)
def declare(services: ServicesDep, caller: CallerDep, body: IncidentCreate) -> IncidentDetail:
    engine = services.engine
    incident = incidents.declare(engine, services.events, body, datetime.now(UTC), caller.acting(body.actor))
    assert incident.id is not None
    return detail(engine, incident.id)


@router.patch("/{incident_id}", response_model=IncidentDetail, dependencies=RESPOND)
def update(
    services: ServicesDep, caller: CallerDep, incident_id: IdPath, body: IncidentUpdate
) -> IncidentDetail:
    actor = caller.acting(body.actor)
    incidents.update(services.engine, services.events, incident_id, body, datetime.now(UTC), actor)
    return detail(services.engine, incident_id)


@router.post("/{incident_id}/enrich", response_model=IncidentDetail, dependencies=RESPOND)
def enrich(services: ServicesDep, incident_id: IdPath) -> IncidentDetail:
    """Gather the ML evidence again now (it also runs when the incident opens)."""
    sources = services.sources.for_evidence()
    ml.enrich(
        services.engine,
        services.config,
        sources,
        incident_id,
        datetime.now(UTC),
        services.events,
        services.slo_engine.by_id,
    )
    return detail(services.engine, incident_id)


@router.get("/{incident_id}/postmortem", response_class=Response)
def postmortem(
    services: ServicesDep,
    incident_id: IdPath,
    format: Literal["markdown", "html"] = "markdown",
) -> Response:
    """The review draft (written to SLOGUARD_POSTMORTEM_DIR too); `?format=html` for a browser, sanitised
    and served under a Content-Security-Policy that runs no script."""
    from app.postmortems import html
    from app.postmortems import service as postmortems

    draft = postmortems.write(services, incident_id, datetime.now(UTC))
    if format == "html":
        page = html.page(draft.markdown, f"Incident {incident_id}", draft.path.parent)
        return Response(page, media_type="text/html; charset=utf-8", headers=html.HTML_HEADERS)
    return Response(draft.markdown, media_type="text/markdown; charset=utf-8", headers=html.MARKDOWN_HEADERS)


@router.post(
    "/{incident_id}/timeline", response_model=TimelineEventRead, status_code=201, dependencies=RESPOND
)
def add_note(
    services: ServicesDep, caller: CallerDep, incident_id: IdPath, body: NoteCreate
) -> TimelineEventRead:
    actor = caller.acting(body.actor)
    event = incidents.add_note(
        services.engine, incident_id, body.text, actor, datetime.now(UTC), body.kind, services.events
    )
    return TimelineEventRead.model_validate(event)


@router.post(
    "/{incident_id}/action-items", response_model=ActionItemRead, status_code=201, dependencies=RESPOND
)
def add_action_item(
    engine: EngineDep, caller: CallerDep, incident_id: IdPath, body: ActionItemCreate
) -> ActionItemRead:
    return ActionItemRead.model_validate(incidents.add_action_item(engine, incident_id, body, caller.actor))


@router.patch("/{incident_id}/action-items/{item_id}", response_model=ActionItemRead, dependencies=RESPOND)
def update_action_item(
    engine: EngineDep, caller: CallerDep, incident_id: IdPath, item_id: IdPath, body: ActionItemUpdate
) -> ActionItemRead:
    item = incidents.update_action_item(engine, incident_id, item_id, body, caller.actor)
    return ActionItemRead.model_validate(item)


@router.delete("/{incident_id}/action-items/{item_id}", status_code=204, dependencies=RESPOND)
def delete_action_item(
    engine: EngineDep, caller: CallerDep, incident_id: IdPath, item_id: IdPath
) -> Response:
    incidents.delete_action_item(engine, incident_id, item_id, caller.actor)
    return Response(status_code=204)
