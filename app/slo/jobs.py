"""The scheduled SLO evaluation."""

from __future__ import annotations

import logging
from collections import Counter
from datetime import UTC, datetime
from typing import Any

from app.slo import service as slos

log = logging.getLogger(__name__)


def evaluate_slos(state: Any) -> None:
    """One evaluation cycle for the app whose `app.state` is given; never raises into the scheduler."""
    now = datetime.now(UTC)
    try:
        results = slos.run_cycle(state.slo_engine, state.engine, state.metrics, state.events, now)
    except Exception:
        log.exception("slo evaluation cycle failed")
        state.last_evaluation = {"at": now.isoformat(), "error": "cycle failed; see logs"}
        return
    counts = Counter(result.state.value for result in results)
    state.last_evaluation = {
        "at": now.isoformat(),
        "states": dict(sorted(counts.items())),
        "source_errors": sorted(
            {result.detail or "" for result in results if result.state == "source_error"}
        ),
    }
