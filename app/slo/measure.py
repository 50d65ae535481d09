"""Reading an incident's impact window from its SLI's source: the SLI in steps around the detection time,
and the period's events at the impact's end, handed to the pure rules in `impact.py`. Prometheus answers
a range query per part; Elasticsearch one search with a date range per step."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

from app import durations, promql_build
from app.errors import SourceUnavailable
from app.slo import burn
from app.slo.impact import UNKNOWN, Impact, Step, impact_window, with_budget
from app.slo.model import ElasticsearchSli, EventsSli, RawSli, Slo
from app.slo.queries import iso, ranges_search

MAX_POINTS = 10_000  # Prometheus answers at most 11,000 points a series
MAX_RANGES = 2_000  # date ranges in one search (Elasticsearch's search.max_buckets is 65,536)


def step_window(slo: Slo) -> burn.Window:
    """The step: the page tier's short window (1 min for a 1-day SLO, 5 min for 30 days)."""
    pages = [t for t in slo.tiers if t.severity == burn.State.page] or list(slo.tiers)
    return min(pages, key=lambda t: t.short.seconds).short


def lookback_seconds(slo: Slo) -> int:
    """How far before detection a run of exceeding steps is followed: the longest tier window."""
    return max((t.long.seconds for t in slo.tiers), default=slo.period_seconds)


def reach_seconds(slo: Slo) -> int:
    """How far back from detection the run's latest exceeding step may lie: the longest short window
    (a tier fires only while its short window exceeds)."""
    return max((t.short.seconds for t in slo.tiers), default=step_window(slo).seconds)


def _values(result: list[dict[str, Any]]) -> dict[int, float]:
    if not result:
        return {}
    return {round(float(t)): float(v) for t, v in result[0]["values"] if math.isfinite(float(v))}


def measure(
    prometheus: Any, slo: Slo, detected_at: datetime, until: datetime, *, min_events: float
) -> Impact:
    """The impact window of an incident of `slo` detected at `detected_at`, from what Prometheus holds
    up to `until` (now, or the incident's resolution)."""
    sli = slo.prometheus_sli
    if not isinstance(sli, EventsSli | RawSli):
        return Impact(UNKNOWN)
    window = step_window(slo)
    seconds = window.seconds
    before = min(MAX_POINTS // 2, max(1, lookback_seconds(slo) // seconds))
    after = max(0, min(MAX_POINTS // 2, int((until - detected_at).total_seconds() // seconds)))
    step = timedelta(seconds=seconds)
    start, end = detected_at - (before - 1) * step, detected_at + after * step
    moments = [start + k * step for k in range(before + after)]
    if isinstance(sli, EventsSli):
        scale = f"{seconds}"  # events in a step: the rate over it times its length
        bad = _values(
            prometheus.query_range(
                promql_build.binary(sli.bad_rate(window.name), "*", scale), start, end, seconds
            )
        )
        total = _values(
            prometheus.query_range(
                promql_build.binary(sli.total_rate(window.name), "*", scale), start, end, seconds
            )
        )
        # No bad series at all (no errors yet) is no bad events; no total is a step without data.
        keys = [(moment, round(moment.timestamp())) for moment in moments]
        steps = [
            Step(moment, bad.get(key, 0.0) if key in total else None, total.get(key)) for moment, key in keys
        ]
    else:
        ratios = _values(prometheus.query_range(sli.ratio_for(window.name), start, end, seconds))
        steps = [Step(moment, ratio=ratios.get(round(moment.timestamp()))) for moment in moments]
    impact = impact_window(
        steps,
        seconds,
        detected_at,
        allowed=slo.budget,
        min_events=min_events,
        period_seconds=slo.period_seconds,
        reach=reach_seconds(slo),
    )
    if impact.method == UNKNOWN or not isinstance(sli, EventsSli):
        return impact
    # The period's events at the impact's end (or now, while it goes on): its budget's base.
    at = impact.ended_at or until
    period = durations.format_prometheus(slo.period_seconds)
    answer = prometheus.query(
        promql_build.binary(sli.total_rate(period), "*", f"{slo.period_seconds}"), at.astimezone(UTC)
    )
    period_total = float(answer[0]["value"][1]) if answer else None
    return with_budget(impact, slo.budget, period_total)


def _log_counts(
    elasticsearch: Any, sli: ElasticsearchSli, spans: list[tuple[datetime, datetime]]
) -> list[tuple[float, float]]:
    """(bad, total) log events in each [start, end) of `spans`, in one search."""
    ranges = [{"key": str(k), "from": iso(a), "to": iso(b)} for k, (a, b) in enumerate(spans)]
    first, last = min(a for a, _ in spans), max(b for _, b in spans)
    body = ranges_search(sli, "spans", first, last, ranges)
    answer = elasticsearch.search(sli.index, body)
    try:
        buckets = answer["aggregations"]["spans"]["buckets"]
        counts = []
        for key in range(len(spans)):
            bucket = buckets[str(key)]
            total, matched = float(bucket["doc_count"]), float(bucket["part"]["doc_count"])
            counts.append((matched if sli.bad_query is not None else total - matched, total))
    except (KeyError, TypeError, ValueError) as exc:
        raise SourceUnavailable(f"elasticsearch: the answer has no date range buckets ({exc})") from exc
    return counts


def measure_logs(
    elasticsearch: Any,
    slo: Slo,
    detected_at: datetime,
    until: datetime,
    *,
    min_events: float,
    ingest_delay: float,
) -> Impact:
    """The impact window of a log-based SLO's incident. The steps are aligned back from the last moment
    the detecting evaluation saw (detection less the ingest delay), and none is read that the ingest
    delay says may still be filling."""
    sli = slo.sli
    if not isinstance(sli, ElasticsearchSli):
        return Impact(UNKNOWN)
    delay = timedelta(seconds=ingest_delay)
    anchor, seen = detected_at - delay, until - delay
    seconds = step_window(slo).seconds
    step = timedelta(seconds=seconds)
    before = min(MAX_RANGES // 2, max(1, lookback_seconds(slo) // seconds))
    after = max(0, min(MAX_RANGES // 2, int((seen - anchor).total_seconds() // seconds)))
    moments = [anchor - (before - 1 - k) * step for k in range(before + after)]
    counts = _log_counts(elasticsearch, sli, [(moment - step, moment) for moment in moments])
    steps = [Step(moment, bad, total) for moment, (bad, total) in zip(moments, counts, strict=True)]
    impact = impact_window(
        steps,
        seconds,
        anchor,
        allowed=slo.budget,
        min_events=min_events,
        period_seconds=slo.period_seconds,
        reach=reach_seconds(slo),
    )
    if impact.method == UNKNOWN:
        return impact
    end = impact.ended_at or seen
    ((_, period_total),) = _log_counts(
        elasticsearch, sli, [(end - timedelta(seconds=slo.period_seconds), end)]
    )
    return with_budget(impact, slo.budget, period_total)
