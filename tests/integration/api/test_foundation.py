from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from sqlmodel import Session

from app import db
from app.config import Settings
from app.incidents.models import Incident, IncidentStatus
from app.main import create_app
from tests.conftest import API_TOKEN, make_settings
from tests.servers import TcpProxy, UvicornThread

pytestmark = pytest.mark.integration


def test_healthz(client: httpx.Client) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["X-Request-ID"])


def test_request_id_is_kept_when_the_caller_sends_one(client: httpx.Client) -> None:
    response = client.get("/healthz", headers={"X-Request-ID": "trace-me-42"})
    assert response.headers["X-Request-ID"] == "trace-me-42"


def sample_value(text: str, name: str, labels: dict[str, str]) -> float | None:
    wanted = ",".join(f'{key}="{value}"' for key, value in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith("#") or "{" not in line:
            continue
        metric, _, rest = line.partition("{")
        label_text, _, value = rest.rpartition("} ")
        pairs = ",".join(sorted(label_text.split(",")))
        if metric == name and pairs == wanted:
            return float(value)
    return None


def test_metrics_count_requests_by_route_template(client: httpx.Client, auth: dict[str, str]) -> None:
    for _ in range(3):
        client.get("/healthz")
    client.get("/api/v1/incidents/12345", headers=auth)
    client.get("/api/v1/incidents/67890", headers=auth)
    text = client.get("/metrics").text
    healthz = {"method": "GET", "route": "/healthz", "status": "200"}
    assert sample_value(text, "sloguard_http_requests_total", healthz) == 3.0
    by_template = {"method": "GET", "route": "/api/v1/incidents/{incident_id}", "status": "404"}
    assert sample_value(text, "sloguard_http_requests_total", by_template) == 2.0
    count = {"method": "GET", "route": "/healthz"}
    assert sample_value(text, "sloguard_http_request_duration_seconds_count", count) == 3.0
    assert sample_value(text, "sloguard_http_request_duration_seconds_bucket", {**count, "le": "+Inf"}) == 3.0
    assert 'sloguard_build_info{python="' in text


MISSING = "missing bearer token: send Authorization: Bearer <token>"


@pytest.mark.parametrize(
    ("headers", "detail"),
    [
        ({}, MISSING),
        ({"Authorization": "Bearer wrong-token"}, "invalid bearer token"),
        ({"Authorization": f"Basic {API_TOKEN}"}, MISSING),
    ],
)
def test_api_requires_the_bearer_token(client: httpx.Client, headers: dict[str, str], detail: str) -> None:
    response = client.get("/api/v1/incidents", headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert response.json()["detail"] == detail


def test_api_is_closed_when_no_token_is_configured(tmp_path: Path) -> None:
    """No SLOGUARD_API_TOKEN and no personal token: whatever is presented is refused (the would-be
    automation token too)."""
    settings = make_settings(tmp_path, api_token=None)
    with UvicornThread(create_app(settings)) as server:
        for token in ("anything", API_TOKEN):
            response = httpx.get(
                f"{server.url}/api/v1/incidents", headers={"Authorization": f"Bearer {token}"}
            )
            assert response.status_code == 401
            assert response.headers["WWW-Authenticate"] == "Bearer"
            assert response.json()["detail"] == "invalid bearer token"


def test_incidents_are_read_back_through_the_api(
    client: httpx.Client, settings: Settings, auth: dict[str, str]
) -> None:
    started = datetime(2026, 11, 25, 20, 25, 46, tzinfo=UTC)
    engine = db.make_engine(settings.database_url)
    with Session(engine) as session:
        session.add(
            Incident(
                key="fraud-model-availability",
                title="Fraud model availability burning",
                service="fraud-model",
                slo_id="fraud-model-availability",
                started_at=started,
                detected_at=started + timedelta(seconds=52),
            )
        )
        session.commit()
    engine.dispose()
    listed = client.get("/api/v1/incidents", params={"service": "fraud-model"}, headers=auth).json()
    assert [item["key"] for item in listed] == ["fraud-model-availability"]
    one = client.get(f"/api/v1/incidents/{listed[0]['id']}", headers=auth).json()
    assert one["status"] == IncidentStatus.triggered
    assert datetime.fromisoformat(one["detected_at"]) - datetime.fromisoformat(one["started_at"]) == (
        timedelta(seconds=52)
    )
    assert client.get("/api/v1/incidents", params={"service": "other"}, headers=auth).json() == []
    assert client.get("/api/v1/incidents", params={"status": "bogus"}, headers=auth).status_code == 422


def test_readyz_reports_sources_without_failing(client: httpx.Client) -> None:
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["database"] == "ok"
    assert body["sources"]["prometheus"].startswith("error: prometheus at http://127.0.0.1:9")


def test_readyz_is_503_when_the_database_goes_away(pg_database: str, tmp_path: Path) -> None:
    from sqlalchemy.engine import make_url

    url = make_url(pg_database)
    proxy = TcpProxy(url.host or "127.0.0.1", url.port or 5432)
    try:
        proxied = url.set(port=proxy.port).render_as_string(hide_password=False)
        with UvicornThread(create_app(make_settings(tmp_path, database_url=proxied))) as server:
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
            proxy.cut()
            down = httpx.get(f"{server.url}/readyz", timeout=30)
            assert down.status_code == 503
            assert down.json()["database"].startswith("unreachable")
            assert httpx.get(f"{server.url}/healthz").status_code == 200
            proxy.restore()
            assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 200
    finally:
        proxy.close()
