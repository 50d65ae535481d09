"""Parsers for the two spec formats sloguard reads: Sloth `prometheus/v1` and OpenSLO v1.

Each file is validated against a strict schema (unknown fields are refused, so a typo never silently
turns a page off), then turned into `spec.Slo` objects. Problems are reported as `file: field: reason`.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.slo import burn, promql
from app.slo.spec import (
    METRIC_NAME,
    WINDOW_PLACEHOLDER,
    Alerting,
    ElasticsearchSli,
    EventsSli,
    LatencySli,
    Problems,
    RawSli,
    Sli,
    Slo,
    check_tiers,
    label_name_problem,
    placeholder_problem,
)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
HISTOGRAM = re.compile(r"^\s*([A-Za-z_:][A-Za-z0-9_:]*)\s*(?:\{(.*)\})?\s*$")
PAGE_SEVERITIES = {"page", "critical", "high", "p1", "sev1"}


def percent_to_ratio(percent: float) -> float:
    """99.9 -> 0.999 exactly as written (99.9 / 100 in binary floating point is 0.9990000000000001)."""
    return float(Decimal(str(percent)) / 100)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


def _name(value: str) -> str:
    if not NAME.match(value):
        raise ValueError(f"must be letters, digits, '-', '_' or '.' (got {value!r})")
    return value


def _label_name(value: str) -> str:
    problem = label_name_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


def _alert_name(value: str) -> str:
    if not METRIC_NAME.fullmatch(value):
        raise ValueError(
            f"must be a Prometheus alert name: a letter, '_' or ':', then letters, digits, '_' or ':' "
            f"(got {value!r})"
        )
    return value


# Label and annotation names become Prometheus label names in the generated rules.
LabelName = Annotated[str, AfterValidator(_label_name)]
Labels = dict[LabelName, str]


def query_problem(query: str) -> str | None:
    """Why a spec's query (with `{{.window}}` filled in) would not load in Prometheus, or None."""
    return placeholder_problem(query) or promql.problem(
        WINDOW_PLACEHOLDER.sub("5m", query), limit=promql.QUERY_DEPTH
    )


def _window_query(value: str) -> str:
    if not WINDOW_PLACEHOLDER.search(value):
        raise ValueError("must contain {{.window}} where the range goes, e.g. rate(x[{{.window}}])")
    problem = query_problem(value)
    if problem is not None:
        raise ValueError(problem)
    return value


# ---------------------------------------------------------------- Sloth prometheus/v1


class SlothEvents(Strict):
    error_query: str
    total_query: str

    _check = field_validator("error_query", "total_query")(_window_query)


class SlothRaw(Strict):
    error_ratio_query: str

    _check = field_validator("error_ratio_query")(_window_query)


class SlothSli(Strict):
    events: SlothEvents | None = None
    raw: SlothRaw | None = None
    plugin: dict[str, Any] | None = None


class SlothAlert(Strict):
    disable: bool = False
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)


class SlothAlerting(Strict):
    name: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    page_alert: SlothAlert = Field(default_factory=SlothAlert)
    ticket_alert: SlothAlert = Field(default_factory=SlothAlert)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else _alert_name(value)


class SlothSlo(Strict):
    name: str
    objective: float
    description: str = ""
    labels: Labels = Field(default_factory=dict)
    sli: SlothSli
    alerting: SlothAlerting = Field(default_factory=SlothAlerting)

    _name = field_validator("name")(_name)

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0 < value < 100:
            raise ValueError(f"must be between 0 and 100 (got {value:g})")
        return value


class SlothSpec(Strict):
    version: Literal["prometheus/v1"]
    service: str
    labels: Labels = Field(default_factory=dict)
    slos: list[SlothSlo] = Field(min_length=1)

    _name = field_validator("service")(_name)


class SlothKubernetesSpec(Strict):
    service: str
    labels: Labels = Field(default_factory=dict)
    slos: list[SlothSlo] = Field(min_length=1)

    _name = field_validator("service")(_name)


class SlothKubernetes(Strict):
    apiVersion: Literal["sloth.slok.dev/v1"]
    kind: Literal["PrometheusServiceLevel"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SlothKubernetesSpec


# ---------------------------------------------------------------- OpenSLO v1


class OsMetadata(Strict):
    name: str
    displayName: str | None = None
    labels: dict[str, str | list[str]] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)

    _name = field_validator("name")(_name)


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
    _service = field_validator("service")(_name)

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
    source: str = ""
    prefix: str = ""


