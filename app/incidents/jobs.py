"""Scheduled incident work: re-announce unacknowledged incidents, resolve long-quiet ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app import db
from app.config import IncidentOptions
from app.events import Dispatcher, IncidentEscalated
from app.incidents import service as incidents
from app.incidents.models import AlertLink, Incident, IncidentStatus

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
Sweep = Callable[[Engine, Dispatcher | None, IncidentOptions, datetime], list[int]]


def escalate_unacknowledged(
    engine: Engine, dispatcher: Dispatcher | None, options: IncidentOptions, now: datetime
) -> list[int]:
    """Announce again every incident still `triggered` after `renotify_after` (once per period)."""
    if options.renotify_after <= 0:
        return []
    cutoff = now - timedelta(seconds=options.renotify_after)

    def command(session: Session, events: db.Events) -> list[int]:
        stale = session.exec(
            select(Incident).where(
                Incident.status == IncidentStatus.triggered,
                col(Incident.detected_at) <= cutoff,
                sa.or_(col(Incident.escalated_at).is_(None), col(Incident.escalated_at) <= cutoff),
            )
        ).all()
        for incident in stale:
            assert incident.id is not None
            age = (now - incident.detected_at).total_seconds()
            incident.escalated_at = now
            session.add(incident)
            incidents.note(
                session,
                incident,
                "escalation",
                f"not acknowledged after {age / 60:.0f} min",
                actor="sloguard",
                at=now,
            )
            events.append(IncidentEscalated(incident.id, incident.severity, age))
        return [incident.id for incident in stale if incident.id is not None]

    return incidents.write(engine, dispatcher, command)


def resolve_quiet(
    engine: Engine, dispatcher: Dispatcher | None, options: IncidentOptions, now: datetime
) -> list[int]:
    """Resolve incidents that stayed mitigated, with nothing firing, for `auto_resolve_after`."""
    if options.auto_resolve_after <= 0:
        return []
    cutoff = now - timedelta(seconds=options.auto_resolve_after)

    def command(session: Session, events: db.Events) -> list[int]:
        quiet = session.exec(
            select(Incident).where(
                Incident.status == IncidentStatus.mitigated, col(Incident.mitigated_at) <= cutoff
            )
        ).all()
        done = []
        for incident in quiet:
            firing = session.exec(
                select(func.count()).where(AlertLink.incident_id == incident.id, AlertLink.status == "firing")
            ).one()
            if firing:
                continue
            incidents.change_status(
                session,
                events,
                incident,
                IncidentStatus.resolved,
                actor="sloguard",
                now=now,
                reason=f"quiet for {options.auto_resolve_after / 3600:g} h after mitigation",
            )
            assert incident.id is not None
            done.append(incident.id)
        return done

    return incidents.write(engine, dispatcher, command)


def _sweep(what: str, sweep: Sweep, services: Services, options: IncidentOptions) -> None:
    """Run one sweep over incidents; never raise into the scheduler."""
    try:
        changed = sweep(services.engine, services.events, options, datetime.now(UTC))
    except Exception:
        log.exception("incident job failed", extra={"job": what})
        return
    if changed:
        log.info("incidents changed by job", extra={"job": what, "incident_ids": changed})


def escalate(services: Services, options: IncidentOptions) -> None:
    _sweep("escalation", escalate_unacknowledged, services, options)


def auto_resolve(services: Services, options: IncidentOptions) -> None:
    _sweep("auto-resolve", resolve_quiet, services, options)
