"""Guarded version changes: propose -> confirm -> execute -> verify, each step audited.

Propose resolves the versions and checks permission; confirm moves the action from `proposed` to
`confirmed` with a compare-and-set on its row (so two confirms execute once; any other confirm is a
no-op its caller is told about), then the target changes the version only if the one serving is still
the one proposed against. Verify watches the SLO's burn.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, outbox
from app.config import FileConfig, ModelConfig, ModelEnvironment
from app.db import utcnow
from app.errors import Conflict, Forbidden, NotFound
from app.events import Dispatcher
from app.identity.logic import Actor
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.ml import service as ml
from app.ml.models import ModelVersionLink
from app.rollback import logic
from app.rollback.models import AuditEvent, RollbackAction, RollbackRequest
from app.rollback.targets import Change, RollbackTarget, StaleVersion, TargetFailed
from app.rollback.targets.command import CommandTarget
from app.rollback.targets.http_webhook import HttpWebhookTarget
from app.rollback.targets.mlflow_alias import MlflowAliasTarget
from app.slo.burn import State
from app.telemetry import current_trace_id

log = logging.getLogger(__name__)
_locks: dict[tuple[str, str], threading.Lock] = {}
_locks_guard = threading.Lock()


@dataclass(frozen=True)
class RollbackFinished:
    action_id: int
    incident_id: int | None
    state: str
    text: str
    undo_to: str | None = None  # the version to go back to when the change did not help
    environment: str | None = None
    actor: str | None = None  # who made the change, or "sloguard" for its verification


def _lock(model: str, environment: str) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault((model, environment), threading.Lock())


@contextmanager
def target_lock(engine: Engine, model: str, environment: str) -> Iterator[None]:
    """One change at a time per model and environment: in this process (a thread lock) and, on
    PostgreSQL, across replicas (an advisory lock held for the whole change)."""
    with _lock(model, environment), db.advisory_lock(engine, f"target:{model}:{environment}"):
        yield


def environment_of(config: FileConfig, model: str, environment: str) -> tuple[ModelConfig, ModelEnvironment]:
    model_config = config.models.get(model)
    if model_config is None:
        raise NotFound(
            f"no model {model!r} in sloguard.yaml (known: {', '.join(sorted(config.models)) or 'none'})"
        )
    env = model_config.environments.get(environment)
    if env is None or env.target is None:
        known = ", ".join(sorted(k for k, v in model_config.environments.items() if v.target)) or "none"
        raise NotFound(f"{model} has no rollback target for {environment!r} (configured: {known})")
    return model_config, env


def build_target(
    model: str, model_config: ModelConfig, environment: str, env: ModelEnvironment, registry: Any
) -> RollbackTarget:
    target = env.target
    assert target is not None
    if target.kind == "mlflow_alias":
        if registry is None:
            raise NotFound("SLOGUARD_MLFLOW_URL is not set: the mlflow_alias target needs it")
        name = model_config.registry.name if model_config.registry else model
        alias = target.alias or (
            model_config.registry.aliases.get(environment) if model_config.registry else None
        )
        if not alias:
            raise NotFound(f"no MLflow alias configured for {model} in {environment}")
        return MlflowAliasTarget(registry, name, alias)
    if target.kind == "http_webhook":
        assert target.url is not None and target.secret_env is not None
        secret = os.environ.get(target.secret_env)
        if not secret:
            raise NotFound(f"{target.secret_env} is not set: the deploy hook's HMAC secret")
        return HttpWebhookTarget(str(target.url), secret, timeout=target.timeout, retries=target.retries)
    assert target.argv is not None
    return CommandTarget(target.argv, timeout=target.timeout)


def _audit(
    session: Session, action: RollbackAction, step: str, actor: Actor | str | None, result: str, **data: Any
) -> None:
    assert action.id is not None
    trace = current_trace_id()
    token_id = actor.token_id if isinstance(actor, Actor) else None
    name = incidents.name_of(actor)
    session.add(
        AuditEvent(
            action_id=action.id,
            step=step,
            actor=name,
            token_id=token_id,
            result=result,
            data=data,
            trace_id=trace,
        )
    )
    if action.incident_id is not None:
        incident = incidents.get(session, action.incident_id)
        incidents.note(
            session,
            incident,
            "rollback",
            result,
            actor=actor,
            data={"action_id": action.id, "step": step, **data},
        )


def _last_change(session: Session, model: str, environment: str) -> RollbackAction | None:
    return session.exec(
        select(RollbackAction)
        .where(RollbackAction.model == model, RollbackAction.environment == environment)
        .where(col(RollbackAction.state).in_(("succeeded", "verified", "not_recovered")))
        .order_by(col(RollbackAction.finished_at).desc())
    ).first()


def served_versions(session: Session, model: str, environment: str) -> tuple[set[str], str | None]:
    """The versions sloguard's own changes moved `model` in `environment` from or to, and the one its
    newest finished change left serving (None when it made none)."""
    done = session.exec(
        select(RollbackAction)
        .where(RollbackAction.model == model, RollbackAction.environment == environment)
        .where(col(RollbackAction.state).in_(("succeeded", "verified", "not_recovered")))
        .order_by(col(RollbackAction.id))
    ).all()
    versions = {v for action in done for v in (action.from_version, action.to_version) if v}
    return versions, (done[-1].to_version if done else None)


def _incident_version(session: Session, incident_id: int | None, role: str) -> str | None:
    if incident_id is None:
        return None
    link = session.exec(
        select(ModelVersionLink).where(
            ModelVersionLink.incident_id == incident_id, ModelVersionLink.role == role
        )
    ).first()
    return link.version if link else None


Gate = Callable[[str, str, str], str | None]  # (model, version, environment) -> why not, or None


class GateClosed(Conflict):
    """The environment's release gate does not allow this move (app/gates)."""


