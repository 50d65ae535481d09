"""The incident message's rollback button against the registry: it goes when the previous good version
already serves because someone moved the alias outside sloguard (an MLflow webhook says so), and comes
back when the alias returns to the suspect. sloguard runs on loopback with the Slack stand-in; the
webhook deliveries are signed as MLflow signs them."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from app import db
from app.main import create_app
from app.ml import service as ml
from app.ml.models import ModelVersionLink
from tests.conftest import People, make_settings
from tests.fakes.slack import FakeSlack
from tests.integration.changes.test_mlflow_webhooks import MODEL, forged
from tests.integration.changes.test_mlflow_webhooks import SECRET as WEBHOOK_SECRET
from tests.integration.chat.test_slack import SECRET, TOKEN
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
CHANNEL = "C-INCIDENTS"
SLOGUARD_YAML = f"""
models:
  {MODEL}:
    services: [fraud-model]
    registry: {{name: {MODEL}, aliases: {{prod: champion}}}}
    environments:
      prod:
        target: {{kind: mlflow_alias}}
        rollback: [U1]
"""


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[UvicornThread, FakeSlack, People]]:
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel=CHANNEL,
            mlflow_url="http://127.0.0.1:9",  # nothing listens: enrichment finds no registry alias
            mlflow_webhook_secret=WEBHOOK_SECRET,
        )
        with UvicornThread(create_app(settings)) as server:
            yield server, slack, People(settings.database_url)


def rollback_buttons(slack: FakeSlack) -> list[str] | None:
    """The rollback buttons of the incident message as it stands (None before it is posted)."""
    found = slack.messages(CHANNEL)
    if not found:
        return None
    return [
        element["value"]
        for block in found[0]["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == "incident_rollback"
    ]


def move_alias(server: UvicornThread, version: str) -> None:
    body, headers = forged(version, WEBHOOK_SECRET, at=datetime.now(UTC))
    answer = httpx.post(f"{server.url}/webhooks/mlflow", content=body, headers=headers, timeout=10)
    assert answer.status_code == 200 and answer.json()["outcome"] == "recorded", answer.text


def test_the_rollback_button_goes_once_the_previous_good_version_serves_outside_sloguard(
    world: tuple[UvicornThread, FakeSlack, People],
) -> None:
    server, slack, people = world
    opened = httpx.post(
        f"{server.url}/api/v1/incidents",
        json={"title": "fraud model failing", "model": MODEL},
        headers=people("U1", "respond"),
        timeout=10,
    )
    assert opened.status_code == 201, opened.text
    number = opened.json()["id"]
    services = server.server.config.app.state.services

    def enriched() -> bool:
        query = sa.text("SELECT state FROM outbox WHERE kind = 'evidence.enrich' AND incident_id = :id")
        with services.engine.connect() as connection:
            return connection.execute(query, {"id": number}).scalar() == "done"

    # Enrichment finds nothing here (no Prometheus, no MLflow); then the evidence arrives as enrichment
    # stores it: both versions seen serving up to detection, 4 the suspect, 3 the previous good one.
    wait_until(enriched, timeout=30, what="the first enrichment")
    found = ml.Findings(
        versions=[
            ModelVersionLink(incident_id=number, model=MODEL, version=version, role=role, source="prometheus")
            for version, role in (
                ("3", "serving"),
                ("4", "serving"),
                ("4", "suspect"),
                ("3", "previous_good"),
            )
        ]
    )
    db.unit_of_work(
        services.engine,
        services.events,
        lambda session, events: ml.store(session, events, number, found, datetime.now(UTC)),
    )
    wait_until(lambda: rollback_buttons(slack) == [f"{number}:3"], timeout=30, what="the rollback offered")

    # Someone moves the alias to 3 in MLflow: the message is redrawn without the button.
    move_alias(server, "3")
    wait_until(lambda: rollback_buttons(slack) == [], timeout=30, what="the button gone")
    (posted,) = slack.messages(CHANNEL)
    replies = [reply["text"] for reply in slack.thread(CHANNEL, posted["ts"])]
    assert any(f"alias champion of {MODEL} moved to version 3" in text for text in replies), replies

    # Back to the suspect: the rollback is worth offering again.
    move_alias(server, "4")
    wait_until(lambda: rollback_buttons(slack) == [f"{number}:3"], timeout=30, what="the button back")


def test_an_acknowledge_keeps_the_commander_already_named(
    world: tuple[UvicornThread, FakeSlack, People],
) -> None:
    server, slack, people = world
    responder = people("U1", "respond")
    opened = httpx.post(
        f"{server.url}/api/v1/incidents",
        json={"title": "feature store slow", "commander": "U9"},
        headers=responder,
        timeout=10,
    )
    assert opened.status_code == 201, opened.text
    number = opened.json()["id"]
    acked = httpx.patch(
        f"{server.url}/api/v1/incidents/{number}", json={"status": "acknowledged"}, headers=responder
    )
    assert acked.status_code == 200 and acked.json()["commander"] == "U9", acked.text

    def fields() -> list[str]:
        found = slack.messages(CHANNEL)
        return [f["text"] for b in (found[0]["blocks"] if found else []) for f in b.get("fields", [])]

    wait_until(lambda: "*Status*\nacknowledged" in fields(), timeout=30, what="the message after the ack")
    assert "*Commander*\n<@U9>" in fields()
    (posted,) = slack.messages(CHANNEL)
    # The thread reply follows the update (one outbox group, in that order).
    wait_until(lambda: slack.thread(CHANNEL, posted["ts"]), timeout=30, what="the thread reply")
    replies = [reply["text"] for reply in slack.thread(CHANNEL, posted["ts"])]
    assert replies == ["triggered → acknowledged by <@U1>"], replies
