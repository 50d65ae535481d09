"""PromQL injection and what Prometheus would refuse: every value that reaches a selector is validated in
both spec formats, label values are escaped anyway, and lint parses every generated expression."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import promql_parser
import pytest
import yaml
from hypothesis import given, seed, settings
from hypothesis import strategies as st

from app import durations, promql_build
from app.errors import SpecError
from app.slo import rules
from app.slo.model import LatencySli
from app.slo.spec import load_specs

OPENSLO = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  labels: {labels}
  annotations: {annotations}
spec:
  service: {service}
  budgetingMethod: Occurrences
  timeWindow: [{{duration: {period}, isRolling: true}}]
  objectives: [{{target: 0.999}}]
  indicator:
    metadata: {{name: requests}}
    spec:
      ratioMetric:
        counter: true
        bad: {{metricSource: {{type: Prometheus, spec: {{query: {bad}}}}}}}
        total: {{metricSource: {{type: Prometheus, spec: {{query: 'http_requests_total{{service="x"}}'}}}}}}
  alertPolicies:
    - kind: AlertPolicy
      spec:
        conditions:
          - kind: AlertCondition
            metadata: {{name: fast}}
            spec:
              severity: page
              condition: {{kind: burnrate, threshold: 14.4, lookbackWindow: {lookback}}}
"""
OPENSLO_DEFAULTS = {
    "labels": "{team: ml}",
    "annotations": "{runbook_url: runbooks/x.md}",
    "service": "fraud",
    "period": "30d",
    "bad": """'http_requests_total{service="x",code=~"5.."}'""",
    "lookback": "1h",
}
SLOTH = """
version: prometheus/v1
service: {service}
labels: {labels}
slos:
  - name: availability
    objective: 99.9
    sli:
      events:
        error_query: {error}
        total_query: 'sum(rate(http_requests_total[{{{{.window}}}}]))'
    alerting:
      name: {alert}
      annotations: {annotations}
"""
SLOTH_DEFAULTS = {
    "service": "fraud",
    "labels": "{team: ml}",
    "error": """'sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))'""",
    "alert": "FraudAvailability",
    "annotations": "{runbook_url: runbooks/x.md}",
}


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slo").mkdir()
    return tmp_path / "slo"


def openslo(folder: Path, **fields: str) -> Path:
    path = folder / "openslo.yaml"
    path.write_text(textwrap.dedent(OPENSLO.format(**{**OPENSLO_DEFAULTS, **fields})))
    return path


def sloth(folder: Path, **fields: str) -> Path:
    path = folder / "sloth.yaml"
    path.write_text(textwrap.dedent(SLOTH.format(**{**SLOTH_DEFAULTS, **fields})))
    return path