def propose(
    engine: Engine,
    config: FileConfig,
    registry: Any,
    request: RollbackRequest,
    actor: Actor | str,
    gate: Gate | None = None,
) -> RollbackAction:
    """Propose `request` as `actor` (authenticated by the door). A rollback named without an incident
    belongs to the model's open incident, if it has one: its commander, evidence and timeline apply.
    With `gate`, a move the environment's release gate does not allow is refused (GateClosed)."""
    model_config, env = environment_of(config, request.model, request.environment)
    target = build_target(request.model, model_config, request.environment, env, registry)
    try:
        return _propose(engine, config, env, target, request, Actor.of(actor), gate)
    finally:
        _close(target)


def _incident_of(
    session: Session, model: str, environment: str, incident_id: int | None
) -> tuple[Incident | None, tuple[int, str | None] | None]:
    """The incident a change belongs to (the one named, else the model's first open one) and the one
    whose commander governs it under `require_commander`: the model's first open incident in that
    environment (or naming none), so that declaring a newer incident, or naming another model's, never
    moves the command. A named incident must be about this model."""
    governing = incidents.first_open_for_model(session, model, environment)
    rule = (governing.id or 0, governing.commander) if governing is not None else None
    if incident_id is None:
        return governing, rule
    named = incidents.get(session, incident_id)
    if (named.model is not None and named.model != model) or named.environment not in (None, environment):
        raise Conflict(
            f"incident {incident_id} is about {named.model or 'no model'} in {named.environment or 'any'}"
            f" environment, not {model} in {environment}: name one of its incidents, or none"
        )
    return named, rule


def _close(target: RollbackTarget) -> None:
    close = getattr(target, "close", None)
    if close is not None and target.kind != "mlflow_alias":  # the registry client is shared
        close()


