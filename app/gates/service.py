"""Release gates: the facts a decision needs, read from what sloguard stores and from Prometheus, and
the exceptions people grant. The decision itself is app/gates/logic.py.

Facts:
- the environment's SLOs (its `slos:` list in sloguard.yaml, and SLOs labelled `environment: E` of the
  model) and each one's budget left, as the newest evaluation stored it (a running sloguard) or as a
  fresh evaluation gives it (`sloguard gate` on its own);
- the page-level incidents open on them;
- whether the version served in the environment before (sloguard's own changes, and the environment's
  traffic over 30 days): then the move is a rollback, never blocked;
- the soak in the environment below: how long the version has served there, and its failed and total
  requests over the soak, summed from the model's version-labelled counters;
- an exception granted for this move.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, durations, promql_build
from app.config import FileConfig, ModelConfig, ModelEnvironment
from app.errors import Forbidden, NotFound, SourceError
from app.gates import logic
from app.gates.models import GateException, GateFreeze
from app.gates.policy import GatePolicy
from app.identity.logic import Actor
from app.incidents import service as incidents
from app.incidents.models import Severity
from app.ml import traffic
from app.rollback import logic as rollback_logic
from app.rollback import service as rollbacks
from app.rollback.models import RollbackAction, RollbackRequest
from app.slo.model import RawSli, Slo

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
SERVED_LOOKBACK = 30 * 86400  # a version that served in the environment within this is a rollback target
BudgetsOf = Callable[[Sequence[Slo]], list[logic.Budget]]


def environment_of(config: FileConfig, model: str, environment: str) -> tuple[ModelConfig, ModelEnvironment]:
    found = config.models.get(model)
    if found is None:
        raise NotFound(f"model: {model!r} is not in sloguard.yaml `models:`")
    env = found.environments.get(environment)
    if env is None:
        known = ", ".join(found.environments) or "none"
        raise NotFound(f"to: {model} has no environment {environment!r} in sloguard.yaml (it has {known})")
    return found, env


def environment_slos(slos: Sequence[Slo], config: FileConfig, model: str, environment: str) -> list[Slo]:
    """The SLOs that make up `environment`'s budget for `model`."""
    model_config, env = environment_of(config, model, environment)
    return [
        slo
        for slo in slos
        if slo.id in env.slos
        or (
            slo.labels.get("environment") == environment
            and (slo.model == model or slo.id in model_config.slos)
        )
    ]


def stored_budgets(engine: Engine, eval_interval: float, now: datetime) -> BudgetsOf:
    """Budgets as a running sloguard last evaluated them; too old an evaluation is not known."""
    from app.slo import service as slo_service

    def read(slos: Sequence[Slo]) -> list[logic.Budget]:
        with Session(engine) as session:
            rows = slo_service.latest_status(session, slos) if slos else []
        found = []
        stale = now - timedelta(seconds=max(3 * eval_interval, 300))
        for row in rows:
            at = row["evaluated_at"]
            moment = datetime.fromisoformat(at.replace("Z", "+00:00")) if at else None
            remaining = row["budget_remaining"]
            detail = f"{row['state']}: {row['detail']}" if remaining is None else ""
            if moment is None or moment < stale:
                remaining, detail = None, f"last evaluated {at or 'never'}"
            found.append(logic.Budget(row["id"], remaining, detail))
        return found

    return read


def evaluated_budgets(slo_engine: Any, now: datetime) -> BudgetsOf:
    """Budgets from a fresh evaluation (`sloguard gate` without a running sloguard)."""

    def read(slos: Sequence[Slo]) -> list[logic.Budget]:
        wanted = {slo.id for slo in slos}
        results = [r for r in slo_engine.evaluate(now, remember=False) if r.slo.id in wanted]
        found = []
        for result in results:
            evaluation = result.evaluation
            remaining = evaluation.budget_remaining if evaluation is not None else None
            found.append(
                logic.Budget(result.slo.id, remaining, "" if remaining is not None else str(result.detail))
            )
        return found

    return read


