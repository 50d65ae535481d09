"""Enrichment replaces only the evidence it owns: a reopened, re-enriched incident keeps the version it was
rolled back to (on SQLite and PostgreSQL, through the real API)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import API_TOKEN, bearer, make_settings, personal_token
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {API_TOKEN}"}
SLOGUARD_YAML = f"""
models:
  fraud-detector:
    services: [fraud-model]
    environments:
      prod:
        target: {{kind: command, argv: ["{sys.executable}", "-c", "pass", "{{to}}"]}}
        rollback: [U0ANA]
"""


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[httpx.Client]:
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    settings = make_settings(tmp_path, database_url=database_url)
    with (
        UvicornThread(create_app(settings)) as server,
        httpx.Client(base_url=server.url, headers=AUTH, timeout=15) as client,
    ):
        yield client


@pytest.fixture
def ana(database_url: str) -> dict[str, str]:
    """U0ANA's personal token: she may roll fraud-detector back in prod."""
    return bearer(personal_token(database_url, "U0ANA", "change"))


def enrichments(client: httpx.Client, incident_id: int) -> int:
    """Finished enrichment runs: each leaves its "missing: …" note (Prometheus is not reachable here)."""
    incident = client.get(f"/api/v1/incidents/{incident_id}").json()
    return sum(1 for event in incident["timeline"] if event["kind"] == "evidence_missing")


def versions(client: httpx.Client, incident_id: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = client.get(f"/api/v1/incidents/{incident_id}").json()["model_versions"]
    return found


def test_a_reopened_re_enriched_incident_still_lists_its_rolled_back_to_version(
    api: httpx.Client, ana: dict[str, str]
) -> None:
    created = api.post(
        "/api/v1/incidents", json={"title": "fraud model failing", "model": "fraud-detector"}, headers=ana
    )
    assert created.status_code == 201, created.text
    incident_id = created.json()["id"]
    wait_until(lambda: enrichments(api, incident_id) >= 1, timeout=30, what="the first enrichment")
    per_run = enrichments(api, incident_id)

    rollback = api.post(
        "/api/v1/rollbacks",
        json={
            "model": "fraud-detector",
            "to_version": "3",
            "incident_id": incident_id,
            "confirm": True,
        },
        headers=ana,
    )
    assert rollback.status_code == 201, rollback.text
    assert rollback.json()["state"] == "succeeded"
    assert ("rolled_back_to", "3") in {(v["role"], v["version"]) for v in versions(api, incident_id)}

    for status in ("mitigated", "triggered"):  # mitigated, then reopened: enrichment runs again
        moved = api.patch(f"/api/v1/incidents/{incident_id}", json={"status": status}, headers=ana)
        assert moved.status_code == 200, moved.text
    wait_until(lambda: enrichments(api, incident_id) >= 2 * per_run, timeout=30, what="the re-enrichment")

    assert ("rolled_back_to", "3") in {(v["role"], v["version"]) for v in versions(api, incident_id)}
