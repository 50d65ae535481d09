"""OpenSLO v1 read into the SLO model: `SLO` documents with their `SLI`, `AlertPolicy` and
`AlertCondition`, inline or by reference (across files too).

Documents are collected first (`read`), then resolved together (`resolve`) once every file is read, so
an SLO may refer to an SLI defined later or elsewhere. Only Occurrences budgeting is supported; SLIs
come from Prometheus (ratios, raw ratios, histogram thresholds) or Elasticsearch (ratios of log events).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from app import durations, promql_build
from app.durations import DAY
from app.slo import burn, promql, schema
from app.slo.model import (
    WINDOW,
    WINDOW_PLACEHOLDER,
    Alerting,
    ElasticsearchSli,
    EventsSli,
    LatencySli,
    RawSli,
    Sli,
    Slo,
)
from app.slo.problems import Location, Problem, Problems
from app.slo.schema import Strict

HISTOGRAM = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
PAGE_SEVERITIES = {"page", "critical", "high", "p1", "sev1"}
DEFAULT_PERIOD = 30 * DAY
ELASTICSEARCH_FIELDS = {"index", "timestampField", "query"}


class OsMetadata(Strict):
    name: str
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    _name = field_validator("name")(schema.name)


class OsMetricSource(Strict):
    type: str
    spec: dict[str, Any]
    metricSourceRef: str | None = None


class OsMetric(Strict):
    metricSource: OsMetricSource


class OsRatioMetric(Strict):
    counter: bool = True
    good: OsMetric | None = None
    bad: OsMetric | None = None
    total: OsMetric | None = None
    raw: OsMetric | None = None
    rawType: Literal["success", "failure"] | None = None


class OsSliSpec(Strict):
    description: str = ""
    thresholdMetric: OsMetric | None = None
    ratioMetric: OsRatioMetric | None = None


class OsInlineSli(Strict):
    metadata: OsMetadata
    spec: OsSliSpec


class OsTimeWindow(Strict):
    duration: str
    isRolling: bool = True
    calendar: dict[str, Any] | None = None


class OsObjective(Strict):
    displayName: str | None = None
    op: Literal["lt", "lte", "gt", "gte"] | None = None
    value: float | None = None
    target: float | None = None
    targetPercent: float | None = None
    timeSliceTarget: float | None = None
    timeSliceWindow: str | None = None


class OsBurnRate(Strict):
    kind: Literal["burnrate"]
    op: Literal["gt", "gte"] = "gt"
    threshold: float = Field(gt=0)
    lookbackWindow: str
    alertAfter: str | None = None


class OsAlertConditionSpec(Strict):
    description: str = ""
    severity: str = "page"
    condition: OsBurnRate


class OsInlineCondition(Strict):
    kind: Literal["AlertCondition"] | None = None
    metadata: OsMetadata | None = None
    spec: OsAlertConditionSpec | None = None
    conditionRef: str | None = None


class OsAlertPolicySpec(Strict):
    description: str = ""
    alertWhenNoData: bool = False
    alertWhenResolved: bool = True
    alertWhenBreaching: bool = True
    conditions: list[OsInlineCondition] = Field(min_length=1)
    notificationTargets: list[dict[str, Any]] = Field(default_factory=list)


# The class name appears in pydantic's error paths for `str | OsPolicyRef`; schema.report skips it.
class OsPolicyRef(Strict):
    kind: Literal["AlertPolicy"] | None = None
    metadata: OsMetadata | None = None
    spec: OsAlertPolicySpec | None = None
    alertPolicyRef: str | None = None


class OsSloSpec(Strict):
    description: str = ""
    service: str
    indicator: OsInlineSli | None = None
    indicatorRef: str | None = None
    timeWindow: list[OsTimeWindow] = Field(min_length=1, max_length=1)
    budgetingMethod: str
    objectives: list[OsObjective] = Field(min_length=1)
    alertPolicies: list[str | OsPolicyRef] = Field(default_factory=list)

    # The service is a label value in every generated selector, as Sloth's `service` is.
    _service = field_validator("service")(schema.name)

    @field_validator("budgetingMethod")
    @classmethod
    def _occurrences(cls, value: str) -> str:
        if value != "Occurrences":
            raise ValueError(
                f"only Occurrences is supported; Timeslices and RatioTimeslices are not (got {value!r})"
            )
        return value


class OpenSloDocument(Strict):
    """Any OpenSLO v1 document; `spec` is validated per kind when the SLOs are resolved."""

    apiVersion: Literal["openslo/v1"]
    kind: Literal["SLO", "SLI", "AlertPolicy", "AlertCondition", "Service", "AlertNotificationTarget"]
    metadata: OsMetadata
    spec: dict[str, Any]


@dataclass(frozen=True)
class Found:
    """An OpenSLO document and where it was read."""

    document: OpenSloDocument
    where: Location

    @property
    def spec_at(self) -> Location:
        return self.where.at("spec")


ByKind = dict[str, dict[str, Found]]


def read(document: dict[str, Any], where: Location, problems: Problems) -> Found | None:
    """One `apiVersion: openslo/v1` document, kept for `resolve`."""
    try:
        return Found(OpenSloDocument.model_validate(document), where)
    except ValidationError as exc:
        schema.report(exc, where, problems)
        return None


def resolve(found: list[Found], problems: Problems) -> list[Slo]:
    """Build SLOs from OpenSLO documents, resolving `indicatorRef`, policy and condition refs."""
    by_kind: ByKind = {}
    for number, item in enumerate(found):
        kind, name = item.document.kind, item.document.metadata.name
        named = by_kind.setdefault(kind, {})
        if kind == "SLO":
            # Nothing refers to an SLO by name, and `availability` under two services is two SLOs (their
            # ids, service-name, differ; a repeated id is refused by the loader).
            named[f"{name}#{number}"] = item
        elif name in named:  # referred to by name: a second one would silently replace the first
            problems.add(
                item.where.at("metadata", "name"),
                f"duplicate {kind} name {name!r} (also in {named[name].where.file})",
            )
        else:
            named[name] = item
    result = []
    for item in by_kind.get("SLO", {}).values():
        try:
            slo = _slo(item, by_kind, problems)
        except ValidationError as exc:
            schema.report(exc, item.spec_at, problems)
            continue
        if slo is not None:
            result.append(slo)
    return result


def _slo(found: Found, by_kind: ByKind, problems: Problems) -> Slo | None:
    document, at = found.document, found.spec_at
    spec = OsSloSpec.model_validate(document.spec, context=None)

    if spec.indicator is not None and spec.indicatorRef is None:
        sli_spec, sli_at = spec.indicator.spec, at.at("indicator", "spec")
    elif spec.indicatorRef is not None and spec.indicator is None:
        ref = by_kind.get("SLI", {}).get(spec.indicatorRef)
        if ref is None:
            problems.add(at.at("indicatorRef"), f"no SLI named {spec.indicatorRef!r}")
            return None
        sli_spec, sli_at = OsSliSpec.model_validate(ref.document.spec), ref.spec_at
    else:
        problems.add(at, "needs exactly one of indicator or indicatorRef")
        return None

    if len(spec.objectives) != 1:
        problems.add(at.at("objectives"), "exactly one objective is supported per SLO")
        return None
    objective = spec.objectives[0]
    # Each part is checked (and reports its problems) even when an earlier one failed.
    target = _target(objective, at.at("objectives", 0), problems)
    sli = _sli(sli_spec, objective, sli_at, problems)
    window = _time_window(spec.timeWindow[0], at.at("timeWindow", 0), problems)
    tiers = _policy_tiers(spec, by_kind, at, problems)
    if target is None or sli is None or window is None or tiers is None:
        return None
    period, calendar_start = window

    name = document.metadata.name
    slo_id = name if name.startswith(f"{spec.service}-") else f"{spec.service}-{name}"
    # OpenSLO metadata often carries Kubernetes-style names (app.kubernetes.io/name): those stay in the
    # spec but out of the generated rules, where Prometheus would refuse them as label names.
    annotations = {
        k: v for k, v in document.metadata.annotations.items() if schema.label_name_problem(k) is None
    }
    slo = Slo(
        id=slo_id,
        service=spec.service,
        name=name,
        objective=target,
        sli=sli,
        source=at.file,
        description=spec.description,
        labels=_labels(document.metadata),
        alerting=Alerting(name=None, annotations=annotations),
        period_seconds=period,
        calendar_start=calendar_start,
        tiers=tiers or burn.tiers_for_period(period),
    )
    schema.check_tiers(slo, at.at("objectives", 0), problems)
    return slo


def _labels(metadata: OsMetadata) -> dict[str, str]:
    """The SLO's labels as rule labels: lists joined, names Prometheus would refuse left out."""
    return {
        k: ",".join(v) if isinstance(v, list) else v
        for k, v in metadata.labels.items()
        if schema.label_name_problem(k) is None
    }