def page_incidents(session: Session, slo_ids: Sequence[str], page_severity: str | None) -> list[int]:
    if page_severity is None:
        return []
    ranked = incidents.rank(Severity(page_severity))
    found: list[int] = []
    for slo_id in slo_ids:
        for incident in incidents.list_incidents(session, open_only=True, slo_id=slo_id, limit=50):
            if incidents.rank(Severity(incident.severity)) >= ranked and incident.id is not None:
                found.append(incident.id)
    return sorted(set(found))


def _sum(prometheus: Any, query: str, at: datetime) -> float:
    result = prometheus.query(query, at=at)
    values = [float(series["value"][1]) for series in result]
    return sum(v for v in values if math.isfinite(v))


def served_there(
    prometheus: Any, config: ModelConfig, env: ModelEnvironment, version: str, now: datetime
) -> bool:
    """Whether `version` served in the environment before, over the last SERVED_LOOKBACK: it had traffic
    there, and another version arrived after it. The newest arrival is a promotion still under way (a
    canary taking part of the traffic), not a version to go back to. One range query, a point every 5
    minutes (30 days: 8,640 points, under Prometheus' 11,000)."""
    label = config.version_label
    series = traffic.requests(config, env.selector, promql_build.match(label, "", "!="))
    start = now - timedelta(seconds=SERVED_LOOKBACK)
    steps = prometheus.query_range(promql_build.aggregate("count", series, by=(label,)), start, now, 300)
    first = {s["metric"].get(label): float(s["values"][0][0]) for s in steps if s["values"]}
    return version in first and any(t > first[version] for v, t in first.items() if v != version)


def read_soak(
    prometheus: Any,
    config: ModelConfig,
    below: ModelEnvironment,
    policy: GatePolicy,
    version: str,
    allowed: float | None,
    quality: Slo | None,
    now: datetime,
) -> logic.Soak:
    soak = policy.soak
    assert soak is not None
    name = soak.from_environment
    if prometheus is None:
        return logic.Soak(name, None, None, None, allowed or 0.0, problem="no Prometheus")
    if allowed is None:
        return logic.Soak(
            name,
            None,
            None,
            None,
            0.0,
            problem="no error ratio to hold it to: set soak.max_error_ratio or give the environment an SLO",
        )
    label = config.version_label
    everything = traffic.requests(config, below.selector)
    labelled = traffic.requests(config, below.selector, promql_build.match(label, "", "!="))
    # Series over the whole soak, not only those an instant selector sees (a sample in the last 5
    # minutes): the environment below may have gone quiet since (scaled down after the soak, a scrape gap).
    span = durations.format_prometheus(int(soak.duration))
    everything = promql_build.over_time("last_over_time", everything, span)
    labelled = promql_build.over_time("last_over_time", labelled, span)
    try:
        seen = _sum(prometheus, f"count({everything})", now)
        if seen > 0 and _sum(prometheus, f"count({labelled})", now) == 0:
            return logic.Soak(name, None, None, None, allowed, version_label=False)
        only = promql_build.match(label, version)
        series = traffic.requests(config, below.selector, only)
        step = max(60, math.ceil(soak.duration / 250 / 60) * 60)
        start = now - timedelta(seconds=soak.duration + step)
        serving = traffic.served(
            prometheus,
            lambda window: promql_build.total(promql_build.increase(series, window)),
            start,
            now,
            step,
        )
        served = (now - serving[0]).total_seconds() if serving is not None else 0.0
        window = durations.format_prometheus(max(60, int(min(max(served, 60), soak.duration))))
        failing = traffic.requests(config, below.selector, only, config.error_selector)
        bad = _sum(prometheus, promql_build.total(promql_build.increase(failing, window)), now)
        total = _sum(prometheus, promql_build.total(promql_build.increase(series, window)), now)
        judged = None
        if quality is not None:
            judged = (quality.id, _quality_ratio(prometheus, quality, soak.duration, now), quality.budget)
    except SourceError as exc:
        return logic.Soak(name, None, None, None, allowed, problem=str(exc))
    return logic.Soak(name, min(served, soak.duration + step), bad, total, allowed, quality=judged)


def _quality_ratio(prometheus: Any, slo: Slo, seconds: float, now: datetime) -> float | None:
    sli = slo.prometheus_sli
    if sli is None:
        return None
    window = durations.format_prometheus(int(seconds))
    query = sli.ratio_for(window) if isinstance(sli, RawSli) else sli.error_ratio(window)
    result = prometheus.query(query, at=now)
    values = [float(s["value"][1]) for s in result]
    return values[0] if values and math.isfinite(values[0]) else None


