"""What `sloguard slo lint` accepts, Prometheus accepts: the real `promtool check rules` (Debian's
Prometheus 2.42) on `sloguard slo rules` for the repository's specs and for tricky-but-valid ones, and on
every query sloguard sends; and what lint refuses beyond the PromQL parser, promtool refuses too."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import promql_parser
import pytest
import yaml

from app.slo import promql, rules
from app.slo.spec import load_specs
from tests.conftest import REPO
from tests.prometheus import promtool

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
AT = datetime(2026, 11, 25, 10, 0, tzinfo=UTC)

TRICKY_SLOTH = r"""
version: prometheus/v1
service: 1fraud.model_v2
labels:
  owner: 'ml "platform" \ {{ not a template }} ünïcödé'
  note: "line one\nline two"
slos:
  - name: avail.ability-2
    objective: 99.95
    description: 'spends {{7*7}} of {{ $labels.x and "quotes" }}'
    labels: {tier: "1"}
    sli:
      events:
        error_query: >-
          sum(rate(http_requests_total{service="1fraud.model_v2",code=~"5..|4(?i:29)",path!~"/health(?P<x>z)?",
          quoted="a \"b\" \\ c"}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service='1fraud.model_v2'}[{{ .window }}] offset 1m))
    alerting:
      annotations:
        detail: 'Burning {{ $value | humanizePercentage }} for {{ $labels.sloth_service }}'
        runbook_url: runbooks/x.md
      page_alert: {labels: {severity: page}}
      ticket_alert: {disable: true}
  - name: raw
    objective: 99
    sli:
      raw:
        error_ratio_query: 1 - (sum(rate(ok_total[{{.window}}])) / sum(rate(all_total[{{.window}}])))
"""
TRICKY_OPENSLO = r"""
apiVersion: openslo/v1
kind: SLO
metadata:
  name: latency.p99
  labels: {team: [ml, platform], region: "eu\"west"}
  annotations: {runbook_url: "https://runbooks.example/latency?x=1&y=2"}
spec:
  service: fraud-model
  description: '{{ broken template }}'
  budgetingMethod: Occurrences
  timeWindow: [{duration: 7d, isRolling: true}]
  objectives: [{op: lte, value: 0.25, target: 0.99}]
  indicator:
    metadata: {name: slow}
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec: {query: 'http_request_duration_seconds_bucket{service="fraud\"model", code!~"5..",}'}
  alertPolicies:
    - kind: AlertPolicy
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {name: very-fast}
            spec: {severity: critical, condition: {kind: burnrate, threshold: 30, lookbackWindow: 1m}}
          - kind: AlertCondition
            metadata: {name: forever}
            spec: {severity: low, condition: {kind: burnrate, threshold: 1.01, lookbackWindow: 106751d}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: good-calendar}
spec:
  service: fraud-model
  budgetingMethod: Occurrences
  timeWindow: [{duration: 1d, isRolling: false, calendar: {startTime: "2026-01-01 00:00:00"}}]
  objectives: [{targetPercent: 99.5}]
  indicator:
    metadata: {name: good}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'ok_total{a="x|y"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: all_total}}}
---
apiVersion: openslo/v1
kind: SLO
metadata: {name: success-ratio}
spec:
  service: fraud-model
  budgetingMethod: Occurrences
  timeWindow: [{duration: 106751d, isRolling: true}]
  objectives: [{target: 0.99}]
  indicator:
    metadata: {name: success}
    spec:
      ratioMetric:
        rawType: success
        raw:
          metricSource:
            type: Prometheus
            spec: {query: 'avg(avg_over_time(success_ratio[{{.window}}:1m]))'}
