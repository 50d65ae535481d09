"""Request bodies: past the limit is a 413 before anything is stored; NUL characters are a 400.

The limits are 1 MiB for the API and Slack (app.request_guard) and `webhook_max_bytes` for the
Alertmanager webhook (1 MiB unless sloguard.yaml says otherwise).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from app.main import create_app
from tests.conftest import REPO, WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.security.conftest import row_counts, slack_headers
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
MIB = 1024 * 1024
API = "a responder's token"  # made per server (Served.headers): one that may declare incidents
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SIGNING_SECRET = "limits-signing-secret-5d2c"


def alertmanager_payload(padding: int = 0) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
    payload["commonAnnotations"]["description"] = "x" * padding
    return payload


def chunked(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body without Content-Length (Transfer-Encoding: chunked): the size is known only by reading."""
    for start in range(0, len(data), size):
        yield data[start : start + size]


class Served:
    def __init__(self, url: str, database_url: str) -> None:
        self.url, self.database_url = url, database_url
        # A person who may declare incidents: what keeps a body out is its size, never the scope.
        self.api = bearer(personal_token(database_url, "U1", "respond"))

    def headers(self, headers: dict[str, str] | str) -> dict[str, str]:
        return self.api if headers == API else dict(headers)

    def post(
        self, path: str, content: bytes | Iterator[bytes], headers: dict[str, str] | str
    ) -> httpx.Response:
        headers = {"Content-Type": "application/json", **self.headers(headers)}
        return httpx.post(self.url + path, content=content, headers=headers, timeout=30)

    def counts(self) -> dict[str, int]:
        return row_counts(self.database_url)


def serve(tmp_path: Path, database_url: str, sloguard_yaml: str = "") -> Iterator[Served]:
    (tmp_path / "sloguard.yaml").write_text(sloguard_yaml)
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        slack_bot_token="xoxb-3-4-limits",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url="http://127.0.0.1:9/api/",
    )
    with UvicornThread(create_app(settings)) as server:
        yield Served(server.url, database_url)


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    yield from serve(tmp_path, database_url)


def oversized_incident() -> bytes:
    return json.dumps({"title": "big", "summary": "x" * MIB}).encode()


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/v1/incidents", oversized_incident, API),
        ("/webhooks/alertmanager", lambda: json.dumps(alertmanager_payload(MIB)).encode(), HOOK),
    ],
    ids=["api", "webhook"],
)
def test_an_oversized_body_is_413_and_stores_nothing(
    served: Served, path: str, body: Any, headers: dict[str, str] | str, framing: str
) -> None:
    data: bytes = body()
    assert len(data) > MIB
    before = served.counts()
    response = served.post(path, data if framing == "content-length" else chunked(data), headers)
    assert response.status_code == 413, response.text
    assert "limit" in response.json()["detail"]
    assert served.counts() == before


def test_an_oversized_slack_request_is_413_before_anything_runs(served: Served) -> None:
    body = "command=/incident&text=declare+" + "x" * MIB
    response = served.post("/slack/events", body.encode(), slack_headers(body, SIGNING_SECRET))
    assert response.status_code == 413
    assert served.counts()["incident"] == 0


def test_bodies_just_under_the_limit_are_accepted(served: Served) -> None:
    """The other side of the line: the limit is the documented one, not something smaller."""
    incident = json.dumps({"title": "t", "summary": "x" * (MIB - 100)}).encode()
    assert served.post("/api/v1/incidents", chunked(incident), API).status_code == 201
    hook = json.dumps(alertmanager_payload(MIB - 4096)).encode()
    assert len(hook) < MIB
    assert served.post("/webhooks/alertmanager", hook, HOOK).status_code == 200


def test_the_webhook_limit_follows_sloguard_yaml(tmp_path: Path, database_url: str) -> None:
    for server in serve(tmp_path, database_url, "incidents: {webhook_max_bytes: 3145728}\n"):
        hook = json.dumps(alertmanager_payload(2 * MIB)).encode()
        assert server.post("/webhooks/alertmanager", hook, HOOK).status_code == 200
        too_big = json.dumps(alertmanager_payload(3 * MIB)).encode()
        assert server.post("/webhooks/alertmanager", too_big, HOOK).status_code == 413
        # ... while the API keeps its own 1 MiB.
        assert server.post("/api/v1/incidents", oversized_incident(), API).status_code == 413


@pytest.mark.parametrize(
    ("path", "body", "headers"),
    [
        ("/api/v1/incidents", b'{"title": "a\\u0000b"}', API),
        ("/api/v1/incidents", b'{"title": "ok", "summary": "\\\\\\u0000"}', API),
        ("/webhooks/alertmanager", "nul-label", HOOK),
    ],
    ids=["api", "api-after-escaped-backslash", "webhook"],
)
def test_nul_characters_are_refused_with_400_on_every_database(
    served: Served, path: str, body: Any, headers: dict[str, str] | str
) -> None:
    if body == "nul-label":
        payload = alertmanager_payload()
        payload["alerts"][0]["labels"]["service"] = "fraud\x00model"
        body = json.dumps(payload).encode()
    before = served.counts()
    response = served.post(path, body, headers)
    assert response.status_code == 400, response.text
    assert "NUL" in response.json()["detail"]
    assert served.counts() == before


def test_nul_in_a_query_is_refused_and_an_escaped_backslash_is_just_text(served: Served) -> None:
    response = httpx.get(f"{served.url}/api/v1/incidents?service=fraud%00", headers=served.api)
    assert response.status_code == 400
    # `\\u0000` in JSON is a backslash followed by "u0000": text, not a NUL character.
    created = served.post("/api/v1/incidents", b'{"title": "path C:\\\\u0000"}', API)
    assert created.status_code == 201, created.text
    assert created.json()["title"] == "path C:\\u0000"