def _target(objective: OsObjective, at: Location, problems: Problems) -> float | None:
    if (objective.target is None) == (objective.targetPercent is None):
        problems.add(at, "needs exactly one of target (ratio) or targetPercent")
        return None
    if objective.target is not None:
        if not 0 < objective.target < 1:
            problems.add(at.at("target"), f"must be between 0 and 1 (got {objective.target:g})")
            return None
        return objective.target
    assert objective.targetPercent is not None
    if not 0 < objective.targetPercent < 100:
        problems.add(at.at("targetPercent"), f"must be between 0 and 100 (got {objective.targetPercent:g})")
        return None
    return schema.percent_to_ratio(objective.targetPercent)


# ---------------------------------------------------------------- SLIs


def _prometheus_query(metric: OsMetric, counter: bool, at: Location, problems: Problems) -> str | None:
    query_at = at.at("metricSource", "spec", "query")
    query = metric.metricSource.spec.get("query")
    if not isinstance(query, str) or not query.strip():
        problems.add(query_at, "required")
        return None
    if not WINDOW_PLACEHOLDER.search(query):
        if not counter:
            problems.add(query_at, "needs {{.window}} unless counter: true")
            return None
        query = promql_build.total(promql_build.rate(query.strip(), WINDOW))
    problem = schema.query_problem(query)
    if problem is not None:
        problems.add(query_at, problem)
        return None
    return query