def problems(path: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_specs([path])
    return caught.value.problems


def test_the_templates_load_as_they_are(folder: Path) -> None:
    # The baseline every case below changes one field of.
    assert [slo.id for slo in load_specs([openslo(folder)])] == ["fraud-availability"]
    assert [slo.id for slo in load_specs([sloth(folder)])] == ["fraud-availability"]


@pytest.mark.parametrize(
    "service",
    ["'fraud\", sloth_id=~\".*'", "'fraud\"} or vector(1) or x{a=\"'", "'fraud\\\\'", "'a b'", "'\"'"],
)
def test_an_openslo_service_that_would_break_out_of_a_selector_is_refused(folder: Path, service: str) -> None:
    (line,) = problems(openslo(folder, service=service))
    assert line.startswith("slo/openslo.yaml: spec.service: must be letters, digits, '-', '_' or '.' (got ")


def test_names_that_become_prometheus_names_are_checked_in_both_formats(folder: Path) -> None:
    label = "must be a Prometheus label name: a letter or '_', then letters, digits or '_'"
    assert problems(sloth(folder, labels="{'app.kubernetes.io/name': x, __meta: y}")) == [
        f"slo/sloth.yaml: labels.app.kubernetes.io/name: {label} (got 'app.kubernetes.io/name')",
        "slo/sloth.yaml: labels.__meta: names starting with '__' are reserved for Prometheus (got '__meta')",
    ]
    assert problems(sloth(folder, alert="'Fraud availability'")) == [
        "slo/sloth.yaml: slos[0].alerting.name: must be a Prometheus alert name: a letter, '_' or ':', "
        "then letters, digits, '_' or ':' (got 'Fraud availability')"
    ]
    assert problems(sloth(folder, annotations="{'runbook-url': x}")) == [
        f"slo/sloth.yaml: slos[0].alerting.annotations.runbook-url: {label} (got 'runbook-url')"
    ]
    # OpenSLO metadata often has Kubernetes-style names: they stay in the spec, out of the rules.
    (slo,) = load_specs(
        [openslo(folder, labels="{'team.name': ml, team: ml}", annotations="{'a-b': c, ok: d}")]
    )
    assert slo.labels == {"team": "ml"} and slo.alerting.annotations == {"ok": "d"}
    generated = rules.render([slo])
    assert "team.name" not in generated and "a-b" not in generated and "team: ml" in generated


def test_a_window_placeholder_in_the_wrong_case_is_refused(folder: Path) -> None:
    error = """'sum(rate(x{code="5"}[{{.window}}])) / sum(rate(x[{{.Window}}]))'"""
    assert problems(sloth(folder, error=error)) == [
        "slo/sloth.yaml: slos[0].sli.events.error_query: unknown placeholder {{.Window}}: "
        "the only one is {{.window}} (lower case)"
    ]
    bad = """'sum(rate(x{code="5"}[{{.window}}])) + sum(rate(x[{{ .range }}]))'"""
    assert problems(openslo(folder, bad=bad)) == [
        "slo/openslo.yaml: spec.indicator.spec.ratioMetric.bad.metricSource.spec.query: "
        "unknown placeholder {{ .range }}: the only one is {{.window}} (lower case)"
    ]


def test_durations_past_prometheus_range_are_refused(folder: Path) -> None:
    limit = "out of range: Prometheus durations go up to 106751d, about 292 years"
    assert problems(openslo(folder, lookback="99999999999d")) == [
        f"slo/openslo.yaml: spec.alertPolicies[0].conditions[0].lookbackWindow: {limit} (got '99999999999d')"
    ]
    assert problems(openslo(folder, period="200000d")) == [
        f"slo/openslo.yaml: spec.timeWindow[0].duration: {limit} (got '200000d')"
    ]
    (slo,) = load_specs([openslo(folder, period="106751d")])  # the longest whole-day period that fits
    assert slo.period_seconds == 106751 * durations.DAY


def test_duration_parsing_bounds() -> None:
    assert durations.parse_prometheus("106751d") == 106751 * durations.DAY
    assert durations.parse_prometheus("2000ms") == 2
    for text, reason in [
        ("106752d", "out of range"),
        ("300y", "out of range"),
        ("9" * 5000 + "d", "out of range"),  # past int()'s digit limit: still a clear message
        ("1500ms", "whole number of seconds"),
        ("1ms", "whole number of seconds"),
        ("0s", "not a duration"),
    ]:
        with pytest.raises(ValueError, match=reason) as caught:
            durations.parse_prometheus(text)
        assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        ("limitk(1, rate(x[{{.window}}]))", "aggregation limitk is not in Prometheus 2.x"),
        ("sum(rate(x{a='1' or b='2'}[{{.window}}]))", "`or` inside a selector's braces is Prometheus 3"),
        ("sum(rate({'a.b'}[{{.window}}]))", "metric name 'a.b' needs quoting"),
        ("sum by ('a.b') (rate(x[{{.window}}]))", "label name 'a.b' needs quoting"),
        ("sum(rate(x{a=~'(?<v>.)'}[{{.window}}]))", "regex '(?<v>.)': group syntax"),
        ("sum(rate(x{a=~'a**'}[{{.window}}]))", "regex 'a**': nested repetition"),
        ("sum(rate(x[{{.window}}] offset 300y))", "offset 109500d is past Prometheus' limit"),
        ("sum(rate(x[{{.window}}] @ 1e20))", "@ timestamp out of range"),
        ("sum(first_over_time(x[{{.window}}]))", "function first_over_time() is not in Prometheus 2.x"),
        ("sum(rate(x[{{.window}}])", "not valid PromQL: "),
        ("(" * 20000 + "rate(x[{{.window}}])" + ")" * 20000, "too deeply nested to check"),
    ],
)
def test_queries_prometheus_would_refuse_are_refused_where_they_are_written(
    folder: Path, error: str, reason: str
) -> None:
    (line,) = problems(sloth(folder, error=json.dumps(error)))
    assert line.startswith("slo/sloth.yaml: slos[0].sli.events.error_query: "), line
    assert reason in line, line


