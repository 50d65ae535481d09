"""The SLO model that every spec format is read into: an SLI (what counts as bad), an objective, a
period, alerting tiers and the labels and annotations that reach the generated rules.

Plain values with no I/O. The spec formats (app/slo/sloth.py, app/slo/openslo.py) build them;
evaluation, rules, ML evidence and the review read them. An SLI knows how to write its own queries for
a window, through the PromQL builder (app/promql_build.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from app import promql_build
from app.durations import DAY
from app.slo import burn

WINDOW = "{{.window}}"
WINDOW_PLACEHOLDER = re.compile(r"\{\{\s*\.window\s*\}\}")
# Prometheus 2.x names (3.x accepts more only when quoted, which 2.x cannot read).
LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@dataclass(frozen=True)
class EventsSli:
    """Prometheus: bad and total event rates, each a query with a `{{.window}}` placeholder."""

    error_query: str
    total_query: str

    def error_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.error_query)

    def total_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.total_query)

    def bad_rate(self, window: str) -> str:
        """The bad events per second over the window, summed to one series."""
        return promql_build.total(self.error_for(window))

    def total_rate(self, window: str) -> str:
        """All events per second over the window, summed to one series."""
        return promql_build.total(self.total_for(window))

    def error_ratio(self, window: str) -> str:
        """bad / total over the window, as one series."""
        return promql_build.ratio_of_totals(self.error_for(window), self.total_for(window))


@dataclass(frozen=True)
class RawSli:
    """Prometheus: an error ratio query with a `{{.window}}` placeholder (no event counts)."""

    error_ratio_query: str

    def ratio_for(self, window: str) -> str:
        return WINDOW_PLACEHOLDER.sub(window, self.error_ratio_query)


@dataclass(frozen=True)
class LatencySli:
    """Prometheus histogram: events slower than `threshold` seconds are bad.

    The threshold must be one of the histogram's `le` buckets, or the count of fast events would be an
    interpolation; the evaluation checks that against Prometheus and lists the buckets when it is not.
    """

    metric: str  # histogram base name, e.g. http_request_duration_seconds
    selector: str  # label matchers without braces, e.g. service="fraud-model"
    threshold: float

    @property
    def le(self) -> str:
        return format(self.threshold, "g")

    def to_events(self) -> EventsSli:
        count = promql_build.selector(f"{self.metric}_count", self.selector)
        total = promql_build.total(promql_build.rate(count, WINDOW))
        if self.threshold.is_integer():
            # Exporters write whole-number buckets as "1" or "1.0" (Prometheus 3 normalises to "1.0").
            whole = str(int(self.threshold))
            le_matcher = promql_build.match("le", f"{whole}|{whole}.0", "=~")
        else:
            le_matcher = promql_build.match("le", self.le)
        fast_bucket = promql_build.selector(f"{self.metric}_bucket", self.selector, le_matcher)
        fast = promql_build.total(promql_build.rate(fast_bucket, WINDOW))
        return EventsSli(
            error_query=promql_build.group(promql_build.binary(total, "-", fast)), total_query=total
        )

    def buckets_query(self) -> str:
        bucket = promql_build.selector(f"{self.metric}_bucket", self.selector)
        return promql_build.aggregate("count", bucket, by=("le",))


@dataclass(frozen=True)
class ElasticsearchSli:
    """Log events in Elasticsearch; `bad_query` or `good_query` (query-string syntax) picks the bad ones."""

    index: str
    timestamp_field: str
    total_query: str | None
    bad_query: str | None = None
    good_query: str | None = None


Sli = EventsSli | RawSli | LatencySli | ElasticsearchSli


@dataclass(frozen=True)
class Alerting:
    name: str | None = None
    labels: dict[str, str] = field(default_factory=dict)
    annotations: dict[str, str] = field(default_factory=dict)
    page_labels: dict[str, str] = field(default_factory=dict)
    page_annotations: dict[str, str] = field(default_factory=dict)
    ticket_labels: dict[str, str] = field(default_factory=dict)
    ticket_annotations: dict[str, str] = field(default_factory=dict)
    page_disabled: bool = False
    ticket_disabled: bool = False


@dataclass(frozen=True)
class Slo:
    id: str  # `<service>-<name>`, Sloth's sloth_id
    service: str
    name: str
    objective: float  # a ratio: 0.999
    sli: Sli
    source: str  # file the SLO came from, for messages
    description: str = ""
    labels: dict[str, str] = field(default_factory=dict)
    alerting: Alerting = field(default_factory=Alerting)
    period_seconds: int = 30 * DAY
    calendar_start: datetime | None = None  # set for calendar-aligned periods
    tiers: tuple[burn.Tier, ...] = ()

    @property
    def budget(self) -> float:
        return 1.0 - self.objective

    @property
    def windows(self) -> tuple[burn.Window, ...]:
        return burn.windows_of(self.tiers)

    @property
    def windows_by_tier(self) -> tuple[burn.Window, ...]:
        """The windows by tier position: each tier's short window, then its long one, pages first (how
        `slo status`, `/slo` and the incident message show the SLO's own windows)."""
        seen: list[burn.Window] = []
        for tier in sorted(self.tiers, key=lambda t: t.severity != burn.State.page):
            for window in (tier.short, tier.long):
                if window not in seen:
                    seen.append(window)
        return tuple(seen)

    @property
    def model(self) -> str | None:
        return self.labels.get("model")

    @property
    def runbook(self) -> str | None:
        for found in (self.alerting.annotations, self.alerting.page_annotations):
            for key in ("runbook_url", "runbook"):
                if found.get(key):
                    return found[key]
        return None

    @property
    def is_prometheus(self) -> bool:
        return not isinstance(self.sli, ElasticsearchSli)

    @property
    def prometheus_sli(self) -> EventsSli | RawSli | None:
        """The SLI as Prometheus queries (a histogram as its bad and total events); None for logs."""
        if isinstance(self.sli, LatencySli):
            return self.sli.to_events()
        if isinstance(self.sli, ElasticsearchSli):
            return None
        return self.sli