def _source_type(metric: OsMetric, at: Location, problems: Problems) -> str | None:
    if metric.metricSource.metricSourceRef is not None:
        problems.add(at.at("metricSource", "metricSourceRef"), "not supported; inline the metric source")
        return None
    kind = metric.metricSource.type.lower()
    if kind not in ("prometheus", "elasticsearch"):
        problems.add(
            at.at("metricSource", "type"),
            f"must be Prometheus or Elasticsearch (got {metric.metricSource.type!r})",
        )
        return None
    return kind


def _sli(spec: OsSliSpec, objective: OsObjective, at: Location, problems: Problems) -> Sli | None:
    """The SLI, or None after reporting why it cannot be built."""
    if (spec.thresholdMetric is None) == (spec.ratioMetric is None):
        problems.add(at, "needs exactly one of thresholdMetric or ratioMetric")
        return None
    if spec.thresholdMetric is not None:
        return _latency(spec.thresholdMetric, objective, at.at("thresholdMetric"), problems)
    ratio = spec.ratioMetric
    assert ratio is not None
    at = at.at("ratioMetric")
    if ratio.raw is not None:
        if _source_type(ratio.raw, at.at("raw"), problems) != "prometheus":
            problems.add(at.at("raw"), "raw ratios are supported from Prometheus only")
            return None
        query = _prometheus_query(ratio.raw, False, at.at("raw"), problems)
        if query is None:
            return None
        return RawSli(query if ratio.rawType != "success" else f"(1 - ({query}))")
    if ratio.total is None or (ratio.good is None) == (ratio.bad is None):
        problems.add(at, "needs total and exactly one of good or bad (or raw)")
        return None
    part_name, part = ("good", ratio.good) if ratio.good is not None else ("bad", ratio.bad)
    assert part is not None
    kinds = {
        _source_type(ratio.total, at.at("total"), problems),
        _source_type(part, at.at(part_name), problems),
    }
    if None in kinds:
        return None
    if kinds == {"elasticsearch"}:
        return _elasticsearch(ratio.total, part_name, part, at, problems)
    if kinds != {"prometheus"}:
        problems.add(at, "total and good/bad must come from the same source type")
        return None
    total = _prometheus_query(ratio.total, ratio.counter, at.at("total"), problems)
    other = _prometheus_query(part, ratio.counter, at.at(part_name), problems)
    if total is None or other is None:
        return None
    # A good counter may not exist yet where every event failed (client libraries make a labelled series
    # on its first increment): missing good events are none, so bad is then all of total, not nothing.
    error = other if part_name == "bad" else f"(({total}) - (({other}) or (({total}) * 0)))"
    return EventsSli(error_query=error, total_query=total)


