"""Real Alertmanager -> sloguard, and real Prometheus -> Alertmanager -> sloguard."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from app.slo import rules
from app.slo.spec import load_specs
from tests.alertmanager import AlertmanagerServer
from tests.conftest import API_TOKEN, REPO, WEBHOOK_TOKEN, make_settings
from tests.prometheus import PrometheusServer, Series, backfill, write_openmetrics
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}


@pytest.fixture
def sloguard(tmp_path: Path) -> Iterator[str]:
    with UvicornThread(create_app(make_settings(tmp_path))) as server:
        yield server.url


@pytest.fixture
def alertmanager(tmp_path: Path, sloguard: str) -> Iterator[AlertmanagerServer]:
    server = AlertmanagerServer(tmp_path, f"{sloguard}/webhooks/alertmanager", WEBHOOK_TOKEN).start()
    yield server
    server.stop()


def incidents(url: str) -> list[dict[str, Any]]:
    listed: list[dict[str, Any]] = httpx.get(f"{url}/api/v1/incidents", headers=AUTH).json()
    return listed


def detail(url: str, incident_id: int) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{url}/api/v1/incidents/{incident_id}", headers=AUTH).json()
    return found


LABELS = {"alertname": "FraudModelErrorSpike", "service": "fraud-model", "severity": "page"}


def test_alertmanager_group_makes_one_incident_that_follows_it(
    alertmanager: AlertmanagerServer, sloguard: str
) -> None:
    alertmanager.post({**LABELS, "instance": "a"}, {"summary": "5xx ratio 9.5% over 1h"})
    wait_until(lambda: len(incidents(sloguard)) == 1, timeout=15, what="incident from Alertmanager")
    incident_id = incidents(sloguard)[0]["id"]

    alertmanager.post({**LABELS, "instance": "a"}, {"summary": "5xx ratio 9.5% over 1h"})  # re-sent
    alertmanager.post({**LABELS, "instance": "b"}, {"summary": "5xx ratio 9.5% over 1h"})  # second in group
    wait_until(lambda: len(detail(sloguard, incident_id)["alerts"]) == 2, timeout=15, what="second alert")
    time.sleep(0.5)  # let any duplicate notification land before counting
    assert len(incidents(sloguard)) == 1

    alertmanager.post({**LABELS, "instance": "a"}, resolve=True)
    alertmanager.post({**LABELS, "instance": "b"}, resolve=True)
    wait_until(lambda: detail(sloguard, incident_id)["status"] == "mitigated", timeout=15, what="mitigated")
    found = detail(sloguard, incident_id)
    assert sorted(alert["labels"]["instance"] for alert in found["alerts"]) == ["a", "b"]
    assert {alert["status"] for alert in found["alerts"]} == {"resolved"}
    kinds = [event["kind"] for event in found["timeline"]]
    assert kinds.count("alert_firing") == 2 and kinds.count("alert_resolved") == 2
    assert kinds[-1] == "status"
    assert found["severity"] == "SEV2"
    assert len(incidents(sloguard)) == 1


def test_prometheus_rules_fire_through_alertmanager_into_an_incident(
    tmp_path: Path, alertmanager: AlertmanagerServer, sloguard: str
) -> None:
    # Two hours of the fraud model answering 5 % errors, ending now: the fast page (1h and 5m above 1.44 %).
    step, end = 15, int(time.time())
    start = end - 2 * 3600
    series = [
        Series(
            "http_requests_total",
            {"service": "fraud-model", "code": "500"},
            lambda t: 1000 + (t - start) * 5.0,
        ),
        Series(
            "http_requests_total",
            {"service": "fraud-model", "code": "200"},
            lambda t: 1000 + (t - start) * 95.0,
        ),
    ]
    write_openmetrics(tmp_path / "now.om", series, start - start % step, end - end % step, step)
    backfill(tmp_path / "now.om", tmp_path / "prom-data")
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(rules.render(load_specs([REPO / "slo" / "fraud-model.yaml"])))
    prometheus = PrometheusServer(
        tmp_path / "prom-data", [rule_file], evaluation_interval="1s", alertmanager=alertmanager.url
    ).start()
    try:
        wait_until(lambda: len(incidents(sloguard)) == 1, timeout=60, what="incident from Prometheus")
    finally:
        prometheus.stop()
    (incident,) = incidents(sloguard)
    found = detail(sloguard, incident["id"])
    assert found["slo_id"] == "fraud-model-availability"
    assert found["model"] == "fraud-detector"
    assert found["severity"] == "SEV2"
    labels = found["alerts"][0]["labels"]
    assert (labels["alertname"], labels["sloth_severity"]) == ("FraudModelAvailability", "page")
