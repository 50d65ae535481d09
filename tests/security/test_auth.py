"""Every route that changes something refuses a missing, wrong, revoked or expired bearer token, a token
whose scope is below the route's, and a body `actor` naming anyone but the token's owner; and stores nothing.

The routes come from the app itself (its OpenAPI document, checked against its route table), so a route
added later is covered without editing this file. Slack's route has its own signature check
(test_slack.py); the Alertmanager webhook is here with its own token, and MLflow's with its signature
(a bearer token of any kind is no signature: 401, nothing stored; signed, it stores its change).

Refused tokens count against the client's address (after 10 in a minute it is answered 429, README
"Tokens and scopes"): so that each route's own answer is seen, each refused request here comes from an
address of its own on loopback, and one test shows the throttle itself.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import itertools
import json
import re
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from sqlmodel import Session, SQLModel, select

from app import db
from app.identity import logic
from app.identity import service as identity
from app.identity.logic import Scope
from app.identity.models import ApiToken
from app.main import create_app
from app.web import is_console
from tests.conftest import API_TOKEN, WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.security.conftest import settle
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
MUTATING = ("post", "put", "patch", "delete")
SIGNED_BY_SLACK = "/slack/events"
SIGNED_BY_MLFLOW = "/webhooks/mlflow"
MLFLOW_SECRET = "security-tests-mlflow-webhook-secret"
UNSIGNED = "missing X-MLflow-Signature: the webhook must be created with the shared secret"
OWNER = "U1"  # the people tokens' owner: allowed to roll the model back
SLOGUARD_YAML = f"""
models:
  fraud-detector:
    environments:
      prod:
        target: {{kind: command, argv: ["true"]}}
        rollback: [{OWNER}]