def _elasticsearch_spec_problems(specs: dict[str, dict[str, Any]], at: Location) -> list[Problem]:
    """Unknown fields and missing indexes in the metric sources of a log-based SLI."""
    found = []
    for name, item in specs.items():
        spec_at = at.at(name, "metricSource", "spec")
        found += [
            Problem(spec_at.at(key), "unknown field") for key in sorted(set(item) - ELASTICSEARCH_FIELDS)
        ]
        if not isinstance(item.get("index"), str):
            found.append(Problem(spec_at.at("index"), "required"))
    return found


def _elasticsearch(
    total: OsMetric, part_name: str, part: OsMetric, at: Location, problems: Problems
) -> ElasticsearchSli | None:
    specs = {"total": total.metricSource.spec, part_name: part.metricSource.spec}
    found = _elasticsearch_spec_problems(specs, at)
    if found:
        problems.extend(found)
        return None
    if specs["total"]["index"] != specs[part_name]["index"] or specs["total"].get(
        "timestampField", "@timestamp"
    ) != specs[part_name].get("timestampField", "@timestamp"):
        problems.add(at, "total and good/bad must use the same index and timestampField")
        return None
    part_query = specs[part_name].get("query")
    if not isinstance(part_query, str) or not part_query.strip():
        problems.add(at.at(part_name, "metricSource", "spec", "query"), "required")
        return None
    return ElasticsearchSli(
        index=specs["total"]["index"],
        timestamp_field=specs["total"].get("timestampField", "@timestamp"),
        total_query=specs["total"].get("query") or None,
        bad_query=part_query if part_name == "bad" else None,
        good_query=part_query if part_name == "good" else None,
    )


def _latency(metric: OsMetric, objective: OsObjective, at: Location, problems: Problems) -> LatencySli | None:
    if _source_type(metric, at, problems) != "prometheus":
        problems.add(at, "latency thresholds are supported from Prometheus histograms only")
        return None
    query_at = at.at("metricSource", "spec", "query")
    query = str(metric.metricSource.spec.get("query", ""))
    match = HISTOGRAM.match(query)
    if not match:
        problems.add(
            query_at,
            f'must name a histogram, like http_request_duration_seconds{{service="x"}} (got {query!r})',
        )
        return None
    if objective.op not in ("lt", "lte") or objective.value is None or objective.value <= 0:
        # Named without the SLO's path, as it always has been.
        problems.add(
            Location(at.file, ("objectives", 0)), "a latency objective needs op: lte and a positive value"
        )
        return None
    try:
        histogram, matchers = promql.selector(match.group(1), match.group(2) or "")
    except promql.PromqlError as exc:
        problems.add(query_at, str(exc))
        return None
    name = re.sub(r"_(bucket|count|sum)$", "", histogram)
    return LatencySli(metric=name, selector=matchers, threshold=objective.value)