def frozen_now(session: Session, model: str, environment: str) -> bool | None:
    """The freeze state the watch last stored (app/gates/jobs.py), None before its first look."""
    row = session.exec(
        select(GateFreeze).where(GateFreeze.model == model, GateFreeze.environment == environment)
    ).first()
    return row.frozen if row is not None else None


def active_exception(
    session: Session, model: str, version: str, environment: str, now: datetime
) -> tuple[str, str] | None:
    rows = session.exec(
        select(GateException)
        .where(GateException.model == model, GateException.version == version)
        .where(GateException.environment == environment, col(GateException.state) == "granted")
        .where(col(GateException.expires_at) > now)
        .order_by(col(GateException.id).desc())
    ).all()
    if not rows:
        return None
    row = rows[0]
    who = row.granted_by + (f" and {row.confirmed_by}" if row.confirmed_by else "")
    return who, row.reason


def check(
    engine: Engine,
    config: FileConfig,
    slos: Sequence[Slo],
    prometheus: Any,
    budgets: BudgetsOf,
    page_severity: str | None,
    *,
    model: str,
    version: str,
    environment: str,
    now: datetime,
) -> logic.Decision:
    model_config, env = environment_of(config, model, environment)
    policy = env.gate
    mine = environment_slos(slos, config, model, environment)
    with Session(engine) as session:
        served, current = rollbacks.served_versions(session, model, environment)
        exception = active_exception(session, model, version, environment, now)
        paging = page_incidents(session, [s.id for s in mine], page_severity)
        frozen = frozen_now(session, model, environment)
    served_before = version in served and version != current
    if not served_before and prometheus is not None and version != current:
        try:
            served_before = served_there(prometheus, model_config, env, version, now)
        except SourceError as exc:
            log.warning("gate: traffic history unavailable", extra={"model": model, "error": str(exc)})
    soak = None
    if policy is not None and policy.soak is not None and not served_before:
        below_name = policy.soak.from_environment
        below = model_config.environments.get(below_name) or ModelEnvironment()
        allowed = policy.soak.max_error_ratio
        if allowed is None and mine:
            allowed = min(slo.budget for slo in mine)
        named = policy.soak.quality_slo
        quality = next((s for s in slos if s.id == named), None) if named else None
        if named and quality is None:  # a quality SLO that is not there must not pass unjudged
            problem = f"its quality_slo {named!r} is not an SLO sloguard has loaded"
            soak = logic.Soak(below_name, None, None, None, allowed or 0.0, problem=problem)
        else:
            soak = read_soak(prometheus, model_config, below, policy, version, allowed, quality, now)
    facts = logic.Facts(
        model=model,
        version=version,
        environment=environment,
        current=current,
        served_before=served_before,
        budgets=budgets(mine)
        if policy is not None and policy.freeze_below is not None and not served_before
        else (),
        page_incidents=paging,
        soak=soak,
        exception=exception,
        frozen=frozen,
    )
    return logic.decide(facts, policy)


# ---------------------------------------------------------------- exceptions


def grant(
    engine: Engine,
    config: FileConfig,
    *,
    model: str,
    version: str,
    environment: str,
    reason: str,
    lifetime: float,
    actor: Actor,
    now: datetime,
) -> GateException:
    """An exception for this one move, by a person the environment's gate names (audited: the row is
    kept, with who granted and who confirmed it). With `two_person`, it holds once a second one confirms."""
    _, env = environment_of(config, model, environment)
    allowed = env.gate.exceptions if env.gate is not None else None
    if allowed is None or actor.name not in rollback_logic.members(allowed.by, config.groups):
        who = rollback_logic.describe(allowed.by if allowed else [], config.groups)
        raise Forbidden(f"you may not grant a gate exception for {model} in {environment}; ask {who}")
    if not reason.strip():
        raise Forbidden("reason: an exception needs a reason")

    def unit(session: Session, _events: db.Events) -> GateException:
        row = GateException(
            model=model,
            version=version,
            environment=environment,
            reason=reason.strip(),
            granted_by=actor.name,
            token_id=actor.token_id,
            state="proposed" if allowed.two_person else "granted",
            created_at=now,
            expires_at=now + timedelta(seconds=lifetime),
        )
        session.add(row)
        session.flush()
        return row

    row = db.unit_of_work(engine, None, unit)
    log.info(
        "gate exception",
        extra={"model": model, "version": version, "environment": environment, "by": actor.name},
    )
    return row


