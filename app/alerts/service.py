"""Alertmanager notifications turned into incident commands, idempotently."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app import db
from app.alerts.alertmanager import WebhookPayload
from app.config import IncidentOptions
from app.events import Dispatcher
from app.incidents import logic
from app.incidents import service as incidents
from app.incidents.models import CLOSED_STATUSES, AlertLink, IncidentStatus
from app.inputs import fit

LABEL_FIELD_LIMIT = 200  # incident.service / slo_id / model and alert_link.alertname; labels stay whole

LAST_SEEN_EVERY = timedelta(minutes=1)


class IngestResult:
    def __init__(self) -> None:
        self.incident_id: int | None = None
        self.created = False
        self.new_alerts = 0
        self.resolved_alerts = 0
        self.first_alert_start: datetime | None = None

    @property
    def outcome(self) -> str:
        if self.incident_id is None:
            return "ignored"
        return "accepted" if self.created or self.new_alerts or self.resolved_alerts else "duplicate"

    def as_dict(self) -> dict[str, Any]:
        return {
            "incident_id": self.incident_id,
            "created": self.created,
            "new_alerts": self.new_alerts,
            "resolved_alerts": self.resolved_alerts,
            "outcome": self.outcome,
        }


# Labels that tell two alerts of one rule apart on the timeline: the tier and the window first.
TELLING_LABELS = (
    "sloth_severity",
    "severity",
    "tier",
    "long_window",
    "short_window",
    "window",
    "sloth_window",
)
TITLE_PART_LIMIT = 60


def alert_title(labels: dict[str, str], others: list[dict[str, str]]) -> str:
    """The alert's name with what distinguishes it: its tier or window labels, and any label whose value
    differs from another alert of the same name in the notification (`Availability (page)`)."""
    name = labels.get("alertname", "alert")
    keys = [key for key in TELLING_LABELS if labels.get(key)]
    namesakes = [other for other in others if other.get("alertname", "alert") == name and other != labels]
    for key in sorted(labels):
        if key not in keys and any(other.get(key) != labels[key] for other in namesakes):
            keys.append(key)
    parts = [
        fit(labels[key] if key in TELLING_LABELS[:3] else f"{key}={labels[key]}", TITLE_PART_LIMIT) or ""
        for key in keys[:4]
    ]
    return f"{name} ({', '.join(parts)})" if parts else name


def ingest_alertmanager(
    engine: Engine,
    dispatcher: Dispatcher | None,
    payload: WebhookPayload,
    options: IncidentOptions,
    now: datetime,
) -> IngestResult:
    """Apply one webhook notification: only what is new in the group's state is added."""
    severities = incidents.severity_map(options)

    def command(session: Session, events: db.Events) -> IngestResult:
        result = IngestResult()
        key = logic.alert_group_key(payload.groupKey)
        slo_id = fit(payload.common("sloth_id", "slo"), LABEL_FIELD_LIMIT)
        service = fit(payload.common("service", "sloth_service"), LABEL_FIELD_LIMIT)
        model = fit(payload.common("model"), LABEL_FIELD_LIMIT)
        # Alerts already recorded say which incident they belong to; read them first, so that on
        # READ COMMITTED a twin request that committed meanwhile is followed, not mistaken for nothing.
        known = {
            (link.fingerprint, link.starts_at): link
            for link in session.exec(
                select(AlertLink).where(
                    col(AlertLink.fingerprint).in_([alert.stored_fingerprint for alert in payload.alerts])
                )
            ).all()
        }
        firing = [alert for alert in payload.alerts if alert.status == "firing"]
        fresh_firing = [a for a in firing if (a.stored_fingerprint, a.startsAt) not in known]
        changes = [
            alert
            for alert in payload.alerts
            if (link := known.get((alert.stored_fingerprint, alert.startsAt))) is None
            or (link.status == "firing" and alert.status == "resolved")
        ]
        # Each known alert's incident, locked: the same row lock the changes below need anyway.
        incident = None
        for incident_id in dict.fromkeys(link.incident_id for link in known.values()):
            found = incidents.lock(session, incident_id)
            if found.status not in CLOSED_STATUSES:
                incident = found
                break
        if incident is not None and not changes:
            # A re-send with nothing new (most of a storm): no writes; the alerts' last_seen moves
            # only when it is a minute old, so a storm does not rewrite every row on every copy.
            result.incident_id = incident.id
            stale = [link.id for link in known.values() if link.last_seen < now - LAST_SEEN_EVERY]
            if stale:
                session.execute(
                    sa.update(AlertLink).where(col(AlertLink.id).in_(stale)).values(last_seen=now)
                )
            return result
        incident = incident or incidents.find_open(
            session, key=key, slo_id=slo_id, service=service, model=model
        )
        if incident is None:
            if not fresh_firing:
                return result  # resolved alerts of a group we never opened: nothing to follow
            severity = max(
                (severities.for_labels({**payload.commonLabels, **a.labels}) for a in fresh_firing),
                key=incidents.rank,
            )
            # Alertmanager's zero time (or a clock that far off) says nothing of when the impact began.
            started = min((a.known_start for a in fresh_firing if a.known_start is not None), default=now)
            incident = incidents.open_incident(
                session,
                events,
                key=key,
                title=payload.title,
                severity=severity,
                source="alertmanager",
                started_at=started,
                detected_at=now,
                actor="alertmanager",
                service=service,
                slo_id=slo_id,
                model=model,
                summary=payload.commonAnnotations.get("description"),
            )
            result.created = True
            result.first_alert_start = started
        assert incident.id is not None
        # Lock the incident: two notifications resolving different alerts of it must see each other's work
        # before deciding that "every alert resolved".
        incident = incidents.lock(session, incident.id)
        assert incident.id is not None
        result.incident_id = incident.id

        # New links and their timeline notes go in as one multi-row INSERT each (a storm's hot path);
        # a concurrent twin fails on (fingerprint, startsAt) and the whole command is retried.
        new_links: list[dict[str, Any]] = []
        notes: list[dict[str, Any]] = []

        def note(kind: str, text: str, data: dict[str, Any]) -> None:
            notes.append(
                {"incident_id": incident_id, "at": now, "kind": kind, "actor": "alertmanager", "text": text}
                | {"data": data}
            )

        incident_id = incident.id
        for alert in payload.alerts:
            link = known.get((alert.stored_fingerprint, alert.startsAt))
            # The timeline names it with what sets it apart; the link keeps the alert's own name.
            name = alert_title(alert.labels, [other.labels for other in payload.alerts])
            own_name = alert.labels.get("alertname", "alert")
            if link is None:
                new_links.append(
                    {
                        "incident_id": incident_id,
                        "fingerprint": alert.stored_fingerprint,
                        "alertname": fit(own_name, LABEL_FIELD_LIMIT),
                        "starts_at": alert.startsAt,
                        "ends_at": alert.endsAt if alert.status == "resolved" else None,
                        "status": alert.status,
                        "labels": alert.labels,
                        "annotations": alert.annotations,
                        "generator_url": alert.generatorURL or None,
                        "group_key": payload.groupKey,
                        "first_seen": now,
                        "last_seen": now,
                    }
                )
                kind = "alert_firing" if alert.status == "firing" else "alert_resolved"
                note(
                    kind, f"{name} {alert.status}", {"fingerprint": alert.fingerprint, "labels": alert.labels}
                )
                if alert.status == "firing":
                    result.new_alerts += 1
                else:
                    result.resolved_alerts += 1
            elif link.status == "firing" and alert.status == "resolved":
                link.status, link.ends_at, link.last_seen = "resolved", alert.endsAt or now, now
                session.add(link)
                note("alert_resolved", f"{name} resolved", {"fingerprint": alert.fingerprint})
                result.resolved_alerts += 1
            elif link.last_seen < now - LAST_SEEN_EVERY:
                link.last_seen = now
                session.add(link)
        if new_links:
            session.execute(sa.insert(AlertLink), new_links)
        incidents.add_notes(session, notes)

        if result.new_alerts and incident.status == IncidentStatus.mitigated:
            incidents.change_status(
                session,
                events,
                incident,
                IncidentStatus.triggered,
                actor="alertmanager",
                now=now,
                reason="a new alert fired on the mitigated incident",
            )
        elif result.resolved_alerts and incident.status in (
            IncidentStatus.triggered,
            IncidentStatus.acknowledged,
        ):
            session.flush()
            still_firing = session.exec(
                select(func.count()).where(AlertLink.incident_id == incident.id, AlertLink.status == "firing")
            ).one()
            if still_firing == 0:
                incidents.change_status(
                    session,
                    events,
                    incident,
                    IncidentStatus.mitigated,
                    actor="alertmanager",
                    now=now,
                    reason="every alert resolved",
                )
        return result

    return db.unit_of_work(engine, dispatcher, command)