# ---------------------------------------------------------------- errors


def _location(prefix: str, loc: tuple[Any, ...]) -> str:
    text = prefix.rstrip(".")
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        elif part in ("function-after[_occurrences(), str]", "[key]", "str") or str(part).startswith(
            ("function-", "union[", "OsPolicyRef")
        ):
            continue  # pydantic's internal steps for validators and unions
        else:
            text += f".{part}" if text else str(part)
    return text


def _report(exc: ValidationError, source: str, prefix: str, problems: Problems) -> None:
    for error in exc.errors():
        kind, message = error["type"], str(error["msg"]).removeprefix("Value error, ")
        if kind == "extra_forbidden":
            message = "unknown field"
        elif kind == "missing":
            message = "required"
        elif kind not in ("value_error",) and not isinstance(error.get("input"), dict | list):
            message = f"{message} (got {error.get('input')!r})"
        problems.add(source, _location(prefix, tuple(error["loc"])), message)


# ---------------------------------------------------------------- documents -> SLOs


def parse_document(
    document: Any, source: str, prefix: str, problems: Problems, openslo: list[OpenSloDocument]
) -> list[Slo]:
    """Turn one YAML document into SLOs; OpenSLO documents are kept for `resolve_openslo`."""
    if not isinstance(document, dict):
        problems.add(source, prefix.rstrip("."), "must be a mapping")
        return []
    if document.get("version") == "prometheus/v1":
        try:
            sloth = SlothSpec.model_validate(document)
        except ValidationError as exc:
            _report(exc, source, prefix, problems)
            return []
        return _sloth(sloth.service, sloth.labels, sloth.slos, source, prefix, problems)
    if document.get("apiVersion") == "sloth.slok.dev/v1":
        try:
            crd = SlothKubernetes.model_validate(document)
        except ValidationError as exc:
            _report(exc, source, prefix, problems)
            return []
        return _sloth(crd.spec.service, crd.spec.labels, crd.spec.slos, source, f"{prefix}spec.", problems)
    if document.get("apiVersion") == "openslo/v1":
        try:
            openslo.append(OpenSloDocument.model_validate({**document, "source": source, "prefix": prefix}))
        except ValidationError as exc:
            _report(exc, source, prefix, problems)
        return []
    problems.add(
        source,
        prefix.rstrip("."),
        "unknown format: expected `version: prometheus/v1` (Sloth) or `apiVersion: openslo/v1` (OpenSLO)",
    )
    return []


def _sloth(
    service: str,
    labels: dict[str, str],
    slos: list[SlothSlo],
    source: str,
    prefix: str,
    problems: Problems,
) -> list[Slo]:
    result = []
    for index, item in enumerate(slos):
        location = f"{prefix}slos[{index}]"
        sli: Sli
        chosen = [kind for kind in ("events", "raw", "plugin") if getattr(item.sli, kind) is not None]
        if chosen == ["events"] and item.sli.events is not None:
            sli = EventsSli(item.sli.events.error_query, item.sli.events.total_query)
        elif chosen == ["raw"] and item.sli.raw is not None:
            sli = RawSli(item.sli.raw.error_ratio_query)
        elif chosen == ["plugin"]:
            problems.add(source, f"{location}.sli.plugin", "SLI plugins are not supported; use events or raw")
            continue
        else:
            problems.add(source, f"{location}.sli", "needs exactly one of events or raw")
            continue
        alerting = Alerting(
            name=item.alerting.name,
            labels=item.alerting.labels,
            annotations=item.alerting.annotations,
            page_labels=item.alerting.page_alert.labels,
            page_annotations=item.alerting.page_alert.annotations,
            ticket_labels=item.alerting.ticket_alert.labels,
            ticket_annotations=item.alerting.ticket_alert.annotations,
            page_disabled=item.alerting.page_alert.disable,
            ticket_disabled=item.alerting.ticket_alert.disable,
        )
        period = 30 * burn.DAY
        slo = Slo(
            id=f"{service}-{item.name}",
            service=service,
            name=item.name,
            objective=percent_to_ratio(item.objective),
            sli=sli,
            source=source,
            description=item.description,
            labels={**labels, **item.labels},
            alerting=alerting,
            period_seconds=period,
            tiers=burn.tiers_for_period(period),
        )
        check_tiers(slo, f"{location}.objective", problems)
        result.append(slo)
    return result


