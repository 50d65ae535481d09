"""Prometheus recording and alerting rules with Sloth's names and labels.

Dashboards and alerts built for Sloth keep working: `slo:sli_error:ratio_rate<window>`, the meta
recordings (`slo:objective:ratio`, `slo:error_budget:ratio`, ...), `sloth_slo_info` and two MWMB alerts
per SLO (page and ticket, labelled `sloth_severity`). Two differences, both on purpose:

- For event SLIs the period ratio (`slo:sli_error:ratio_rate30d`) weighs by traffic: it divides the
  summed bad rate by the summed total rate over the period (from `sloguard:sli_error:rate5m` and
  `sloguard:sli_total:rate5m`), where Sloth averages 5-minute ratios and lets a quiet night count as
  much as a busy day.
- `sloguard:sli_total:rate<window>` records the traffic per window, so that sloguard can read every SLO
  in a handful of queries and still apply its minimum-volume guard.

Log-based SLIs (Elasticsearch) have no Prometheus rules; sloguard evaluates them itself, and the output
names them in a comment (`evaluated_by_sloguard_only`) so that nobody takes their silence for a pager.
A relative `runbook_url` (`runbooks/x.md`, as the specs write it) is made absolute when a base is given
(`runbook_links`): a pager's link must open from anywhere.
"""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import PurePath
from typing import Any, Literal

import yaml

from app import durations, promql_build
from app.durations import DAY
from app.slo import burn, promql, queries
from app.slo.model import EventsSli, LatencySli, RawSli, Slo
from app.slo.problems import Location, Problem

SHORT_RECORDING_WINDOW = burn.Window(300)
RUNBOOK_KEYS = ("runbook_url", "runbook")  # the annotations app/slo/model.Slo.runbook reads
Format = Literal["rules", "prometheusrule"]
RunbookLink = Callable[[str], str]
PLANNED_METRIC = "sloguard_planned_window_active"  # app/telemetry.PlannedGauge


def _labels(slo: Slo, **extra: str) -> dict[str, str]:
    return {
        **slo.labels,
        "sloth_id": slo.id,
        "sloth_service": slo.service,
        "sloth_slo": slo.name,
        **extra,
    }


def _selector(slo: Slo) -> str:
    # The specs only allow plain names here; escaping anyway keeps a quote from ever becoming a matcher.
    return promql_build.selector(
        "",
        promql_build.match("sloth_id", slo.id),
        promql_build.match("sloth_service", slo.service),
        promql_build.match("sloth_slo", slo.name),
        separator=", ",
    )


def _per_line(left: str, operator: str, right: str) -> str:
    """A binary operation with each operand on its own line, as the rules file shows them."""
    return promql_build.binary(left, operator, right, separator="\n")


def template_text(text: str) -> str:
    """Plain text for an alert annotation, which Prometheus expands as a Go template: `{{` stays literal."""
    return text.replace("{{", '{{ "{{" }}')


def alert_name(slo: Slo) -> str:
    """Sloth's default alert name, `fraud-model-availability` -> `FraudModelAvailability`, kept a valid
    Prometheus name for ids with dots or a leading digit."""
    if slo.alerting.name:
        return slo.alerting.name
    name = "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", slo.id))
    return name if name[:1].isalpha() else f"Slo{name}"


def _number(value: float) -> str:
    return format(value, ".12g")