def _propose(
    engine: Engine,
    config: FileConfig,
    env: ModelEnvironment,
    target: RollbackTarget,
    request: RollbackRequest,
    actor: Actor,
    gate: Gate | None = None,
) -> RollbackAction:
    with Session(engine) as session:
        incident, rule = _incident_of(session, request.model, request.environment, request.incident_id)
        if incident is not None and request.incident_id is None:
            request = request.model_copy(update={"incident_id": incident.id})
        logic.check_permission(
            request.kind, actor.name, request.model, request.environment, env, config.groups
        )
        if not env.two_person:  # with two people, the commander may be either (checked at confirmation)
            logic.check_commander(request.kind, request.model, request.environment, env, rule, [actor.name])
        last = _last_change(session, request.model, request.environment)
        current = (
            target.current()
            or (last.to_version if last else None)
            or _incident_version(session, request.incident_id, "suspect")
        )
        to = request.to_version
        if to is None and request.kind == "rollback":
            to = _incident_version(session, request.incident_id, "previous_good") or (
                last.from_version if last else None
            )
    if to is None:
        known = ", ".join(target.candidates()) or "see the registry"
        raise Conflict(
            f"no previous good version of {request.model} is known: name one (`to VERSION`; {known})"
        )
    if to == current:
        raise Conflict(f"{request.model} in {request.environment} already serves version {to}")
    refused = gate(request.model, to, request.environment) if gate is not None else None
    if refused is not None:
        raise GateClosed(refused)
    key = logic.idempotency_key(
        request.kind, request.model, request.environment, current, to, request.incident_id
    )
    key += ":dry" if request.dry_run else ""

    def command(session: Session, events: db.Events) -> RollbackAction:
        same = session.exec(
            select(RollbackAction)
            .where(col(RollbackAction.idempotency_key).startswith(key))
            .order_by(col(RollbackAction.id))
        ).all()
        open_ones = [a for a in same if a.state in ("proposed", "confirmed", "executing")]
        if open_ones:
            return open_ones[-1]  # a double click, or the same change asked for again while it runs
        action = RollbackAction(
            idempotency_key=key if not same else f"{key}:{len(same)}",  # a retry after a failure
            kind=request.kind,
            incident_id=request.incident_id,
            model=request.model,
            environment=request.environment,
            target=target.kind,
            from_version=current,
            to_version=to,
            actor=actor.name,
            reason=request.reason,
            dry_run=request.dry_run,
        )
        session.add(action)
        session.flush()
        verb = "would" if request.dry_run else "proposes to"
        _audit(
            session,
            action,
            "proposed",
            actor,
            f"{actor.name} {verb} {request.kind} {request.model} in {request.environment}: {current} -> {to}",
        )
        return action

    return db.unit_of_work(engine, None, command)


def get(session: Session, action_id: int) -> RollbackAction:
    action = session.get(RollbackAction, action_id)
    if action is None:
        raise NotFound(f"rollback {action_id} not found")
    return action


@dataclass(frozen=True)
class Confirmation:
    action: RollbackAction  # as it stands after this confirm
    executed: bool  # True only for the one confirm that moved it out of `proposed` and ran the change


def confirm(
    engine: Engine,
    config: FileConfig,
    registry: Any,
    dispatcher: Dispatcher | None,
    action_id: int,
    actor: Actor | str,
) -> RollbackAction:
    """Confirm and execute once; the action afterwards. Doors use `confirm_change`, which also says
    whether this call was the one that executed it."""
    return confirm_change(engine, config, registry, dispatcher, action_id, actor).action