def _labels(metadata: OsMetadata) -> dict[str, str]:
    """The SLO's labels as rule labels: lists joined, names Prometheus would refuse left out."""
    return {
        k: ",".join(v) if isinstance(v, list) else v
        for k, v in metadata.labels.items()
        if label_name_problem(k) is None
    }


def resolve_openslo(documents: list[OpenSloDocument], problems: Problems) -> list[Slo]:
    """Build SLOs from OpenSLO documents, resolving `indicatorRef`, policy and condition refs."""
    by_kind: dict[str, dict[str, OpenSloDocument]] = {}
    for document in documents:
        by_kind.setdefault(document.kind, {})[document.metadata.name] = document
    result = []
    for document in by_kind.get("SLO", {}).values():
        try:
            slo = _openslo_slo(document, by_kind, problems)
        except ValidationError as exc:
            _report(exc, document.source, f"{document.prefix}spec.", problems)
            continue
        if slo is not None:
            result.append(slo)
    return result


def _openslo_slo(
    document: OpenSloDocument, by_kind: dict[str, dict[str, OpenSloDocument]], problems: Problems
) -> Slo | None:
    source, at = document.source, f"{document.prefix}spec"
    spec = OsSloSpec.model_validate(document.spec, context=None)
    before = len(problems.lines)

    if spec.indicator is not None and spec.indicatorRef is None:
        sli_spec, sli_at, sli_source = spec.indicator.spec, f"{at}.indicator.spec", source
    elif spec.indicatorRef is not None and spec.indicator is None:
        ref = by_kind.get("SLI", {}).get(spec.indicatorRef)
        if ref is None:
            problems.add(source, f"{at}.indicatorRef", f"no SLI named {spec.indicatorRef!r}")
            return None
        sli_spec = OsSliSpec.model_validate(ref.spec)
        sli_at, sli_source = f"{ref.prefix}spec", ref.source
    else:
        problems.add(source, at, "needs exactly one of indicator or indicatorRef")
        return None

    if len(spec.objectives) != 1:
        problems.add(source, f"{at}.objectives", "exactly one objective is supported per SLO")
        return None
    objective = spec.objectives[0]
    target = _target(objective, source, f"{at}.objectives[0]", problems)
    sli = _openslo_sli(sli_spec, objective, sli_source, sli_at, problems)
    period, calendar_start = _time_window(spec.timeWindow[0], source, f"{at}.timeWindow[0]", problems)
    tiers = _policy_tiers(spec, by_kind, source, at, period, problems)
    if len(problems.lines) > before or sli is None or target is None:
        return None

    name = document.metadata.name
    slo_id = name if name.startswith(f"{spec.service}-") else f"{spec.service}-{name}"
    # OpenSLO metadata often carries Kubernetes-style names (app.kubernetes.io/name): those stay in the
    # spec but out of the generated rules, where Prometheus would refuse them as label names.
    annotations = {k: v for k, v in document.metadata.annotations.items() if label_name_problem(k) is None}
    slo = Slo(
        id=slo_id,
        service=spec.service,
        name=name,
        objective=target,
        sli=sli,
        source=source,
        description=spec.description,
        labels=_labels(document.metadata),
        alerting=Alerting(name=None, annotations=annotations),
        period_seconds=period,
        calendar_start=calendar_start,
        tiers=tiers,
    )
    check_tiers(slo, f"{at}.objectives[0]", problems)
    return slo


def _target(objective: OsObjective, source: str, at: str, problems: Problems) -> float | None:
    if (objective.target is None) == (objective.targetPercent is None):
        problems.add(source, at, "needs exactly one of target (ratio) or targetPercent")
        return None
    if objective.target is not None:
        if not 0 < objective.target < 1:
            problems.add(source, f"{at}.target", f"must be between 0 and 1 (got {objective.target:g})")
            return None
        return objective.target
    assert objective.targetPercent is not None
    if not 0 < objective.targetPercent < 100:
        problems.add(
            source, f"{at}.targetPercent", f"must be between 0 and 100 (got {objective.targetPercent:g})"
        )
        return None
    return percent_to_ratio(objective.targetPercent)


def _prometheus_query(
    metric: OsMetric, counter: bool, source: str, at: str, problems: Problems
) -> str | None:
    query = metric.metricSource.spec.get("query")
    if not isinstance(query, str) or not query.strip():
        problems.add(source, f"{at}.metricSource.spec.query", "required")
        return None
    if not WINDOW_PLACEHOLDER.search(query):
        if not counter:
            problems.add(source, f"{at}.metricSource.spec.query", "needs {{.window}} unless counter: true")
            return None
        query = f"sum(rate({query.strip()}[{{{{.window}}}}]))"
    problem = query_problem(query)
    if problem is not None:
        problems.add(source, f"{at}.metricSource.spec.query", problem)
        return None
    return query