def _sli_rules(slo: Slo) -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = []
    windows = sorted({*slo.windows, SHORT_RECORDING_WINDOW})
    period = durations.format_prometheus(slo.period_seconds)
    sli = slo.prometheus_sli
    for window in windows:
        labels = _labels(slo, sloth_window=window.name)
        if isinstance(sli, EventsSli):
            ratio = _per_line(
                promql_build.group(sli.error_for(window.name)),
                "/",
                promql_build.group(sli.total_for(window.name)),
            )
            rules.append(
                {"record": f"slo:sli_error:ratio_rate{window.name}", "expr": ratio, "labels": labels}
            )
            rules.append(
                {
                    "record": f"sloguard:sli_total:rate{window.name}",
                    "expr": sli.total_for(window.name),
                    "labels": labels,
                }
            )
        elif isinstance(sli, RawSli):
            rules.append(
                {
                    "record": f"slo:sli_error:ratio_rate{window.name}",
                    "expr": sli.ratio_for(window.name),
                    "labels": labels,
                }
            )
    five = SHORT_RECORDING_WINDOW.name
    period_labels = _labels(slo, sloth_window=period)
    if isinstance(sli, EventsSli):
        rules.append(
            {
                "record": f"sloguard:sli_error:rate{five}",
                "expr": sli.error_for(five),
                "labels": _labels(slo, sloth_window=five),
            }
        )
        selector = _selector(slo)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{period}",
                "expr": _per_line(
                    promql_build.over_time(
                        "sum_over_time", f"sloguard:sli_error:rate{five}{selector}", period
                    ),
                    "/ ignoring (sloth_window)",
                    promql_build.over_time(
                        "sum_over_time", f"sloguard:sli_total:rate{five}{selector}", period
                    ),
                ),
                "labels": period_labels,
            }
        )
    else:
        selector = _selector(slo)
        rules.append(
            {
                "record": f"slo:sli_error:ratio_rate{period}",
                "expr": _per_line(
                    promql_build.over_time(
                        "sum_over_time", f"slo:sli_error:ratio_rate{five}{selector}", period
                    ),
                    "/ ignoring (sloth_window)",
                    promql_build.over_time(
                        "count_over_time", f"slo:sli_error:ratio_rate{five}{selector}", period
                    ),
                ),
                "labels": period_labels,
            }
        )
    return rules


def _meta_rules(slo: Slo) -> list[dict[str, Any]]:
    selector = _selector(slo)
    period = durations.format_prometheus(slo.period_seconds)
    labels = _labels(slo)
    per_budget = "/ on(sloth_id, sloth_slo, sloth_service) group_left"
    budget = f"slo:error_budget:ratio{selector}"
    return [
        {
            "record": "slo:objective:ratio",
            "expr": promql_build.call("vector", _number(slo.objective)),
            "labels": labels,
        },
        {
            "record": "slo:error_budget:ratio",
            "expr": promql_build.call("vector", f"1-{_number(slo.objective)}"),
            "labels": labels,
        },
        {
            "record": "slo:time_period:days",
            "expr": promql_build.call("vector", _number(slo.period_seconds / DAY)),
            "labels": labels,
        },
        {
            "record": "slo:current_burn_rate:ratio",
            "expr": _per_line(f"slo:sli_error:ratio_rate5m{selector}", per_budget, budget),
            "labels": labels,
        },
        {
            "record": "slo:period_burn_rate:ratio",
            "expr": _per_line(f"slo:sli_error:ratio_rate{period}{selector}", per_budget, budget),
            "labels": labels,
        },
        {
            "record": "slo:period_error_budget_remaining:ratio",
            "expr": promql_build.binary("1", "-", f"slo:period_burn_rate:ratio{selector}"),
            "labels": labels,
        },
        {
            "record": "sloth_slo_info",
            "expr": promql_build.call("vector", "1"),
            "labels": {
                **labels,
                "sloth_mode": "cli-gen-prom",
                "sloth_spec": "prometheus/v1",
                "sloth_version": "sloguard",
                "sloth_objective": _number(slo.objective * 100),
            },
        },
    ]


def _above(slo: Slo, window: burn.Window, threshold: str) -> str:
    """The SLO's error ratio over the window where it is above the threshold (one series)."""
    ratio = f"slo:sli_error:ratio_rate{window.name}{_selector(slo)}"
    return promql_build.aggregate(
        "max", promql_build.binary(ratio, ">", threshold), without=("sloth_window",)
    )