def confirm_change(
    engine: Engine,
    config: FileConfig,
    registry: Any,
    dispatcher: Dispatcher | None,
    action_id: int,
    actor: Actor | str,
    gate: Gate | None = None,
) -> Confirmation:
    """Confirm and execute once. A confirm of an action that is no longer `proposed` (a second click, a
    retried API call, two people at once) changes nothing and returns it as it is, `executed=False`: the
    caller must not announce the change or watch its burn again. The release gate is asked again (the
    budget may have fallen since the proposal)."""
    actor = Actor.of(actor)
    with Session(engine) as session:
        action = get(session, action_id)
        _, rule = _incident_of(session, action.model, action.environment, None)  # who commands now
    model_config, env = environment_of(config, action.model, action.environment)
    logic.check_permission(action.kind, actor.name, action.model, action.environment, env, config.groups)
    people = [action.actor, actor.name] if env.two_person else [actor.name]
    logic.check_commander(action.kind, action.model, action.environment, env, rule, people)
    if action.dry_run:
        raise Conflict(f"rollback {action_id} is a dry run: propose it again without --dry-run")
    if action.state != "proposed":
        return Confirmation(action, executed=False)  # before the two-person rule: "already done" is news
    if env.two_person and actor.name == action.actor:  # people, however many tokens each one holds
        raise Forbidden(
            f"{action.environment} needs a second person: someone other than <@{actor.name}> must confirm"
        )
    refused = gate(action.model, action.to_version, action.environment) if gate is not None else None
    if refused is not None:
        raise GateClosed(refused)
    target = build_target(action.model, model_config, action.environment, env, registry)
    now = utcnow()
    with engine.begin() as connection:  # compare-and-set: only one confirm moves proposed -> confirmed
        moved = connection.execute(
            sa.update(RollbackAction)
            .where(col(RollbackAction.id) == action_id, col(RollbackAction.state) == "proposed")
            .values(state="confirmed", approver=actor.name, confirmed_at=now)
        ).rowcount
    if moved != 1:  # another confirm won the race
        _close(target)
        with Session(engine) as session:
            return Confirmation(get(session, action_id), executed=False)
    change = Change(
        action.model,
        action.environment,
        action.from_version,
        action.to_version,
        action.actor,
        action.reason or "rollback from sloguard",
        action.incident_id,
        action.idempotency_key,
    )
    return Confirmation(_execute(engine, dispatcher, target, action, change, actor), executed=True)


def _execute(
    engine: Engine,
    dispatcher: Dispatcher | None,
    target: RollbackTarget,
    action: RollbackAction,
    change: Change,
    actor: Actor,
) -> RollbackAction:
    assert action.id is not None
    action_id = action.id
    with target_lock(engine, action.model, action.environment):
        _set_state(
            engine,
            action_id,
            "executing",
            actor,
            f"{actor.name} confirmed; changing {action.model} in {action.environment}",
        )
        try:
            _check_recorded_version(engine, target, action)
            result = target.set_version(change)
        except StaleVersion as exc:
            return _finish(engine, dispatcher, action_id, "failed", actor, f"refused: {exc}", exc.output)
        except TargetFailed as exc:
            return _finish(engine, dispatcher, action_id, "failed", actor, f"failed: {exc}", exc.output)
        except Exception as exc:  # never leave an action stuck in `executing`
            log.exception("rollback target crashed", extra={"action_id": action_id})
            return _finish(
                engine, dispatcher, action_id, "failed", actor, f"failed: {type(exc).__name__}: {exc}", ""
            )
        finally:
            _close(target)
        # Recorded before the lock is let go: the next change of this target (on any replica) must find
        # this one in sloguard's record when it compares what serves.
        text = (
            f"{action.model} in {action.environment} now serves version {action.to_version} "
            f"(was {action.from_version})"
        )
        return _finish(engine, dispatcher, action_id, "succeeded", actor, text, result.output)


def _check_recorded_version(engine: Engine, target: RollbackTarget, action: RollbackAction) -> None:
    """Compare-and-set for targets that cannot say what serves (deploy hooks, commands): sloguard's own
    record of the last change must still show the version this action was proposed against."""
    if target.current() is not None:
        return  # the target checks itself (MLflow alias)
    with Session(engine) as session:
        last = _last_change(session, action.model, action.environment)
    if last is not None and last.id != action.id and action.from_version != last.to_version:
        raise StaleVersion(
            f"since this was proposed, change {last.id} moved {action.model} in {action.environment} "
            f"to {last.to_version}: propose again"
        )