def _source_type(metric: OsMetric, source: str, at: str, problems: Problems) -> str | None:
    if metric.metricSource.metricSourceRef is not None:
        problems.add(source, f"{at}.metricSource.metricSourceRef", "not supported; inline the metric source")
        return None
    kind = metric.metricSource.type.lower()
    if kind not in ("prometheus", "elasticsearch"):
        problems.add(
            source,
            f"{at}.metricSource.type",
            f"must be Prometheus or Elasticsearch (got {metric.metricSource.type!r})",
        )
        return None
    return kind


def _openslo_sli(
    spec: OsSliSpec, objective: OsObjective, source: str, at: str, problems: Problems
) -> Sli | None:
    if (spec.thresholdMetric is None) == (spec.ratioMetric is None):
        problems.add(source, at, "needs exactly one of thresholdMetric or ratioMetric")
        return None
    if spec.thresholdMetric is not None:
        return _latency(spec.thresholdMetric, objective, source, f"{at}.thresholdMetric", problems)
    ratio = spec.ratioMetric
    assert ratio is not None
    at = f"{at}.ratioMetric"
    if ratio.raw is not None:
        if _source_type(ratio.raw, source, f"{at}.raw", problems) != "prometheus":
            problems.add(source, f"{at}.raw", "raw ratios are supported from Prometheus only")
            return None
        query = _prometheus_query(ratio.raw, False, source, f"{at}.raw", problems)
        if query is None:
            return None
        return RawSli(query if ratio.rawType != "success" else f"(1 - ({query}))")
    if ratio.total is None or (ratio.good is None) == (ratio.bad is None):
        problems.add(source, at, "needs total and exactly one of good or bad (or raw)")
        return None
    part_name, part = ("good", ratio.good) if ratio.good is not None else ("bad", ratio.bad)
    assert part is not None
    kinds = {
        _source_type(ratio.total, source, f"{at}.total", problems),
        _source_type(part, source, f"{at}.{part_name}", problems),
    }
    if None in kinds:
        return None
    if kinds == {"elasticsearch"}:
        return _elasticsearch(ratio.total, part_name, part, source, at, problems)
    if kinds != {"prometheus"}:
        problems.add(source, at, "total and good/bad must come from the same source type")
        return None
    total = _prometheus_query(ratio.total, ratio.counter, source, f"{at}.total", problems)
    other = _prometheus_query(part, ratio.counter, source, f"{at}.{part_name}", problems)
    if total is None or other is None:
        return None
    error = other if part_name == "bad" else f"(({total}) - ({other}))"
    return EventsSli(error_query=error, total_query=total)


def _elasticsearch(
    total: OsMetric, part_name: str, part: OsMetric, source: str, at: str, problems: Problems
) -> ElasticsearchSli | None:
    specs = {"total": total.metricSource.spec, part_name: part.metricSource.spec}
    allowed = {"index", "timestampField", "query"}
    for name, item in specs.items():
        for key in sorted(set(item) - allowed):
            problems.add(source, f"{at}.{name}.metricSource.spec.{key}", "unknown field")
        if not isinstance(item.get("index"), str):
            problems.add(source, f"{at}.{name}.metricSource.spec.index", "required")
    if len(problems.lines) and any(line.startswith(f"{source}: {at}.") for line in problems.lines):
        return None
    if specs["total"]["index"] != specs[part_name]["index"] or specs["total"].get(
        "timestampField", "@timestamp"
    ) != specs[part_name].get("timestampField", "@timestamp"):
        problems.add(source, at, "total and good/bad must use the same index and timestampField")
        return None
    part_query = specs[part_name].get("query")
    if not isinstance(part_query, str) or not part_query.strip():
        problems.add(source, f"{at}.{part_name}.metricSource.spec.query", "required")
        return None
    return ElasticsearchSli(
        index=specs["total"]["index"],
        timestamp_field=specs["total"].get("timestampField", "@timestamp"),
        total_query=specs["total"].get("query") or None,
        bad_query=part_query if part_name == "bad" else None,
        good_query=part_query if part_name == "good" else None,
    )


