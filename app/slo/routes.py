"""HTTP routes for SLO status (read side; the scheduler writes it)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter

from app.api import ServicesDep, SessionDep
from app.ml import budget
from app.slo import service as slos

router = APIRouter(prefix="/slos", tags=["slos"])


@router.get("")
def list_slos(services: ServicesDep, session: SessionDep) -> list[dict[str, Any]]:
    """Every SLO with its latest stored evaluation (state `no_data` until the first cycle)."""
    return slos.latest_status(session, services.slo_engine.slos)


@router.get("/{slo_id}")
def get_slo(services: ServicesDep, session: SessionDep, slo_id: str) -> dict[str, Any]:
    """The SLO's latest stored evaluation, and the budget of its period spent by each model version
    (`budget_by_version`, read from Prometheus at most a minute ago; `available: false` with a `reason`
    when it cannot be)."""
    item = slos.latest_status(session, services.slo_engine.slos, slo_id)[0]
    engine = services.slo_engine
    spec = engine.by_id[item["id"]]
    found = services.budgets.get(
        spec.id,
        lambda: budget.for_slo(
            engine.prometheus, spec, services.config.models, datetime.now(UTC), engine.planned
        ),
    )
    return {**item, "budget_by_version": found.as_dict()}
