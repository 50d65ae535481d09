"""What planned windows (app/planned) take out of an SLO's evaluation: the planned time inside the windows
it reads, and the events (or, for a raw ratio, the time) inside it, asked of Prometheus per overlap."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from app.planned import windows as planned_windows
from app.planned.windows import PlannedWindow
from app.slo import queries
from app.slo.model import Slo

Spans = list[tuple[datetime, datetime]]


def spans(planned: Sequence[PlannedWindow], slo: Slo, at: datetime) -> Spans:
    """The planned time inside the longest stretch this SLO's evaluation at `at` reads."""
    windows = planned_windows.for_slo(planned, slo.id, slo.service, slo.model)
    if not windows:
        return []
    longest = max(seconds for _, seconds in queries.measured_windows(slo, at))
    return planned_windows.overlaps(windows, at - timedelta(seconds=longest), at)


def states(planned: Sequence[PlannedWindow], slos: Sequence[Slo], at: datetime) -> list[tuple[str, bool]]:
    """(SLO, on) for each SLO a planned window names: sloguard_planned_window_active."""
    found = []
    for slo in slos:
        windows = planned_windows.for_slo(planned, slo.id, slo.service, slo.model)
        if windows:
            found.append((slo.id, bool(planned_windows.held(windows, at))))
    return found


def excluded(
    slo: Slo, at: datetime, planned_spans: Spans, ask: Callable[[str, datetime], list[dict[str, Any]]]
) -> dict[str, tuple[float, float]]:
    """(bad, total) inside the planned spans for each measured window: each window's overlap with them is
    asked for at the overlap's end, over its length, once per distinct overlap (whole seconds, so that
    an overlap that starts and ends on samples is counted exactly)."""
    asked: dict[tuple[int, int], tuple[float, float]] = {}
    found: dict[str, tuple[float, float]] = {}
    for key, seconds in queries.measured_windows(slo, at):
        begin = at.timestamp() - seconds
        bad = total = 0.0
        for start, end in planned_spans:
            low = math.floor(max(start.timestamp(), begin))
            high = math.ceil(min(end.timestamp(), at.timestamp()))
            if high - low < 1:
                continue
            if (low, high) not in asked:
                answer = ask(queries.planned_query(slo, high - low), datetime.fromtimestamp(high, UTC))
                asked[(low, high)] = queries.parse_planned(answer, high - low)
            bad += asked[(low, high)][0]
            total += asked[(low, high)][1]
        found[key] = (bad, total)
    return found
