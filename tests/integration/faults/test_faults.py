"""Dependencies failing under sloguard: real servers killed, stopped and restarted mid-work."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from app.main import create_app
from tests.alertmanager import group_notification
from tests.conftest import (
    API_TOKEN,
    REPO,
    WEBHOOK_TOKEN,
    bearer,
    make_settings,
    personal_token,
    pg_schema_url,
)
from tests.mlflow_server import MlflowServer
from tests.pg_cluster import PrivateCluster
from tests.prometheus import PrometheusServer, Series, backfill, write_openmetrics
from tests.servers import UvicornThread, free_port, wait_until

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SLOGUARD = str(Path(sys.executable).parent / "sloguard")


def api(url: str, path: str) -> Any:
    response = httpx.get(f"{url}{path}", headers=AUTH, timeout=10)
    response.raise_for_status()
    return response.json()


# ---------------------------------------------------------------- Prometheus killed and restarted


@pytest.fixture
def failing_prometheus(tmp_path: Path) -> Iterator[PrometheusServer]:
    """Two hours of the fraud model failing 5 % of 100 requests a second, up to a few seconds ago."""
    step, end = 15, int(time.time()) - 5
    start = end - 2 * 3600
    labels = {"service": "fraud-model"}
    series = [
        Series("http_requests_total", labels | {"code": "500"}, lambda t: 1000 + (t - start) * 5.0),
        Series("http_requests_total", labels | {"code": "200"}, lambda t: 1000 + (t - start) * 95.0),
    ]
    write_openmetrics(tmp_path / "history.om", series, start - start % step, end - end % step, step)
    backfill(tmp_path / "history.om", tmp_path / "prom-data")
    server = PrometheusServer(tmp_path / "prom-data").start()
    yield server
    server.stop()


def test_prometheus_killed_mid_cycles_and_restarted_changes_no_incident(
    failing_prometheus: PrometheusServer, tmp_path: Path
) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "fraud-model.yaml").write_text((REPO / "slo" / "fraud-model.yaml").read_text())
    settings = make_settings(
        tmp_path,
        prometheus_url=failing_prometheus.url,
        scheduler_enabled=True,
        eval_interval=1,
        source_timeout=1,
    )
    with UvicornThread(create_app(settings)) as server:

        def states() -> dict[str, str]:
            return {item["id"]: item["state"] for item in api(server.url, "/api/v1/slos")}

        wait_until(lambda: len(api(server.url, "/api/v1/incidents")) == 1, timeout=30, what="the page")
        (incident,) = api(server.url, "/api/v1/incidents")
        assert (incident["slo_id"], incident["status"]) == ("fraud-model-availability", "triggered")

        failing_prometheus.kill()  # SIGKILL while cycles run every second
        wait_until(
            lambda: set(states().values()) == {"source_error"}, timeout=20, what="source_error everywhere"
        )
        time.sleep(3)  # several cycles without a source
        during = api(server.url, f"/api/v1/incidents/{incident['id']}")
        assert during["status"] == "triggered"  # not mitigated: no data is not good news

        failing_prometheus.start(keep_port=True)  # the same data, the same address
        wait_until(
            lambda: states()["fraud-model-availability"] == "page", timeout=60, what="page state again"
        )
        assert states()["fraud-model-latency"] != "source_error"
        after = api(server.url, f"/api/v1/incidents/{incident['id']}")
        assert len(api(server.url, "/api/v1/incidents")) == 1  # no second incident for the same burn
        assert after["status"] == "triggered"
        opened, *later = after["timeline"]
        assert opened["kind"] == "status"  # the opening; no status change (mitigated, reopened) after it
        assert [e["text"] for e in later if e["kind"] == "status"] == []


# ---------------------------------------------------------------- webhook storms through outages


def notification(group: int, alerts: int) -> dict[str, Any]:
    return group_notification(group, alerts, "Fault")


class Storm:
    """Notifications sent the way Alertmanager sends them: each retried until it is accepted."""

    def __init__(self, url: str, groups: int, alerts: int, copies: int) -> None:
        self.url, self.groups, self.alerts = url, groups, alerts
        self.jobs = [group for group in range(groups) for _ in range(copies)]
        self.outcomes: Counter[str] = Counter()
        self.sent = 0
        self.lock = threading.Lock()

    def send(self, group: int) -> None:
        body = notification(group, self.alerts)
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                response = httpx.post(
                    f"{self.url}/webhooks/alertmanager", json=body, headers=HOOK, timeout=10
                )
                outcome = str(response.status_code)
            except httpx.TransportError as exc:
                outcome = type(exc).__name__
            with self.lock:
                self.outcomes[outcome] += 1
                if outcome == "200":
                    self.sent += 1
            if outcome == "200":
                return
            time.sleep(0.2)
        raise AssertionError(f"group {group} never accepted: {self.outcomes}")

    def run(self, workers: int = 16) -> None:
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self.send, self.jobs))


def stored(database_url: str) -> tuple[int, int, int]:
    engine = sa.create_engine(database_url)
    with engine.connect() as connection:
        counts = tuple(
            connection.execute(sa.text(sql)).scalar_one()
            for sql in (
                "SELECT count(*) FROM incident",
                "SELECT count(*) FROM alert_link",
                "SELECT count(DISTINCT fingerprint) FROM alert_link",
            )
        )
    engine.dispose()
    return counts  # type: ignore[return-value]


def test_postgresql_restarted_during_a_webhook_storm_loses_and_doubles_nothing(tmp_path: Path) -> None:
    cluster = PrivateCluster().start()
    try:
        settings = make_settings(tmp_path, database_url=cluster.url)
        with UvicornThread(create_app(settings)) as server:
            storm = Storm(server.url, groups=60, alerts=5, copies=3)
            runner = threading.Thread(target=storm.run)
            runner.start()
            wait_until(lambda: storm.sent >= 30, timeout=60, what="the storm under way")
            cluster.stop("fast")  # PostgreSQL goes away mid-storm...
            wait_until(lambda: storm.outcomes["503"] >= 5, timeout=30, what="503s while it is down")
            cluster.start()  # ...and comes back
            runner.join(timeout=120)
            assert not runner.is_alive()
        # While it was down sloguard said 503 (retry), never 500; after, every alert is there once.
        assert set(storm.outcomes) <= {"200", "503"}, storm.outcomes
        assert stored(cluster.url) == (60, 300, 300)
    finally:
        cluster.destroy()


@pytest.fixture
def schema_url(pg_database: str) -> Iterator[str]:
    yield from pg_schema_url(pg_database)


def serve(port: int, env: dict[str, str], log: Any) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(
        [SLOGUARD, "serve", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    wait_until(
        lambda: httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200,
        timeout=60,
        what="sloguard serve",
    )
    return process


def test_sloguard_killed_mid_storm_and_restarted_loses_and_doubles_nothing(
    tmp_path: Path, schema_url: str
) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")} | {
        "SLOGUARD_DATABASE_URL": schema_url,
        "SLOGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
        "SLOGUARD_API_TOKEN": API_TOKEN,
        "SLOGUARD_SLO_DIR": str(tmp_path / "no-slos"),
        "SLOGUARD_CONFIG_FILE": str(tmp_path / "sloguard.yaml"),
        "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",
        "SLOGUARD_LOG_LEVEL": "WARNING",
    }
    with (tmp_path / "serve.log").open("wb") as log:
        process = serve(port, env, log)
        try:
            storm = Storm(f"http://127.0.0.1:{port}", groups=60, alerts=5, copies=3)
            runner = threading.Thread(target=storm.run)
            runner.start()
            wait_until(lambda: storm.sent >= 40, timeout=60, what="the storm under way")
            process.send_signal(signal.SIGKILL)  # no shutdown: requests in flight are cut
            process.wait(timeout=10)
            process = serve(port, env, log)
            runner.join(timeout=120)
            assert not runner.is_alive()
        finally:
            process.terminate()
            process.wait(timeout=20)
    # Senders saw the cut (connection errors), retried like Alertmanager, and every alert is there once.
    assert any(outcome not in ("200", "503") for outcome in storm.outcomes), storm.outcomes
    assert stored(schema_url) == (60, 300, 300)


# ---------------------------------------------------------------- MLflow down during a rollback


def test_mlflow_down_during_a_rollback_fails_it_and_changes_nothing(tmp_path: Path) -> None:
    folder = tmp_path / "mlflow"
    folder.mkdir()
    mlflow = MlflowServer(folder).start()
    try:
        mlflow.register("fraud-detector", 4)
        mlflow.set_alias("fraud-detector", "champion", "4")
        config = {
            "models": {
                "fraud-detector": {
                    "registry": {"name": "fraud-detector", "aliases": {"prod": "champion"}},
                    "environments": {
                        "prod": {
                            "target": {"kind": "mlflow_alias", "timeout": 2, "retries": 0},
                            "rollback": ["U1"],
                        }
                    },
                }
            }
        }
        (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump(config))
        settings = make_settings(tmp_path, mlflow_url=mlflow.url)
        u1 = bearer(personal_token(settings.database_url, "U1", "change"))  # on the model's rollback list
        with UvicornThread(create_app(settings)) as server:
            proposed = httpx.post(
                f"{server.url}/api/v1/rollbacks",
                json={"model": "fraud-detector", "to_version": "3"},
                headers=u1,
                timeout=15,
            )
            assert proposed.status_code == 201, proposed.text
            assert proposed.json()["from_version"] == "4"
            action_id = proposed.json()["id"]

            mlflow.stop()  # the registry goes away between the proposal and the confirmation
            confirmed = httpx.post(
                f"{server.url}/api/v1/rollbacks/{action_id}/confirm", headers=u1, timeout=30
            )
            body = confirmed.json()
            assert confirmed.status_code == 200, body
            assert body["state"] == "failed"
            steps = [event["step"] for event in body["audit"]]
            assert "succeeded" not in steps and steps[-1] == "failed"
            assert (
                "unreachable" in body["audit"][-1]["result"]
                or "mlflow" in body["audit"][-1]["result"].lower()
            )

        mlflow.start()  # the same registry store
        assert mlflow.alias("fraud-detector", "champion") == "4"  # the alias never moved
    finally:
        mlflow.stop()
