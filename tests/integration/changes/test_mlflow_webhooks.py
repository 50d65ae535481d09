"""MLflow's registry webhooks from a real MLflow server (SQL store, webhooks on) into a real sloguard on
loopback: the alias history (API and CLI), the open incident's timeline, a forged delivery refused,
sloguard's own move shown once, and the alias history as the suspect when the metrics name no version."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.main import create_app
from tests.conftest import People, make_settings
from tests.mlflow_server import MLFLOW, MlflowServer
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics
from tests.servers import UvicornThread, free_port, wait_until

pytestmark = pytest.mark.integration
SECRET = "mlflow-webhook-secret-for-tests-0123"
MODEL = "fraud-detector"
EVENTS = ["model_version_alias.created", "model_version_alias.deleted", "model_version.created"]
SLOGUARD_YAML = f"""
models:
  {MODEL}:
    services: [fraud-model]
    registry: {{name: {MODEL}, aliases: {{prod: champion}}}}
    environments:
      prod:
        target: {{kind: mlflow_alias}}
        rollback: [U1]
        promote: [U1]
"""


def mlflow_client(server: MlflowServer, script: str) -> str:
    """Run `script` with MLflow's own client (`client`, an MlflowClient of `server`) in MLflow's venv."""
    code = f"from mlflow import MlflowClient\nclient = MlflowClient(tracking_uri={server.url!r})\n{script}"
    done = subprocess.run(
        [str(MLFLOW.parent / "python"), "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


@pytest.fixture(scope="module")
def port() -> int:
    """sloguard's port for this module: the one webhook MLflow holds calls it, whichever test serves it."""
    return free_port()


