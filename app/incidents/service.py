"""Incident storage and commands: the only place incident, timeline and action-item rows are written.

Each command is a unit of work (`db.unit_of_work`: one transaction, run again when a concurrent writer won
a unique key, so it must not talk to the outside world), so doors can be called concurrently and
at-least-once (Alertmanager) without duplicates. Domain events are published after the commit, never for
work that was rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from app import db
from app.config import IncidentOptions
from app.db import utcnow
from app.errors import Forbidden, NotFound
from app.events import (
    Dispatcher,
    IncidentNoted,
    IncidentOpened,
    IncidentStatusChanged,
    IncidentUpdated,
    SloBreached,
    SloCleared,
)
from app.identity.logic import PERSON, Actor
from app.incidents import logic
from app.incidents.models import (
    CLOSED_STATUSES,
    ActionItem,
    ActionItemCreate,
    ActionItemUpdate,
    AlertLink,
    Incident,
    IncidentCreate,
    IncidentStatus,
    IncidentUpdate,
    Severity,
    TimelineEvent,
)
from app.inputs import fit

log = logging.getLogger(__name__)
T = TypeVar("T")
Events = db.Events
TITLE_LIMIT, NAME_LIMIT, ENVIRONMENT_LIMIT = 300, 200, 50  # incident columns
FINDER = "sloguard"  # the actor of the rows sloguard's findings write (and rewrite)


# Every area's units of work run through db.unit_of_work (its docstring has the retry rule).
write = db.unit_of_work


# ---------------------------------------------------------------- reading


def lock(session: Session, incident_id: int) -> Incident:
    """The incident row, locked until the transaction ends (PostgreSQL; SQLite serialises writers anyway),
    so concurrent commands on one incident apply one after the other instead of overwriting each other."""
    incident = session.get(Incident, incident_id, with_for_update=True, populate_existing=True)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def get(session: Session, incident_id: int) -> Incident:
    incident = session.get(Incident, incident_id)
    if incident is None:
        raise NotFound(f"incident {incident_id} not found")
    return incident


def list_incidents(
    session: Session,
    *,
    limit: int = 100,
    offset: int = 0,
    **filters: Any,
) -> Sequence[Incident]:
    """Newest first, filtered as `filtered` says."""
    query = filtered(select(Incident), **filters)
    query = query.order_by(col(Incident.detected_at).desc(), col(Incident.id).desc())
    found: Sequence[Incident] = session.exec(query.offset(offset).limit(limit)).all()
    return found


def count_incidents(session: Session, **filters: Any) -> int:
    return int(session.exec(filtered(select(sa.func.count()).select_from(Incident), **filters)).one())


def filtered(
    query: Any,
    *,
    status: IncidentStatus | None = None,
    service: str | None = None,
    model: str | None = None,
    severity: Severity | None = None,
    slo_id: str | None = None,
    open_only: bool = False,
) -> Any:
    """`open_only` leaves out resolved and cancelled incidents in the query itself (so a page of newer
    closed incidents never hides an open one)."""
    if open_only:
        query = query.where(col(Incident.status).not_in(CLOSED_STATUSES))
    wanted = {"status": status, "service": service, "model": model, "severity": severity, "slo_id": slo_id}
    return query.where(*[getattr(Incident, k) == v for k, v in wanted.items() if v is not None])


def timeline(session: Session, incident_id: int) -> Sequence[TimelineEvent]:
    return session.exec(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident_id)
        .order_by(col(TimelineEvent.at), col(TimelineEvent.id))
    ).all()


def alerts(session: Session, incident_id: int) -> Sequence[AlertLink]:
    return session.exec(
        select(AlertLink).where(AlertLink.incident_id == incident_id).order_by(col(AlertLink.starts_at))
    ).all()


def action_items(session: Session, incident_id: int) -> Sequence[ActionItem]:
    return session.exec(
        select(ActionItem).where(ActionItem.incident_id == incident_id).order_by(col(ActionItem.id))
    ).all()


def open_counts_by_severity(session: Session) -> dict[str, int]:
    rows = session.exec(
        select(Incident.severity, func.count())
        .where(col(Incident.status).not_in(CLOSED_STATUSES))
        .group_by(col(Incident.severity))
    ).all()
    return {str(severity): int(count) for severity, count in rows}


def find_open(
    session: Session,
    *,
    key: str | None = None,
    slo_id: str | None = None,
    service: str | None = None,
    model: str | None = None,
) -> Incident | None:
    """The open incident a new signal belongs to: same key, else same SLO, else same service or model."""
    base = select(Incident).where(col(Incident.status).not_in(CLOSED_STATUSES)).order_by(col(Incident.id))
    for column, value in (
        (Incident.key, key),
        (Incident.slo_id, slo_id),
        (Incident.service, service),
        (Incident.model, model),
    ):
        if value:
            found = session.exec(base.where(column == value)).first()
            if found is not None:
                return found
    return None


def first_open_for_model(session: Session, model: str, environment: str | None = None) -> Incident | None:
    """The first (oldest) open incident of `model` (in `environment`, or one that names none)."""
    query = select(Incident).where(Incident.model == model, col(Incident.status).not_in(CLOSED_STATUSES))
    if environment is not None:
        query = query.where(
            sa.or_(col(Incident.environment) == environment, col(Incident.environment).is_(None))
        )
    return session.exec(query.order_by(col(Incident.id))).first()


# ---------------------------------------------------------------- writing


def note(
    session: Session,
    incident: Incident,
    kind: str,
    text: str,
    *,
    actor: Actor | str | None = None,
    at: datetime | None = None,
    data: dict[str, Any] | None = None,
) -> TimelineEvent:
    """A timeline row: `actor` is a person or identity (its token too, when one was used) or the name of
    a part of sloguard (`sloguard`, `slo-engine`)."""
    assert incident.id is not None
    event = TimelineEvent(
        incident_id=incident.id,
        at=at or utcnow(),
        kind=kind,
        actor=name_of(actor),
        token_id=actor.token_id if isinstance(actor, Actor) else None,
        text=text,
        data=data or {},
    )
    session.add(event)
    return event


def name_of(actor: Actor | str | None) -> str | None:
    return actor.name if isinstance(actor, Actor) else actor


def clear_notes(session: Session, incident_id: int, kinds: Sequence[str]) -> None:
    """Remove the timeline rows of `kinds` that a finding writes anew each time it is made (the impact
    window, the suspect's deploy), so a second measurement does not tell the story twice."""
    session.execute(
        sa.delete(TimelineEvent).where(
            col(TimelineEvent.incident_id) == incident_id,
            col(TimelineEvent.kind).in_(kinds),
            col(TimelineEvent.actor) == FINDER,  # a person's note of the same kind stays
        )
    )


def add_notes(session: Session, rows: list[dict[str, Any]]) -> None:
    """Timeline events as plain rows (`incident_id`, `at`, `kind`, `actor`, `text`, `data`), in one
    multi-row INSERT: a webhook storm's hot path."""
    if rows:
        session.execute(sa.insert(TimelineEvent), rows)


def open_incident(
    session: Session,
    events: Events,
    *,
    key: str,
    title: str,
    severity: Severity,
    source: str,
    started_at: datetime,
    detected_at: datetime,
    actor: Actor | str | None,
    service: str | None = None,
    slo_id: str | None = None,
    model: str | None = None,
    environment: str | None = None,
    summary: str | None = None,
    commander: str | None = None,
) -> Incident:
    # Display fields are cut to their columns (marked with …); what came in whole stays whole where it
    # came from (alert labels and annotations, the request).
    incident = Incident(
        key=key,
        title=fit(title, TITLE_LIMIT) or "",
        severity=severity,
        source=source,
        service=fit(service, NAME_LIMIT),
        slo_id=fit(slo_id, NAME_LIMIT),
        model=fit(model, NAME_LIMIT),
        environment=fit(environment, ENVIRONMENT_LIMIT),
        summary=summary,
        commander=commander,
        started_at=min(started_at, detected_at),
        detected_at=detected_at,
        created_at=detected_at,
        updated_at=detected_at,
    )
    session.add(incident)
    session.flush()  # a concurrent twin fails here on the open-key index, and the command is retried
    note(session, incident, "status", f"incident opened ({severity.value})", actor=actor, at=detected_at)
    assert incident.id is not None
    events.append(
        IncidentOpened(incident.id, key, incident.title, severity.value, source, service, slo_id, model)
    )
    return incident


def change_status(
    session: Session,
    events: Events,
    incident: Incident,
    target: IncidentStatus,
    *,
    actor: Actor | str | None,
    now: datetime,
    reason: str = "",
) -> None:
    current = IncidentStatus(incident.status)
    logic.check_transition(current, target)
    for field, value in logic.transition_stamps(target, now, incident.acknowledged_at).items():
        setattr(incident, field, value)
    incident.status = target
    incident.updated_at = now
    who = name_of(actor)
    took_command = target == IncidentStatus.acknowledged and not incident.commander and bool(who)
    if took_command:
        incident.commander = fit(who, NAME_LIMIT)  # whoever acknowledges leads, when nobody was named
    session.add(incident)
    text = f"{current.value} -> {target.value}" + (f": {reason}" if reason else "")
    if took_command:
        text += f" (commander: {incident.commander})"
    note(
        session,
        incident,
        "status",
        text,
        actor=actor,
        at=now,
        data={"from": current.value, "to": target.value},
    )
    assert incident.id is not None
    events.append(IncidentStatusChanged(incident.id, current.value, target.value, who))


def declare(
    engine: Engine,
    dispatcher: Dispatcher | None,
    data: IncidentCreate,
    now: datetime,
    actor: Actor | str | None = None,
) -> Incident:
    """Open an incident by hand (API, Slack), as `actor`. Its key is unique to it."""

    def command(session: Session, events: Events) -> Incident:
        return open_incident(
            session,
            events,
            key=f"manual:{now.timestamp():.6f}:{data.title[:60]}",
            title=data.title,
            severity=data.severity,
            source="manual",
            started_at=data.started_at or now,
            detected_at=now,
            actor=actor,
            service=data.service,
            slo_id=data.slo_id,
            model=data.model,
            environment=data.environment,
            summary=data.summary,
            commander=data.commander,
        )

    return write(engine, dispatcher, command)


def update(
    engine: Engine,
    dispatcher: Dispatcher | None,
    incident_id: int,
    data: IncidentUpdate,
    now: datetime,
    actor: Actor | str | None = None,
) -> Incident:
    changes = data.model_dump(exclude_unset=True)
    changes.pop("actor", None)  # who acts is `actor`, authenticated by the door
    status = changes.pop("status", None)  # outside the command: a retried command must see it again

    def command(session: Session, events: Events) -> Incident:
        incident = lock(session, incident_id)
        _check_handover(incident, changes.get("commander"), actor)
        if status is not None and status != incident.status:
            change_status(session, events, incident, IncidentStatus(status), actor=actor, now=now)
        applied = {}
        for field, value in changes.items():
            if value is not None and getattr(incident, field) != value:
                applied[field] = value
                setattr(incident, field, value)
        if applied:
            incident.updated_at = now
            session.add(incident)
            described = ", ".join(
                f"{field} = {value}" for field, value in applied.items() if field != "summary"
            )
            note(
                session, incident, "update", described or "summary updated", actor=actor, at=now, data=applied
            )
            events.append(IncidentUpdated(incident_id, applied, name_of(actor)))
        return incident

    return write(engine, dispatcher, command)


def _check_handover(incident: Incident, commander: str | None, actor: Actor | str | None) -> None:
    """Only the commander hands an open incident over (require_commander leans on it); a person may take
    one nobody commands, or one whose commander is free text rather than a Slack user. sloguard's own
    callers (a str actor) are not people and are not asked."""
    if commander is None or commander == incident.commander or incident.commander is None:
        return
    if PERSON.fullmatch(incident.commander) is None:  # free text (a team's name): nobody to ask
        return
    if not isinstance(actor, Actor) or actor.via == "sloguard" or incident.status in CLOSED_STATUSES:
        return
    if actor.name != incident.commander:
        raise Forbidden(f"only the commander <@{incident.commander}> hands incident {incident.id} over")


def add_note(
    engine: Engine,
    incident_id: int,
    text: str,
    actor: Actor | str | None,
    now: datetime,
    kind: str = "note",
    dispatcher: Dispatcher | None = None,
) -> TimelineEvent:
    def command(session: Session, events: Events) -> TimelineEvent:
        incident = get(session, incident_id)
        events.append(IncidentNoted(incident_id, text, name_of(actor)))
        return note(session, incident, kind, text, actor=actor, at=now)

    return write(engine, dispatcher, command)


def add_action_item(
    engine: Engine, incident_id: int, data: ActionItemCreate, actor: Actor | str | None = None
) -> ActionItem:
    def command(session: Session, events: Events) -> ActionItem:
        incident = get(session, incident_id)
        item = ActionItem(incident_id=incident_id, **data.model_dump())
        session.add(item)
        owner = {"owner": data.owner} if data.owner else {}
        note(session, incident, "action_item", f"action item: {data.text}", actor=actor, data=owner)
        return item

    return write(engine, None, command)


def update_action_item(
    engine: Engine, incident_id: int, item_id: int, data: ActionItemUpdate, actor: Actor | str | None = None
) -> ActionItem:
    def command(session: Session, events: Events) -> ActionItem:
        item = session.get(ActionItem, item_id)
        if item is None or item.incident_id != incident_id:
            raise NotFound(f"action item {item_id} not found on incident {incident_id}")
        changed = {}
        for field, value in data.model_dump(exclude_unset=True).items():
            if getattr(item, field) != value:
                changed[field] = value
            setattr(item, field, value)
        session.add(item)
        if changed:  # who changed it, on the timeline (values as JSON: a due date is a string there)
            text = f"action item {item_id} updated: {', '.join(changed)}"
            data_ = {"item_id": item_id, **{k: str(v) if v is not None else None for k, v in changed.items()}}
            note(session, get(session, incident_id), "action_item", text, actor=actor, data=data_)
        return item

    return write(engine, None, command)


def delete_action_item(
    engine: Engine, incident_id: int, item_id: int, actor: Actor | str | None = None
) -> None:
    def command(session: Session, events: Events) -> None:
        item = session.get(ActionItem, item_id)
        if item is None or item.incident_id != incident_id:
            raise NotFound(f"action item {item_id} not found on incident {incident_id}")
        session.delete(item)
        text = f"action item {item_id} removed: {item.text}"
        note(session, get(session, incident_id), "action_item", text, actor=actor, data={"item_id": item_id})

    write(engine, None, command)


def rank(severity: Severity) -> int:
    return -int(severity.value[-1])  # SEV1 outranks SEV4


def severity_map(options: IncidentOptions) -> logic.SeverityMap:
    return logic.SeverityMap(
        {key: Severity(value) for key, value in options.severity.items()},
        Severity(options.budget_exhausted_severity),
        Severity(options.default_severity),
    )


# ---------------------------------------------------------------- burn-rate door


def on_slo_breach(
    engine: Engine, dispatcher: Dispatcher | None, event: SloBreached, options: IncidentOptions
) -> int:
    """Open (or attach to) the SLO's incident, in a unit of its own (`breached` is the reaction)."""
    return write(engine, dispatcher, lambda session, events: breached(session, events, event, options))


def breached(session: Session, events: Events, event: SloBreached, options: IncidentOptions) -> int:
    """Open (or attach to) the SLO's incident; a higher tier raises the severity; a mitigated one reopens.
    Runs in the unit of work that stored the evaluation that saw the breach."""
    severity = severity_map(options).for_tier(event.severity, event.budget_remaining)
    rates = ", ".join(f"{w} {r:.1f}x" for w, r in event.burn_rates.items() if r is not None)
    text = f"{event.slo_id} burning at {event.severity} level ({event.tier}): {rates}"
    incident = find_open(session, key=logic.slo_key(event.slo_id), slo_id=event.slo_id)
    if incident is None:
        incident = open_incident(
            session,
            events,
            key=logic.slo_key(event.slo_id),
            title=f"{event.slo_id} error budget burning ({event.severity})",
            severity=severity,
            source="slo",
            started_at=event.burn_started_at or event.at,
            detected_at=event.at,
            actor="slo-engine",
            service=event.service,
            slo_id=event.slo_id,
            model=event.model,
        )
    else:
        if incident.status == IncidentStatus.mitigated:
            change_status(
                session,
                events,
                incident,
                IncidentStatus.triggered,
                actor="slo-engine",
                now=event.at,
                reason="the SLO is burning again",
            )
        if rank(severity) > rank(Severity(incident.severity)):
            old = incident.severity
            incident.severity = severity
            session.add(incident)
            note(
                session,
                incident,
                "update",
                f"severity {old} -> {severity.value}",
                actor="slo-engine",
                at=event.at,
            )
            assert incident.id is not None
            events.append(IncidentUpdated(incident.id, {"severity": severity.value}, "slo-engine"))
    note(
        session,
        incident,
        "burn",
        text,
        actor="slo-engine",
        at=event.at,
        data={
            "burn_rates": event.burn_rates,
            "budget_remaining": event.budget_remaining,
            "tier": event.tier,
        },
    )
    assert incident.id is not None
    return incident.id


def recovered_by_change(
    session: Session, events: Events, incident_id: int, changed_at: datetime, now: datetime, text: str
) -> None:
    """A rollback or promotion whose verification said "recovered": the incident was mitigated when the
    change succeeded (`changed_at`), not when it was verified. It moves to mitigated if nothing else did,
    and an earlier mitigation time stays (the first one counts)."""
    incident = lock(session, incident_id)
    if incident.status == IncidentStatus.cancelled:
        return
    first = incident.mitigated_at  # before a transition below stamps it with `now`
    if incident.status in (IncidentStatus.triggered, IncidentStatus.acknowledged):
        change_status(
            session, events, incident, IncidentStatus.mitigated, actor="sloguard", now=now, reason=text
        )
    if first is None or changed_at < first:
        incident.mitigated_at = changed_at
        session.add(incident)
        if first is not None:
            note(
                session,
                incident,
                "update",
                f"mitigated at {changed_at:%Y-%m-%d %H:%M:%S} UTC, when the verified change succeeded",
                actor="sloguard",
                at=now,
                data={"mitigated_at": changed_at.isoformat()},
            )


def on_slo_clear(engine: Engine, dispatcher: Dispatcher | None, event: SloCleared) -> int | None:
    """Note the clear and mitigate, in a unit of its own (`cleared` is the reaction)."""
    return write(engine, dispatcher, lambda session, events: cleared(session, events, event))


def cleared(session: Session, events: Events, event: SloCleared) -> int | None:
    """The burn stayed below every threshold for the hold period: note it and mitigate."""
    incident = find_open(session, key=logic.slo_key(event.slo_id), slo_id=event.slo_id)
    if incident is None:
        return None
    note(
        session,
        incident,
        "burn_cleared",
        f"{event.slo_id} back within budget burn",
        actor="slo-engine",
        at=event.at,
    )
    if incident.status in (IncidentStatus.triggered, IncidentStatus.acknowledged):
        change_status(
            session,
            events,
            incident,
            IncidentStatus.mitigated,
            actor="slo-engine",
            now=event.at,
            reason="burn rate below every tier for the hold period",
        )
    return incident.id


def subscribe(dispatcher: Dispatcher, options: IncidentOptions) -> None:
    """The burn-rate door: an evaluation's breaches and clears change incidents in its own unit of work."""
    dispatcher.subscribe(
        SloBreached, lambda session, events, event: breached(session, events, event, options)
    )
    dispatcher.subscribe(SloCleared, lambda session, events, event: cleared(session, events, event))


def set_slack_message(engine: Engine, incident_id: int, channel: str, ts: str) -> None:
    write(engine, None, lambda session, events: record_slack_message(session, incident_id, channel, ts))


def record_slack_message(session: Session, incident_id: int, channel: str, ts: str) -> None:
    """Where the incident's Slack message is, in the caller's unit of work (the outbox's completion)."""
    incident = get(session, incident_id)
    incident.slack_channel, incident.slack_ts = channel, ts
    session.add(incident)


def has_timeline_marker(session: Session, incident_id: int, kind: str, marker: str) -> bool:
    """Whether a timeline event of `kind` already carries data.marker == marker (idempotent capture)."""
    return any(
        event.data.get("marker") == marker for event in timeline(session, incident_id) if event.kind == kind
    )


def find_by_slack_message(session: Session, channel: str, ts: str) -> Incident | None:
    return session.exec(
        select(Incident).where(Incident.slack_channel == channel, Incident.slack_ts == ts)
    ).first()


def as_dict(incident: Incident) -> dict[str, Any]:
    """Plain values of an incident row (status and severity as strings, as they are stored)."""
    return {column: getattr(incident, column) for column in Incident.model_fields}


def response_times(incident: Incident) -> dict[str, float | None]:
    """Detect, acknowledge, mitigate and resolve times (seconds) from the stored timestamps."""
    i = incident
    return logic.response_times(i.started_at, i.detected_at, i.acknowledged_at, i.mitigated_at, i.resolved_at)