"""
# Values a request needs to succeed where any string would not (a configured model, a Slack user ID and a
# scope for a new token). Where a schema lists `actor`, it is the caller: anyone else is a 403 (below).
KNOWN_VALUES = {
    "model": "fraud-detector",
    "actor": OWNER,
    "to_version": "3",
    "incident_id": 1,
    "user": "U1",  # through the API, one's own token
    "scope": "read",
    "token": None,  # Flagger's metadata may carry the token; each case here says where its token is
}
MISSING = "missing bearer token: send Authorization: Bearer <token>"
INVALID = "invalid bearer token"
THROTTLE_LIMIT = 10  # refused tokens from one address within a minute (README "Tokens and scopes")


def mutating_operations(app: FastAPI) -> list[tuple[str, str, dict[str, Any]]]:
    document = app.openapi()
    return [
        (method, path, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in MUTATING
    ]


def needed_scope(path: str) -> Scope:
    """The scope each mutating API route needs (README's route table)."""
    for prefix, scope in [
        ("/api/v1/tokens", Scope.admin),
        ("/api/v1/rollbacks", Scope.change),
        ("/api/v1/gates/exceptions", Scope.change),
        ("/api/v1/gates", Scope.read),  # a decision asked for: it changes nothing
        ("/api/v1/incidents", Scope.respond),
    ]:
        if path.startswith(prefix):
            return scope
    raise AssertionError(f"{path}: a new mutating route; say here which scope it needs")


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
    """Every row of every table: a refused PATCH must not change a value either. Only a token's
    `last_used_at` is left out: the door writes it (to the minute) whenever a token it knows is presented,
    as it must for a refused request too."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = {}
            for table in SQLModel.metadata.sorted_tables:
                columns = [c for c in table.columns if (table.name, c.name) != ("api_token", "last_used_at")]
                rows = connection.execute(sa.select(*columns)).all()
                found[table.name] = sorted(tuple(map(str, row)) for row in rows)
            return found
    finally:
        engine.dispose()


def token_row(database_url: str, token: str) -> ApiToken:
    engine = db.make_engine(database_url)
    try:
        with Session(engine) as session:
            return session.exec(select(ApiToken).where(ApiToken.token_hash == logic.digest(token))).one()
    finally:
        engine.dispose()


_addresses = itertools.count(1)


def own_address() -> str:
    """A loopback address no request has come from yet (all of 127.0.0.0/8 reaches the server)."""
    number = next(_addresses)
    return f"127.1.{number // 250 % 250}.{number % 250 + 1}"


class Api:
    def __init__(self, app: FastAPI, url: str, database_url: str, tokens: dict[str, str]) -> None:
        self.app, self.url, self.database_url, self.tokens = app, url, database_url, tokens
        self.components = app.openapi().get("components", {}).get("schemas", {})

    def body(self, operation: dict[str, Any]) -> Any:
        content = operation.get("requestBody", {}).get("content", {}).get("application/json")
        return sample(content["schema"], self.components) if content else None

    def request(
        self,
        method: str,
        path: str,
        operation: dict[str, Any],
        headers: dict[str, str],
        body: Any = None,
        address: str | None = None,
    ) -> httpx.Response:
        """The operation on the seeded rows, its body sampled unless given, from `address` (by default one
        of its own, so refusals never add up to the throttle's limit)."""
        concrete = re.sub(r"\{[^}]+\}", "1", path)  # the seeded incident, action item, rollback and token
        body = self.body(operation) if body is None else body
        transport = httpx.HTTPTransport(local_address=address or own_address())
        with httpx.Client(transport=transport, timeout=15) as http:
            return http.request(method, self.url + concrete, json=body, headers=headers)


@pytest.fixture
def api(tmp_path: Path, database_url: str) -> Iterator[Api]:
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    app = create_app(make_settings(tmp_path, database_url=database_url, mlflow_webhook_secret=MLFLOW_SECRET))
    with UvicornThread(app) as server:
        # Token 1 is the one `DELETE /api/v1/tokens/1` revokes: someone else's, not one used here.
        personal_token(database_url, "U9", "read", name="the one the DELETE revokes")
        tokens = {scope.value: personal_token(database_url, OWNER, scope.value) for scope in Scope}
        for path, body in [
            ("/api/v1/incidents", {"title": "seed", "model": "fraud-detector"}),
            ("/api/v1/incidents/1/action-items", {"text": "seed"}),
            ("/api/v1/rollbacks", {"model": "fraud-detector", "to_version": "2"}),
        ]:
            seeded = httpx.post(server.url + path, json=body, headers=bearer(tokens["change"]))
            assert seeded.status_code == 201, seeded.text
        settle(database_url)  # the seeded incident's evidence is gathered: nothing moves in the background
        yield Api(app, server.url, database_url, tokens)


def test_every_mutating_route_is_in_the_document_or_signed_by_slack(tmp_path: Path) -> None:
    app = create_app(
        make_settings(tmp_path, slack_bot_token="xoxb-1-2-security", slack_signing_secret="s3cr3t-signing")
    )
    documented = {(m.upper(), p) for m, p, _ in mutating_operations(app)}
    # Every route, those of included routers too (FastAPI 0.16x keeps them apart from `app.routes`); the
    # console's forms are not API operations (tests/security/test_console.py holds them to account).
    served = {
        (method, route.path)
        for route in iter_route_contexts(app.routes)
        for method in route.methods or set()
        if method.lower() in MUTATING and not is_console(route.path)
    }
    assert served - documented == {("POST", SIGNED_BY_SLACK)}
    assert len(served) >= 10
    assert len(documented) >= 10  # incidents, notes, action items, rollbacks, tokens, webhook


def expired_token(database_url: str) -> str:
    token = personal_token(database_url, OWNER, "admin", expires="1s")
    time.sleep(1.2)
    return token


def revoked_token(database_url: str) -> str:
    token = personal_token(database_url, OWNER, "admin")
    engine = db.make_engine(database_url)
    try:
        identity.revoke(engine, token_row(database_url, token).id or 0, "security-test", datetime.now(UTC))
    finally:
        engine.dispose()
    return token


# name: (the Authorization header, made in the test's database; the API's answer). The webhook answers
# the same for a missing token, and "invalid bearer token" for any other (it knows only its own token).
CREDENTIALS: dict[str, tuple[Any, str]] = {
    "missing": (lambda _url: None, MISSING),
    "scheme without a token": (lambda _url: "Bearer", MISSING),
    "wrong token": (lambda _url: "Bearer " + "x" * len(API_TOKEN), INVALID),
    "right token, wrong scheme": (lambda _url: f"Basic {API_TOKEN}", MISSING),
    "token with a suffix": (lambda _url: f"Bearer {API_TOKEN}x", INVALID),
    "personal token, wrong scheme": (lambda url: f"Token {personal_token(url, OWNER, 'admin')}", MISSING),
    "personal token with a suffix": (lambda url: f"Bearer {personal_token(url, OWNER, 'admin')}x", INVALID),
    "personal token cut short": (lambda url: f"Bearer {personal_token(url, OWNER, 'admin')[:-1]}", INVALID),
    "well-formed personal token nobody holds": (lambda _url: f"Bearer {logic.new_token()}", INVALID),
    "revoked personal token": (lambda url: f"Bearer {revoked_token(url)}", "this token was revoked"),
    "expired personal token": (lambda url: f"Bearer {expired_token(url)}", "this token has expired"),
}


@pytest.mark.parametrize("credential", list(CREDENTIALS))
def test_mutating_routes_refuse_a_missing_or_wrong_token_and_store_nothing(api: Api, credential: str) -> None:
    make, says = CREDENTIALS[credential]
    header = make(api.database_url)
    operations = mutating_operations(api.app)
    before = snapshot(api.database_url)
    for method, path, operation in operations:
        headers = {} if header is None else {"Authorization": header}
        if path.startswith("/webhooks/") and header is not None:
            headers["Authorization"] = header.replace(API_TOKEN, WEBHOOK_TOKEN)
        response = api.request(method, path, operation, headers)
        expected = says if says == MISSING or not path.startswith("/webhooks/") else INVALID
        if path == SIGNED_BY_MLFLOW:
            expected = UNSIGNED  # a token of any kind is no signature
        assert (response.status_code, response.json()) == (401, {"detail": expected}), (
            f"{method.upper()} {path}: {response.status_code} {response.text}"
        )
        if path != SIGNED_BY_MLFLOW:
            assert response.headers["WWW-Authenticate"] == "Bearer"
        assert snapshot(api.database_url) == before, f"{method.upper()} {path} stored something"


@pytest.mark.parametrize("scope", ["automation", *(s.value for s in Scope if s is not Scope.admin)])
def test_mutating_routes_refuse_a_scope_below_their_own_and_store_nothing(api: Api, scope: str) -> None:
    """The automation identity (scope `read` unless sloguard.yaml says otherwise) reads, and writes
    nothing; each personal scope reaches only the routes at or below it. Each refusal says which scope
    the route needs, and comes before the body is acted on."""
    token = API_TOKEN if scope == "automation" else api.tokens[scope]
    have = Scope.read if scope == "automation" else Scope(scope)
    reads = httpx.get(f"{api.url}/api/v1/incidents/1", headers=bearer(token), timeout=15)
    assert reads.status_code == 200, reads.text
    before = snapshot(api.database_url)
    refused = 0
    for method, path, operation in mutating_operations(api.app):
        if not path.startswith("/api/"):
            continue
        needed = needed_scope(path)
        if have.reaches(needed):
            continue
        refused += 1
        response = api.request(method, path, operation, bearer(token))
        concrete = re.sub(r"\{[^}]+\}", "1", path)
        detail = (
            f"scope: this credential's scope is {have}; {method.upper()} {concrete} needs {needed} "
            "(README: Tokens and scopes)"
        )
        assert (response.status_code, response.json()) == (403, {"detail": detail}), (
            f"{method.upper()} {path}: {response.status_code} {response.text}"
        )
        assert snapshot(api.database_url) == before, f"{method.upper()} {path} stored something"
    assert refused >= (2 if have is Scope.change else 3), "fewer refusals than routes above this scope"


# The requests that name an actor in their body (an old client's): sent as the owner of a `change` token.
ACTING = [
    ("post", "/api/v1/incidents", {"title": "t"}),
    ("patch", "/api/v1/incidents/1", {"status": "acknowledged"}),
    ("post", "/api/v1/incidents/1/timeline", {"text": "note"}),
    ("post", "/api/v1/rollbacks", {"model": "fraud-detector", "to_version": "3", "confirm": True}),
    ("post", "/api/v1/rollbacks/1/confirm", {}),
]
OTHERS = [
    "U2",
    "automation",
    "sloguard",
    "<!channel>",
    "<script>alert(1)</script>",
    "{{ 7 * 191 }}",
    "u1",
    "",
]


def test_a_body_actor_naming_anyone_but_the_owner_is_403_and_stores_nothing(api: Api) -> None:
    """A person's token cannot put another name (or hostile text) on the timeline or the audit trail."""
    headers = bearer(api.tokens["change"])
    before = snapshot(api.database_url)
    for method, path, body in ACTING:
        for other in OTHERS:
            response = api.request(method, path, {}, headers, body={**body, "actor": other})
            assert response.status_code == 403, f"{method.upper()} {path} as {other!r}: {response.text}"
            detail = response.json()["detail"]
            assert detail.startswith("actor:") and f"acts as {OWNER}" in detail, detail
            assert snapshot(api.database_url) == before, f"{method.upper()} {path} as {other!r} stored"
    # The control: naming the owner is accepted, and the owner (with the token) is who is recorded.
    for method, path, body in ACTING:
        response = api.request(method, path, {}, headers, body={**body, "actor": OWNER})
        assert response.is_success, f"{method.upper()} {path}: {response.status_code} {response.text}"
    token_id = token_row(api.database_url, api.tokens["change"]).id
    engine = sa.create_engine(api.database_url)
    try:
        with engine.connect() as connection:
            for table in ("timeline_event", "audit_event"):
                rows = connection.execute(
                    sa.text(f"SELECT actor, token_id FROM {table} WHERE token_id IS NOT NULL")
                )
                assert set(rows.all()) == {(OWNER, token_id)}, table
    finally:
        engine.dispose()


def test_each_token_opens_only_its_own_door(api: Api) -> None:
    """The webhook token is not an API token; neither the automation token nor a personal one (even an
    admin's) feeds the webhook."""
    before = snapshot(api.database_url)
    for method, path, operation in mutating_operations(api.app):
        others = [API_TOKEN, api.tokens["admin"]] if path.startswith("/webhooks/") else [WEBHOOK_TOKEN]
        for other in others:
            response = api.request(method, path, operation, bearer(other))
            says = UNSIGNED if path == SIGNED_BY_MLFLOW else INVALID
            assert (response.status_code, response.json()) == (401, {"detail": says}), (
                f"{method.upper()} {path}: {response.status_code} {response.text}"
            )
    assert snapshot(api.database_url) == before


def test_the_same_requests_with_the_right_token_do_change_things(api: Api) -> None:
    """The control: each request above would have had an effect, so its refusal is what kept it out."""
    operations = sorted(mutating_operations(api.app), key=lambda op: op[0] == "delete")  # deletes last
    for method, path, operation in operations:
        if path.startswith("/api/v1/gates"):
            continue  # a decision asked for changes nothing; exceptions are stored in tests/integration/gates
        before = snapshot(api.database_url)
        token = WEBHOOK_TOKEN if path.startswith("/webhooks/") else api.tokens["admin"]
        if path == SIGNED_BY_MLFLOW:
            response = signed_by_mlflow(api.url, MLFLOW_SECRET)
        else:
            response = api.request(method, path, operation, bearer(token))
        assert response.is_success, f"{method.upper()} {path}: {response.status_code} {response.text}"
        assert snapshot(api.database_url) != before, f"{method.upper()} {path} changed nothing"


def signed_by_mlflow(url: str, secret: str) -> httpx.Response:
    """An alias move, signed as MLflow signs it (computed here: v1, base64 HMAC-SHA256 of
    `{delivery}.{timestamp}.{body}`)."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": datetime.now(UTC).isoformat(),
            "data": {"name": "fraud-detector", "alias": "champion", "version": "3"},
        }
    ).encode()
    delivery, timestamp = str(uuid.uuid4()), str(int(time.time()))
    digest = hmac.new(secret.encode(), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    headers = {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }
    return httpx.post(url + SIGNED_BY_MLFLOW, content=body, headers=headers, timeout=15)


def test_the_mlflow_webhook_refuses_another_secret_and_without_its_own_is_disabled(
    api: Api, tmp_path: Path
) -> None:
    before = snapshot(api.database_url)
    forged = signed_by_mlflow(api.url, "another-secret-than-the-shared-one")
    assert forged.status_code == 401 and "does not match the body" in forged.json()["detail"], forged.text
    assert snapshot(api.database_url) == before
    unset = create_app(make_settings(tmp_path / "unset", database_url=f"sqlite:///{tmp_path / 'unset.db'}"))
    with UvicornThread(unset) as server:
        response = signed_by_mlflow(server.url, MLFLOW_SECRET)
    detail = "disabled: SLOGUARD_MLFLOW_WEBHOOK_SECRET is not set on the server"
    assert (response.status_code, response.json()) == (401, {"detail": detail})


def test_ten_refused_tokens_hold_back_every_token_from_that_address(api: Api) -> None:
    """After the limit, the address's good API tokens are answered 429 too, and store nothing; a request
    without a token is still told to send one; the webhook door and another address are not held back."""
    address = own_address()
    wrong = bearer(logic.new_token())
    for attempt in range(THROTTLE_LIMIT):
        response = api.request("get", "/api/v1/whoami", {}, wrong, address=address)
        assert (response.status_code, response.json()) == (401, {"detail": INVALID}), attempt
    before = snapshot(api.database_url)
    held_back = [
        ("post", "/api/v1/incidents", {"title": "t"}, api.tokens["respond"]),
        ("post", "/api/v1/rollbacks", {"model": "fraud-detector", "to_version": "3"}, api.tokens["change"]),
        ("post", "/api/v1/incidents", {"title": "t"}, API_TOKEN),
        ("get", "/api/v1/incidents", None, api.tokens["read"]),
    ]
    for method, path, body, token in held_back:
        response = api.request(method, path, {}, bearer(token), body=body, address=address)
        assert response.status_code == 429, f"{method.upper()} {path}: {response.status_code} {response.text}"
        wait = int(response.headers["Retry-After"])
        assert 1 <= wait <= 60
        assert response.json() == {
            "detail": f"too many failed token attempts from {address}; retry in {wait}s"
        }
    # The webhook door counts its own failures: API guesses never hold Alertmanager back.
    hook = api.request(
        "post", "/webhooks/alertmanager", {}, bearer(WEBHOOK_TOKEN), body={"version": "4"}, address=address
    )
    assert hook.status_code == 422, hook.text  # heard, and refused for its body
    missing = api.request("post", "/api/v1/incidents", {}, {}, body={"title": "t"}, address=address)
    assert (missing.status_code, missing.json()) == (401, {"detail": MISSING})
    assert snapshot(api.database_url) == before
    elsewhere = api.request(
        "post", "/api/v1/incidents", {}, bearer(api.tokens["respond"]), body={"title": "t"}
    )
    assert elsewhere.status_code == 201, elsewhere.text


def test_without_a_configured_api_token_every_api_route_answers_401(tmp_path: Path) -> None:
    """No automation identity: its old token is just a wrong one, and no token at all is told to send
    one; a person's token still works."""
    settings = make_settings(tmp_path, api_token=None)
    app = create_app(settings)
    with UvicornThread(app) as server:
        for method, path, _ in mutating_operations(app):
            if path.startswith("/webhooks/"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "1", path)
            for headers, says in [(bearer(API_TOKEN), INVALID), ({}, MISSING)]:
                with httpx.Client(transport=httpx.HTTPTransport(local_address=own_address())) as http:
                    response = http.request(method, server.url + concrete, headers=headers)
                assert (response.status_code, response.json()) == (401, {"detail": says}), (
                    f"{method.upper()} {path}: {response.status_code} {response.text}"
                )
        assert httpx.get(f"{server.url}/api/v1/whoami", headers=bearer(API_TOKEN)).status_code == 401
        person = bearer(personal_token(settings.database_url, OWNER, "respond"))
        me = httpx.get(f"{server.url}/api/v1/whoami", headers=person)
        assert me.status_code == 200 and me.json()["actor"] == OWNER, me.text
        created = httpx.post(f"{server.url}/api/v1/incidents", json={"title": "t"}, headers=person)
        assert created.status_code == 201, created.text
