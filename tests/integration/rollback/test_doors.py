"""Rollback through Slack (/rollback, /promote, the confirm button) and through the API, on real MLflow."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from sqlmodel import Session

from app import db
from app.main import create_app
from app.ml.models import ModelVersionLink
from tests.conftest import bearer, make_settings, personal_token
from tests.fakes.slack import FakeSlack
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld
from tests.mlflow_server import MlflowServer
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
YAML = """
models:
  fraud-detector:
    registry: {name: fraud-detector, aliases: {prod: champion, test: challenger}}
    environments:
      prod: {target: {kind: mlflow_alias}, rollback: [U1, U2], promote: [U2]}
      test: {target: {kind: mlflow_alias}, rollback: [U1, U2], promote: [U1, U2]}
"""


@pytest.fixture
def world(tmp_path: Path, mlflow: MlflowServer) -> Iterator[SlackWorld]:
    mlflow.api(
        "POST",
        "registered-models/alias",
        json={"name": "fraud-detector", "alias": "champion", "version": "4"},
    )
    mlflow.api(
        "POST",
        "registered-models/alias",
        json={"name": "fraud-detector", "alias": "challenger", "version": "2"},
    )
    (tmp_path / "sloguard.yaml").write_text(YAML)
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel="C-INCIDENTS",
            mlflow_url=mlflow.url,
        )
        with UvicornThread(create_app(settings)) as server:
            yield SlackWorld(server, slack, settings.database_url)


def alias(mlflow: MlflowServer, name: str = "champion") -> str:
    body = mlflow.api("GET", "registered-models/alias", params={"name": "fraud-detector", "alias": name})
    return str(body["model_version"]["version"])  # type: ignore[index]


def test_rollback_from_slack_in_two_clicks(world: SlackWorld, mlflow: MlflowServer) -> None:
    world.run("/incident", "declare fraud model failing SEV2")
    engine = db.make_engine(world.database_url)
    with Session(engine) as session:
        session.execute(sa.text("UPDATE incident SET model = 'fraud-detector' WHERE id = 1"))
        session.add(
            ModelVersionLink(
                incident_id=1, model="fraud-detector", version="3", role="previous_good", source="prometheus"
            )
        )
        session.commit()
    engine.dispose()

    proposal = world.run("/rollback", "fraud-detector prod")
    assert proposal["response_type"] == "ephemeral"
    assert proposal["text"].startswith("*Rollback fraud-detector* in *prod*: version 4 → *3*")
    button = proposal["blocks"][-1]["elements"][0]
    assert (button["action_id"], button["style"], "confirm" in button) == ("rollback_confirm", "danger", True)
    assert alias(mlflow) == "4"  # nothing changes before the confirmation

    seen = len(world.slack.called("/response/cmd"))
    world.button("rollback_confirm", button["value"], user="U2")
    done = world.reply(seen)
    assert done["response_type"] == "ephemeral"  # the thread tells the channel
    assert done["text"].startswith("Your rollback: fraud-detector in prod now serves 3 (was 4)")
    assert alias(mlflow) == "3"
    assert (
        world.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'rollback' AND incident_id = 1") == 3
    )
    wait_until(
        lambda: any(
            "now serves version 3" in m.get("text", "") for m in world.slack.called("chat.postMessage")
        ),
        what="thread reply about the rollback",
    )


def test_slack_refusals_and_dry_run(world: SlackWorld, mlflow: MlflowServer) -> None:
    refused = world.run("/rollback", "fraud-detector prod to 2", user="U9")
    assert (refused["response_type"], refused["text"]) == (
        "ephemeral",
        "you may not rollback fraud-detector in prod; ask <@U1>, <@U2>",
    )
    dry = world.run("/rollback", "fraud-detector prod to 2 --dry-run")
    assert dry["blocks"][-1]["elements"][0]["text"] == "Dry run: nothing will change."
    assert world.run("/rollback", "")["text"].startswith("name the model\nUsage: /rollback MODEL")
    assert world.run("/promote", "fraud-detector 3 into prod")["text"].startswith(
        "`/promote MODEL VERSION to ENV`"
    )
    assert alias(mlflow) == "4"


def test_promote_from_slack(world: SlackWorld, mlflow: MlflowServer) -> None:
    proposal = world.run("/promote", "fraud-detector 3 to test", user="U1")
    assert proposal["text"].startswith("*Promote fraud-detector* in *test*: version 2 → *3*")
    seen = len(world.slack.called("/response/cmd"))
    world.button("rollback_confirm", proposal["blocks"][-1]["elements"][0]["value"], user="U2")
    assert world.reply(seen)["text"].startswith("Your promote: fraud-detector in test now serves 3 (was 2)")
    assert alias(mlflow, "challenger") == "3"


def test_rollback_api(world: SlackWorld, mlflow: MlflowServer) -> None:
    # U1 may roll back fraud-detector in prod; U9 is on no list (its token's scope is no permission).
    u1 = bearer(personal_token(world.database_url, "U1", "change"))
    u9 = bearer(personal_token(world.database_url, "U9", "change"))
    with httpx.Client(base_url=world.server.url, headers=u1) as http:
        created = http.post(
            "/api/v1/rollbacks",
            json={
                "model": "fraud-detector",
                "environment": "prod",
                "to_version": "1",
                "confirm": True,
            },
            headers={"X-Request-ID": "trace-rollback-1"},
        )
        assert created.status_code == 201, created.text
        body = created.json()
        assert (body["state"], body["from_version"], body["to_version"]) == ("succeeded", "4", "1")
        assert [step["step"] for step in body["audit"]] == ["proposed", "executing", "succeeded"]
        assert {step["trace_id"] for step in body["audit"]} == {
            "trace-rollback-1"
        }  # ties the audit to the logs
        assert (body["actor"], body["approver"]) == ("U1", "U1")  # the token's owner, never a body field
        assert http.get(f"/api/v1/rollbacks/{body['id']}").json()["state"] == "succeeded"
        refused = http.post(
            "/api/v1/rollbacks", json={"model": "fraud-detector", "to_version": "2"}, headers=u9
        )
        assert refused.status_code == 403
        assert refused.json()["detail"].startswith("you may not rollback fraud-detector in prod"), (
            refused.text
        )
        unknown = http.post("/api/v1/rollbacks", json={"model": "nope", "to_version": "2"})
        assert unknown.status_code == 404
        assert http.get("/api/v1/rollbacks/999").status_code == 404
    assert alias(mlflow) == "1"


def test_incident_message_buttons_roll_back_and_post_the_review(
    world: SlackWorld, mlflow: MlflowServer
) -> None:
    world.run("/incident", "declare fraud model failing SEV2")
    engine = db.make_engine(world.database_url)
    with Session(engine) as session:
        session.execute(sa.text("UPDATE incident SET model = 'fraud-detector' WHERE id = 1"))
        session.commit()
    engine.dispose()
    seen = len(world.slack.called("/response/cmd"))
    world.button("incident_rollback", "1:2")  # the message's "Roll back to 2" button, clicked by U2
    proposal = world.reply(seen)
    assert proposal["text"].startswith("*Rollback fraud-detector* in *prod*: version 4 → *2*")
    seen = len(world.slack.called("/response/cmd"))
    world.button("incident_postmortem", "1")
    review = world.reply(seen)
    assert review["text"].startswith("Review draft for incident #1 written to `")
    assert alias(mlflow) == "4"  # proposing changes nothing