def _tier_expression(slo: Slo, tiers: list[burn.Tier]) -> str:
    """Each tier fires when both its windows are above its threshold, unless sloguard said a planned
    window was on for the SLO at any time within the tier's short window: until that window has slid past
    the planned time, the recorded ratios still hold its events (a tier needs both windows above, so once
    the short one is clear of it, the planned events alone cannot fire it). Without the series (sloguard
    not scraped), nothing is held."""
    planned = promql_build.selector(PLANNED_METRIC, promql_build.match("slo", slo.id))
    parts = []
    for tier in tiers:
        threshold = promql_build.group(promql_build.binary(_number(tier.factor), "*", _number(slo.budget)))
        both = promql_build.binary(
            _above(slo, tier.short, threshold), "and", _above(slo, tier.long, threshold), separator="\n    "
        )
        recently = promql_build.over_time("max_over_time", planned, tier.short.name)
        held = promql_build.group(promql_build.binary(recently, "==", "1"))
        parts.append(f"(\n    ({both})\n    unless on()\n    {held}\n)")
    return promql_build.either(parts)


def _absolute_runbooks(annotations: dict[str, str], link: RunbookLink | None) -> dict[str, str]:
    if link is None:
        return annotations
    return {
        key: link(value) if key in RUNBOOK_KEYS and not urllib.parse.urlsplit(value).scheme else value
        for key, value in annotations.items()
    }


def runbook_links(*, base_url: str | None = None, public_url: str | None = None) -> RunbookLink | None:
    """How a relative runbook reference becomes a URL a pager can open, or None to keep it as written.

    `base_url` (where the repository's files are browsed, such as `https://git.example.com/slos/-/blob/main/`)
    is joined with the reference as the spec writes it (`runbooks/x.md`, from the repository root).
    `public_url` (SLOGUARD_PUBLIC_URL) points at sloguard's own copy: the console's `/runbooks/x.md`, read
    from SLOGUARD_RUNBOOK_DIR by the file's name, as `runbooks lint` finds it. `base_url` wins."""
    if base_url:
        base = base_url if base_url.endswith("/") else f"{base_url}/"
        return lambda reference: urllib.parse.urljoin(base, reference.lstrip("/"))
    if public_url:
        root = public_url.rstrip("/")
        return lambda reference: f"{root}/runbooks/{urllib.parse.quote(reference.rsplit('/', 1)[-1])}"
    return None


def _alert_rules(slo: Slo, runbook_link: RunbookLink | None = None) -> list[dict[str, Any]]:
    alerting = slo.alerting
    name = alert_name(slo)
    rules = []
    for severity, labels, extra_annotations, disabled in (
        (burn.State.page, alerting.page_labels, alerting.page_annotations, alerting.page_disabled),
        (burn.State.ticket, alerting.ticket_labels, alerting.ticket_annotations, alerting.ticket_disabled),
    ):
        tiers = [tier for tier in slo.tiers if tier.severity == severity]
        if disabled or not tiers:
            continue
        rules.append(
            {
                "alert": name,
                "expr": _tier_expression(slo, tiers),
                "labels": {**alerting.labels, "sloth_severity": severity.value, **labels},
                "annotations": _absolute_runbooks(
                    {
                        "title": f"(page) {slo.service} {slo.name} SLO error budget burn rate is too fast."
                        if severity == burn.State.page
                        else f"(ticket) {slo.service} {slo.name} SLO error budget burn rate is too fast.",
                        "summary": f"{slo.id}: {template_text(slo.description) or 'error budget burning'}",
                        **alerting.annotations,
                        **extra_annotations,
                    },
                    runbook_link,
                ),
            }
        )
    return rules


