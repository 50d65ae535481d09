"""The evaluation cycle inside the running service: storage, events, API, /metrics, outages."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from app import db
from app.events import Dispatcher, SloBreached, SloCleared
from app.main import create_app
from app.slo.models import SloStatus
from app.slo.service import SloEngine, run_cycle
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from app.telemetry import Metrics
from tests.conftest import API_TOKEN, make_settings
from tests.prometheus import PrometheusServer
from tests.servers import TcpProxy, UvicornThread, wait_until

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


def test_a_cycle_stores_status_and_announces_breaches(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int, database_url: str
) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    slo_engine = SloEngine(load_specs([scenario_slo_dir]), PrometheusSource(history_prometheus.url), None)
    dispatcher = Dispatcher()
    seen: list[Any] = []
    dispatcher.subscribe(SloBreached, lambda session, events, event: seen.append(event))
    dispatcher.subscribe(SloCleared, lambda session, events, event: seen.append(event))
    metrics = Metrics()
    at = datetime.fromtimestamp(history_end, UTC)

    # Four days earlier fraud-model sits in its 0.05 % background (ok); the steady 0.5 % already tickets.
    run_cycle(slo_engine, engine, metrics, dispatcher, at - timedelta(days=4))
    assert [(event.slo_id, event.severity) for event in seen] == [("fraud-steady-availability", "ticket")]
    run_cycle(slo_engine, engine, metrics, dispatcher, at)
    breaches = {event.slo_id: event for event in seen}
    assert set(breaches) == {"fraud-model-availability", "fraud-steady-availability"}
    assert len(seen) == 2  # the steady ticket is not announced again
    page = breaches["fraud-model-availability"]
    assert (page.severity, page.tier, page.model) == ("page", "page-fast", "fraud-detector")
    assert page.runbook == "runbooks/fraud-model-availability.md"
    assert page.burn_rates["5m"] == pytest.approx(300.0)

    # The same state again is not a new breach.
    run_cycle(slo_engine, engine, metrics, dispatcher, at + timedelta(seconds=1))
    assert len(seen) == 2

    with Session(engine) as session:
        rows = session.exec(select(SloStatus).where(SloStatus.slo_id == "fraud-model-availability")).all()
    assert [row.state for row in rows] == ["ok", "page", "page"]
    assert rows[1].tier == "page-fast"
    assert rows[1].windows["5m"]["error_ratio"] == pytest.approx(0.3)
    assert rows[1].evaluated_at == at
    engine.dispose()


def test_status_rows_older_than_the_retention_are_pruned(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int, tmp_path: Path
) -> None:
    from app.config import SloOptions

    engine = db.make_engine(f"sqlite:///{tmp_path / 'retention.db'}")
    db.upgrade(engine)
    slo_engine = SloEngine(
        load_specs([scenario_slo_dir]),
        PrometheusSource(history_prometheus.url),
        None,
        SloOptions(status_retention="1h"),
    )
    at = datetime.fromtimestamp(history_end, UTC)
    for hours_ago in (3, 2, 0):
        run_cycle(slo_engine, engine, Metrics(), Dispatcher(), at - timedelta(hours=hours_ago))
    with Session(engine) as session:
        times = {row.evaluated_at for row in session.exec(select(SloStatus)).all()}
    assert times == {at}
    engine.dispose()


def metric_value(text: str, line_start: str) -> float:
    line = next(line for line in text.splitlines() if line.startswith(line_start))
    return float(line.rsplit(" ", 1)[1])


def test_prometheus_outage_marks_slos_source_error_and_readyz_says_so(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, tmp_path: Path
) -> None:
    proxy = TcpProxy("127.0.0.1", history_prometheus.port)
    settings = make_settings(
        tmp_path,
        prometheus_url=f"http://127.0.0.1:{proxy.port}",
        slo_dir=scenario_slo_dir,
        scheduler_enabled=True,
        eval_interval=1,
        source_timeout=2,
    )
    try:
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, headers=AUTH) as http,
        ):

            def states() -> dict[str, str]:
                return {item["id"]: item["state"] for item in http.get("/api/v1/slos").json()}

            # Before the first cycle the API lists every SLO as not evaluated yet.
            first = http.get("/api/v1/slos/fraud-model-availability").json()
            assert first["objective"] == 0.999
            wait_until(
                lambda: (
                    "source_error" not in states().values()
                    and all(item["evaluated_at"] for item in http.get("/api/v1/slos").json())
                ),
                timeout=20,
                what="first evaluation",
            )
            assert http.get("/readyz").json()["sources"]["prometheus"] == "ok"

            proxy.cut()
            wait_until(lambda: set(states().values()) == {"source_error"}, timeout=30, what="source_error")
            one = http.get("/api/v1/slos/fraud-model-availability").json()
            assert one["state"] == "source_error"
            assert "prometheus at http://127.0.0.1" in one["detail"]
            ready = http.get("/readyz")
            assert ready.status_code == 200  # a source outage never takes sloguard out of service
            assert ready.json()["sources"]["prometheus"].startswith("error:")
            assert ready.json()["slo_evaluation"]["states"] == {"source_error": 4}
            text = http.get("/metrics").text
            assert (
                metric_value(text, 'sloguard_slo_state{slo="fraud-model-availability",state="source_error"}')
                == 1
            )
            assert metric_value(text, 'sloguard_slo_state{slo="fraud-model-availability",state="ok"}') == 0

            proxy.restore()
            wait_until(lambda: "source_error" not in states().values(), timeout=30, what="recovery")
            assert http.get("/api/v1/slos/unknown").status_code == 404
            assert httpx.get(f"{server.url}/api/v1/slos").status_code == 401
    finally:
        proxy.close()


def test_a_restart_remembers_a_page_across_source_errors(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, history_end: int, tmp_path: Path
) -> None:
    from app.slo import service as slos

    engine = db.make_engine(f"sqlite:///{tmp_path / 'restart.db'}")
    db.upgrade(engine)
    at = datetime.fromtimestamp(history_end, UTC)
    live = SloEngine(load_specs([scenario_slo_dir]), PrometheusSource(history_prometheus.url), None)
    run_cycle(live, engine, Metrics(), Dispatcher(), at)  # fraud-model-availability pages
    down = SloEngine(load_specs([scenario_slo_dir]), PrometheusSource("http://127.0.0.1:9", timeout=1), None)
    down.memory = dict(live.memory)
    run_cycle(down, engine, Metrics(), Dispatcher(), at + timedelta(minutes=1))  # source_error rows
    restarted = SloEngine(load_specs([scenario_slo_dir]), PrometheusSource(history_prometheus.url), None)
    with Session(engine) as session:
        restarted.restore(slos.latest_states(session, list(restarted.by_id)))
    assert restarted.memory["fraud-model-availability"].state == "page"
    assert restarted.memory["fraud-model-availability"].tier == "page-fast"
    engine.dispose()


def test_the_first_evaluation_runs_at_start_up(
    history_prometheus: PrometheusServer, scenario_slo_dir: Path, tmp_path: Path
) -> None:
    settings = make_settings(
        tmp_path,
        prometheus_url=history_prometheus.url,
        slo_dir=scenario_slo_dir,
        scheduler_enabled=True,
        eval_interval=3600,  # an hour: only a run at start-up can fill the status in time
    )
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH) as http,
    ):
        wait_until(
            lambda: all(item["evaluated_at"] for item in http.get("/api/v1/slos").json()),
            timeout=15,
            what="evaluation at start-up",
        )
        # /readyz reports the cycle once it has finished (stored, announced), just after the rows land.
        wait_until(lambda: "slo_evaluation" in http.get("/readyz").json(), timeout=5, what="the cycle report")
