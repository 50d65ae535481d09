"""A model's traffic as Prometheus sees it: its request counter, and errors per serving version."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
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