def expressions(slo: Slo, at: datetime) -> list[tuple[str, str]]:
    """(what, PromQL) for everything sloguard would write or send for one SLO: each rule's expression,
    the direct-mode query and, for latency SLIs, the buckets query."""
    if not isinstance(slo.sli, EventsSli | RawSli | LatencySli):
        return []
    found = [
        (f"rule {rule.get('record') or rule.get('alert')}", rule["expr"])
        for rule in _sli_rules(slo) + _meta_rules(slo) + _alert_rules(slo)
    ]
    found.append(("direct-mode query", queries.direct_query(slo, at)))
    if isinstance(slo.sli, LatencySli):
        found.append(("latency buckets query", slo.sli.buckets_query()))
    return found


def problems(slos: list[Slo], at: datetime | None = None) -> list[Problem]:
    """`file: SLO: reason` for each generated expression that Prometheus would refuse."""
    moment = at or datetime.now(UTC)
    found = []
    for slo in slos:
        for what, expression in expressions(slo, moment):
            problem = promql.problem(expression)
            if problem is not None:
                found.append(Problem(Location(slo.source, (slo.id,)), f"{what}: {problem}"))
                break  # one problem per SLO: the others are usually the same mistake again
    return found


def rule_groups(slos: list[Slo], runbook_link: RunbookLink | None = None) -> dict[str, Any]:
    """The `groups:` document for every Prometheus-backed SLO.

    One group per SLO, in dependency order (SLI recordings, meta recordings, alerts). Rules inside a
    group are evaluated in sequence, so the alerts read this cycle's ratios. Sloth puts them in three
    groups; groups run independently, so its alerts can read ratios one evaluation interval old.
    """
    groups = []
    for slo in slos:
        if not isinstance(slo.sli, EventsSli | RawSli | LatencySli):
            continue
        rules = _sli_rules(slo) + _meta_rules(slo) + _alert_rules(slo, runbook_link)
        groups.append({"name": f"sloguard-slo-{slo.id}", "rules": rules})
    return {"groups": groups}


def evaluated_by_sloguard_only(slos: list[Slo]) -> list[Slo]:
    """The SLOs the rules leave out: log-based SLIs (Elasticsearch), which only sloguard evaluates, so
    that no Prometheus alert fires for them while sloguard is down."""
    return [slo for slo in slos if not isinstance(slo.sli, EventsSli | RawSli | LatencySli)]


def left_out_note(slo: Slo) -> str:
    """One line, for the output's comment and for stderr."""
    return (
        f"{slo.id} ({PurePath(slo.source).name}): a log-based SLI (Elasticsearch), evaluated by sloguard "
        "only: no Prometheus rules, no alert while sloguard is down"
    )


class _RulesDumper(yaml.SafeDumper):
    """Plain YAML a person can read: no anchors, multi-line expressions as literal blocks."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def _represent_str(dumper: yaml.SafeDumper, value: str) -> yaml.ScalarNode:
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_RulesDumper.add_representer(str, _represent_str)


PROMETHEUS_RULE_NAME = "sloguard-slos"


def render(
    slos: list[Slo], *, output_format: Format = "rules", runbook_link: RunbookLink | None = None
) -> str:
    """The rules file (`rules`: Prometheus' `groups:` document) or the same groups as a Prometheus
    Operator `PrometheusRule` object (`prometheusrule`), with a comment naming each SLO left out."""
    header = (
        "# Generated by `sloguard slo rules`: Sloth-compatible SLO recording and alerting rules.\n"
        "# Do not edit; change the SLO specs and generate again.\n"
    )
    for slo in evaluated_by_sloguard_only(slos):
        header += f"# Left out: {left_out_note(slo)}.\n"
    groups = rule_groups(slos, runbook_link)
    document: dict[str, Any] = groups
    if output_format == "prometheusrule":
        document = {
            "apiVersion": "monitoring.coreos.com/v1",
            "kind": "PrometheusRule",
            "metadata": {
                "name": PROMETHEUS_RULE_NAME,
                "labels": {"app.kubernetes.io/name": "sloguard", "app.kubernetes.io/component": "slo-rules"},
            },
            "spec": groups,
        }
    return header + yaml.dump(document, Dumper=_RulesDumper, sort_keys=False, width=1000, allow_unicode=True)