def confirm_exception(
    engine: Engine, config: FileConfig, exception_id: int, actor: Actor, now: datetime
) -> GateException:
    def unit(session: Session, _events: db.Events) -> GateException:
        row = session.get(GateException, exception_id)
        if row is None:
            raise NotFound(f"gate exception {exception_id} not found")
        _, env = environment_of(config, row.model, row.environment)
        allowed = env.gate.exceptions if env.gate is not None else None
        if allowed is None or actor.name not in rollback_logic.members(allowed.by, config.groups):
            raise Forbidden("you may not confirm this gate exception")
        if actor.name == row.granted_by:
            raise Forbidden("a second person confirms an exception: not the one who asked for it")
        session.execute(
            sa.update(GateException)
            .where(col(GateException.id) == exception_id, col(GateException.state) == "proposed")
            .values(state="granted", confirmed_by=actor.name)
        )
        session.expire_all()
        found = session.get(GateException, exception_id)
        assert found is not None
        return found

    return db.unit_of_work(engine, None, unit)


def exceptions(session: Session, model: str | None = None) -> list[GateException]:
    query = select(GateException).order_by(col(GateException.id).desc()).limit(200)
    if model is not None:
        query = query.where(GateException.model == model)
    return list(session.exec(query).all())


def decide_now(
    services: Services, *, model: str, version: str, environment: str, now: datetime, fresh: bool = False
) -> logic.Decision:
    """The gate's decision with a service's sources: the budgets as last stored (a running sloguard), or
    from a fresh evaluation (`fresh`: the CLI on its own)."""
    slo_engine = services.slo_engine
    settings = services.settings
    budgets = (
        evaluated_budgets(slo_engine, now)
        if fresh
        else stored_budgets(services.engine, settings.eval_interval, now)
    )
    return check(
        services.engine,
        services.config,
        slo_engine.slos,
        slo_engine.prometheus,
        budgets,
        services.config.incidents.severity.get("page"),
        model=model,
        version=version,
        environment=environment,
        now=now,
    )


def refusal(decision: logic.Decision, model: str, version: str, environment: str) -> str:
    """Why a change is refused, for a Slack reply, a console page or an API error."""
    held = [r.text for r in decision.reasons if r.verdict != logic.Verdict.allowed]
    verb = "is blocked" if decision.verdict == logic.Verdict.blocked else "could not be decided"
    return f"the release gate for {model} {version} into {environment} {verb}: " + "; ".join(held)


Guard = Callable[[str, str, str], str | None]


def guard(services: Services) -> Guard:
    """What the rollback service asks before a change (app/rollback/service.propose, confirm_change):
    None when the gate allows the move, else why not. Rollbacks to a version that served there before
    pass; so does every move into an environment without a gate."""

    def ask(model: str, version: str, environment: str) -> str | None:
        env = services.config.models.get(model)
        if env is None or environment not in env.environments or env.environments[environment].gate is None:
            return None
        decision = decide_now(
            services, model=model, version=version, environment=environment, now=datetime.now(UTC)
        )
        if decision.verdict == logic.Verdict.allowed:
            return None
        return refusal(decision, model, version, environment)

    return ask


def propose(services: Services, request: RollbackRequest, actor: Actor) -> RollbackAction:
    """Every door's proposal (Slack, the API, the console): the rollback service's, through the gate."""
    return rollbacks.propose(
        services.engine, services.config, services.sources.mlflow, request, actor, guard(services)
    )


def confirm(services: Services, action_id: int, actor: Actor) -> rollbacks.Confirmation:
    """Every door's confirmation, the gate asked again (the budget may have fallen since the proposal)."""
    return rollbacks.confirm_change(
        services.engine,
        services.config,
        services.sources.mlflow,
        services.events,
        action_id,
        actor,
        guard(services),
    )