@pytest.fixture(scope="module")
def mlflow(tmp_path_factory: pytest.TempPathFactory, port: int) -> Iterator[MlflowServer]:
    server = MlflowServer(tmp_path_factory.mktemp("mlflow"), webhooks=True).start()
    server.register(MODEL, 5)  # before the webhook: nothing is announced to a sloguard not yet serving
    server.set_alias(MODEL, "champion", "4")
    url = f"http://127.0.0.1:{port}/webhooks/mlflow"
    mlflow_client(
        server, f"client.create_webhook(name='sloguard', url={url!r}, events={EVENTS!r}, secret={SECRET!r})"
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def unlabelled_prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    """Two hours of the model's traffic with no version label at all (a serving stack that exports none)."""
    folder = tmp_path_factory.mktemp("unlabelled")
    end = aligned_now(60)
    start = end - 2 * 3600
    series = [
        Series(
            "http_requests_total", {"service": "fraud-model", "code": "200"}, lambda t: 95.0 * (t - start)
        ),
        Series("http_requests_total", {"service": "fraud-model", "code": "500"}, lambda t: 5.0 * (t - start)),
    ]
    write_openmetrics(folder / "traffic.om", series, start, end, 60)
    backfill(folder / "traffic.om", folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


class Sloguard:
    def __init__(self, url: str, people: People, database_url: str) -> None:
        self.url, self.people, self.database_url = url, people, database_url
        self.http = httpx.Client(base_url=url, timeout=15, headers=people("U1", "read"))

    def changes(self) -> list[dict[str, Any]]:
        response = self.http.get(f"/api/v1/models/{MODEL}/changes")
        assert response.status_code == 200, response.text
        found: list[dict[str, Any]] = response.json()
        return found

    def wait_for(self, what: str, test: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The newest change that passes `test`, polled for (bounded): MLflow delivers after answering."""
        found: list[dict[str, Any]] = []

        def arrived() -> bool:
            found[:] = [change for change in self.changes() if test(change)]
            return bool(found)

        wait_until(arrived, timeout=30, interval=0.2, what=what)
        return found[0]

    def incident(self, incident_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/incidents/{incident_id}")
        assert response.status_code == 200, response.text
        found: dict[str, Any] = response.json()
        return found


def serve_sloguard(
    tmp_path: Path, database_url: str, mlflow: MlflowServer, port: int, **settings: Any
) -> Iterator[Sloguard]:
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    values = make_settings(
        tmp_path, database_url=database_url, mlflow_url=mlflow.url, mlflow_webhook_secret=SECRET, **settings
    )
    with UvicornThread(create_app(values), port=port) as server:
        sloguard = Sloguard(server.url, People(database_url), database_url)
        yield sloguard
        sloguard.http.close()


@pytest.fixture
def sloguard(tmp_path: Path, database_url: str, mlflow: MlflowServer, port: int) -> Iterator[Sloguard]:
    yield from serve_sloguard(tmp_path, database_url, mlflow, port)


def other_version(mlflow: MlflowServer, *avoid: str) -> str:
    current = mlflow.alias(MODEL, "champion")
    return next(v for v in ("1", "2", "3", "4", "5") if v != current and v not in avoid)


def move_with_mlflows_client(mlflow: MlflowServer, version: str) -> None:
    mlflow_client(mlflow, f"client.set_registered_model_alias({MODEL!r}, 'champion', {version!r})")


def test_an_alias_move_lands_in_the_history_and_on_the_open_incident(
    sloguard: Sloguard, mlflow: MlflowServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    opened = sloguard.http.post(
        "/api/v1/incidents",
        json={"title": "fraud model failing", "model": MODEL},
        headers=sloguard.people("U1", "respond"),
    )
    assert opened.status_code == 201, opened.text
    incident_id = opened.json()["id"]
    first = other_version(mlflow)
    move_with_mlflows_client(mlflow, first)
    earlier = sloguard.wait_for(f"alias moved to {first}", lambda c: c["version"] == first)
    second = other_version(mlflow, first)
    move_with_mlflows_client(mlflow, second)
    later = sloguard.wait_for(f"alias moved to {second}", lambda c: c["version"] == second)

    # The first move sloguard heard of has no recorded predecessor; the second comes from the first.
    assert (earlier["kind"], earlier["alias"], earlier["from_version"]) == ("alias_set", "champion", None)
    assert (later["kind"], later["alias"], later["from_version"]) == ("alias_set", "champion", first)
    assert (later["model"], later["registered_model"], later["environment"]) == (MODEL, MODEL, "prod")
    assert later["actor"] is None and later["action_id"] is None  # MLflow names nobody
    assert [c["version"] for c in sloguard.changes()] == [second, first]  # newest first
    text = f"MLflow: alias champion of {MODEL} moved to version {second} (from {first})"
    assert later["text"] == text

    timeline = sloguard.incident(incident_id)["timeline"]
    notes = [(e["kind"], e["actor"], e["text"]) for e in timeline if e["kind"] == "registry_change"]
    assert ("registry_change", "mlflow", text) in notes and len(notes) == 2

    # The CLI: from the running sloguard, and from the database itself.
    runner = CliRunner()
    token = sloguard.people("U1", "read")["Authorization"].removeprefix("Bearer ")
    served = runner.invoke(cli, ["changes", MODEL, "--url", sloguard.url, "--token", token])
    assert served.exit_code == 0, served.output
    rows = served.output.splitlines()
    assert rows[0].split() == ["at", "kind", "alias", "from", "->", "to", "actor", "action"]
    assert rows[1].split()[2:] == ["alias_set", "champion", first, "->", second, "mlflow", "-"]
    assert rows[2].split()[2:] == ["alias_set", "champion", "?", "->", first, "mlflow", "-"]
    monkeypatch.setenv("SLOGUARD_DATABASE_URL", sloguard.database_url)
    local = runner.invoke(cli, ["changes", MODEL, "--json"])
    assert local.exit_code == 0, local.output
    assert json.loads(local.output) == sloguard.changes()


def forged(
    version: str,
    secret: str,
    sent: int | None = None,
    *,
    at: datetime | None = None,
    delivery: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    """A delivery signed as MLflow signs one (with `secret`, at `sent`; the move made `at`), computed here."""
    body = json.dumps(
        {
            "entity": "model_version_alias",
            "action": "created",
            "timestamp": (at or datetime.now(UTC)).isoformat(),
            "data": {"name": MODEL, "alias": "champion", "version": version},
        }
    ).encode()
    delivery = delivery or str(uuid.uuid4())
    timestamp = str(int(time.time()) if sent is None else sent)
    digest = hmac.new(secret.encode(), f"{delivery}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return body, {
        "Content-Type": "application/json",
        "X-MLflow-Delivery-Id": delivery,
        "X-MLflow-Timestamp": timestamp,
        "X-MLflow-Signature": "v1," + base64.b64encode(digest).decode(),
    }


def test_a_forged_delivery_is_refused_and_stores_nothing(sloguard: Sloguard, mlflow: MlflowServer) -> None:
    body, headers = forged("1", "not the shared secret")
    refused = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=body, headers=headers)
    assert refused.status_code == 401
    assert "does not match the body" in refused.json()["detail"]
    unsigned = {k: v for k, v in headers.items() if k != "X-MLflow-Signature"}
    missing = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=body, headers=unsigned)
    assert missing.status_code == 401 and "missing X-MLflow-Signature" in missing.json()["detail"]
    stale_body, stale = forged("1", SECRET, int(time.time()) - 600)  # the right secret, ten minutes late
    late = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=stale_body, headers=stale)
    assert late.status_code == 401 and "s old; at most 300 s" in late.json()["detail"], late.text

    # The marker: a real move after the refused ones, through the same door, lands; nothing else did.
    marker = other_version(mlflow, "1")
    move_with_mlflows_client(mlflow, marker)
    sloguard.wait_for(f"alias moved to {marker}", lambda c: c["version"] == marker)
    assert [c["version"] for c in sloguard.changes()] == [marker]


def test_a_resent_delivery_is_recorded_once(sloguard: Sloguard) -> None:
    body, headers = forged("2", SECRET)
    first = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=body, headers=headers)
    again = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=body, headers=headers)
    assert (first.status_code, first.json()["outcome"]) == (200, "recorded")
    assert (again.status_code, again.json()["outcome"]) == (200, "duplicate")
    assert again.json()["change"]["id"] == first.json()["change"]["id"]
    other = json.loads(body) | {
        "action": "created",
        "data": {"name": MODEL, "alias": "champion", "version": "3"},
    }
    changed = httpx.post(
        f"{sloguard.url}/webhooks/mlflow", content=json.dumps(other).encode(), headers=headers
    )
    assert changed.status_code == 401  # the same delivery's headers do not sign another body
    # The same delivery id, signed, with another body: a conflict, and nothing changes.
    other_body, other_headers = forged("3", SECRET, delivery=headers["X-MLflow-Delivery-Id"])
    conflict = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=other_body, headers=other_headers)
    assert conflict.status_code == 409 and "another body" in conflict.json()["detail"], conflict.text
    ignored_body, ignored_headers = forged("2", SECRET)
    ignored_document = json.loads(ignored_body) | {"entity": "model_version_tag", "action": "set"}
    ignored_bytes = json.dumps(ignored_document).encode()
    delivery, timestamp = ignored_headers["X-MLflow-Delivery-Id"], ignored_headers["X-MLflow-Timestamp"]
    signed = f"{delivery}.{timestamp}.".encode() + ignored_bytes
    ignored_headers["X-MLflow-Signature"] = (
        "v1," + base64.b64encode(hmac.new(SECRET.encode(), signed, hashlib.sha256).digest()).decode()
    )
    ignored = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=ignored_bytes, headers=ignored_headers)
    assert ignored.status_code == 200 and ignored.json()["outcome"] == "ignored", ignored.text
    assert "model_version_tag.set" in ignored.json()["reason"]
    assert len(sloguard.changes()) == 1


def test_sloguards_own_rollback_through_mlflow_appears_once_with_its_actor(
    sloguard: Sloguard, mlflow: MlflowServer
) -> None:
    # Two open incidents on the model: the rollback joins one; the other hears of the move as a change.
    opened = [
        sloguard.http.post(
            "/api/v1/incidents", json={"title": f"looking {n}", "model": MODEL}, headers=sloguard.people("U1")
        )
        for n in (1, 2)
    ]
    assert all(o.status_code == 201 for o in opened), [o.text for o in opened]
    was = mlflow.alias(MODEL, "champion")
    target = other_version(mlflow)
    done = sloguard.http.post(
        "/api/v1/rollbacks",
        json={
            "model": MODEL,
            "environment": "prod",
            "to_version": target,
            "reason": "v fails",
            "confirm": True,
        },
        headers=sloguard.people("U1", "change"),
    )
    assert done.status_code == 201, done.text
    action = done.json()
    assert action["state"] == "succeeded" and mlflow.alias(MODEL, "champion") == target
    own = sloguard.wait_for(f"sloguard's move to {target}", lambda c: c["version"] == target)
    # The marker: a move by someone else afterwards, delivered after sloguard's own.
    marker = other_version(mlflow, target)
    mlflow.set_alias(MODEL, "champion", marker)
    sloguard.wait_for(f"alias moved to {marker}", lambda c: c["version"] == marker)

    history = sloguard.changes()
    assert [c["version"] for c in history] == [marker, target]  # sloguard's move once, not twice
    assert (own["action_id"], own["actor"], own["from_version"]) == (action["id"], "U1", was)
    assert own["text"] == (
        f"MLflow: alias champion of {MODEL} moved to version {target} (from {was}): "
        f"sloguard's rollback {action['id']} by U1"
    )
    assert history[0]["from_version"] == target and history[0]["actor"] is None
    ids = [o.json()["id"] for o in opened]
    assert action["incident_id"] in ids
    (other,) = [i for i in ids if i != action["incident_id"]]

    def changes_on(incident_id: int) -> list[tuple[str, str]]:
        timeline = sloguard.incident(incident_id)["timeline"]
        return [(e["actor"], e["text"]) for e in timeline if e["kind"] == "registry_change"]

    # The rollback's own incident has its steps, and only the marker as a change; the other has both.
    assert changes_on(action["incident_id"]) == [("mlflow", history[0]["text"])]
    assert changes_on(other) == [("U1", own["text"]), ("mlflow", history[0]["text"])]


def test_without_a_version_label_the_alias_move_before_the_impact_is_the_suspect(
    tmp_path: Path,
    database_url: str,
    mlflow: MlflowServer,
    port: int,
    unlabelled_prometheus: PrometheusServer,
) -> None:
    served = serve_sloguard(tmp_path, database_url, mlflow, port, prometheus_url=unlabelled_prometheus.url)
    sloguard = next(served)
    try:
        good = other_version(mlflow)
        mlflow.set_alias(MODEL, "champion", good)
        sloguard.wait_for(f"alias moved to {good}", lambda c: c["version"] == good)
        bad = other_version(mlflow, good)
        mlflow.set_alias(MODEL, "champion", bad)
        moved = sloguard.wait_for(f"alias moved to {bad}", lambda c: c["version"] == bad)
        began = datetime.fromisoformat(moved["at"]) + timedelta(seconds=5)
        opened = sloguard.http.post(
            "/api/v1/incidents",
            json={"title": "fraud model failing", "model": MODEL, "started_at": began.isoformat()},
            headers=sloguard.people("U1", "respond"),
        )
        assert opened.status_code == 201, opened.text
        incident_id = opened.json()["id"]

        def roles() -> dict[str, tuple[str, str]]:
            links = sloguard.incident(incident_id)["model_versions"]
            return {link["role"]: (link["version"], link["source"]) for link in links}

        wait_until(lambda: "suspect" in roles(), timeout=30, interval=0.2, what="the suspect")
        assert roles()["suspect"] == (bad, "registry")
        assert roles()["previous_good"] == (good, "registry")
        assert roles()["serving"] == (bad, "registry")  # what the champion alias points at now
        timeline = sloguard.incident(incident_id)["timeline"]
        deploy = [e for e in timeline if e["kind"] == "deploy"]
        assert [e["text"] for e in deploy] == [
            f"alias champion of {MODEL} moved to version {bad} (the likely suspect)"
        ]
        assert datetime.fromisoformat(deploy[0]["at"]) == datetime.fromisoformat(moved["at"])
    finally:
        next(served, None)


def test_a_new_version_and_a_removed_alias_are_recorded_too(sloguard: Sloguard, mlflow: MlflowServer) -> None:
    was = mlflow.alias(MODEL, "champion")
    mlflow.set_alias(MODEL, "champion", was)  # sloguard's record of the alias starts here
    sloguard.wait_for("the alias set", lambda c: c["kind"] == "alias_set")
    created = mlflow.api(
        "POST",
        "model-versions/create",
        json={
            "name": MODEL,
            "source": "s3://models/fraud-detector/new",
            "tags": [{"key": "team", "value": "ml"}],
        },
    )
    number = str(created["model_version"]["version"])  # type: ignore[index]
    version = sloguard.wait_for("the new version", lambda c: c["kind"] == "version_created")
    assert (version["version"], version["alias"], version["from_version"]) == (number, None, None)
    assert version["detail"]["source"] == "s3://models/fraud-detector/new"
    assert version["detail"]["tags"] == {"team": "ml"}
    assert version["text"] == f"MLflow: version {number} of {MODEL} was registered"

    mlflow.api("DELETE", "registered-models/alias", json={"name": MODEL, "alias": "champion"})
    removed = sloguard.wait_for("the alias removed", lambda c: c["kind"] == "alias_deleted")
    assert (removed["alias"], removed["version"], removed["from_version"]) == ("champion", None, was)
    assert removed["text"] == f"MLflow: alias champion of {MODEL} was removed (it pointed at {was})"
    mlflow.set_alias(MODEL, "champion", was)  # as the other tests expect it
    again = sloguard.wait_for(
        "the alias set again", lambda c: c["kind"] == "alias_set" and c["id"] > removed["id"]
    )
    assert again["from_version"] is None  # removed in between: it came from no version


def test_a_late_delivery_puts_the_alias_history_in_order(sloguard: Sloguard) -> None:
    """MLflow retries a delivery sloguard could not take (with backoff): 3 -> 4 arrives after 4 -> 5, and
    the history still says 5 came from 4, each move from the one before it by MLflow's times."""
    t0 = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=2)
    for version, offset in (("3", 0), ("5", 20), ("4", 10)):  # the move to 4 (at +10 s) arrives last
        body, headers = forged(version, SECRET, at=t0 + timedelta(seconds=offset))
        answer = httpx.post(f"{sloguard.url}/webhooks/mlflow", content=body, headers=headers)
        assert answer.status_code == 200, answer.text
    history = [(c["version"], c["from_version"]) for c in sloguard.changes()]  # newest first
    assert history == [("5", "4"), ("4", "3"), ("3", None)]