def _latency(
    metric: OsMetric, objective: OsObjective, source: str, at: str, problems: Problems
) -> LatencySli | None:
    if _source_type(metric, source, at, problems) != "prometheus":
        problems.add(source, at, "latency thresholds are supported from Prometheus histograms only")
        return None
    query = str(metric.metricSource.spec.get("query", ""))
    match = HISTOGRAM.match(query)
    if not match:
        problems.add(
            source,
            f"{at}.metricSource.spec.query",
            f'must name a histogram, like http_request_duration_seconds{{service="x"}} (got {query!r})',
        )
        return None
    if objective.op not in ("lt", "lte") or objective.value is None or objective.value <= 0:
        problems.add(source, "objectives[0]", "a latency objective needs op: lte and a positive value")
        return None
    try:
        histogram, matchers = promql.selector(match.group(1), match.group(2) or "")
    except promql.PromqlError as exc:
        problems.add(source, f"{at}.metricSource.spec.query", str(exc))
        return None
    name = re.sub(r"_(bucket|count|sum)$", "", histogram)
    return LatencySli(metric=name, selector=matchers, threshold=objective.value)


def _time_window(
    window: OsTimeWindow, source: str, at: str, problems: Problems
) -> tuple[int, datetime | None]:
    default = 30 * burn.DAY
    if window.duration[-1:] in ("M", "Q", "Y"):
        problems.add(
            source,
            f"{at}.duration",
            f"months, quarters and years are not supported (got {window.duration!r})",
        )
        return default, None
    try:
        period = burn.parse_duration(window.duration)
    except ValueError as exc:
        problems.add(source, f"{at}.duration", str(exc))
        return default, None
    if window.isRolling:
        return period, None
    start = (window.calendar or {}).get("startTime")
    try:
        calendar_start = datetime.fromisoformat(str(start).replace(" ", "T").replace("Z", "+00:00"))
    except ValueError:
        problems.add(source, f"{at}.calendar.startTime", f"needs an ISO date-time (got {start!r})")
        return period, None
    if calendar_start.tzinfo is None:
        calendar_start = calendar_start.replace(tzinfo=UTC)
    return period, calendar_start


def _policy_tiers(
    spec: OsSloSpec,
    by_kind: dict[str, dict[str, OpenSloDocument]],
    source: str,
    at: str,
    period: int,
    problems: Problems,
) -> tuple[burn.Tier, ...]:
    """AlertPolicy burn-rate conditions become tiers (short window = long / 12); none: the four defaults."""
    tiers: list[burn.Tier] = []
    for index, item in enumerate(spec.alertPolicies):
        where = f"{at}.alertPolicies[{index}]"
        ref = item if isinstance(item, str) else item.alertPolicyRef
        if ref is not None:
            policy_doc = by_kind.get("AlertPolicy", {}).get(ref)
            if policy_doc is None:
                problems.add(source, where, f"no AlertPolicy named {ref!r}")
                continue
            policy = OsAlertPolicySpec.model_validate(policy_doc.spec)
        elif isinstance(item, OsPolicyRef) and item.spec is not None:
            policy = item.spec
        else:
            problems.add(source, where, "needs an alertPolicyRef or an inline AlertPolicy spec")
            continue
        for number, condition in enumerate(policy.conditions):
            if condition.conditionRef is not None:
                found = by_kind.get("AlertCondition", {}).get(condition.conditionRef)
                if found is None:
                    problems.add(
                        source,
                        f"{where}.conditions[{number}]",
                        f"no AlertCondition named {condition.conditionRef!r}",
                    )
                    continue
                name, cond_spec = found.metadata.name, OsAlertConditionSpec.model_validate(found.spec)
            elif condition.spec is not None:
                name = condition.metadata.name if condition.metadata else f"condition-{number}"
                cond_spec = condition.spec
            else:
                problems.add(source, f"{where}.conditions[{number}]", "needs conditionRef or spec")
                continue
            try:
                long = burn.parse_duration(cond_spec.condition.lookbackWindow)
            except ValueError as exc:
                problems.add(source, f"{where}.conditions[{number}].lookbackWindow", str(exc))
                continue
            severity = burn.State.page if cond_spec.severity.lower() in PAGE_SEVERITIES else burn.State.ticket
            tiers.append(
                burn.Tier(
                    name=name,
                    severity=severity,
                    long=burn.Window(long),
                    short=burn.Window(max(60, round(long / 12))),
                    factor=cond_spec.condition.threshold,
                )
            )
    return tuple(tiers) if tiers else burn.tiers_for_period(period)
