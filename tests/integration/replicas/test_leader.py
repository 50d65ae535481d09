"""Scheduler leadership on a real PostgreSQL, including a leader cut off from the database."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy.engine import make_url

from app.leader import AdvisoryLockLeadership, Leadership, leadership_for
from tests.conftest import PG_HOST, PG_PORT, pg_schema_url
from tests.servers import TcpProxy, wait_until

pytestmark = pytest.mark.integration
TAKEOVER = 1.5


@pytest.fixture
def schema_url(pg_database: str) -> Iterator[str]:
    yield from pg_schema_url(pg_database)


def test_sqlite_leads_in_process_and_postgresql_elects() -> None:
    assert type(leadership_for("sqlite:///x.db", 15)) is Leadership
    assert leadership_for("sqlite:///x.db", 15).is_leader
    assert isinstance(leadership_for("postgresql+psycopg://u@h/db", 15), AdvisoryLockLeadership)


def test_a_leader_cut_off_steps_down_and_the_other_takes_over(schema_url: str) -> None:
    proxy = TcpProxy(PG_HOST, PG_PORT)
    behind_proxy = make_url(schema_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    first = AdvisoryLockLeadership(behind_proxy, TAKEOVER)
    second = AdvisoryLockLeadership(schema_url, TAKEOVER)
    changes: list[tuple[str, bool]] = []
    first.on_change(lambda leading: changes.append(("first", leading)))
    second.on_change(lambda leading: changes.append(("second", leading)))
    try:
        first.start()
        assert first.is_leader  # decided before start() returns
        second.start()
        assert not second.is_leader
        assert first.describe() == {
            "mode": "postgresql-advisory-lock",
            "leader": True,
            "replica": first.replica,
        }

        proxy.partition()  # the network between the leader and PostgreSQL goes away
        wait_until(lambda: not first.is_leader, timeout=3 * TAKEOVER, what="the cut-off leader steps down")
        wait_until(lambda: second.is_leader, timeout=3 * TAKEOVER, what="the other takes over")
        assert changes == [("first", True), ("first", False), ("second", True)]

        proxy.restore()  # back on the network: it reconnects but the lock is taken
        wait_until(lambda: first._connection is not None, timeout=3 * TAKEOVER, what="reconnected")
        assert not first.is_leader

        second.stop()  # a clean shutdown lets the lock go at once
        wait_until(lambda: first.is_leader, timeout=2 * TAKEOVER, what="the first leads again")
        assert changes[-2:] == [("second", False), ("first", True)]
    finally:
        first.stop()
        second.stop()
        proxy.close()


def test_a_replica_that_stops_leading_stops_reporting_the_slo_gauges(
    schema_url: str, tmp_path: object
) -> None:
    """The SLO gauges are the leader's figures: after stepping down, a replica's /metrics has none, so a
    dashboard's max() over replicas never reads its stale state or budget."""
    from pathlib import Path

    from prometheus_client import generate_latest

    from app.config import FileConfig
    from app.main import follow_leadership
    from app.services import build_services
    from tests.conftest import make_settings

    assert isinstance(tmp_path, Path)
    proxy = TcpProxy(PG_HOST, PG_PORT)
    behind_proxy = make_url(schema_url).set(host="127.0.0.1", port=proxy.port).render_as_string(False)
    (tmp_path / "slo").mkdir()
    services = build_services(make_settings(tmp_path, database_url=schema_url), FileConfig(), [])
    leadership = AdvisoryLockLeadership(behind_proxy, TAKEOVER)
    follow_leadership(services, leadership)
    try:
        leadership.start()
        assert leadership.is_leader
        services.metrics.slos.update("fraud-availability", {"5m": 2.0}, 0.4, "page", ("ok", "page"))
        text = generate_latest(services.metrics.registry).decode()
        assert 'sloguard_slo_state{slo="fraud-availability",state="page"} 1.0' in text
        proxy.partition()
        stepped_down = f'sloguard_scheduler_leader{{replica="{leadership.replica}"}} 0.0'  # the marker

        def metrics() -> str:
            return generate_latest(services.metrics.registry).decode()

        wait_until(lambda: stepped_down in metrics(), timeout=3 * TAKEOVER, what="the leader steps down")
        assert "fraud-availability" not in metrics()
    finally:
        leadership.stop()
        proxy.close()
        services.close()