def test_a_query_that_breaks_only_in_what_sloguard_generates_is_refused(folder: Path) -> None:
    # A scalar is a valid query and a valid recording rule, but the direct-mode query sums it.
    error = "'scalar(sum(rate(x[{{.window}}])))'"
    assert problems(sloth(folder, error=error)) == [
        "slo/sloth.yaml: fraud-availability: direct-mode query: not valid PromQL: "
        "expected type vector in aggregation expression, got scalar"
    ]


LATENCY = """
apiVersion: openslo/v1
kind: SLO
metadata: {{name: latency}}
spec:
  service: fraud
  budgetingMethod: Occurrences
  timeWindow: [{{duration: 30d, isRolling: true}}]
  objectives: [{{op: lte, value: 0.25, target: 0.99}}]
  indicator:
    metadata: {{name: slow}}
    spec:
      thresholdMetric: {{metricSource: {{type: Prometheus, spec: {{query: {query}}}}}}}
"""


def test_a_latency_selector_is_one_parsed_selector_rebuilt_with_escaping(folder: Path) -> None:
    path = folder / "latency.yaml"
    path.write_text(LATENCY.format(query="""'h_bucket{service="x"} or y{a="b"}'"""))
    (line,) = problems(path)
    assert line == (
        "slo/latency.yaml: spec.indicator.spec.thresholdMetric.metricSource.spec.query: "
        'must be one series selector, like name{label="value"}, without offset or @'
    )
    path.write_text(LATENCY.format(query="""'h_bucket{service="x\\"}", code!~"5..",}'"""))
    (slo,) = load_specs([path])
    assert isinstance(slo.sli, LatencySli)
    assert (slo.sli.metric, slo.sli.selector) == ("h", 'service="x\\"}",code!~"5.."')
    total = promql_parser.parse(slo.sli.to_events().total_for("5m"))
    assert 'service="x\\"}"' in str(total.prettify())


def test_generated_names_and_texts_stay_valid_for_prometheus(folder: Path) -> None:
    from app.slo import rules

    path = sloth(folder, service="'1fraud.model'", alert="null")
    (slo,) = load_specs([path])
    assert rules.alert_name(slo) == "Slo1fraudModelAvailability"  # `.` and a leading digit are not
    text = rules.template_text("budget {{7*7}} spent {{ $labels.x }}")
    assert text == 'budget {{ "{{" }}7*7}} spent {{ "{{" }} $labels.x }}'


@seed(15)
@settings(max_examples=300, deadline=None, database=None)
@given(st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40))
def test_promql_string_round_trips_any_text_through_the_parser(value: str) -> None:
    tree = promql_parser.parse(f"x{{a={promql_build.string(value)}}}")
    (matcher,) = tree.matchers.matchers
    assert (matcher.name, matcher.value) == ("a", value)


def test_a_sloth_kubernetes_service_is_checked_like_the_plain_format(folder: Path) -> None:
    plain = textwrap.dedent(SLOTH.format(**{**SLOTH_DEFAULTS, "service": "'fraud\", x=\"y'"}))
    spec = yaml.safe_load(plain)
    crd = {
        "apiVersion": "sloth.slok.dev/v1",
        "kind": "PrometheusServiceLevel",
        "metadata": {"name": "fraud"},
        "spec": {"service": spec["service"], "slos": spec["slos"]},
    }
    path = folder / "crd.yaml"
    path.write_text(yaml.safe_dump(crd))
    assert problems(path) == [
        "slo/crd.yaml: spec.service: must be letters, digits, '-', '_' or '.' (got 'fraud\", x=\"y')"
    ]


def test_a_lone_surrogate_in_a_spec_is_refused_with_its_place(folder: Path) -> None:
    path = sloth(folder, labels='{team: "ml\\ud800"}')
    assert problems(path) == ["slo/sloth.yaml: labels.team: holds a lone UTF-16 surrogate, which is not text"]
