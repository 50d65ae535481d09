"""HTTP routes for SLO status (read side; the scheduler writes it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.api import ServicesDep, SessionDep
from app.slo import service as slos

router = APIRouter(prefix="/slos", tags=["slos"])


@router.get("")
def list_slos(services: ServicesDep, session: SessionDep) -> list[dict[str, Any]]:
    """Every SLO with its latest stored evaluation (state `no_data` until the first cycle)."""
    return slos.latest_status(session, services.slo_engine.slos)


@router.get("/{slo_id}")
def get_slo(services: ServicesDep, session: SessionDep, slo_id: str) -> dict[str, Any]:
    return slos.latest_status(session, services.slo_engine.slos, slo_id)[0]
