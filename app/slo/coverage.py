"""How much of an SLO's period its data covers, and where the period's budget is read from.

Batch mode reads the period's error ratio from the recording rules (`slo:sli_error:ratio_rate<period>`,
a sum over the recorded 5-minute rates). Until the rules have run for a whole period, that sum covers only
the time since they began: ten minutes of burn would read as the whole period's, and `budget left` as
-2900 %. So the engine asks Prometheus since when the rules have recorded (the first sample of
`slo:sli_error:ratio_rate5m`, one query per period length for all SLOs), and until they cover the period
it takes the period's ratio from the raw SLI, as direct mode does: a few SLOs per query, asked again every
`refresh_seconds`, not every cycle. How far back the raw data itself reaches is asked too (once, then
again every RECHECK while it falls short): only when even the raw data does not cover the period is the
budget `partial`.

Pure: query texts and the reading of answers; the engine (app/slo/service.py) does the asking.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from app import durations, promql_build
from app.slo import queries
from app.slo.burn import RAW, RULES, Coverage, resolution
from app.slo.model import EventsSli, RawSli, Slo

CHUNK = 50  # SLOs per raw query
RECHECK = 600.0  # seconds between asks of how far back an SLO's data reaches, while it falls short
SLO_LABEL = "sloguard_slo"
# What the period rule sums (app/slo/rules.py): the recorded traffic for event SLIs, the 5-minute ratio for
# raw ones (an event SLI's ratio exists only once a bad series does). `or` keeps one series per SLO.
RECORDED = "sloguard:sli_total:rate5m or slo:sli_error:ratio_rate5m"


def refresh_seconds(period_seconds: float) -> float:
    """How long a raw period ratio is used before it is read again: an 8640th of the period (5 minutes
    for 30 days), at least 10 seconds. A page-fast burn moves a 30-day budget by 0.2 % in 5 minutes."""
    return max(10.0, period_seconds / 8640)


def reach(first: float | None, at: datetime, period_seconds: float) -> float | None:
    """How much of the period ending at `at` lies after `first` (a Unix time), at most all of it."""
    if first is None:
        return None
    return max(0.0, min(period_seconds, at.timestamp() - first))


def _reach_expression(inner: str, period_seconds: float) -> str:
    window = durations.format_prometheus(int(period_seconds))
    step = durations.format_prometheus(resolution(period_seconds))
    return promql_build.call("min_over_time", f"{promql_build.call('timestamp', inner)}[{window}:{step}]")


def rules_reach_query(period_seconds: int) -> str:
    """The first recorded sample of every SLO's 5-minute rules within one period length: one series per
    SLO (labelled `sloth_id`), its value a Unix time."""
    return _reach_expression(promql_build.group(RECORDED), period_seconds)


def parse_reach(result: list[dict[str, Any]], label: str = "sloth_id") -> dict[str, float]:
    """slo id -> first sample time; the earliest where an SLO has several series (sloth_window etc.)."""
    found: dict[str, float] = {}
    for sample in result:
        slo_id = sample.get("metric", {}).get(label)
        value = float(sample["value"][1])
        if slo_id and not math.isnan(value):
            found[slo_id] = min(value, found.get(slo_id, value))
    return found


def _five_minutes(slo: Slo) -> str:
    sli = slo.prometheus_sli
    if isinstance(sli, EventsSli):
        return sli.total_rate("5m")
    if isinstance(sli, RawSli):
        return promql_build.group(sli.ratio_for("5m"))
    raise TypeError(f"{slo.id} is not a Prometheus SLI")


def raw_reach_query(slos: Sequence[Slo], at: datetime) -> str:
    """How far back each SLO's raw SLI has data, within its period: one series per SLO (`sloguard_slo`)."""
    parts = [
        promql_build.with_label(
            _reach_expression(_five_minutes(slo), queries.period_window_seconds(slo, at)), SLO_LABEL, slo.id
        )
        for slo in slos
    ]
    return promql_build.either(parts)


def raw_period_query(slos: Sequence[Slo], at: datetime) -> str:
    """Each SLO's bad and total rates (or its ratio) over its period from the raw SLI, tagged by SLO."""
    parts = []
    for slo in slos:
        window = durations.format_prometheus(queries.period_window_seconds(slo, at))
        sli = slo.prometheus_sli
        if isinstance(sli, EventsSli):
            tagged = [("bad", sli.bad_rate(window)), ("total", sli.total_rate(window))]
        elif isinstance(sli, RawSli):
            tagged = [("ratio", promql_build.group(sli.ratio_for(window)))]
        else:
            raise TypeError(f"{slo.id} is not a Prometheus SLI")
        for part, expression in tagged:
            labelled = promql_build.with_label(expression, queries.PART_LABEL, part)
            parts.append(promql_build.with_label(labelled, SLO_LABEL, slo.id))
    return promql_build.either(parts)


def parse_raw_period(slos: Sequence[Slo], result: list[dict[str, Any]]) -> dict[str, float | None]:
    """slo id -> the period's error ratio from the raw answer (None where there was no traffic)."""
    bad: dict[str, float] = {}
    total: dict[str, float] = {}
    ratio: dict[str, float] = {}
    for sample in result:
        labels = sample.get("metric", {})
        slo_id, part = labels.get(SLO_LABEL), labels.get(queries.PART_LABEL)
        target = {"bad": bad, "total": total, "ratio": ratio}.get(str(part))
        if slo_id and target is not None:
            target[slo_id] = float(sample["value"][1])
    found: dict[str, float | None] = {}
    for slo in slos:
        if slo.id in ratio:
            value = ratio[slo.id]
            found[slo.id] = None if math.isnan(value) else min(max(value, 0.0), 1.0)
        elif slo.id in total and total[slo.id] > 0:
            found[slo.id] = min(max(bad.get(slo.id, 0.0) / total[slo.id], 0.0), 1.0)
        else:
            found[slo.id] = None
    return found


def partial_note(budget: dict[str, Any] | None) -> str:
    """` partial (6h of 1d)` for a budget whose data does not reach back over the whole period (the
    `budget` of an SLO's status), else nothing: how `slo status`, `/slo` and Slack say it."""
    if not budget or not budget.get("partial") or budget.get("coverage_seconds") is None:
        return ""
    covered = durations.format_prometheus(max(60, int(budget["coverage_seconds"]) // 60 * 60))
    return f" partial ({covered} of {durations.format_prometheus(int(budget['period_seconds']))})"


def chunks(slos: Iterable[Slo], size: int = CHUNK) -> list[list[Slo]]:
    items = list(slos)
    return [items[i : i + size] for i in range(0, len(items), size)]


__all__ = ["RAW", "RULES", "Coverage", "resolution"]
