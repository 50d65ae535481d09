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
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld
from tests.prometheus import PrometheusServer
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration


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
