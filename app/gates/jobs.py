"""The freeze watch: each evaluation cycle, whether each gated environment's promotions are frozen.

A freeze begins when an SLO of the environment has less budget left than `freeze_below`, and ends only
when every one is back above `unfreeze_above`, so a budget hovering at the threshold does not flap.
Each change is stored (`gate_freeze`) and announced once in the model's channel (an outbox effect, in
the same unit of work). A budget that is not known changes nothing.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from sqlmodel import Session, select

from app import db, outbox
from app.chat.notify import ANNOUNCE
from app.gates import service as gates
from app.gates.models import GateFreeze
from app.services import Services

log = logging.getLogger(__name__)


def watch_freezes(services: Services, now: datetime | None = None) -> int:
    """Judge every gated environment once; returns how many began or ended a freeze."""
    now = now or datetime.now(UTC)
    budgets = gates.stored_budgets(services.engine, services.settings.eval_interval, now)
    changed = 0
    for model, model_config in services.config.models.items():
        for name, env in model_config.environments.items():
            policy = env.gate
            if policy is None or policy.freeze_below is None or policy.unfreeze_above is None:
                continue
            mine = gates.environment_slos(services.slo_engine.slos, services.config, model, name)
            found = budgets(mine)
            known = [b.remaining for b in found if b.remaining is not None]
            if not found or len(known) < len(found):
                continue
            lowest = min(known)
            changed += _judge(services, model, name, lowest, policy.freeze_below, policy.unfreeze_above, now)
    return changed


def _judge(
    services: Services, model: str, environment: str, lowest: float, below: float, above: float, now: datetime
) -> int:
    def unit(session: Session, _events: db.Events) -> int:
        row = session.exec(
            select(GateFreeze).where(GateFreeze.model == model, GateFreeze.environment == environment)
        ).first()
        was = row.frozen if row is not None else False
        frozen = lowest < below if not was else lowest < above
        if row is not None and frozen == was:
            return 0
        if row is None:
            row = GateFreeze(model=model, environment=environment)
        row.frozen, row.changed_at, row.lowest = frozen, now, lowest
        session.add(row)
        if frozen == was:  # first look, not frozen: nothing to announce
            return 0
        text = (
            f"Release freeze: promotions of {model} into {environment} stop; its error budget is down to "
            f"{lowest:.1%} (< {below:.0%}). Rollbacks still go through; exceptions need a named person."
            if frozen
            else f"Release freeze over: {model} into {environment} may be promoted again; each of its SLOs "
            f"has more than {above:.0%} of its budget left (lowest {lowest:.1%})."
        )
        if ANNOUNCE in services.handlers:  # Slack is set up: else the change is stored, and logged below
            outbox.enqueue(session, ANNOUNCE, f"gate:{model}:{environment}", {"model": model, "text": text})
        return 1

    changed = db.unit_of_work(services.engine, None, unit)
    if changed:
        log.info(
            "release freeze changed", extra={"model": model, "environment": environment, "lowest": lowest}
        )
    return changed
