"""Registry change events: the only place `change_event` rows are written, and the alias history read.

`record` stores one webhook delivery in a unit of work (a retried delivery finds its row and changes
nothing), with the version the alias pointed at before (sloguard's own record: MLflow keeps none). A move
sloguard made itself (a rollback or promote through the MLflow alias target, already audited) is matched
to its action and carries its actor, so it is one change, not two. The unit announces `ModelChanged`;
the ml area's reaction writes it on the timeline of the model's open incidents in the same transaction.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db
from app.changes import logic
from app.changes.logic import ALIAS_DELETED, ALIAS_SET, AliasMove, RegistryEvent
from app.changes.models import ChangeEvent, ChangeRead
from app.config import FileConfig
from app.errors import Conflict
from app.events import ModelChanged
from app.rollback import aliases as rollbacks

if TYPE_CHECKING:
    from app.rollback.models import RollbackAction

# How far apart sloguard's confirm of a change and MLflow's announcement of it may be and still be one
# change (the announcement comes after the move; MLflow's clock may run a little ahead of sloguard's).
MATCH_BEFORE, MATCH_AFTER = timedelta(minutes=10), timedelta(minutes=1)
ALIAS_LOCK = sa.text("SELECT pg_advisory_xact_lock(hashtext(:key))")


def catalogue_name(config: FileConfig, registered_model: str) -> str:
    """The sloguard.yaml model registered under `registered_model` (the first by name when several
    are), else the registered model's own name."""
    for name in sorted(config.models):
        registry = config.models[name].registry
        if registry is not None and registry.name == registered_model:
            return name
    return registered_model


def environment_of(config: FileConfig, model: str, alias: str | None) -> str | None:
    """The environment whose alias this is (sloguard.yaml `registry.aliases`, or a target's own alias)."""
    model_config = config.models.get(model)
    if model_config is None or alias is None:
        return None
    if model_config.registry is not None:
        for environment, named in sorted(model_config.registry.aliases.items()):
            if named == alias:
                return environment
    for environment, env in sorted(model_config.environments.items()):
        if env.target is not None and env.target.alias == alias:
            return environment
    return None


@dataclass(frozen=True)
class Recorded:
    outcome: str  # recorded, duplicate
    change: ChangeEvent

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "change": as_read(self.change).model_dump(mode="json")}


def _last_alias_version(session: Session, registered_model: str, alias: str, at: datetime) -> str | None:
    last = session.exec(
        select(ChangeEvent)
        .where(ChangeEvent.registered_model == registered_model, ChangeEvent.alias == alias)
        .where(col(ChangeEvent.kind).in_((ALIAS_SET, ALIAS_DELETED)), col(ChangeEvent.at) <= at)
        .order_by(col(ChangeEvent.at).desc(), col(ChangeEvent.id).desc())
    ).first()
    return last.version if last is not None else None


def _correct_the_next(session: Session, row: ChangeEvent) -> None:
    """A delivery that arrives late (MLflow retried it) comes before a move already recorded: that move
    came from this one's version, not from the one sloguard knew then. sloguard's own moves keep theirs
    (the action's record of what it replaced)."""
    later = session.exec(
        select(ChangeEvent)
        .where(ChangeEvent.registered_model == row.registered_model, ChangeEvent.alias == row.alias)
        .where(col(ChangeEvent.kind).in_((ALIAS_SET, ALIAS_DELETED)), col(ChangeEvent.at) > row.at)
        .order_by(col(ChangeEvent.at), col(ChangeEvent.id))
    ).first()
    if later is not None and later.action_id is None and later.from_version != row.version:
        later.from_version = row.version
        session.add(later)


def _own_move(session: Session, config: FileConfig, event: RegistryEvent) -> RollbackAction | None:
    """sloguard's rollback or promote that made this alias move, unless another change already is it."""
    assert event.alias is not None and event.version is not None
    candidates = rollbacks.own_alias_moves(
        session, config, event.registered_model, event.alias, event.version, event.at - MATCH_BEFORE
    )
    ids = [a.id for a in candidates]
    if not ids:
        return None
    taken = set(session.exec(select(ChangeEvent.action_id).where(col(ChangeEvent.action_id).in_(ids))).all())
    for action in candidates:
        if (
            action.id not in taken
            and action.confirmed_at is not None
            and action.confirmed_at <= event.at + MATCH_AFTER
        ):
            return action
    return None


