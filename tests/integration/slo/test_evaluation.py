"""Burn rates from a real Prometheus 2.x over generated history, against hand-computed ratios."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import SloOptions
from app.slo.burn import State
from app.slo.service import SloEngine, SloResult
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.integration import scenarios
from tests.prometheus import PrometheusServer
from tests.servers import free_port

pytestmark = pytest.mark.integration
SLO_WINDOWS = ["5m", "30m", "1h", "2h", "6h", "1d", "3d"]
# The SLOs of `scenario_slo_dir` (tests/integration/conftest.py).
SCENARIO_SLOS = (
    "fraud-model-availability",
    "fraud-model-latency",
    "fraud-model-quality",
    "fraud-steady-availability",
)


def evaluate(server: PrometheusServer, slo_dir: Path, at: int, **options: object) -> dict[str, SloResult]:
    slos = load_specs([slo_dir])
    engine = SloEngine(
        slos, PrometheusSource(server.url, timeout=30), None, SloOptions(batch=False, **options)
    )
    moment = datetime.fromtimestamp(at, UTC)
    return {result.slo.id: result for result in engine.evaluate(moment)}


@pytest.fixture(scope="module")
def results(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int
) -> dict[str, SloResult]:
    return evaluate(history_prometheus, scenario_slo_dir, history_end)


def test_hand_computed_examples_of_the_outage_profile() -> None:
    # Written out once by hand: 5 min at 30 %; the last hour is 5 min at 30 % and 55 min at 2 %.
    assert scenarios.expected_ratio(scenarios.OUTAGE, 300) == pytest.approx(0.3)
    assert scenarios.expected_ratio(scenarios.OUTAGE, 3600) == pytest.approx((300 * 0.3 + 3300 * 0.02) / 3600)
    assert scenarios.expected_ratio(scenarios.OUTAGE, 3600) == pytest.approx(0.0433333333)


@pytest.mark.parametrize(
    ("slo_id", "profile", "budget"),
    [
        ("fraud-model-availability", scenarios.OUTAGE, 0.001),
        ("fraud-steady-availability", scenarios.STEADY, 0.001),
        ("fraud-model-latency", scenarios.SLOW, 0.01),
        ("fraud-model-quality", scenarios.WRONG, 0.03),
    ],
)
def test_burn_rates_match_the_hand_computed_ratios(
    results: dict[str, SloResult], slo_id: str, profile: scenarios.Profile, budget: float
) -> None:
    result = results[slo_id]
    assert result.evaluation is not None, result.detail
    for window in SLO_WINDOWS:
        expected = scenarios.expected_ratio(profile, scenarios.WINDOWS[window])
        figures = result.evaluation.windows[window]
        assert figures.error_ratio == pytest.approx(expected, rel=1e-9), window
        assert figures.burn_rate == pytest.approx(expected / budget, rel=1e-9), window
    period_ratio = scenarios.expected_ratio(profile, 30 * scenarios.DAY)
    assert result.evaluation.budget_remaining == pytest.approx(1 - period_ratio / budget, rel=1e-9)


def test_event_counts_come_from_the_traffic(results: dict[str, SloResult]) -> None:
    evaluation = results["fraud-model-availability"].evaluation
    assert evaluation is not None
    # 100 requests a second over one hour.
    assert evaluation.windows["1h"].events == pytest.approx(360_000, rel=1e-9)


def test_an_outage_pages_and_half_a_percent_only_tickets(results: dict[str, SloResult]) -> None:
    assert results["fraud-model-availability"].state == State.page
    assert results["fraud-model-availability"].firing_tier == "page-fast"
    # 0.5 % on 99.9 %: burn 5, under both page factors (14.4, 6), over both ticket factors (3, 1).
    assert results["fraud-steady-availability"].state == State.ticket
    assert results["fraud-steady-availability"].evaluation.firing == ("ticket-fast", "ticket-slow")  # type: ignore[union-attr]


def test_latency_and_quality_states(results: dict[str, SloResult]) -> None:
    # Latency: 5 % slow over the last hour on a 1 % budget is burn 5 (< 6): ticket-fast needs the 1d
    # window above 3 % and it is (3600·0.05 + 82800·0.002)/86400 ≈ 0.4 % -> burn 0.4: not even a ticket.
    assert results["fraud-model-latency"].state == State.ok
    # Quality: 4 % wrong for 6 hours on a 3 % budget, burn 1.33; the 3d window is about 1.1 %.
    assert results["fraud-model-quality"].state == State.ok


def test_the_minimum_volume_guard(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int
) -> None:
    # At 100 req/s the long windows hold 360,000 (1h), 2.16 M (6h), 8.64 M (1d) and 25.92 M (3d) events.
    # Demanding 400,000 starves only the fast page: the slow page (6h/30m, both above 0.6 %) still pages.
    partly = evaluate(history_prometheus, scenario_slo_dir, history_end, min_events=400_000)
    assert partly["fraud-model-availability"].state == State.page
    assert partly["fraud-model-availability"].firing_tier == "page-slow"
    # Demanding more than the 3-day window holds starves every tier: a breach, but on too little traffic.
    starved = evaluate(history_prometheus, scenario_slo_dir, history_end, min_events=30_000_000)
    assert starved["fraud-model-availability"].state == State.insufficient_data


def test_a_threshold_that_is_not_a_bucket_lists_the_buckets(
    history_prometheus: PrometheusServer, tmp_path: Path, history_end: int
) -> None:
    (tmp_path / "latency.yaml").write_text(
        """
