"""Escalation of unacknowledged incidents and auto-resolution of quiet ones, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import Session

from app import db
from app.config import IncidentOptions
from app.events import Dispatcher, IncidentEscalated, IncidentStatusChanged
from app.incidents import jobs as incident_jobs
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate, IncidentStatus, IncidentUpdate

pytestmark = pytest.mark.integration
T0 = datetime(2026, 11, 25, 20, 0, tzinfo=UTC)


def test_unacknowledged_incidents_are_escalated_once_per_period(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    seen: list[Any] = []
    dispatcher = Dispatcher()
    dispatcher.subscribe(IncidentEscalated, lambda session, events, event: seen.append(event))
    options = IncidentOptions(renotify_after="15m")
    stale = incidents.declare(engine, None, IncidentCreate(title="nobody looked", severity="SEV2"), T0)
    acked = incidents.declare(engine, None, IncidentCreate(title="someone looked"), T0)
    incidents.update(engine, None, acked.id, IncidentUpdate(status=IncidentStatus.acknowledged), T0)  # type: ignore[arg-type]

    assert (
        incident_jobs.escalate_unacknowledged(engine, dispatcher, options, T0 + timedelta(minutes=14)) == []
    )
    assert incident_jobs.escalate_unacknowledged(engine, dispatcher, options, T0 + timedelta(minutes=15)) == [
        stale.id
    ]
    assert (
        incident_jobs.escalate_unacknowledged(engine, dispatcher, options, T0 + timedelta(minutes=20)) == []
    )
    assert incident_jobs.escalate_unacknowledged(engine, dispatcher, options, T0 + timedelta(minutes=30)) == [
        stale.id
    ]
    assert [(e.incident_id, e.severity, e.unacknowledged_seconds) for e in seen] == [
        (stale.id, "SEV2", 900.0),
        (stale.id, "SEV2", 1800.0),
    ]
    with Session(engine) as session:
        kinds = [event.kind for event in incidents.timeline(session, stale.id)]  # type: ignore[arg-type]
    assert kinds == ["status", "escalation", "escalation"]
    engine.dispose()


def test_quiet_mitigated_incidents_resolve_after_the_configured_time(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    changes: list[Any] = []
    dispatcher = Dispatcher()
    dispatcher.subscribe(IncidentStatusChanged, lambda session, events, event: changes.append(event))
    incident = incidents.declare(engine, None, IncidentCreate(title="flapping"), T0)
    incidents.update(engine, None, incident.id, IncidentUpdate(status=IncidentStatus.mitigated), T0)  # type: ignore[arg-type]

    assert (
        incident_jobs.resolve_quiet(engine, dispatcher, IncidentOptions(), T0 + timedelta(days=30)) == []
    )  # off
    options = IncidentOptions(auto_resolve_after="2h")
    assert incident_jobs.resolve_quiet(engine, dispatcher, options, T0 + timedelta(minutes=119)) == []
    assert incident_jobs.resolve_quiet(engine, dispatcher, options, T0 + timedelta(hours=2)) == [incident.id]
    with Session(engine) as session:
        resolved = incidents.get(session, incident.id)  # type: ignore[arg-type]
    assert resolved.status == IncidentStatus.resolved
    assert resolved.resolved_at == T0 + timedelta(hours=2)
    assert [(c.old, c.new, c.actor) for c in changes] == [("mitigated", "resolved", "sloguard")]
    engine.dispose()