"""


def sloguard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([SLOGUARD, *args], capture_output=True, text=True, timeout=60, cwd=cwd)


def check_rules(path: Path) -> None:
    result = promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def queries_as_rules(folder: Path, out: Path) -> int:
    """Everything sloguard sends that is not a rule (direct-mode and buckets queries) as recording rules,
    so promtool parses them too. Returns how many."""
    found = [
        (slo.id, what, expression)
        for slo in load_specs([folder])
        for what, expression in rules.expressions(slo, AT)
        if not what.startswith("rule ")
    ]
    group = [{"record": f"sloguard:check:{n}", "expr": expr} for n, (_, _, expr) in enumerate(found)]
    out.write_text(yaml.safe_dump({"groups": [{"name": "queries", "rules": group}]}, allow_unicode=True))
    return len(found)


@pytest.fixture
def tricky(tmp_path: Path) -> Path:
    folder = tmp_path / "tricky"
    folder.mkdir()
    (folder / "sloth.yaml").write_text(textwrap.dedent(TRICKY_SLOTH))
    (folder / "openslo.yaml").write_text(textwrap.dedent(TRICKY_OPENSLO))
    return folder


@pytest.mark.parametrize("which", ["repository", "tricky"])
def test_what_lint_accepts_promtool_accepts(which: str, tricky: Path, tmp_path: Path) -> None:
    folder = REPO / "slo" if which == "repository" else tricky
    lint = sloguard("slo", "lint", str(folder), cwd=tmp_path)
    assert lint.returncode == 0, lint.stderr
    generated = tmp_path / "rules.yml"
    made = sloguard("slo", "rules", str(folder), "-o", str(generated), cwd=tmp_path)
    assert made.returncode == 0, made.stderr
    check_rules(generated)
    queries = tmp_path / "queries.yml"
    assert queries_as_rules(folder, queries) >= 3
    check_rules(queries)


def test_tricky_values_arrive_in_the_rules_as_written(tricky: Path, tmp_path: Path) -> None:
    generated = tmp_path / "rules.yml"
    assert sloguard("slo", "rules", str(tricky), "-o", str(generated), cwd=tmp_path).returncode == 0
    groups = {group["name"]: group["rules"] for group in yaml.safe_load(generated.read_text())["groups"]}
    availability = groups["sloguard-slo-1fraud.model_v2-avail.ability-2"]
    meta = next(rule for rule in availability if rule.get("record") == "slo:objective:ratio")
    assert meta["labels"]["owner"] == 'ml "platform" \\ {{ not a template }} ünïcödé'
    assert meta["labels"]["note"] == "line one\nline two"
    alert = next(rule for rule in availability if "alert" in rule)
    assert alert["alert"] == "Slo1fraudModelV2AvailAbility2"
    # The description is text: its braces reach Prometheus escaped, so the alert shows them as written.
    assert alert["annotations"]["summary"].endswith(
        'spends {{ "{{" }}7*7}} of {{ "{{" }} $labels.x and "quotes" }}'
    )
    latency = groups["sloguard-slo-fraud-model-latency.p99"]
    total = next(rule for rule in latency if rule.get("record") == "sloguard:sli_total:rate5m")
    assert 'service="fraud\\"model",code!~"5.."' in total["expr"]


# What promql-parser accepts but Prometheus 2.x refuses (lint refuses them with a reason).
BEYOND_THE_PARSER = [
    "limitk(1, x)",
    'sort_by_label(x, "a")',
    "first_over_time(x[5m])",
    'x{a="1" or b="2"}',
    '{"utf8.name"}',
    'sum by ("a.b") (x)',
    'x{a=~"(?<name>x)"}',
    'x{a=~"a**"}',
    'x{a=~"a{2}{3}"}',
    'x{a=~"(a{100}){11}"}',
    'x{a=~"(?x) a"}',
    'x{a=~"\\\\p{Letter}"}',
    'x{a=~"[a--b]"}',
    'x{a=~"\\\\u0041"}',
    "rate(x[300y])",
    "x offset 106752d",
    "x[5m:1m] offset 300y",
    "x @ 1e20",
]


def test_what_lint_refuses_beyond_the_parser_promtool_refuses_too(tmp_path: Path) -> None:
    for expression in BEYOND_THE_PARSER:
        assert promql.problem(expression) is not None, expression
    group = [{"record": f"r:{n}", "expr": expr} for n, expr in enumerate(BEYOND_THE_PARSER)]
    path = tmp_path / "refused.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": group}]}))
    result = promtool("check", "rules", str(path))
    refused = {
        int(n) for n in re.findall(r'"r:(\d+)": could not parse expression', result.stdout + result.stderr)
    }
    assert refused == set(range(len(BEYOND_THE_PARSER))), result.stdout + result.stderr


def _call(name: str, aggregation: bool) -> str:
    """One call of `name` that promql-parser accepts, from the argument shapes functions take."""
    shapes: list[tuple[str, ...]] = (
        [("x",), ("1", "x"), ('"a"', "x")]
        if aggregation
        else [
            (),
            ("x",),
            ("x[5m]",),
            ("1",),
            ("x", "1"),
            ("x", "1", "1"),
            ("x[5m]", "1"),
            ("1", "x[5m]"),
            ("1", "x"),
            ("1", "1", "x"),
            ("x", '"a"', '","', '"b"'),
            ("x", '"a"', '"b"', '"c"', '"d"'),
            ("x[5m]", "0.5", "0.5"),
        ]
    )
    for args in shapes:
        if aggregation:
            text = f"{name}(x)" if args == ("x",) else f"{name}({', '.join(args)})"
        else:
            text = f"{name}({', '.join(args)})"
        try:
            promql_parser.parse(text)
        except ValueError:
            continue
        return text
    raise AssertionError(f"no argument shape fits {name}")


def test_every_function_and_aggregation_lint_allows_is_known_to_promtool(tmp_path: Path) -> None:
    calls = [_call(name, False) for name in sorted(promql.FUNCTIONS)]
    calls += [_call(name, True) for name in sorted(promql.AGGREGATIONS)]
    assert all(promql.problem(call) is None for call in calls)
    group: list[dict[str, Any]] = [{"record": f"r:{n}", "expr": call} for n, call in enumerate(calls)]
    path = tmp_path / "functions.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": group}]}))
    check_rules(path)
