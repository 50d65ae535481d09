from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration import scenarios
from tests.prometheus import PrometheusServer, aligned_now, backfill, write_openmetrics

STEADY_SPEC = """
version: "prometheus/v1"
service: "fraud-steady"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="fraud-steady",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="fraud-steady"}[{{.window}}]))
    alerting:
      name: FraudSteadyAvailability
"""


@pytest.fixture(scope="session")
def history_end() -> int:
    """T: the evaluation time, aligned to the sample step, ten minutes in the past."""
    return aligned_now(scenarios.STEP)


@pytest.fixture(scope="session")
def history_prometheus(
    tmp_path_factory: pytest.TempPathFactory, history_end: int
) -> Iterator[PrometheusServer]:
    """A real Prometheus holding 31 days of the generated scenarios."""
    folder = tmp_path_factory.mktemp("prometheus-history")
    source = folder / "history.om"
    write_openmetrics(
        source,
        scenarios.all_series(history_end),
        history_end - scenarios.HISTORY,
        history_end,
        scenarios.STEP,
    )
    backfill(source, folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def scenario_slo_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The repository's Prometheus examples plus a steady 0.5 % error service."""
    folder = tmp_path_factory.mktemp("slo")
    shutil.copy(REPO / "slo" / "fraud-model.yaml", folder)
    shutil.copy(REPO / "slo" / "fraud-model-quality.yaml", folder)
    (folder / "steady.yaml").write_text(STEADY_SPEC)
    return folder
