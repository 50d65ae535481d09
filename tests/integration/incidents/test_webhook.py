"""POST /webhooks/alertmanager with Alertmanager 0.25's real payloads, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import json
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.config import Settings
from tests.conftest import REPO, WEBHOOK_TOKEN, People

pytestmark = pytest.mark.integration
SAMPLES = REPO / "tests" / "data"  # captured from a real Alertmanager 0.25 (shared/samples)
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
TABLES = ("incident", "timeline_event", "alert_link", "action_item")


def sample(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SAMPLES / f"alertmanager-0.25-{name}.json").read_text())
    return loaded


def row_counts(settings: Settings) -> dict[str, int]:
    engine = sa.create_engine(settings.database_url)
    with engine.connect() as connection:
        counts = {
            table: connection.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in TABLES
        }
    engine.dispose()
    return counts


def post(client: httpx.Client, payload: Any, headers: dict[str, str] = HOOK) -> httpx.Response:
    return client.post("/webhooks/alertmanager", json=payload, headers=headers)


def test_firing_then_duplicate_then_resolved(client: httpx.Client, auth: dict[str, str]) -> None:
    first = post(client, sample("firing"))
    assert first.status_code == 200, first.text
    assert first.json()["created"] is True and first.json()["new_alerts"] == 1
    incident_id = first.json()["incident_id"]

    again = post(client, sample("firing"))
    assert again.json() == {**first.json(), "created": False, "new_alerts": 0, "outcome": "duplicate"}

    resolved = post(client, sample("resolved"))
    assert resolved.json()["resolved_alerts"] == 1

    incident = client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()
    assert incident["status"] == "mitigated"
    assert incident["source"] == "alertmanager"
    assert incident["service"] == "fraud-model"
    assert incident["severity"] == "SEV2"  # severity=page
    assert incident["title"] == "FraudModelErrorSpike: 5xx ratio 9.5% over 1h"
    assert incident["started_at"].startswith("2026-11-25T20:25:46.565436")
    (alert,) = incident["alerts"]
    assert (alert["fingerprint"], alert["status"]) == ("235da9de1f7854ec", "resolved")
    assert alert["ends_at"].startswith("2026-11-25T20:25:52.017")
    kinds = [event["kind"] for event in incident["timeline"]]
    assert kinds == ["status", "alert_firing", "alert_resolved", "status"]
    assert incident["timeline"][-1]["text"] == "triggered -> mitigated: every alert resolved"
    assert incident["time_to_mitigate"] is not None

    metrics = client.get("/metrics").text
    assert 'sloguard_webhook_notifications_total{outcome="accepted"} 2.0' in metrics
    assert 'sloguard_webhook_notifications_total{outcome="duplicate"} 1.0' in metrics
    assert 'sloguard_incidents_open{severity="SEV2"} 1.0' in metrics


def test_a_second_alert_in_the_group_attaches_and_a_new_one_reopens(
    client: httpx.Client, auth: dict[str, str]
) -> None:
    firing = sample("firing")
    incident_id = post(client, firing).json()["incident_id"]
    second = copy.deepcopy(firing)
    other = copy.deepcopy(firing["alerts"][0])
    other |= {"fingerprint": "aaaabbbbccccdddd", "labels": {**other["labels"], "model_version": "5"}}
    second["alerts"].append(other)
    result = post(client, second).json()
    assert (result["incident_id"], result["new_alerts"]) == (incident_id, 1)

    both_resolved = copy.deepcopy(second)
    for alert in both_resolved["alerts"]:
        alert |= {"status": "resolved", "endsAt": "2026-11-25T20:40:00Z"}
    post(client, both_resolved)
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()["status"] == "mitigated"

    refire = copy.deepcopy(firing)
    refire["alerts"][0]["startsAt"] = "2026-11-25T21:00:00Z"  # the same alert, firing again later
    again = post(client, refire).json()
    assert again["incident_id"] == incident_id
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()
    assert detail["status"] == "triggered"
    assert len(detail["alerts"]) == 3
    assert (
        detail["timeline"][-1]["text"]
        == "mitigated -> triggered: a new alert fired on the mitigated incident"
    )


def test_an_alert_naming_an_open_slo_incident_attaches_to_it(client: httpx.Client, people: People) -> None:
    declared = client.post(
        "/api/v1/incidents",
        json={"title": "fraud availability", "slo_id": "fraud-model-availability", "severity": "SEV2"},
        headers=people("U0ANA", "respond"),
    ).json()
    payload = sample("firing")
    payload["groupKey"] = '{}:{alertname="FraudModelAvailability"}'
    payload["commonLabels"] = {**payload["commonLabels"], "sloth_id": "fraud-model-availability"}
    assert post(client, payload).json()["incident_id"] == declared["id"]


def test_twenty_concurrent_copies_make_one_incident_and_one_alert(
    client: httpx.Client, settings: Settings
) -> None:
    payload = sample("firing")
    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(lambda _: post(client, payload), range(20)))
    assert [r.status_code for r in responses] == [200] * 20
    assert len({r.json()["incident_id"] for r in responses}) == 1
    assert sum(r.json()["created"] for r in responses) == 1
    counts = row_counts(settings)
    assert (counts["incident"], counts["alert_link"]) == (1, 1)
    assert counts["timeline_event"] == 2  # opened + alert_firing


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "body is not JSON"),
        (b"[1, 2]", 422, "body: must be a JSON object"),
        ({"version": "3"}, 422, "version: Input should be '4'"),
        ("no-alerts", 422, "alerts: Field required"),
        ("no-fingerprint", 422, "alerts[0].fingerprint: Field required"),
        ("bad-start", 422, "alerts[0].startsAt: Input should be a valid datetime"),
        ("oversized", 413, "the limit is 1048576"),
    ],
)
def test_bad_input_is_refused_and_stores_nothing(
    client: httpx.Client, settings: Settings, body: Any, status: int, reason: str
) -> None:
    post(client, sample("firing"))
    before = row_counts(settings)
    payload = sample("firing")
    if body == "no-alerts":
        del payload["alerts"]
        body = payload
    elif body == "no-fingerprint":
        del payload["alerts"][0]["fingerprint"]
        body = payload
    elif body == "bad-start":
        payload["alerts"][0]["startsAt"] = "yesterday"
        body = payload
    elif body == "oversized":
        payload["commonAnnotations"]["description"] = "x" * (1024 * 1024 + 1)
        body = payload
    elif isinstance(body, dict):
        body = {**sample("firing"), **body}
    if isinstance(body, bytes):
        response = client.post(
            "/webhooks/alertmanager", content=body, headers={**HOOK, "Content-Type": "application/json"}
        )
    else:
        response = post(client, body)
    assert response.status_code == status, response.text
    assert reason in response.json()["detail"]
    assert row_counts(settings) == before


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer not-the-token"}])
def test_webhook_requires_its_token(
    client: httpx.Client, settings: Settings, headers: dict[str, str]
) -> None:
    response = post(client, sample("firing"), headers)
    assert response.status_code == 401
    assert row_counts(settings)["incident"] == 0
    assert 'sloguard_webhook_notifications_total{outcome="accepted"}' not in client.get("/metrics").text
