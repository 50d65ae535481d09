"""/slo against stored evaluations of the generated history."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from app.main import create_app
from app.slo.service import run_cycle
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.integration import scenarios
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld
from tests.prometheus import PrometheusServer, aligned_now, backfill, write_openmetrics
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
DAILY_STEP = 15  # samples every 15 s: a 1-minute window holds five, and each rate is exact
DAILY_HISTORY = 26 * 3600  # more than the one-day period
DAILY_SPEC = """\
apiVersion: openslo/v1
kind: SLO
metadata: {name: daily}
spec:
  service: fraud-model
  budgetingMethod: Occurrences
  timeWindow: [{duration: 1d, isRolling: true}]
  objectives: [{target: 0.999}]
  indicator:
    metadata: {name: fraud-model-5xx}
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{service="fraud-model",code=~"5.."}'}
        total:
          metricSource:
            type: Prometheus
            spec: {query: 'http_requests_total{service="fraud-model"}'}
"""
# The one-day SLO's own windows (SLO-MATH.md's 30-day windows scaled by 1d/30d, at least a minute), in
# tier order, each once: page-fast 1m/2m, page-slow 1m/12m, ticket-fast 4m/48m, ticket-slow 12m/2h24m.
DAILY_WINDOWS = {"1m": 60, "2m": 120, "12m": 720, "4m": 240, "48m": 2880, "2h24m": 8640}


@pytest.fixture
def world(
    tmp_path: Path, history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int
) -> Iterator[SlackWorld]:
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            prometheus_url=history_prometheus.url,
            slo_dir=scenario_slo_dir,
        )
        with UvicornThread(create_app(settings)) as server:
            state = server.server.config.app.state.services
            run_cycle(
                state.slo_engine,
                state.engine,
                state.metrics,
                state.events,
                datetime.fromtimestamp(history_end, UTC),
            )
            yield SlackWorld(server, slack, settings.database_url)


def test_slo_list_status_and_budget(world: SlackWorld) -> None:
    lines = world.run("/slo", "list")["text"].splitlines()
    assert len(lines) == 4
    # Hand-computed in tests/integration/scenarios.py: 5m 30 %, 1h 4.33 %, 6h 1.06 %, 3d 0.18 % on a
    # 0.1 % budget; 37.0 % of the 30-day budget left.
    # The SLO's own windows by tier position (page-fast 5m/1h, page-slow 30m/6h, ticket-fast 2h/1d,
    # ticket-slow 6h/3d), each once.
    availability = (
        "`fraud-model-availability` page 5m 300.0× 1h 43.3× 30m 66.7× 6h 10.6× 2h 23.7× 1d 3.4× 3d 1.8× "
        "budget=37.0%"
    )
    assert lines[0].startswith(availability)
    status = world.run("/slo", "status fraud-steady-availability")
    assert status["response_type"] == "ephemeral"
    assert status["text"].startswith(
        "`fraud-steady-availability` ticket 5m 5.0× 1h 5.0× 30m 5.0× 6h 5.0× 2h 5.0× 1d 5.0× 3d 5.0×"
    )
    budget = world.run("/slo", "budget fraud-steady")["text"].splitlines()
    assert [line.split()[0] for line in budget] == ["`fraud-steady-availability`"]
    # Time to exhaustion: the steady service has overspent (5x for 30 days), so none is shown for it.
    assert "exhausted in" not in budget[0]
    assert "exhausted in" in lines[0]


@pytest.fixture(scope="module")
def daily_end() -> int:
    return aligned_now(DAILY_STEP)


@pytest.fixture(scope="module")
def daily_prometheus(tmp_path_factory: pytest.TempPathFactory, daily_end: int) -> Iterator[PrometheusServer]:
    """26 hours of the outage profile's fraud-model requests, a sample every 15 s."""
    folder = tmp_path_factory.mktemp("daily")
    series = [
        s
        for s in scenarios.all_series(daily_end, DAILY_STEP, DAILY_HISTORY)
        if s.name == "http_requests_total" and s.labels["service"] == "fraud-model"
    ]
    write_openmetrics(folder / "history.om", series, daily_end - DAILY_HISTORY, daily_end, DAILY_STEP)
    backfill(folder / "history.om", folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


@pytest.fixture
def daily_world(tmp_path: Path, daily_prometheus: PrometheusServer, daily_end: int) -> Iterator[SlackWorld]:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "daily.yaml").write_text(DAILY_SPEC)
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            prometheus_url=daily_prometheus.url,
            slo_dir=tmp_path / "slo",
        )
        with UvicornThread(create_app(settings)) as server:
            state = server.server.config.app.state.services
            at = datetime.fromtimestamp(daily_end, UTC)
            run_cycle(state.slo_engine, state.engine, state.metrics, state.events, at)
            yield SlackWorld(server, slack, settings.database_url)


def test_slo_status_of_a_one_day_slo_shows_its_own_windows(daily_world: SlackWorld) -> None:
    # Hand-computed from the outage profile (scenarios.expected_ratio) on a 0.1 % budget: 1m, 2m and 4m
    # lie inside the 5 minutes at 30 % (300x); 12m is 5 min at 30 % and 7 at 2 % (136.7x); and so on.
    burns = {
        window: scenarios.expected_ratio(scenarios.OUTAGE, span) / 0.001
        for window, span in DAILY_WINDOWS.items()
    }
    assert [round(burns[w], 1) for w in ("1m", "12m", "48m", "2h24m")] == [300.0, 136.7, 49.2, 20.4]
    left = 1 - scenarios.expected_ratio(scenarios.OUTAGE, scenarios.DAY) / 0.001
    assert round(left, 3) == -2.389  # (90 + 66 + 72 + 64.8) error-seconds in the day's 86,400: 3.39 budgets
    cells = " ".join(f"{window} {burn:.1f}×" for window, burn in burns.items())
    status = daily_world.run("/slo", "status fraud-model-daily")
    assert status["response_type"] == "ephemeral"
    assert status["text"].startswith(f"`fraud-model-daily` page {cells} budget={left:.1%}"), status["text"]
    assert not {"5m", "30m", "1h", "6h", "1d", "3d"} & set(status["text"].split()), status["text"]
    (listed,) = daily_world.run("/slo", "list")["text"].splitlines()
    assert listed.startswith(f"`fraud-model-daily` page {cells}")
