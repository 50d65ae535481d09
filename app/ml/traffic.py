"""A model's traffic as Prometheus sees it: its request counter, errors per serving version, and when a
version served (the release gates' soak and the budget per version read it the same way)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations, promql_build
from app.config import ModelConfig


def requests(config: ModelConfig, *matchers: str) -> str:
    """The model's request counter, selected by its selector and any more matchers."""
    return promql_build.selector(config.request_metric, config.selector, *matchers)


@dataclass(frozen=True)
class VersionTraffic:
    version: str
    requests: float
    errors: float

    @property
    def error_ratio(self) -> float | None:
        return self.errors / self.requests if self.requests > 0 else None


def by_version(prometheus: Any, config: ModelConfig, span_seconds: int, at: datetime) -> list[VersionTraffic]:
    """Requests and errors of each version over the `span_seconds` before `at` (two instant queries),
    busiest first; versions without requests in the span are left out."""
    label = config.version_label
    span = durations.format_prometheus(span_seconds)
    totals = prometheus.query(
        promql_build.total(promql_build.increase(requests(config), span), by=(label,)), at=at
    )
    failing = requests(config, config.error_selector)
    errors = prometheus.query(promql_build.total(promql_build.increase(failing, span), by=(label,)), at=at)
    bad = {s["metric"].get(label): float(s["value"][1]) for s in errors}
    found = [
        VersionTraffic(
            str(s["metric"].get(label)), float(s["value"][1]), bad.get(s["metric"].get(label), 0.0)
        )
        for s in totals
        if s["metric"].get(label) is not None and float(s["value"][1]) > 0
    ]
    return sorted(found, key=lambda v: (-v.requests, v.version))


def served(
    prometheus: Any,
    traffic_over: Callable[[str], str],
    start: datetime,
    end: datetime,
    step: int,
    fine: int | None = None,
) -> tuple[datetime, datetime] | None:
    """When there was traffic between `start` and `end`: (first, last), or None when there was none.

    `traffic_over(window)` is the traffic in a window (an increase or a rate of version-filtered counters),
    read by a range query a point every `step` seconds: first is the start of the first step that saw
    any, last the end of the last one. With `fine` (shorter than `step`), both edges are read again a
    `fine` step at a time, so a 30-day span (a point every 5 minutes, under Prometheus' 11,000 points)
    still tells when a version began to the minute."""
    found = _edges(prometheus, traffic_over, start, end, step)
    if found is None or fine is None or fine >= step:
        return found
    first, last = found
    early = _edges(
        prometheus, traffic_over, first + timedelta(seconds=fine), first + timedelta(seconds=step), fine
    )
    late = _edges(prometheus, traffic_over, last - timedelta(seconds=step - fine), last, fine)
    return (early[0] if early else first, late[1] if late else last)


def _edges(
    prometheus: Any, traffic_over: Callable[[str], str], start: datetime, end: datetime, step: int
) -> tuple[datetime, datetime] | None:
    window = durations.format_prometheus(step)
    result = prometheus.query_range(traffic_over(window), start, end, step)
    times = [
        float(t) for series in result for t, v in series["values"] if math.isfinite(float(v)) and float(v) > 0
    ]
    if not times:
        return None
    return datetime.fromtimestamp(min(times) - step, UTC), datetime.fromtimestamp(max(times), UTC)


def model_of_slo(
    slo_id: str, slo_model: str | None, catalogue: dict[str, ModelConfig]
) -> tuple[str, ModelConfig] | None:
    """The model an SLO measures: named by its `model` label, or listing the SLO in sloguard.yaml."""
    if slo_model and slo_model in catalogue:
        return slo_model, catalogue[slo_model]
    for name, config in catalogue.items():
        if slo_id in config.slos:
            return name, config
    return None