def record(
    engine: Engine,
    dispatcher: db.Reactor | None,
    config: FileConfig,
    delivery_id: str,
    body_digest: str,
    event: RegistryEvent,
) -> Recorded:
    """Store one delivery (once: a retry of it, same id and body, finds the row and changes nothing; the
    same id with another body is a Conflict) and announce it."""

    def unit(session: Session, events: db.Events) -> Recorded:
        if event.alias is not None and session.get_bind().dialect.name == "postgresql":
            # One alias's deliveries are recorded one at a time (MLflow delivers from a thread pool), so
            # each reads the one before it (SQLite's writes are one at a time anyway).
            session.execute(ALIAS_LOCK, {"key": f"{event.registered_model}/{event.alias}"})
        existing = session.exec(select(ChangeEvent).where(ChangeEvent.delivery_id == delivery_id)).first()
        if existing is not None:
            if existing.body_digest != body_digest:
                raise Conflict(f"delivery {delivery_id} was recorded with another body; nothing was changed")
            return Recorded("duplicate", existing)
        model = catalogue_name(config, event.registered_model)
        action = _own_move(session, config, event) if event.kind == ALIAS_SET else None
        previous = None
        if event.alias is not None:
            previous = (
                action.from_version
                if action is not None
                else _last_alias_version(session, event.registered_model, event.alias, event.at)
            )
        detail = dict(event.detail)
        if action is not None:
            detail |= {"kind": action.kind, "approver": action.approver, "reason": action.reason}
        row = ChangeEvent(
            delivery_id=delivery_id,
            body_digest=body_digest,
            kind=event.kind,
            registered_model=event.registered_model,
            model=model,
            environment=action.environment
            if action is not None
            else environment_of(config, model, event.alias),
            alias=event.alias,
            version=event.version,
            from_version=previous,
            at=event.at,
            action_id=action.id if action is not None else None,
            actor=action.actor if action is not None else None,
            detail=detail,
        )
        session.add(row)
        if event.alias is not None:
            _correct_the_next(session, row)
        session.flush()
        assert row.id is not None
        events.append(
            ModelChanged(
                change_id=row.id,
                kind=row.kind,
                registered_model=row.registered_model,
                model=row.model,
                text=text_of(row),
                at=row.at,
                environment=row.environment,
                alias=row.alias,
                version=row.version,
                from_version=row.from_version,
                action_id=row.action_id,
            )
        )
        return Recorded("recorded", row)

    return db.unit_of_work(engine, dispatcher, unit)


def text_of(row: ChangeEvent) -> str:
    text = logic.describe(row.kind, row.registered_model, row.alias, row.version, row.from_version)
    if row.action_id is not None:
        text += f": sloguard's {row.detail.get('kind', 'change')} {row.action_id} by {row.actor}"
    return text


def as_read(row: ChangeEvent) -> ChangeRead:
    return ChangeRead.model_validate({**row.model_dump(), "text": text_of(row)})


def history(session: Session, model: str, *, limit: int = 50, offset: int = 0) -> Sequence[ChangeEvent]:
    """A model's changes (by sloguard.yaml's name or the registered model's), newest first."""
    found: Sequence[ChangeEvent] = session.exec(
        select(ChangeEvent)
        .where(sa.or_(col(ChangeEvent.model) == model, col(ChangeEvent.registered_model) == model))
        .order_by(col(ChangeEvent.at).desc(), col(ChangeEvent.id).desc())
        .offset(offset)
        .limit(limit)
    ).all()
    return found


def alias_moves(
    session: Session, registered_model: str, alias: str, since: datetime, until: datetime
) -> list[AliasMove]:
    """The moves (and removals) of one alias between `since` and `until`, oldest first."""
    rows = session.exec(
        select(ChangeEvent)
        .where(ChangeEvent.registered_model == registered_model, ChangeEvent.alias == alias)
        .where(col(ChangeEvent.kind).in_((ALIAS_SET, ALIAS_DELETED)))
        .where(col(ChangeEvent.at) >= since, col(ChangeEvent.at) <= until)
        .order_by(col(ChangeEvent.at), col(ChangeEvent.id))
    ).all()
    return [AliasMove(row.id or 0, alias, row.version, row.from_version, row.at, row.actor) for row in rows]
