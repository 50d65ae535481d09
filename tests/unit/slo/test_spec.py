"""Loading Sloth and OpenSLO specs, and the exact messages bad ones get."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from app.errors import SpecError
from app.slo.burn import State
from app.slo.model import ElasticsearchSli, EventsSli, LatencySli, RawSli
from app.slo.spec import load_specs
from tests.conftest import REPO

SLOTH = """
version: "prometheus/v1"
service: "fraud"
labels: {{model: fraud-detector}}
slos:
  - name: "availability"
    objective: {objective}
    sli:
      events:
        error_query: sum(rate(http_requests_total{{code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total[{{{{.window}}}}]))
    alerting:
      name: FraudAvailability
      annotations: {{runbook_url: runbooks/fraud.md}}
"""


@pytest.fixture
def slo_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "slo").mkdir()
    return tmp_path / "slo"


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def problems(folder: Path) -> list[str]:
    with pytest.raises(SpecError) as caught:
        load_specs([folder])
    return caught.value.problems


def test_the_repository_examples_load() -> None:
    slos = {slo.id: slo for slo in load_specs([REPO / "slo"])}
    assert set(slos) == {
        "fraud-model-availability",
        "fraud-model-latency",
        "fraud-model-quality",
        "fraud-model-prediction-errors",
    }
    assert isinstance(slos["fraud-model-availability"].sli, EventsSli)
    assert isinstance(slos["fraud-model-quality"].sli, RawSli)
    assert isinstance(slos["fraud-model-prediction-errors"].sli, ElasticsearchSli)
    assert all(slo.model == "fraud-detector" and slo.runbook for slo in slos.values())


def test_sloth_spec(slo_dir: Path) -> None:
    write(slo_dir, "fraud.yaml", SLOTH.format(objective=99.9))
    (slo,) = load_specs([slo_dir])
    assert slo.id == "fraud-availability"
    assert slo.objective == 0.999
    assert slo.budget == pytest.approx(0.001)
    assert slo.labels == {"model": "fraud-detector"}
    assert slo.runbook == "runbooks/fraud.md"
    assert isinstance(slo.sli, EventsSli)
    assert slo.sli.error_for("5m") == 'sum(rate(http_requests_total{code=~"5.."}[5m]))'


def test_objective_out_of_range_names_file_and_field(slo_dir: Path) -> None:
    write(slo_dir, "fraud.yaml", SLOTH.format(objective=120))
    assert problems(slo_dir) == ["slo/fraud.yaml: slos[0].objective: must be between 0 and 100 (got 120)"]


def test_unknown_fields_are_refused(slo_dir: Path) -> None:
    text = SLOTH.format(objective=99.9).replace("    alerting:", "    alertng:\n      name: x\n    alerting:")
    write(slo_dir, "fraud.yaml", text)
    assert problems(slo_dir) == ["slo/fraud.yaml: slos[0].alertng: unknown field"]


def test_missing_window_placeholder(slo_dir: Path) -> None:
    write(
        slo_dir,
        "fraud.yaml",
        SLOTH.format(objective=99.9).replace("[{{.window}}]))\n        total", "[5m]))\n        total"),
    )
    (line,) = problems(slo_dir)
    assert line.startswith("slo/fraud.yaml: slos[0].sli.events.error_query: must contain {{.window}}")


def test_a_tier_that_can_never_fire_is_refused(slo_dir: Path) -> None:
    # 90 % target: B = 0.1, and the fast page needs 14.4 · 0.1 = 1.44 > 100 % errors.
    write(slo_dir, "fraud.yaml", SLOTH.format(objective=90))
    lines = problems(slo_dir)
    assert lines[0] == (
        "slo/fraud.yaml: slos[0].objective: tier page-fast can never fire: burn rate 14.4 x error budget "
        "0.1 = 1.44 >= 1 (raise the objective or drop the tier)"
    )
    assert len(lines) == 1  # 6 · 0.1 = 0.6 and below can fire


def test_duplicate_ids_are_refused(slo_dir: Path) -> None:
    write(slo_dir, "a.yaml", SLOTH.format(objective=99.9))
    write(slo_dir, "b.yml", SLOTH.format(objective=99.5))
    assert problems(slo_dir) == ["slo/b.yml: duplicate SLO id 'fraud-availability' (also in slo/a.yaml)"]


def test_yaml_syntax_errors_name_the_line(slo_dir: Path) -> None:
    write(slo_dir, "broken.yaml", "version: prometheus/v1\nservice: [oops\n")
    (line,) = problems(slo_dir)
    assert line.startswith("slo/broken.yaml: line 3: not valid YAML")


def test_unknown_format(slo_dir: Path) -> None:
    write(slo_dir, "x.yaml", "kind: Something\n")
    (line,) = problems(slo_dir)
    assert line.startswith("slo/x.yaml: unknown format")


OPENSLO = """
apiVersion: openslo/v1
kind: SLO
metadata:
  name: latency
  labels: {{model: [fraud-detector]}}
  annotations: {{runbook_url: runbooks/latency.md}}
spec:
  service: fraud-model
  budgetingMethod: {method}
  timeWindow: [{{duration: 28d, isRolling: true}}]
  objectives: [{{op: lte, value: 0.25, {target}}}]
  indicatorRef: fraud-latency
  alertPolicies: [fast-burn]
---
apiVersion: openslo/v1
kind: SLI
metadata: {{name: fraud-latency}}
spec:
  thresholdMetric:
    metricSource:
      type: Prometheus
      spec: {{query: 'http_request_duration_seconds_bucket{{service="fraud-model"}}'}}
---
apiVersion: openslo/v1
kind: AlertPolicy
metadata: {{name: fast-burn}}
spec:
  conditions:
    - conditionRef: page-fast
---
apiVersion: openslo/v1
kind: AlertCondition
metadata: {{name: page-fast}}
spec:
  severity: page
  condition: {{kind: burnrate, op: gt, threshold: 14.4, lookbackWindow: 1h, alertAfter: 5m}}
"""


def test_openslo_slos_of_one_name_under_two_services_are_two_slos(slo_dir: Path) -> None:
    # `latency` for two services: two SLOs (one of them used to replace the other, silently).
    write(slo_dir, "a.yaml", OPENSLO.format(method="Occurrences", target="targetPercent: 99"))
    other = OPENSLO.format(method="Occurrences", target="targetPercent: 99").split("---")[0]
    write(slo_dir, "b.yaml", other.replace("service: fraud-model", "service: ranking-model"))
    assert [slo.id for slo in load_specs([slo_dir])] == ["fraud-model-latency", "ranking-model-latency"]
    # The same SLO twice is refused, by its id.
    write(slo_dir, "c.yaml", other)
    assert problems(slo_dir) == ["slo/c.yaml: duplicate SLO id 'fraud-model-latency' (also in slo/a.yaml)"]


def test_openslo_names_of_referred_kinds_are_unique(slo_dir: Path) -> None:
    write(slo_dir, "a.yaml", OPENSLO.format(method="Occurrences", target="targetPercent: 99"))
    sli = OPENSLO.format(method="Occurrences", target="targetPercent: 99").split("---")[1]
    write(slo_dir, "b.yaml", sli)
    assert problems(slo_dir) == [
        "slo/b.yaml: metadata.name: duplicate SLI name 'fraud-latency' (also in slo/a.yaml)"
    ]


def test_openslo_multi_document_with_refs(slo_dir: Path) -> None:
    write(slo_dir, "latency.yaml", OPENSLO.format(method="Occurrences", target="targetPercent: 99"))
    (slo,) = load_specs([slo_dir])
    assert slo.id == "fraud-model-latency"
    assert slo.objective == 0.99
    assert slo.period_seconds == 28 * 86400
    assert slo.model == "fraud-detector"
    assert slo.runbook == "runbooks/latency.md"
    assert isinstance(slo.sli, LatencySli)
    assert (slo.sli.metric, slo.sli.selector, slo.sli.threshold) == (
        "http_request_duration_seconds",
        'service="fraud-model"',
        0.25,
    )
    events = slo.sli.to_events()
    assert (
        events.total_for("5m") == 'sum(rate(http_request_duration_seconds_count{service="fraud-model"}[5m]))'
    )
    assert 'http_request_duration_seconds_bucket{service="fraud-model",le="0.25"}[5m]' in events.error_for(
        "5m"
    )
    # The policy's one condition replaces the default tiers: 1h long, 1h/12 = 5m short.
    assert [(t.name, t.severity, t.long.name, t.short.name, t.factor) for t in slo.tiers] == [
        ("page-fast", State.page, "1h", "5m", 14.4)
    ]


def test_openslo_target_as_ratio_or_percent_normalise(slo_dir: Path) -> None:
    write(slo_dir, "a.yaml", OPENSLO.format(method="Occurrences", target="target: 0.995"))
    assert load_specs([slo_dir])[0].objective == 0.995
    write(slo_dir, "a.yaml", OPENSLO.format(method="Occurrences", target="targetPercent: 99.5"))
    assert load_specs([slo_dir])[0].objective == 0.995


def test_openslo_timeslices_are_refused_with_a_reason(slo_dir: Path) -> None:
    write(slo_dir, "a.yaml", OPENSLO.format(method="Timeslices", target="target: 0.99"))
    assert problems(slo_dir) == [
        "slo/a.yaml: [0].spec.budgetingMethod: only Occurrences is supported; Timeslices and RatioTimeslices "
        "are not (got 'Timeslices')"
    ]


def test_openslo_missing_sli_reference(slo_dir: Path) -> None:
    write(
        slo_dir,
        "a.yaml",
        OPENSLO.format(method="Occurrences", target="target: 0.99").replace(
            "indicatorRef: fraud-latency", "indicatorRef: nope"
        ),
    )
    assert problems(slo_dir) == ["slo/a.yaml: [0].spec.indicatorRef: no SLI named 'nope'"]


def test_openslo_counter_queries_get_a_rate_window(slo_dir: Path) -> None:
    write(
        slo_dir,
        "ratio.yaml",
        """
        apiVersion: openslo/v1
        kind: SLO
        metadata: {name: availability}
        spec:
          service: api
          budgetingMethod: Occurrences
          timeWindow: [{duration: 30d, isRolling: true}]
          objectives: [{target: 0.999}]
          indicator:
            metadata: {name: api-good}
            spec:
              ratioMetric:
                counter: true
                good: {metricSource: {type: Prometheus, spec: {query: 'requests_total{code!~"5.."}'}}}
                total: {metricSource: {type: Prometheus, spec: {query: 'requests_total'}}}
        """,
    )
    (slo,) = load_specs([slo_dir])
    assert isinstance(slo.sli, EventsSli)
    assert slo.sli.total_for("1h") == "sum(rate(requests_total[1h]))"
    # bad = total - good, where a good series that does not exist (yet) counts as no good events
    total, good = "sum(rate(requests_total[1h]))", 'sum(rate(requests_total{code!~"5.."}[1h]))'
    assert slo.sli.error_for("1h") == f"(({total}) - (({good}) or (({total}) * 0)))"


def test_sloth_kubernetes_resource(slo_dir: Path) -> None:
    body = SLOTH.format(objective=99.9).replace('version: "prometheus/v1"\n', "")
    indented = textwrap.indent(textwrap.dedent(body), "  ")
    write(
        slo_dir,
        "crd.yaml",
        "apiVersion: sloth.slok.dev/v1\nkind: PrometheusServiceLevel\nmetadata: {name: fraud}\nspec:\n"
        + indented,
    )
    (slo,) = load_specs([slo_dir])
    assert slo.id == "fraud-availability"


def test_whole_second_latency_thresholds_match_both_bucket_spellings(slo_dir: Path) -> None:
    write(
        slo_dir,
        "latency.yaml",
        OPENSLO.format(method="Occurrences", target="target: 0.99").replace("value: 0.25", "value: 1"),
    )
    (slo,) = load_specs([slo_dir])
    assert isinstance(slo.sli, LatencySli)
    assert 'le=~"1|1.0"' in slo.sli.to_events().error_for("5m")


def test_openslo_documents_refuse_every_unknown_top_level_field(slo_dir: Path) -> None:
    # `source` and `prefix` were once sloguard's own bookkeeping on the document; now fields like any other.
    text = OPENSLO.format(method="Occurrences", target="target: 0.99")
    write(slo_dir, "a.yaml", text.replace("kind: SLO\n", "kind: SLO\nsource: elsewhere\nprefix: x\n", 1))
    assert problems(slo_dir) == [
        "slo/a.yaml: [0].source: unknown field",
        "slo/a.yaml: [0].prefix: unknown field",
    ]
