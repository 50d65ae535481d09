"""The console's forms: acknowledge, note, resolve, propose and confirm a rollback.

Each one is a POST that passes `checked_form` (signed in, same origin, the session's CSRF secret), then
the viewer's scope, then calls the same service function as the API and Slack, as the viewer: the
model's permission lists, the commander rule and two-person confirmation apply there. The answer is a
redirect back to the page (post/redirect/get), or the page's error with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Form
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError

from app.api import IdPath, ServicesDep
from app.gates import service as gates
from app.identity.logic import Scope
from app.incidents import service as incidents
from app.incidents.models import IncidentStatus, IncidentUpdate
from app.rollback.models import RollbackRequest
from app.web.auth import PAGE_HEADERS, FormViewerDep, require

router = APIRouter(include_in_schema=False)
Note = Annotated[str, Form(min_length=1, max_length=10_000)]
Short = Annotated[str, Form(max_length=200)]


def back(incident_id: int, done: str) -> Response:
    """Back to the incident's page, announcing `done` (a code of app/web/pages.DONE)."""
    return RedirectResponse(f"/incidents/{incident_id}?done={done}", status_code=303, headers=PAGE_HEADERS)


def _status(services: ServicesDep, who: FormViewerDep, incident_id: int, status: IncidentStatus) -> None:
    require(who, Scope.respond)
    incidents.update(
        services.engine,
        services.events,
        incident_id,
        IncidentUpdate(status=status),
        datetime.now(UTC),
        who.actor,
    )


@router.post("/incidents/{incident_id}/acknowledge")
def acknowledge(services: ServicesDep, who: FormViewerDep, incident_id: IdPath) -> Response:
    _status(services, who, incident_id, IncidentStatus.acknowledged)
    return back(incident_id, "acknowledged")


@router.post("/incidents/{incident_id}/resolve")
def resolve(services: ServicesDep, who: FormViewerDep, incident_id: IdPath) -> Response:
    _status(services, who, incident_id, IncidentStatus.resolved)
    return back(incident_id, "resolved")


@router.post("/incidents/{incident_id}/notes")
def add_note(services: ServicesDep, who: FormViewerDep, incident_id: IdPath, text: Note) -> Response:
    require(who, Scope.respond)
    incidents.add_note(
        services.engine, incident_id, text, who.actor, datetime.now(UTC), "note", services.events
    )
    return back(incident_id, "noted")


@router.post("/incidents/{incident_id}/rollback")
def propose_rollback(
    services: ServicesDep,
    who: FormViewerDep,
    incident_id: IdPath,
    model: Short,
    environment: Short = "prod",
    to_version: Short = "",
    reason: Annotated[str, Form(max_length=2000)] = "",
) -> Response:
    require(who, Scope.change)
    try:
        request = RollbackRequest(
            model=model,
            environment=environment or "prod",
            to_version=to_version.strip() or None,
            incident_id=incident_id,
            reason=reason,
        )
    except ValidationError as exc:
        from fastapi import HTTPException

        first = exc.errors()[0]
        raise HTTPException(422, f"{'.'.join(str(p) for p in first['loc'])}: {first['msg']}") from None
    gates.propose(services, request, who.actor)
    return back(incident_id, "proposed")


@router.post("/rollbacks/{action_id}/confirm")
def confirm_rollback(services: ServicesDep, who: FormViewerDep, action_id: IdPath) -> Response:
    require(who, Scope.change)
    confirmation = gates.confirm(services, action_id, who.actor)
    action = confirmation.action
    if action.incident_id is None:
        return RedirectResponse("/incidents", status_code=303, headers=PAGE_HEADERS)
    return back(action.incident_id, "confirmed")
