"""Batch mode: reading the recording rules that `sloguard slo rules` loads into a live Prometheus."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import SloOptions
from app.slo import rules
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.integration import scenarios
from tests.prometheus import PrometheusServer, backfill, write_openmetrics
from tests.servers import wait_until

pytestmark = pytest.mark.integration
STEP = 60
HISTORY = 4 * scenarios.DAY


@pytest.fixture(scope="module")
def live_prometheus(
    tmp_path_factory: pytest.TempPathFactory, scenario_slo_dir: Path
) -> Iterator[PrometheusServer]:
    """Four days of the scenarios ending just before now, with the generated rules evaluated live."""
    folder = tmp_path_factory.mktemp("prometheus-live")
    end = (int(time.time()) - 20) // STEP * STEP
    source = folder / "live.om"
    write_openmetrics(source, scenarios.all_series(end, STEP, HISTORY), end - HISTORY, end, STEP)
    backfill(source, folder / "data")
    rule_file = folder / "rules.yml"
    rule_file.write_text(rules.render(load_specs([scenario_slo_dir])))
    server = PrometheusServer(folder / "data", [rule_file], evaluation_interval="2s").start()
    yield server
    server.stop()


def wait_for_rules(server: PrometheusServer, count: int) -> None:
    wait_until(
        lambda: len(server.query("slo:sli_error:ratio_rate30d")) == count, timeout=30, what="every rule group"
    )


def test_batch_mode_reads_every_slo_in_one_query_per_window(
    live_prometheus: PrometheusServer, scenario_slo_dir: Path
) -> None:
    slos = load_specs([scenario_slo_dir])
    wait_for_rules(live_prometheus, len(slos))
    engine = SloEngine(slos, PrometheusSource(live_prometheus.url), None, SloOptions(batch=True))
    at = datetime.now(UTC)
    engine.evaluate(at)
    # 8 windows (5m 30m 1h 2h 6h 1d 3d 30d) for all four SLOs, where direct mode asks once per SLO; and
    # on the first cycle three more, since the rules have run for seconds, not 30 days
    # (tests/integration/slo/test_batch_coverage.py): since when the rules and the raw data reach back,
    # and the period from the raw SLIs. The next cycle reuses those answers.
    assert engine.last_stats.queries == 8 + 3
    engine.evaluate(at + timedelta(seconds=5))
    assert engine.last_stats.queries == 8
    assert engine.last_stats.batch_hits == len(slos) == 4
    assert engine.last_stats.direct == 0


def test_batch_and_direct_modes_agree(live_prometheus: PrometheusServer, scenario_slo_dir: Path) -> None:
    slos = load_specs([scenario_slo_dir])
    wait_for_rules(live_prometheus, len(slos))
    source = PrometheusSource(live_prometheus.url)
    for slo in slos:
        # Evaluate at the rule group's own timestamp, so both modes read the same samples.
        stamp = live_prometheus.query(f'timestamp(slo:sli_error:ratio_rate5m{{sloth_id="{slo.id}"}})')
        at = datetime.fromtimestamp(float(stamp[0]["value"][1]), UTC)  # type: ignore[index]
        (batch,) = SloEngine([slo], source, None, SloOptions(batch=True)).evaluate(at)
        direct_engine = SloEngine([slo], source, None, SloOptions(batch=False))
        (direct,) = direct_engine.evaluate(at)
        assert direct_engine.last_stats.direct == 1
        assert batch.state == direct.state, slo.id
        assert batch.evaluation is not None and direct.evaluation is not None
        for window, figures in direct.evaluation.windows.items():
            got = batch.evaluation.windows[window]
            assert got.error_ratio == pytest.approx(figures.error_ratio, rel=1e-9), (slo.id, window)
            if figures.events is not None:
                assert got.events == pytest.approx(figures.events, rel=1e-9), (slo.id, window)
        assert batch.evaluation.budget_remaining is not None
        # The rules have run for seconds: the period's budget is the raw SLI's, as in direct mode.
        assert direct.evaluation.budget_remaining is not None
        assert batch.evaluation.budget_remaining == pytest.approx(
            direct.evaluation.budget_remaining, abs=0.01
        )
        if slo.id == "fraud-model-availability":
            assert batch.evaluation.windows["5m"].error_ratio == pytest.approx(0.3)


def test_slos_without_rules_fall_back_to_direct_queries(
    live_prometheus: PrometheusServer, scenario_slo_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "other.yaml").write_text(
        (scenario_slo_dir / "steady.yaml")
        .read_text()
        .replace('service: "fraud-steady"', 'service: "no-rules"')
    )
    slos = load_specs([scenario_slo_dir, tmp_path])
    engine = SloEngine(slos, PrometheusSource(live_prometheus.url), None, SloOptions(batch=True))
    results = {result.slo.id: result for result in engine.evaluate(datetime.now(UTC))}
    assert engine.last_stats.direct == 1  # only no-rules-availability
    # 0.5 % errors everywhere on a 99.9 % SLO: burn 5, a ticket (SLO-MATH.md's worked example).
    assert results["no-rules-availability"].state.value == "ticket"