def _set_state(engine: Engine, action_id: int, state: str, actor: Actor | None, text: str) -> None:
    def command(session: Session, events: db.Events) -> None:
        action = get(session, action_id)
        action.state = state
        session.add(action)
        _audit(session, action, state, actor, text)

    db.unit_of_work(engine, None, command)


def _finish(
    engine: Engine,
    dispatcher: Dispatcher | None,
    action_id: int,
    state: str,
    actor: Actor | str | None,
    text: str,
    output: str,
) -> RollbackAction:
    def command(session: Session, events: db.Events) -> RollbackAction:
        action = get(session, action_id)
        action.state, action.output, action.finished_at = state, output, utcnow()
        session.add(action)
        _audit(session, action, state, actor, text, output=output[-2000:])
        if state == "succeeded" and action.incident_id is not None:
            ml.record_change(  # the ml area owns model_version_link
                session,
                action.incident_id,
                model=action.model,
                version=action.to_version,
                role="rolled_back_to" if action.kind == "rollback" else "promoted_to",
                source="registry" if action.target == "mlflow_alias" else action.target,
                at=action.finished_at,
                detail={"action_id": action.id, "from": action.from_version},
            )
        events.append(
            RollbackFinished(action_id, action.incident_id, state, text, actor=incidents.name_of(actor))
        )
        return action

    return db.unit_of_work(engine, dispatcher, command)


def verify(
    engine: Engine, slo_engine: Any, dispatcher: Dispatcher | None, action_id: int, at: datetime
) -> RollbackAction:
    """Did the burn stop? Judged now and recorded (the outbox's `rollback.verify` does the same when the
    change's watch time is over)."""
    state, text, figures = judge(engine, slo_engine, action_id, at)
    return db.unit_of_work(
        engine,
        dispatcher,
        lambda session, events: record_verification(session, events, action_id, state, text, figures),
    )


def judge(engine: Engine, slo_engine: Any, action_id: int, at: datetime) -> tuple[str, str, dict[str, Any]]:
    """The page tiers' short windows must be back under their thresholds: (state, text, figures), read
    from the SLO's source and stored nowhere."""
    with Session(engine) as session:
        action = get(session, action_id)
        slo_id = incidents.get(session, action.incident_id).slo_id if action.incident_id else None
    if action.state != "succeeded":
        raise Conflict(f"rollback {action_id} is {action.state}; only a succeeded change is verified")
    slo = slo_engine.by_id.get(slo_id) if slo_id else None
    if slo is None:
        return "verified", "no SLO linked to the incident: nothing to watch", {}
    from app.slo.service import SloEngine

    (result,) = SloEngine(
        [slo], slo_engine.prometheus, slo_engine.elasticsearch, slo_engine.options, slo_engine.planned
    ).evaluate(at, remember=False)
    if result.evaluation is None:
        return "not_recovered", f"cannot tell: {result.detail}", {}
    figures: dict[str, dict[str, float | None]] = {}
    recovered = True
    for tier in slo.tiers:
        if tier.severity != State.page:
            continue
        short = result.evaluation.windows.get(tier.short.name)
        burn = short.burn_rate if short else None
        # Two page tiers may share a short window (periods of a few days); the lower threshold counts.
        threshold = min(tier.factor, figures.get(tier.short.name, {}).get("threshold", tier.factor))
        figures[tier.short.name] = {"burn_rate": burn, "threshold": threshold}
        if burn is None or burn >= tier.factor:
            recovered = False
    described = ", ".join(
        f"{w} burn {f['burn_rate']:.2f} (page at {f['threshold']:g})"
        if f["burn_rate"] is not None
        else f"{w} no data"
        for w, f in figures.items()
    )
    state = "verified" if recovered else "not_recovered"
    outcome = "recovered" if recovered else "not recovered"
    return state, f"{outcome} after the change to {action.to_version}: {described}", figures


