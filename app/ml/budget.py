"""Budget per model version: how much of an SLO's error budget over its period each version spent.

For an SLI of bad and total events in Prometheus whose series carry the model's version label (the
model's `version_label` in sloguard.yaml), each version's bad events are the SLI's own bad-events query
narrowed to that version's series (app/slo/promql.narrowed), and

    spent(v) = bad(v) / ((1 − objective) × total)

over the SLO's period (the rolling period, or the calendar period so far), where `total` is the SLI's
events of every version. So the versions' figures add up to the SLO's own budget consumed,
bad / ((1 − objective) × total), and any rest is the share of series without a version label
(`unattributed`). How long each version served is read from its narrowed total events (app/ml/traffic.served).

Only what is measured is shown: a figure that cannot be had says "not available" and why (no version
label, a log-based or raw-ratio SLI, Prometheus not answering), never a number.
"""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import Session, col, select

from app import durations, promql_build
from app.config import FileConfig, ModelConfig
from app.errors import SourceError
from app.incidents.models import Incident, TimelineEvent
from app.ml import traffic
from app.planned import windows as planned_windows
from app.planned.windows import PlannedWindow
from app.slo import promql, queries
from app.slo.model import ElasticsearchSli, EventsSli, RawSli, Slo

PART = "sloguard_part"
NOTE = "budget_by_version"  # the timeline kind of an incident's figure (replaced at each enrichment)
MAX_VERSIONS = 50  # versions in one period (a version a day for a month fits; more are left out, and said)
FINE = 60  # seconds: how finely the first and last serving times are read


@dataclass(frozen=True)
class VersionBudget:
    version: str
    bad_events: float
    total_events: float
    spent: float  # a fraction of the period's budget: 0.31 = 31 %
    first_served: datetime | None = None
    last_served: datetime | None = None

    @property
    def served_seconds(self) -> float | None:
        if self.first_served is None or self.last_served is None:
            return None
        return (self.last_served - self.first_served).total_seconds()


@dataclass(frozen=True)
class BudgetByVersion:
    slo_id: str
    at: datetime
    available: bool
    reason: str = ""  # why not, when not available
    period: str = ""  # `30d`, the window the figures cover
    period_seconds: int = 0
    label: str = ""
    total_events: float | None = None
    bad_events: float | None = None
    budget_consumed: float | None = None  # the SLO's own: bad / (budget × total)
    unattributed: float | None = None  # consumed by series without the version label
    versions: tuple[VersionBudget, ...] = field(default_factory=tuple)
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        """The JSON shape of `budget_by_version` (API, timeline data, console, draft)."""
        found = asdict(self)
        found["at"] = iso(self.at)
        found["versions"] = [
            {
                **asdict(v),
                "first_served": iso(v.first_served),
                "last_served": iso(v.last_served),
                "served_seconds": v.served_seconds,
                "text": sentence(v, self.period),
            }
            for v in self.versions
        ]
        found["text"] = summary(self)
        return found


class Recent:
    """Each SLO's last figure for `ttl` seconds: the API's and the console's SLO page read it at every
    request, and one figure costs a few 30-day queries per version, so a read token refreshing a page
    cannot make Prometheus work harder than once a minute per SLO."""

    def __init__(self, ttl: float = 60.0) -> None:
        self.ttl = ttl
        self._found: dict[str, tuple[float, BudgetByVersion]] = {}
        self._lock = threading.Lock()

    def get(self, slo_id: str, compute: Callable[[], BudgetByVersion]) -> BudgetByVersion:
        now = time.monotonic()
        with self._lock:
            kept = self._found.get(slo_id)
        if kept is not None and now - kept[0] < self.ttl:
            return kept[1]
        found = compute()
        with self._lock:
            self._found[slo_id] = (now, found)
        return found


def iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def unavailable(slo_id: str, at: datetime, reason: str) -> BudgetByVersion:
    return BudgetByVersion(slo_id, at, available=False, reason=reason)


def sentence(version: VersionBudget, period: str) -> str:
    """`version 4 spent 31.2 % of the 30d budget in 40 min`."""
    served = version.served_seconds
    during = f" in {durations.spoken(served)}" if served is not None else ""
    return f"version {version.version} spent {version.spent:.1%} of the {period} budget{during}".replace(
        "%", " %"
    )


def summary(found: BudgetByVersion) -> str:
    """One line for a Slack message or a timeline entry: the biggest spenders first."""
    if not found.available:
        return f"budget per version not available: {found.reason}"
    if not found.versions:
        return f"no version spent any of the {found.period} budget"
    shown = [sentence(v, found.period) for v in found.versions[:3]]
    more = len(found.versions) - len(shown)
    return "; ".join(shown) + (f"; {more} more" if more > 0 else "")


