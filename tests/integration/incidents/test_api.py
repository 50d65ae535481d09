"""The incidents API: declare, transitions, notes, action items, filters, and exact response times."""

from __future__ import annotations

from datetime import UTC, datetime

import httpx
import pytest

from tests.conftest import People

pytestmark = pytest.mark.integration


def declare(client: httpx.Client, headers: dict[str, str], **fields: object) -> dict[str, object]:
    body = {"title": "Fraud scores all zero", "service": "fraud-model", "model": "fraud-detector", **fields}
    response = client.post("/api/v1/incidents", json=body, headers=headers)
    assert response.status_code == 201, response.text
    created: dict[str, object] = response.json()
    return created


def test_lifecycle_with_exact_times(client: httpx.Client, people: People) -> None:
    u123 = people("U123", "respond")
    started = "2026-11-25T20:00:00Z"
    created = declare(client, u123, started_at=started, severity="SEV2")
    incident_id = created["id"]
    assert created["status"] == "triggered"
    assert created["timeline"][0]["actor"] == "U123"  # type: ignore[index]
    assert created["timeline"][0]["token_id"] == 1  # type: ignore[index]  # U123's token, the first made

    before_ack = datetime.now(UTC)
    acked = client.patch(f"/api/v1/incidents/{incident_id}", json={"status": "acknowledged"}, headers=u123)
    after_ack = datetime.now(UTC)
    assert acked.status_code == 200
    body = acked.json()
    acknowledged_at = datetime.fromisoformat(body["acknowledged_at"])
    assert before_ack <= acknowledged_at <= after_ack
    detected_at = datetime.fromisoformat(body["detected_at"])
    assert body["time_to_acknowledge"] == pytest.approx((acknowledged_at - detected_at).total_seconds())
    assert body["time_to_detect"] == pytest.approx(
        (detected_at - datetime(2026, 11, 25, 20, 0, tzinfo=UTC)).total_seconds()
    )

    resolved = client.patch(
        f"/api/v1/incidents/{incident_id}", json={"status": "resolved"}, headers=u123
    ).json()
    resolved_at = datetime.fromisoformat(resolved["resolved_at"])
    assert resolved["time_to_resolve"] == pytest.approx(
        (resolved_at - datetime(2026, 11, 25, 20, 0, tzinfo=UTC)).total_seconds()
    )
    texts = [event["text"] for event in resolved["timeline"] if event["kind"] == "status"]
    # Nobody was commander: the one who acknowledged became it.
    assert texts == [
        "incident opened (SEV2)",
        "triggered -> acknowledged (commander: U123)",
        "acknowledged -> resolved",
    ]
    assert resolved["commander"] == "U123"


def test_an_illegal_transition_is_409_naming_the_allowed_ones(client: httpx.Client, people: People) -> None:
    responder = people("U123", "respond")
    incident_id = declare(client, responder)["id"]
    client.patch(f"/api/v1/incidents/{incident_id}", json={"status": "resolved"}, headers=responder)
    response = client.patch(
        f"/api/v1/incidents/{incident_id}", json={"status": "acknowledged"}, headers=responder
    )
    assert response.status_code == 409
    assert (
        response.json()["detail"]
        == "cannot move a resolved incident to acknowledged; allowed: none (it is closed)"
    )
    fresh = declare(client, responder, title="another")["id"]
    client.patch(f"/api/v1/incidents/{fresh}", json={"status": "mitigated"}, headers=responder)
    response = client.patch(f"/api/v1/incidents/{fresh}", json={"status": "acknowledged"}, headers=responder)
    assert response.json()["detail"] == (
        "cannot move a mitigated incident to acknowledged; allowed: cancelled, resolved, triggered"
    )


def test_fields_notes_and_action_items(client: httpx.Client, auth: dict[str, str], people: People) -> None:
    u42 = people("U42", "respond")
    incident_id = declare(client, u42)["id"]
    updated = client.patch(
        f"/api/v1/incidents/{incident_id}",
        json={"severity": "SEV1", "commander": "U42", "title": "Fraud model down"},
        headers=u42,
    ).json()
    assert (updated["severity"], updated["commander"], updated["title"]) == (
        "SEV1",
        "U42",
        "Fraud model down",
    )
    assert updated["timeline"][-1]["text"] == "severity = SEV1, commander = U42, title = Fraud model down"

    note = client.post(
        f"/api/v1/incidents/{incident_id}/timeline",
        json={"text": "rolled back to v3"},
        headers=u42,
    )
    assert note.status_code == 201 and note.json()["kind"] == "note"

    item = client.post(
        f"/api/v1/incidents/{incident_id}/action-items",
        json={"text": "alert on feature nulls", "owner": "U7", "priority": "P0"},
        headers=u42,
    ).json()
    done = client.patch(
        f"/api/v1/incidents/{incident_id}/action-items/{item['id']}", json={"done": True}, headers=u42
    ).json()
    assert done["done"] is True and done["priority"] == "P0"
    # `text: null` is refused with a reason (it was a 500: the length limit met the null), and nothing
    # changes; an empty or overlong text is refused too.
    for text in (None, "", "x" * 2001):
        refused = client.patch(
            f"/api/v1/incidents/{incident_id}/action-items/{item['id']}", json={"text": text}, headers=u42
        )
        assert refused.status_code == 422, (text, refused.text)
    assert (
        "text cannot be null"
        in client.patch(
            f"/api/v1/incidents/{incident_id}/action-items/{item['id']}", json={"text": None}, headers=u42
        ).text
    )
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()
    assert [i["text"] for i in detail["action_items"]] == ["alert on feature nulls"]
    assert (
        client.delete(f"/api/v1/incidents/{incident_id}/action-items/{item['id']}", headers=u42).status_code
        == 204
    )
    assert client.get(f"/api/v1/incidents/{incident_id}", headers=auth).json()["action_items"] == []
    bad = client.post(
        f"/api/v1/incidents/{incident_id}/action-items", json={"text": "x", "priority": "P9"}, headers=u42
    )
    assert bad.status_code == 422
    assert client.delete(f"/api/v1/incidents/{incident_id}/action-items/999", headers=u42).status_code == 404


def test_filters_and_pagination(client: httpx.Client, auth: dict[str, str], people: People) -> None:
    responder = people("U123", "respond")
    for index in range(5):
        declare(client, responder, title=f"incident {index}", severity="SEV2" if index % 2 else "SEV3")
    declare(client, responder, title="other service", service="ranker")
    assert len(client.get("/api/v1/incidents", params={"service": "fraud-model"}, headers=auth).json()) == 5
    assert len(client.get("/api/v1/incidents", params={"severity": "SEV2"}, headers=auth).json()) == 2
    page = client.get("/api/v1/incidents", params={"limit": 2, "offset": 2}, headers=auth).json()
    assert [item["title"] for item in page] == ["incident 3", "incident 2"]  # newest first


def test_unknown_incident_and_bad_bodies(client: httpx.Client, auth: dict[str, str], people: People) -> None:
    responder = people("U123", "respond")
    assert client.get("/api/v1/incidents/999", headers=auth).status_code == 404
    assert (
        client.patch("/api/v1/incidents/999", json={"status": "resolved"}, headers=responder).status_code
        == 404
    )
    assert client.post("/api/v1/incidents", json={"title": ""}, headers=responder).status_code == 422
    assert (
        client.post(
            "/api/v1/incidents", json={"title": "x", "severity": "SEV9"}, headers=responder
        ).status_code
        == 422
    )
    assert client.post("/api/v1/incidents", json={"title": "x"}).status_code == 401
