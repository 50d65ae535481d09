"""What to ask the sources for one evaluation, and how to read their answers. Pure: no I/O here.

Direct mode asks Prometheus one query per SLO that returns every window at once (each sub-expression
tagged with `label_replace`), so an SLO costs one round trip, not sixteen. Batch mode reads the recording
rules that `sloguard slo rules` (or Sloth) put in Prometheus: one query per window for all SLOs.
Elasticsearch gets one search per SLO: a `date_range` aggregation over all windows with a `filter`
sub-aggregation for the bad events.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations, promql_build
from app.slo import burn
from app.slo.model import ElasticsearchSli, EventsSli, RawSli, Slo

WINDOW_LABEL = "sloguard_window"
PART_LABEL = "sloguard_part"
PERIOD = "period"


class MeasurementError(ValueError):
    """The source answered, but not in a shape one SLO can be evaluated from."""


def period_window_seconds(slo: Slo, at: datetime) -> int:
    """The budget window: the rolling period, or the time elapsed in the current calendar period."""
    if slo.calendar_start is None:
        return slo.period_seconds
    elapsed = (at - slo.calendar_start).total_seconds()
    if elapsed <= 0:
        return 60
    return max(60, int(elapsed % slo.period_seconds) or slo.period_seconds)


def measured_windows(slo: Slo, at: datetime) -> list[tuple[str, int]]:
    """(key, seconds) for each window to measure; the period's key is `period`."""
    windows = [(window.name, window.seconds) for window in slo.windows]
    return [*windows, (PERIOD, period_window_seconds(slo, at))]


def _tag(expression: str, window: str, part: str) -> str:
    return promql_build.with_label(
        promql_build.with_label(expression, WINDOW_LABEL, window), PART_LABEL, part
    )


def direct_query(slo: Slo, at: datetime) -> str:
    """One PromQL query returning every window's bad and total rates (or ratio) for one SLO."""
    sli = slo.prometheus_sli
    parts = []
    for key, seconds in measured_windows(slo, at):
        window = durations.format_prometheus(seconds)
        if isinstance(sli, EventsSli):
            parts.append(_tag(sli.bad_rate(window), key, "bad"))
            parts.append(_tag(sli.total_rate(window), key, "total"))
        elif isinstance(sli, RawSli):
            parts.append(_tag(promql_build.group(sli.ratio_for(window)), key, "ratio"))
        else:
            raise TypeError(f"{slo.id} is not a Prometheus SLI")
    return promql_build.either(parts)


def _value(sample: dict[str, Any]) -> float:
    value = float(sample["value"][1])
    return value


@dataclass
class _Parts:
    bad: dict[str, float] = field(default_factory=dict)
    total: dict[str, float] = field(default_factory=dict)
    ratio: dict[str, float] = field(default_factory=dict)


def parse_direct(slo: Slo, at: datetime, result: list[dict[str, Any]]) -> burn.Measurement:
    return _measurement(slo, at, parse_parts(slo, result))


def parse_parts(slo: Slo, result: list[dict[str, Any]]) -> _Parts:
    parts = _Parts()
    for sample in result:
        labels = sample.get("metric", {})
        window, part = labels.get(WINDOW_LABEL), labels.get(PART_LABEL)
        target = getattr(parts, str(part), None)
        if window is None or target is None:
            continue
        if window in target:
            raise MeasurementError(f"{slo.id}: the query returned several series for window {window}")
        target[window] = _value(sample)
    return parts


PLANNED = "planned"


def planned_query(slo: Slo, seconds: int) -> str:
    """What an SLI measured over `seconds`, asked at the end of a planned window's stretch: an event
    SLI's bad and total rates (rate × seconds are the events inside it), a raw SLI's ratio."""
    sli = slo.prometheus_sli
    window = durations.format_prometheus(seconds)
    if isinstance(sli, RawSli):
        return _tag(promql_build.group(sli.ratio_for(window)), PLANNED, "ratio")
    assert isinstance(sli, EventsSli)
    return promql_build.either(
        [_tag(sli.bad_rate(window), PLANNED, "bad"), _tag(sli.total_rate(window), PLANNED, "total")]
    )


