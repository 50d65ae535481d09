"""Every route that changes something refuses a missing or wrong bearer token, and stores nothing.

The routes come from the app itself (its OpenAPI document, checked against its route table), so a route
added later is covered without editing this file. Slack's route has its own signature check
(test_slack.py); the Alertmanager webhook is here with its own token.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from sqlmodel import SQLModel

from app.main import create_app
from tests.conftest import API_TOKEN, WEBHOOK_TOKEN, make_settings
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
MUTATING = ("post", "put", "patch", "delete")
SIGNED_BY_SLACK = "/slack/events"
SLOGUARD_YAML = """
models:
  fraud-detector:
    environments:
      prod:
        target: {kind: command, argv: ["true"]}
        rollback: [U1]
"""
# Values a request needs to succeed where any string would not (a configured model, an allowed actor).
KNOWN_VALUES = {"model": "fraud-detector", "actor": "U1", "to_version": "3", "incident_id": 1}


def mutating_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in MUTATING
    ]


def sample(schema: dict[str, Any], components: dict[str, Any], name: str = "") -> Any:
    """A valid value for a JSON schema, every optional field filled, so a request changes all it can."""
    if "$ref" in schema:
        return sample(components[schema["$ref"].rsplit("/", 1)[1]], components, name)
    if name in KNOWN_VALUES:
        return KNOWN_VALUES[name]
    if schema.get("default") is not None:
        return schema["default"]
    if "anyOf" in schema:
        chosen = next(s for s in schema["anyOf"] if s.get("type") != "null")
        return sample(chosen, components, name)
    if "const" in schema:
        return schema["const"]
    if "enum" in schema:
        return schema["enum"][0]
    kind = schema.get("type")
    if kind == "object":
        properties = schema.get("properties", {})
        if properties:
            return {key: sample(value, components, key) for key, value in properties.items()}
        return {"label": sample(schema.get("additionalProperties", {"type": "string"}), components)}
    if kind == "array":
        return [sample(schema["items"], components)]
    if kind == "integer":
        return 1
    if kind == "boolean":
        return True
    if schema.get("format") == "date-time":
        return datetime.now(UTC).isoformat()
    return "security-test"


def snapshot(database_url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table: a refused PATCH must not change a value either."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table.name: sorted(tuple(map(str, row)) for row in connection.execute(sa.select(table)).all())
                for table in SQLModel.metadata.sorted_tables
            }
    finally:
        engine.dispose()


class Api:
    def __init__(self, app: FastAPI, url: str, database_url: str) -> None:
        self.app, self.url, self.database_url = app, url, database_url
        self.components = app.openapi().get("components", {}).get("schemas", {})

    def request(
        self, method: str, path: str, operation: dict[str, Any], headers: dict[str, str]
    ) -> httpx.Response:
        concrete = re.sub(r"\{[^}]+\}", "1", path)  # the seeded incident, action item and rollback
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        body = sample(content["schema"], self.components) if content else None
        return httpx.request(method, self.url + concrete, json=body, headers=headers, timeout=15)


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    app = create_app(make_settings(tmp_path, database_url=database_url))
    with UvicornThread(app) as server:
        auth = {"Authorization": f"Bearer {API_TOKEN}"}
        for path, body in [
            ("/api/v1/incidents", {"title": "seed", "model": "fraud-detector"}),
            ("/api/v1/incidents/1/action-items", {"text": "seed"}),
            ("/api/v1/rollbacks", {"model": "fraud-detector", "to_version": "2", "actor": "U1"}),
        ]:
            assert httpx.post(server.url + path, json=body, headers=auth).status_code == 201
        yield Api(app, server.url, database_url)


def right_token(path: str) -> str:
    return WEBHOOK_TOKEN if path.startswith("/webhooks/") else API_TOKEN


def test_every_mutating_route_is_in_the_document_or_signed_by_slack(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path, slack_bot_token="xoxb-1-2-security", slack_signing_secret="s3cr3t-signing")
    )
    documented = {(m.upper(), p) for m, p, _ in mutating_operations(app)}
    served = {
        (method, route.path)
        for route in app.routes
        for method in getattr(route, "methods", set())
        if method.lower() in MUTATING
    }
    assert served - documented == {("POST", SIGNED_BY_SLACK)}
    assert len(documented) >= 10  # incidents, notes, action items, rollbacks, webhook


CREDENTIALS = {
    "missing": {},
    "scheme without a token": {"Authorization": "Bearer"},
    "wrong token": {"Authorization": "Bearer " + "x" * len(API_TOKEN)},
    "right token, wrong scheme": {"Authorization": f"Basic {API_TOKEN}"},
    "token with a suffix": {"Authorization": f"Bearer {API_TOKEN}x"},
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_mutating_routes_refuse_a_missing_or_wrong_token_and_store_nothing(api: Api, credential: str) -> None:
    operations = mutating_operations(api.app)
    before = snapshot(api.database_url)
    for method, path, operation in operations:
        headers = dict(CREDENTIALS[credential])
        if path.startswith("/webhooks/") and "Authorization" in headers:
            headers["Authorization"] = headers["Authorization"].replace(API_TOKEN, WEBHOOK_TOKEN)
        response = api.request(method, path, operation, headers)
        assert response.status_code in (401, 403), f"{method.upper()} {path}: {response.status_code}"
        assert snapshot(api.database_url) == before, f"{method.upper()} {path} stored something"


def test_each_token_opens_only_its_own_door(api: Api) -> None:
    """The webhook token is not an API token, and the API token does not feed the webhook."""
    before = snapshot(api.database_url)
    for method, path, operation in mutating_operations(api.app):
        other = API_TOKEN if path.startswith("/webhooks/") else WEBHOOK_TOKEN
        response = api.request(method, path, operation, {"Authorization": f"Bearer {other}"})
        assert response.status_code == 401, f"{method.upper()} {path}: {response.status_code}"
    assert snapshot(api.database_url) == before


def test_the_same_requests_with_the_right_token_do_change_things(api: Api) -> None:
    """The control: each request above would have had an effect, so its refusal is what kept it out."""
    operations = sorted(mutating_operations(api.app), key=lambda op: op[0] == "delete")  # deletes last
    for method, path, operation in operations:
        before = snapshot(api.database_url)
        headers = {"Authorization": f"Bearer {right_token(path)}"}
        response = api.request(method, path, operation, headers)
        assert response.is_success, f"{method.upper()} {path}: {response.status_code} {response.text}"
        assert snapshot(api.database_url) != before, f"{method.upper()} {path} changed nothing"


def test_without_a_configured_api_token_every_api_route_answers_401(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, api_token=None))
    with UvicornThread(app) as server:
        for method, path, _ in mutating_operations(app):
            if path.startswith("/webhooks/"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            response = httpx.request(
                method, server.url + concrete, headers={"Authorization": f"Bearer {API_TOKEN}"}
            )
            assert response.status_code == 401, f"{method.upper()} {path}"
            assert "SLOGUARD_API_TOKEN is not set" in response.json()["detail"]