apiVersion: openslo/v1
kind: SLO
metadata: {name: latency}
spec:
  service: fraud-model
  budgetingMethod: Occurrences
  timeWindow: [{duration: 30d, isRolling: true}]
  objectives: [{op: lte, value: 0.3, target: 0.99}]
  indicator:
    metadata: {name: latency}
    spec:
      thresholdMetric:
        metricSource:
          type: Prometheus
          spec: {query: 'http_request_duration_seconds{service="fraud-model"}'}
"""
    )
    result = evaluate(history_prometheus, tmp_path, history_end)["fraud-model-latency"]
    assert result.state == State.source_error
    assert result.detail == (
        "threshold 0.3s is not a bucket of http_request_duration_seconds; "
        "its le buckets are 0.1, 0.25, 0.5, +Inf"
    )
    (tmp_path / "latency.yaml").write_text((tmp_path / "latency.yaml").read_text().replace("0.3,", "0.25,"))
    fixed = evaluate(history_prometheus, tmp_path, history_end)["fraud-model-latency"]
    assert fixed.evaluation is not None
    assert fixed.evaluation.windows["1h"].error_ratio == pytest.approx(0.05, rel=1e-9)


def test_one_query_per_slo_in_direct_mode(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int
) -> None:
    slos = load_specs([scenario_slo_dir])
    engine = SloEngine(slos, PrometheusSource(history_prometheus.url), None, SloOptions(batch=False))
    at = datetime.fromtimestamp(history_end, UTC)
    engine.evaluate(at)
    # And once, for all four: how far back their raw data reaches (the budget's coverage).
    assert engine.last_stats.queries == len(slos) + 1
    assert engine.last_stats.direct == len(slos)
    engine.evaluate(at + timedelta(seconds=30))
    assert engine.last_stats.queries == len(slos)  # asked again only after coverage.RECHECK


def test_slo_status_cli_at_a_time(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int, tmp_path: Path
) -> None:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    env |= {
        "SLOGUARD_PROMETHEUS_URL": history_prometheus.url,
        "SLOGUARD_SLO_DIR": str(scenario_slo_dir),
        "SLOGUARD_CONFIG_FILE": str(tmp_path / "none.yaml"),
    }
    at = datetime.fromtimestamp(history_end, UTC).isoformat().replace("+00:00", "Z")
    sloguard = str(Path(sys.executable).parent / "sloguard")
    result = subprocess.run(
        [sloguard, "slo", "status", "--at", at, "--json"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    items = {item["id"]: item for item in json.loads(result.stdout)}
    availability = items["fraud-model-availability"]
    assert availability["state"] == "page"
    assert availability["objective"] == 0.999
    assert availability["evaluated_at"] == at
    assert set(availability["windows"]) == set(SLO_WINDOWS)
    assert availability["windows"]["5m"]["error_ratio"] == pytest.approx(0.3, rel=1e-9)
    assert availability["windows"]["5m"]["burn_rate"] == pytest.approx(300.0, rel=1e-9)
    assert items["fraud-steady-availability"]["state"] == "ticket"

    table = subprocess.run(
        [sloguard, "slo", "status", "--at", at], env=env, capture_output=True, text=True, timeout=60
    )
    lines = table.stdout.splitlines()
    line = next(line for line in lines if line.startswith("fraud-model-availability"))
    # The 30-day SLO's own windows by tier position: page-fast's short 5m and long 1h first.
    assert lines[0].split()[2:6] == ["page-fast", "short", "page-fast", "long"], lines[0]
    assert "5m 300.0×" in line and line.rstrip().endswith("page")
    assert table.returncode == 0  # no --fail-on: paging is a figure, not a failure

    failing = subprocess.run(
        [sloguard, "slo", "status", "--at", at, "--fail-on", "page,no_data"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert failing.returncode == 1, failing.stderr
    assert "fraud-model-availability" in failing.stderr.splitlines()[-1]
    quiet = subprocess.run(
        [sloguard, "slo", "status", "--at", at, "--fail-on", "source_error"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert quiet.returncode == 0, quiet.stderr
    wrong = subprocess.run(
        [sloguard, "slo", "status", "--fail-on", "paging"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong.returncode == 2 and "--fail-on: paging is not a state" in wrong.stderr


def test_slo_status_names_the_source_that_did_not_answer(scenario_slo_dir: Path, tmp_path: Path) -> None:
    port = free_port()  # nothing listens on it: every connection is refused
    prometheus = f"http://127.0.0.1:{port}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    env |= {
        "SLOGUARD_PROMETHEUS_URL": prometheus,
        "SLOGUARD_SLO_DIR": str(scenario_slo_dir),
        "SLOGUARD_CONFIG_FILE": str(tmp_path / "none.yaml"),
    }
    sloguard = str(Path(sys.executable).parent / "sloguard")

    def status(*arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sloguard, "slo", "status", *arguments], env=env, capture_output=True, text=True, timeout=60
        )

    table = status("--fail-on", "source_error")
    assert table.returncode == 1, table.stdout + table.stderr
    rows = table.stdout.splitlines()[1:]
    ids = sorted(line.split()[0] for line in rows)
    assert ids == sorted(SCENARIO_SLOS), table.stdout
    for line in rows:
        # The state column, with the source that failed and how (no "no data", no "no SLO is linked").
        assert re.search(rf"  source_error \(prometheus at {re.escape(prometheus)}: \w+\)$", line), line
    assert table.stderr.splitlines()[-1] == f"4 SLO(s) in source_error: {', '.join(sorted(SCENARIO_SLOS))}"
    items = json.loads(status("--json").stdout)
    assert {item["id"]: item["state"] for item in items} == dict.fromkeys(SCENARIO_SLOS, "source_error")
    assert all(item["detail"].startswith(f"prometheus at {prometheus}: ") for item in items), items
    # A source that does not answer is no page: only `source_error` (or `no_data`, not this) fails.
    assert status("--fail-on", "page,ticket").returncode == 0