def parse_planned(result: list[dict[str, Any]], seconds: int) -> tuple[float, float]:
    """(bad, total) inside the stretch; a series Prometheus has no samples for is 0. An event SLI's are
    events; a raw SLI has no counts, so its are time: (ratio × seconds, seconds), its ratio taken to hold
    evenly over the stretch (and nothing is taken out where it had no samples)."""
    counts = {"bad": 0.0, "total": 0.0}
    for sample in result:
        part = sample.get("metric", {}).get(PART_LABEL)
        value = _value(sample)
        if not math.isfinite(value):
            continue
        if part == "ratio":
            counts["bad"], counts["total"] = min(max(value, 0.0), 1.0) * seconds, float(seconds)
        elif part in counts:
            counts[part] = value * seconds
    return counts["bad"], counts["total"]


def measurement_excluding(
    slo: Slo, at: datetime, parts: _Parts, excluded: dict[str, tuple[float, float]]
) -> burn.Measurement:
    """The measurement with the planned windows' share (bad, total per window key) taken out of each
    window: what is left is the events outside them (for a raw SLI, the time-weighted ratio outside
    them). A window left with nothing has no data."""
    kept = _Parts()
    for key, seconds in measured_windows(slo, at):
        bad_out, total_out = excluded.get(key, (0.0, 0.0))
        if isinstance(slo.prometheus_sli, RawSli):
            ratio = parts.ratio.get(key)
            rest = seconds - total_out
            if ratio is not None and math.isfinite(ratio) and rest >= 1:
                kept.ratio[key] = min(max((ratio * seconds - bad_out) / rest, 0.0), 1.0)
            continue
        total_rate = parts.total.get(key)
        if total_rate is None:
            continue
        bad_rate = parts.bad.get(key, 0.0)
        total = max(total_rate * seconds - total_out, 0.0)
        bad = min(max(bad_rate * seconds - bad_out, 0.0), total)
        if total > 0:
            kept.total[key] = total / seconds
            kept.bad[key] = bad / seconds
    return _measurement(slo, at, kept)


def _measurement(slo: Slo, at: datetime, parts: _Parts) -> burn.Measurement:
    ratios: dict[int, float | None] = {}
    events: dict[int, float | None] = {}
    period_ratio: float | None = None
    for key, seconds in measured_windows(slo, at):
        if parts.ratio or not (parts.bad or parts.total):
            ratio = parts.ratio.get(key)
            ratio = None if ratio is None or math.isnan(ratio) else min(max(ratio, 0.0), 1.0)
            count = None
        else:
            total_rate = parts.total.get(key)
            count = None if total_rate is None else total_rate * seconds
            # No bad series at all (no 5xx ever seen) is zero errors, as long as there was traffic.
            bad_rate = parts.bad.get(key, 0.0 if total_rate is not None else None)
            ratio = burn.error_ratio(bad_rate, total_rate)
        if key == PERIOD:
            period_ratio = ratio
        else:
            ratios[seconds] = ratio
            if count is not None:
                events[seconds] = count
    return burn.Measurement(ratios=ratios, events=events, period_ratio=period_ratio)


# ---------------------------------------------------------------- batch mode (recording rules)


def batch_window_names(slos: Iterable[Slo]) -> list[str]:
    names = {window.name for slo in slos for window in slo.windows}
    names |= {durations.format_prometheus(slo.period_seconds) for slo in slos if slo.calendar_start is None}
    return sorted(names, key=durations.parse_prometheus)


def batch_query(window: str) -> str:
    """All SLOs' error ratio and traffic for one window, from the recording rules."""
    names = f"slo:sli_error:ratio_rate{window}|sloguard:sli_total:rate{window}"
    return promql_build.selector("", promql_build.match("__name__", names, "=~"))


def parse_batch(window: str, result: list[dict[str, Any]], into: dict[str, _Parts]) -> None:
    """Add one window's batch answer to the per-SLO parts (keyed by sloth_id)."""
    for sample in result:
        labels = sample.get("metric", {})
        slo_id = labels.get("sloth_id")
        if not slo_id:
            continue
        parts = into.setdefault(slo_id, _Parts())
        value = _value(sample)
        if labels.get("__name__", "").startswith("sloguard:sli_total"):
            parts.total[window] = value
        else:
            parts.ratio[window] = value


