"""An OpenSLO good/total SLI against a real Prometheus, where a service (or a new model version) fails
every request from its first one: its good counter was never created (client libraries make a labelled
series on its first increment). Every event is bad, so the error ratio is 1 and the budget is spent,
worked out here from the generated counter, and budget per version charges the version, not "unattributed"."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.config import ModelConfig, SloOptions
from app.ml import budget
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics

pytestmark = pytest.mark.integration

SPEC = """apiVersion: openslo/v1
kind: SLO
metadata: {name: availability}
spec:
  service: newbie
  budgetingMethod: Occurrences
  timeWindow: [{duration: 30d, isRolling: true}]
  objectives: [{target: 0.999}]
  indicator:
    metadata: {name: newbie-good}
    spec:
      ratioMetric:
        counter: true
        good: {metricSource: {type: Prometheus, spec: {query: 'requests_total{service="newbie",code="200"}'}}}
        total: {metricSource: {type: Prometheus, spec: {query: 'requests_total{service="newbie"}'}}}
"""


def test_a_service_that_never_succeeded_has_spent_its_budget(tmp_path: Path) -> None:
    end = aligned_now(60, margin=600)
    start = end - 6 * 3600  # six hours of traffic, every request failing, version 7 only
    labels = {"service": "newbie", "code": "500", "model_version": "7"}
    write_openmetrics(
        tmp_path / "h.om", [Series("requests_total", labels, lambda t: 5.0 * (t - start))], start, end, 60
    )
    backfill(tmp_path / "h.om", tmp_path / "data")
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "newbie.yaml").write_text(SPEC)
    server = PrometheusServer(tmp_path / "data").start()
    source = PrometheusSource(server.url, timeout=30)
    try:
        (slo,) = load_specs([tmp_path / "slo"])
        at = datetime.fromtimestamp(end, UTC)
        (result,) = SloEngine([slo], source, None, SloOptions(batch=False)).evaluate(at)
        assert result.evaluation is not None, result.detail
        for window in ("5m", "1h", "6h"):
            assert result.evaluation.windows[window].error_ratio == pytest.approx(1.0), window
        # 6 h of requests, all bad, over the 30-day period's budget of 0.1 %: 1000× the budget spent.
        assert result.evaluation.budget_remaining == pytest.approx(1 - 1 / 0.001, rel=1e-3)
        models = {"newbie-model": ModelConfig(slos=[slo.id], version_label="model_version")}
        found = budget.for_slo(source, slo, models, at)
        assert found.available, found.reason
        (seven,) = found.versions
        assert seven.version == "7" and seven.spent == pytest.approx(1 / 0.001, rel=1e-3)
        assert seven.bad_events == pytest.approx(5.0 * 6 * 3600, rel=1e-3)
        assert found.unattributed == pytest.approx(0.0, abs=1e-9)
    finally:
        source.close()
        server.stop()
