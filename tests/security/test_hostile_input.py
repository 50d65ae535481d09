"""Regression tests for input that answered 500 (or lost a page) before: each case at its door, on SQLite
and PostgreSQL, served by uvicorn on loopback.

The webhook stores every schema-valid Alertmanager v4 notification (Alertmanager does not retry a 4xx) and
nothing it stores breaks a later read; the API answers a 4xx that names the field.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import REPO, WEBHOOK_TOKEN, People

pytestmark = pytest.mark.integration
RESPONDER = ("U1", "respond")  # who declares and updates incidents here: a person's token of that scope
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}", "Content-Type": "application/json"}
LONG = "fraud-model-" + "x" * 5000  # far past every column (200-300 characters)


def firing() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
    return loaded


def post_raw(client: httpx.Client, body: str) -> httpx.Response:
    return client.post("/webhooks/alertmanager", content=body.encode("utf-8"), headers=HOOK)


def everything_reads(client: httpx.Client, auth: dict[str, str], incident_id: int) -> dict[str, Any]:
    """The list, the incident and a PATCH all answer 200: what was stored breaks no later read. `auth`:
    a token that may update incidents (scope `respond`)."""
    listed = client.get("/api/v1/incidents", headers=auth)
    assert listed.status_code == 200, listed.text
    assert incident_id in [row["id"] for row in listed.json()]
    patched = client.patch(f"/api/v1/incidents/{incident_id}", json={"severity": "SEV1"}, headers=auth)
    assert patched.status_code == 200, patched.text
    detail = client.get(f"/api/v1/incidents/{incident_id}", headers=auth)
    assert detail.status_code == 200, detail.text
    found: dict[str, Any] = detail.json()
    assert found["severity"] == "SEV1"
    return found


def test_label_values_longer_than_any_column_are_stored_whole_and_read_back(
    client: httpx.Client, people: People
) -> None:
    auth = people(*RESPONDER)
    payload = firing()
    for labels in (payload["commonLabels"], payload["groupLabels"], payload["alerts"][0]["labels"]):
        labels.update({"service": LONG, "model": LONG, "alertname": LONG})
    payload["commonAnnotations"]["summary"] = LONG
    payload["groupKey"] = '{}:{alertname="' + LONG + '"}' * 2  # past the 4096 the schema allowed
    response = client.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert response.status_code == 200, response.text
    assert response.json()["created"] is True
    incident = everything_reads(client, auth, response.json()["incident_id"])

    # Display fields are cut to their columns, marked; the labels keep every character.
    assert len(incident["service"]) == 200 and incident["service"].endswith("…")
    assert LONG.startswith(incident["service"][:-1])
    assert len(incident["title"]) == 300 and incident["title"].endswith("…")
    (alert,) = incident["alerts"]
    assert alert["labels"]["service"] == LONG and alert["labels"]["alertname"] == LONG
    # The same notification again is recognised (same group, same alert), not a second incident.
    again = client.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert again.json()["outcome"] == "duplicate", again.text


def test_a_fingerprint_of_any_length_is_stored_and_deduplicated(client: httpx.Client, people: People) -> None:
    auth = people(*RESPONDER)
    payload = firing()
    payload["alerts"][0]["fingerprint"] = "f" * 500
    first = client.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert first.status_code == 200, first.text
    again = client.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert again.json()["outcome"] == "duplicate"
    everything_reads(client, auth, first.json()["incident_id"])


def test_lone_surrogates_in_labels_and_title_are_repaired_not_refused(
    client: httpx.Client, people: People
) -> None:
    auth = people(*RESPONDER)
    payload = firing()
    payload["commonAnnotations"]["summary"] = "SURROGATE_A"
    payload["alerts"][0]["labels"]["instance"] = "SURROGATE_B"
    payload["commonLabels"]["service"] = "fraud-SURROGATE_C"
    # json.dumps would refuse to write a lone surrogate as text; as escapes it is what a client sends.
    body = (
        json.dumps(payload)
        .replace("SURROGATE_A", "\\ud800 high")
        .replace("SURROGATE_B", "low \\udfff")
        .replace("SURROGATE_C", "\\udbff")
    )
    response = post_raw(client, body)
    assert response.status_code == 200, response.text
    incident = everything_reads(client, auth, response.json()["incident_id"])
    assert incident["title"].endswith("\ufffd high")
    assert incident["service"] == "fraud-\ufffd"
    assert incident["alerts"][0]["labels"]["instance"] == "low \ufffd"


@pytest.mark.parametrize(
    ("starts", "ends"),
    [
        ("0001-01-01T00:00:00+01:00", "0001-01-01T00:00:00Z"),  # UTC would be year 0
        ("9999-12-31T23:59:59.999999999-01:00", "9999-12-31T23:59:59-14:00"),  # UTC would be year 10000
        ("0001-01-01T00:00:00Z", "0001-01-01T00:00:00Z"),  # Alertmanager's zero time as a start
    ],
)
def test_datetimes_at_the_edges_of_the_range_are_stored(
    client: httpx.Client, people: People, starts: str, ends: str
) -> None:
    auth = people(*RESPONDER)
    payload = firing()
    payload["alerts"][0]["startsAt"], payload["alerts"][0]["endsAt"] = starts, ends
    response = client.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert response.status_code == 200, response.text
    incident = everything_reads(client, auth, response.json()["incident_id"])
    # A start the clock cannot mean is no start: the impact is dated no earlier than this year's alerts.
    assert incident["started_at"] <= incident["detected_at"]
    assert incident["started_at"][:4] not in ("0001", "9999")


def test_deeply_nested_bodies_are_a_4xx_at_every_door(client: httpx.Client, people: People) -> None:
    auth = people(*RESPONDER)
    deep = '{"version": "4", "x": ' + "[" * 50_000 + "]" * 50_000 + "}"
    webhook = post_raw(client, deep)
    assert 400 <= webhook.status_code < 500, webhook.text
    nested = '{"title": "t", "summary": ' + "[" * 100 + "]" * 100 + "}"
    for body in (deep, nested):
        api = client.post(
            "/api/v1/incidents", content=body, headers={**auth, "Content-Type": "application/json"}
        )
        assert 400 <= api.status_code < 500, api.text
        assert "nested" in api.json()["detail"]
    assert client.get("/api/v1/incidents", headers=auth).json() == []


def test_api_refuses_lone_surrogates_and_huge_numbers_naming_the_field(
    client: httpx.Client, people: People
) -> None:
    auth = people(*RESPONDER)
    headers = {**auth, "Content-Type": "application/json"}
    surrogate = client.post("/api/v1/incidents", content='{"title": "a \\ud800 b"}', headers=headers)
    assert surrogate.status_code == 422, surrogate.text
    assert "title" in surrogate.json()["detail"] and "surrogate" in surrogate.json()["detail"]
    huge = client.post(
        "/api/v1/incidents", content='{"title": "t", "severity": ' + "9" * 5000 + "}", headers=headers
    )
    assert 400 <= huge.status_code < 500, huge.text
    assert client.get("/api/v1/incidents", headers=auth).json() == []


@pytest.mark.parametrize(
    "value",
    ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "2026-11-30T10:00:00"],
    ids=["before-year-1-in-utc", "after-year-9999-in-utc", "no-offset"],
)
def test_api_datetimes_out_of_range_or_without_offset_are_a_422_naming_the_field(
    client: httpx.Client, people: People, value: str
) -> None:
    auth = people(*RESPONDER)
    declared = client.post("/api/v1/incidents", json={"title": "t", "started_at": value}, headers=auth)
    assert declared.status_code == 422, declared.text
    assert "started_at" in json.dumps(declared.json()["detail"])
    created = client.post("/api/v1/incidents", json={"title": "ok"}, headers=auth)
    incident_id = created.json()["id"]
    item = client.post(
        f"/api/v1/incidents/{incident_id}/action-items", json={"text": "x", "due": value}, headers=auth
    )
    assert item.status_code == 422, item.text
    assert "due" in json.dumps(item.json()["detail"])
    everything_reads(client, auth, incident_id)


def test_an_offset_datetime_is_stored_in_utc(client: httpx.Client, people: People) -> None:
    auth = people(*RESPONDER)
    created = client.post(
        "/api/v1/incidents", json={"title": "t", "started_at": "2026-11-30T10:00:00+02:00"}, headers=auth
    )
    assert created.status_code == 201, created.text
    assert created.json()["started_at"].startswith("2026-11-30T08:00:00")


def sloguard_cli(cwd: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run this checkout's `sloguard` (PYTHONPATH: whichever checkout the installed script points at)."""
    environment = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)} | env
    return subprocess.run(
        [sys.executable, "-m", "app.cli", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    "url",
    [
        "postgres ql://bob:hunter2secret@db.internal/sloguard",
        "postgresql://bob:hunter2secret@db.internal:notaport/sloguard",
        "bob:hunter2secret@db.internal/sloguard",
        "postgresql://bob:hunter2secret@[::1/sloguard",
    ],
)
def test_check_config_never_prints_the_password_of_a_malformed_database_url(tmp_path: Path, url: str) -> None:
    done = sloguard_cli(tmp_path, "check-config", SLOGUARD_DATABASE_URL=url)
    assert done.returncode != 0
    assert "SLOGUARD_DATABASE_URL" in done.stderr
    assert "hunter2secret" not in done.stdout + done.stderr
    assert "bob:***@" in done.stderr  # the URL is still shown, to find the mistake in


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["postmortem", "99999999999999999999"], "2147483647"),
        (["slo", "status", "--at", "0001-01-01T00:00:00+01:00"], "--at: must lie between"),
        (["slo", "status", "--at", "9999-12-31T23:59:59-01:00"], "--at: must lie between"),
    ],
)
def test_cli_numbers_and_times_out_of_range_are_a_message_not_a_traceback(
    tmp_path: Path, args: list[str], says: str
) -> None:
    (tmp_path / "slo").mkdir()
    done = sloguard_cli(tmp_path, *args, SLOGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite'}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert says in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("content", "says"),
    [(b"a: " + b"[" * 100_000, "nested too deep"), (b"\xff\xfe models: {}", "cannot read")],
)
def test_an_unreadable_sloguard_yaml_names_the_file(tmp_path: Path, content: bytes, says: str) -> None:
    (tmp_path / "sloguard.yaml").write_bytes(content)
    done = sloguard_cli(tmp_path, "check-config", SLOGUARD_CONFIG_FILE=str(tmp_path / "sloguard.yaml"))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"sloguard.yaml: {says}" in done.stderr and "Traceback" not in done.stderr