def note(prometheus: Any, slo: Slo, config: FileConfig, at: datetime) -> tuple[str, str, dict[str, Any]]:
    """An incident's timeline row (kind, text, data) of the budget per version of its SLO (enrichment,
    with the loaded SLOs); a figure that cannot be had is kept too, with its reason."""
    figure = for_slo(prometheus, slo, config.models, at, config.planned_windows)
    return NOTE, summary(figure), figure.as_dict()


def from_dict(data: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """A stored figure (timeline data) as the API gives it; None when it is not one."""
    if not isinstance(data, Mapping) or "available" not in data or "slo_id" not in data:
        return None
    return dict(data)


def qualifies(slo: Slo, linked: tuple[str, ModelConfig] | None) -> str | None:
    """Why this SLO's budget cannot be split by version, or None when it can be asked for."""
    if isinstance(slo.sli, ElasticsearchSli):
        return "a log-based SLI (Elasticsearch) has no version-labelled counters"
    sli = slo.prometheus_sli
    if isinstance(sli, RawSli) or sli is None:
        return "the SLI is a raw error ratio, with no bad and total events to split by version"
    if linked is None:
        return (
            "the SLO is linked to no model of sloguard.yaml (a `model` label or the model's `slos:` list), "
            "so no version label is known"
        )
    return None


def for_slo(
    prometheus: Any,
    slo: Slo,
    catalogue: Mapping[str, ModelConfig],
    at: datetime,
    planned: Sequence[PlannedWindow] = (),
) -> BudgetByVersion:
    """The budget per version of `slo`'s period ending at `at` (the events inside its planned windows
    left out); never raises for a source's failure."""
    linked = traffic.model_of_slo(slo.id, slo.model, dict(catalogue))
    reason = qualifies(slo, linked)
    if reason is not None:
        return unavailable(slo.id, at, reason)
    if prometheus is None:
        return unavailable(slo.id, at, "no Prometheus configured")
    assert linked is not None
    try:
        mine = planned_windows.for_slo(planned, slo.id, slo.service, slo.model)
        return measure(prometheus, slo, linked[1].version_label, at, mine)
    except SourceError as exc:
        return unavailable(slo.id, at, f"Prometheus did not answer ({exc})")
    except promql.PromqlError as exc:
        return unavailable(slo.id, at, f"the SLI's queries cannot be split by version: {exc}")
    except (ValueError, KeyError, TypeError) as exc:
        return unavailable(slo.id, at, f"Prometheus' answer could not be read ({exc})")


def _tagged(parts: Mapping[str, str]) -> str:
    return promql_build.either(promql_build.with_label(q, PART, key) for key, q in parts.items())


def _values(result: list[dict[str, Any]]) -> dict[str, float]:
    found: dict[str, float] = {}
    for sample in result:
        key = sample.get("metric", {}).get(PART)
        if key is None:
            continue
        if key in found:
            raise ValueError(f"several series for {key}")
        value = float(sample["value"][1])
        found[key] = value if math.isfinite(value) else 0.0
    return found


def measure(
    prometheus: Any, slo: Slo, label: str, at: datetime, planned: Sequence[PlannedWindow] = ()
) -> BudgetByVersion:
    """The figures from Prometheus (raises SourceError when it does not answer), less the events inside
    the SLO's planned windows."""
    sli = slo.prometheus_sli
    assert isinstance(sli, EventsSli)
    seconds = queries.period_window_seconds(slo, at)
    period = durations.format_prometheus(seconds)
    base = BudgetByVersion(slo.id, at, available=False, period=period, period_seconds=seconds, label=label)
    bad_query, total_query = sli.bad_rate(period), sli.total_rate(period)
    total_selectors = promql.selectors(total_query)
    every = list(dict.fromkeys([*total_selectors, *promql.selectors(bad_query)]))
    # Which series each selector read over the period, and how many of them carry the label.
    parts: dict[str, str] = {}
    for index, selector in enumerate(every):
        labelled = promql.narrowed(selector, label, "", "!=")
        for key, chosen in ((f"all:{index}", selector), (f"labelled:{index}", labelled)):
            parts[key] = promql_build.aggregate(
                "count", promql_build.over_time("last_over_time", chosen, period)
            )
    seen = _values(prometheus.query(_tagged(parts), at=at))
    for index, selector in enumerate(every):
        if seen.get(f"all:{index}", 0) > 0 and seen.get(f"labelled:{index}", 0) == 0:
            return replace(base, reason=f"the series of {selector} carry no `{label}` label")
    versions_query = promql_build.either(
        promql_build.aggregate(
            "group",
            promql_build.over_time("last_over_time", promql.narrowed(selector, label, "", "!="), period),
            by=(label,),
        )
        for selector in total_selectors
    )
    names = sorted(
        {str(s["metric"][label]) for s in prometheus.query(versions_query, at=at) if s["metric"].get(label)},
        key=_natural,
    )
    note = ""
    if len(names) > MAX_VERSIONS:
        note = f"{len(names)} versions served in the period; the newest {MAX_VERSIONS} are shown"
        names = names[-MAX_VERSIONS:]

    def counts(length: int, moment: datetime) -> dict[str, float]:
        """Every part's events over `length` seconds up to `moment`."""
        window = durations.format_prometheus(length)
        wanted = {"bad": sli.bad_rate(window), "total": sli.total_rate(window)}
        for index, version in enumerate(names):
            wanted[f"bad:{index}"] = promql.narrowed(wanted["bad"], label, version)
            wanted[f"total:{index}"] = promql.narrowed(wanted["total"], label, version)
        return {
            key: rate * length for key, rate in _values(prometheus.query(_tagged(wanted), at=moment)).items()
        }

    events = counts(seconds, at)
    # Planned windows' events are left out, as of the SLO's own figures (app/slo/planned.py).
    for began, ended in planned_windows.overlaps(planned, at - timedelta(seconds=seconds), at):
        low, high = math.floor(began.timestamp()), math.ceil(ended.timestamp())
        if high - low >= 1:
            for key, inside in counts(high - low, datetime.fromtimestamp(high, UTC)).items():
                events[key] = events.get(key, 0.0) - inside
    rates = {key: max(value, 0.0) / seconds for key, value in events.items()}
    total_rate = rates.get("total")
    if not total_rate:
        return replace(base, reason=f"no events in the {period} period")
    total = total_rate * seconds
    bad = rates.get("bad", 0.0) * seconds
    budget = slo.budget
    start = at - timedelta(seconds=seconds)
    coarse = max(FINE, math.ceil(seconds / 10_000 / FINE) * FINE)
    found = []
    for index, version in enumerate(names):
        version_bad = max(rates.get(f"bad:{index}", 0.0), 0.0) * seconds
        version_total = rates.get(f"total:{index}", 0.0) * seconds
        span = traffic.served(
            prometheus,
            _narrowed_total(sli, label, version),
            start + timedelta(seconds=coarse),
            at,
            coarse,
            FINE,
        )
        found.append(
            VersionBudget(
                version,
                version_bad,
                version_total,
                version_bad / (budget * total),
                max(span[0], start) if span else None,
                span[1] if span else None,
            )
        )
    found.sort(key=lambda v: (-v.spent, -v.total_events, v.version))
    consumed = bad / (budget * total)
    rest = consumed - sum(v.spent for v in found)
    return BudgetByVersion(
        slo.id,
        at,
        available=True,
        period=period,
        period_seconds=seconds,
        label=label,
        total_events=total,
        bad_events=bad,
        budget_consumed=consumed,
        unattributed=rest if abs(rest) > 1e-9 else 0.0,
        versions=tuple(found),
        note=note,
    )


def _natural(version: str) -> list[tuple[int, int, str]]:
    """Versions in the order people number them: 9 before 10, 1.9 before 1.10."""
    return [(0, int(part), "") if part.isdigit() else (1, 0, part) for part in re.split(r"(\d+)", version)]


def _narrowed_total(sli: EventsSli, label: str, version: str) -> Callable[[str], str]:
    return lambda window: promql.narrowed(sli.total_rate(window), label, version)


def stored(session: Session, incident: Incident) -> dict[str, Any]:
    """The incident's budget per version as enrichment last measured it (the API's `budget_by_version`)."""
    if not incident.slo_id:
        return {"available": False, "reason": "the incident is on no SLO", "slo_id": None, "versions": []}
    row = session.exec(
        select(TimelineEvent)
        .where(TimelineEvent.incident_id == incident.id, TimelineEvent.kind == NOTE)
        .order_by(col(TimelineEvent.id).desc())
    ).first()
    stored = from_dict(row.data) if row is not None else None
    if stored is not None:
        return stored
    reason = "not measured yet (it is measured with the incident's evidence)"
    return {"available": False, "reason": reason, "slo_id": incident.slo_id, "versions": []}
