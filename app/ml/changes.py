"""Registry changes as evidence: on the timeline of the model's open incidents, and as the suspect when
the metrics carry no version label (the alias's last move before the impact began)."""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import db, durations
from app.changes.logic import suspect_move
from app.config import FileConfig, ModelConfig
from app.events import Dispatcher, IncidentNoted, ModelChanged
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.ml.models import ModelVersionLink
from app.rollback.models import RollbackAction

if TYPE_CHECKING:
    from app.ml.service import Findings

REGISTRY = "mlflow"  # the actor of a change the registry announced (MLflow's payload names nobody)


def subscribe(dispatcher: Dispatcher, config: FileConfig) -> None:
    """A change the registry announced goes on the timeline of each open incident of that model (in its
    environment, or naming none), in the unit of work that stored it; sloguard's own move goes on every
    one but the incident its rollback belongs to (whose timeline has that rollback's steps)."""
    from app.ml.service import model_for

    def changed(session: Session, events: db.Events, event: ModelChanged) -> None:
        if event.model not in config.models:
            return
        # sloguard's own move is on its incident's timeline already, as that rollback's steps.
        own = session.get(RollbackAction, event.action_id) if event.action_id is not None else None
        for incident in incidents.list_incidents(session, open_only=True, limit=1000):
            if own is not None and own.incident_id == incident.id:
                continue
            match = model_for(incident, config.models)
            if match is None or match[0] != event.model:
                continue
            if event.environment and incident.environment not in (None, event.environment):
                continue
            assert incident.id is not None
            data = {
                "change_id": event.change_id,
                "registered_model": event.registered_model,
                "alias": event.alias,
                "version": event.version,
                "from_version": event.from_version,
            }
            actor = own.actor if own is not None else REGISTRY
            incidents.note(
                session, incident, "registry_change", event.text, actor=actor, at=event.at, data=data
            )
            events.append(IncidentNoted(incident.id, event.text, actor, redraw=True))

    dispatcher.subscribe(ModelChanged, changed)


def registry_suspect(
    engine: Engine, incident: Incident, name: str, config: ModelConfig, found: Findings
) -> None:
    """When no version label was seen in the metrics: the alias's last move before the impact began, from
    sloguard's alias history, makes the version it moved to the suspect and the one before it the
    previous good one."""
    from app.changes import service as changes

    if config.registry is None or any(
        v.source == "prometheus" and v.role == "serving" for v in found.versions
    ):
        return  # the metrics name the versions: their verdict stands
    environment = incident.environment or "prod"
    alias = config.registry.aliases.get(environment)
    if alias is None:
        return
    lookback = timedelta(seconds=config.lookback)
    began = incident.started_at
    with Session(engine) as session:
        moves = changes.alias_moves(session, config.registry.name, alias, began - lookback, began)
    move = suspect_move(moves, began, lookback)
    if move is None:
        found.notes.append(
            (
                "evidence",
                f"no version seen in the metrics, and alias {alias} of {config.registry.name} did not move "
                f"in the {durations.format_prometheus(int(config.lookback))} before the impact began",
                {"alias": alias},
            )
        )
        return
    assert move.version is not None
    minutes = (began - move.at).total_seconds() / 60
    reason = (
        f"alias {alias} of {config.registry.name} moved to version {move.version} {minutes:.0f} min before "
        "the impact began (no version was seen in the metrics)"
    )
    detail = {"alias": alias, "change_id": move.change_id, "reason": reason, "actor": move.actor}
    links = [("suspect", move.version)] + ([("previous_good", move.previous)] if move.previous else [])
    for role, version in links:
        found.versions.append(
            ModelVersionLink(
                incident_id=incident.id or 0,
                model=name,
                version=version,
                role=role,
                source="registry",
                first_seen=move.at if role == "suspect" else None,
                detail=detail,
            )
        )
    text = f"alias {alias} of {config.registry.name} moved to version {move.version} (the likely suspect)"
    data = {"at": move.at.isoformat(), "version": move.version, "model": name, "change_id": move.change_id}
    found.notes.append(("deploy", text, data))
    found.notes.append(("evidence", reason, {"change_id": move.change_id}))