# ---------------------------------------------------------------- period and tiers


def _time_window(
    window: OsTimeWindow, at: Location, problems: Problems
) -> tuple[int, datetime | None] | None:
    """(period, calendar start), or None after reporting why the window cannot be used."""
    if window.duration[-1:] in ("M", "Q", "Y"):
        problems.add(
            at.at("duration"), f"months, quarters and years are not supported (got {window.duration!r})"
        )
        return None
    try:
        period = durations.parse_prometheus(window.duration)
    except ValueError as exc:
        problems.add(at.at("duration"), str(exc))
        return None
    if window.isRolling:
        return period, None
    start = (window.calendar or {}).get("startTime")
    try:
        calendar_start = datetime.fromisoformat(str(start).replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        problems.add(at.at("calendar", "startTime"), f"needs an ISO date-time (got {start!r})")
        return None
    if calendar_start.tzinfo is None:
        calendar_start = calendar_start.replace(tzinfo=UTC)
    return period, calendar_start


def _policy_tiers(
    spec: OsSloSpec, by_kind: ByKind, at: Location, problems: Problems
) -> tuple[burn.Tier, ...] | None:
    """AlertPolicy burn-rate conditions as tiers (short window = long / 12); () for no policy, so the
    period's four defaults apply; None after reporting why a policy or condition cannot be used."""
    tiers: list[burn.Tier | None] = []
    for index, item in enumerate(spec.alertPolicies):
        where = at.at("alertPolicies", index)
        policy = _policy(item, by_kind, where, problems)
        if policy is None:
            tiers.append(None)
            continue
        for number, condition in enumerate(policy.conditions):
            tiers.append(
                _condition_tier(condition, number, by_kind, where.at("conditions", number), problems)
            )
    found = [tier for tier in tiers if tier is not None]
    return tuple(found) if len(found) == len(tiers) else None


def _policy(
    item: str | OsPolicyRef, by_kind: ByKind, where: Location, problems: Problems
) -> OsAlertPolicySpec | None:
    ref = item if isinstance(item, str) else item.alertPolicyRef
    if ref is not None:
        policy = by_kind.get("AlertPolicy", {}).get(ref)
        if policy is None:
            problems.add(where, f"no AlertPolicy named {ref!r}")
            return None
        return OsAlertPolicySpec.model_validate(policy.document.spec)
    if isinstance(item, OsPolicyRef) and item.spec is not None:
        return item.spec
    problems.add(where, "needs an alertPolicyRef or an inline AlertPolicy spec")
    return None


def _condition_tier(
    condition: OsInlineCondition, number: int, by_kind: ByKind, where: Location, problems: Problems
) -> burn.Tier | None:
    if condition.conditionRef is not None:
        found = by_kind.get("AlertCondition", {}).get(condition.conditionRef)
        if found is None:
            problems.add(where, f"no AlertCondition named {condition.conditionRef!r}")
            return None
        name = found.document.metadata.name
        spec = OsAlertConditionSpec.model_validate(found.document.spec)
    elif condition.spec is not None:
        name = condition.metadata.name if condition.metadata else f"condition-{number}"
        spec = condition.spec
    else:
        problems.add(where, "needs conditionRef or spec")
        return None
    try:
        long = durations.parse_prometheus(spec.condition.lookbackWindow)
    except ValueError as exc:
        problems.add(where.at("lookbackWindow"), str(exc))
        return None
    severity = burn.State.page if spec.severity.lower() in PAGE_SEVERITIES else burn.State.ticket
    return burn.Tier(
        name=name,
        severity=severity,
        long=burn.Window(long),
        short=burn.Window(max(60, round(long / 12))),
        factor=spec.condition.threshold,
    )