def record_verification(
    session: Session,
    events: db.Events,
    action_id: int,
    state: str,
    text: str,
    figures: dict[str, Any],
) -> RollbackAction:
    action = session.get(RollbackAction, action_id, with_for_update=True, populate_existing=True)
    if action is None:
        raise NotFound(f"rollback {action_id} not found")
    if action.state != "succeeded":
        return action  # verified already
    action.state, action.verification = state, {"text": text, "figures": figures}
    session.add(action)
    _audit(session, action, state, "sloguard", text, figures=figures)
    undo = action.from_version if state == "not_recovered" and figures else None  # "cannot tell": no undo
    if state == "verified" and figures and action.incident_id is not None and action.finished_at:
        # The burn stopped: the incident was mitigated when the change succeeded.
        incidents.recovered_by_change(session, events, action.incident_id, action.finished_at, utcnow(), text)
    events.append(
        RollbackFinished(action_id, action.incident_id, state, text, undo, action.environment, "sloguard")
    )
    return action


def audit_trail(session: Session, action_id: int) -> list[AuditEvent]:
    return list(
        session.exec(select(AuditEvent).where(AuditEvent.action_id == action_id).order_by(col(AuditEvent.id)))
    )


VERIFY = "rollback.verify"


def subscribe(dispatcher: Dispatcher, config: FileConfig) -> None:
    """A change that succeeded is verified once its watch time (`verify_for`) is over: an outbox row,
    due then, written in the unit of work that recorded the success. Any replica delivers it, so a change
    whose replica stopped meanwhile is still verified and announced."""

    def finished(session: Session, events: db.Events, event: RollbackFinished) -> None:
        if event.state != "succeeded":
            return
        action = get(session, event.action_id)
        env = config.models.get(action.model, ModelConfig()).environments.get(action.environment)
        watch = env.verify_for if env is not None else 600.0
        due = (action.finished_at or utcnow()) + timedelta(seconds=watch)
        outbox.enqueue(
            session,
            VERIFY,
            f"rollback:{event.action_id}",
            {"action_id": event.action_id},
            incident_id=event.incident_id,
            not_before=due,
        )

    dispatcher.subscribe(RollbackFinished, finished)


def backfill(session: Session, config: FileConfig) -> int:
    """A verification for every succeeded change that has none waiting: changes made before the outbox
    existed (an upgrade; their in-process timers died with the old version). Run when a replica starts."""
    waiting = select(outbox.OutboxRow.payload).where(col(outbox.OutboxRow.kind) == VERIFY)
    planned = {int(payload.get("action_id", 0)) for payload in session.exec(waiting).all()}
    added = 0
    for action in session.exec(select(RollbackAction).where(RollbackAction.state == "succeeded")).all():
        if action.id is None or action.id in planned:
            continue
        env = config.models.get(action.model, ModelConfig()).environments.get(action.environment)
        watch = env.verify_for if env is not None else 600.0
        due = (action.finished_at or utcnow()) + timedelta(seconds=watch)
        group = f"rollback:{action.id}"
        outbox.enqueue(
            session, VERIFY, group, {"action_id": action.id}, incident_id=action.incident_id, not_before=due
        )
        added += 1
    return added


class Verifier:
    """The outbox handler of `rollback.verify`: judges the burn from the SLO's source, then records the
    verdict (and its announcement) in the transaction that marks the row delivered."""

    def __init__(self, engine: Engine, slo_engine: Any) -> None:
        self.engine, self.slo_engine = engine, slo_engine

    def handlers(self) -> dict[str, outbox.Handler]:
        return {VERIFY: self.deliver}

    def deliver(self, effect: outbox.Effect) -> outbox.Completion | None:
        action_id = int(effect.payload["action_id"])
        try:
            state, text, figures = judge(self.engine, self.slo_engine, action_id, utcnow())
        except Conflict:
            return None  # verified already (by hand)

        def record(session: Session, events: db.Events) -> None:
            record_verification(session, events, action_id, state, text, figures)

        return record
