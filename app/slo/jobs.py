"""The scheduled SLO evaluation."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from app.slo import service as slos

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)


def evaluate_slos(services: Services) -> None:
    """One evaluation cycle; what it saw goes to `services.last_evaluation` (for /readyz). Never raises
    into the scheduler."""
    now = datetime.now(UTC)
    try:
        results = slos.run_cycle(services.slo_engine, services.engine, services.metrics, services.events, now)
    except Exception:
        log.exception("slo evaluation cycle failed")
        services.last_evaluation = {"at": now.isoformat(), "error": "cycle failed; see logs"}
        return
    counts = Counter(result.state.value for result in results)
    services.last_evaluation = {
        "at": now.isoformat(),
        "states": dict(sorted(counts.items())),
        "source_errors": sorted(
            {result.detail or "" for result in results if result.state == "source_error"}
        ),
    }