def measurement_from_batch(slo: Slo, at: datetime, parts: _Parts) -> burn.Measurement:
    """Batch answers carry ratios and traffic; turn them into the same Measurement as direct mode."""
    period_name = durations.format_prometheus(slo.period_seconds)
    ratios: dict[int, float | None] = {}
    events: dict[int, float | None] = {}
    for window in slo.windows:
        ratio = parts.ratio.get(window.name)
        total = parts.total.get(window.name)
        if ratio is not None and math.isnan(ratio):
            # 0/0: the rule saw no traffic. With a traffic series present that is "no events", not unknown.
            ratio = None
        ratios[window.seconds] = None if ratio is None else min(max(ratio, 0.0), 1.0)
        if total is not None:
            events[window.seconds] = total * window.seconds
    period_ratio = parts.ratio.get(period_name)
    if period_ratio is not None and math.isnan(period_ratio):
        period_ratio = None
    return burn.Measurement(ratios=ratios, events=events, period_ratio=period_ratio)


def new_batch() -> dict[str, _Parts]:
    return {}


# ---------------------------------------------------------------- Elasticsearch


def iso(moment: datetime) -> str:
    """Elasticsearch's strict_date_optional_time, to the millisecond, in UTC."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def _span(start: datetime, end: datetime) -> dict[str, str]:
    return {"gte": iso(start), "lt": iso(end), "format": "strict_date_optional_time"}


def ranges_search(
    sli: ElasticsearchSli,
    name: str,
    start: datetime,
    end: datetime,
    ranges: list[dict[str, str]],
    excluded: Sequence[tuple[datetime, datetime]] = (),
) -> dict[str, Any]:
    """A search body counting the SLI's events in each date range (aggregation `name`, keyed), with a
    `part` sub-aggregation of the bad (or good) ones; only events in [start, end) are read, and none
    inside an `excluded` span (a planned window's)."""
    filters: list[dict[str, Any]] = [{"range": {sli.timestamp_field: _span(start, end)}}]
    if sli.total_query:
        filters.insert(0, {"query_string": {"query": sli.total_query}})
    part_query = sli.bad_query if sli.bad_query is not None else sli.good_query
    query: dict[str, Any] = {"filter": filters}
    if excluded:
        query["must_not"] = [{"range": {sli.timestamp_field: _span(a, b)}} for a, b in excluded]
    return {
        "size": 0,
        "track_total_hits": False,
        "query": {"bool": query},
        "aggs": {
            name: {
                "date_range": {"field": sli.timestamp_field, "keyed": True, "ranges": ranges},
                "aggs": {"part": {"filter": {"query_string": {"query": part_query}}}},
            }
        },
    }


def es_search(
    slo: Slo, at: datetime, ingest_delay: float, excluded: Sequence[tuple[datetime, datetime]] = ()
) -> tuple[str, dict[str, Any]]:
    """(index, body) of the one search that measures every window of a log-based SLO, leaving out the
    events inside `excluded` (planned windows)."""
    sli = slo.sli
    if not isinstance(sli, ElasticsearchSli):
        raise TypeError(f"{slo.id} is not a log-based SLI")
    end = at - timedelta(seconds=ingest_delay)
    windows = measured_windows(slo, at)
    longest = max(seconds for _, seconds in windows)
    ranges = [
        {"key": key, "from": iso(end - timedelta(seconds=seconds)), "to": iso(end)}
        for key, seconds in windows
    ]
    start = end - timedelta(seconds=longest)
    return sli.index, ranges_search(sli, "windows", start, end, ranges, excluded)


def parse_es(slo: Slo, at: datetime, response: dict[str, Any]) -> burn.Measurement:
    sli = slo.sli
    assert isinstance(sli, ElasticsearchSli)
    try:
        buckets = response["aggregations"]["windows"]["buckets"]
    except (KeyError, TypeError) as exc:
        raise MeasurementError(f"{slo.id}: Elasticsearch answer has no window buckets") from exc
    parts = _Parts()
    for key, seconds in measured_windows(slo, at):
        bucket = buckets.get(key) if isinstance(buckets, dict) else None
        if bucket is None:
            continue
        total = float(bucket["doc_count"])
        part = float(bucket["part"]["doc_count"])
        if total <= 0:
            continue  # no events: the ratio is unknown, not zero
        parts.total[key] = total / seconds
        parts.bad[key] = (part if sli.bad_query is not None else total - part) / seconds
    return _measurement(slo, at, parts)
