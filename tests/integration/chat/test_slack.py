"""Signed Slack requests against the running service; the Web API is a local recorder."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from app.incidents import jobs as incident_jobs
from app.main import create_app
from tests.conftest import bearer, make_settings, personal_token
from tests.fakes.slack import FakeSlack
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
TOKEN = "xoxb-1234-5678-abcdefghijkl"


def sign(body: str, timestamp: int | None = None, secret: str = SECRET) -> dict[str, str]:
    ts = str(timestamp if timestamp is not None else int(time.time()))
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


class SlackWorld:
    def __init__(self, server: UvicornThread, slack: FakeSlack, database_url: str) -> None:
        self.server, self.slack, self.database_url = server, slack, database_url

    def command(
        self, name: str, text: str, user: str = "U1", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        body = urlencode(
            {
                "command": name,
                "text": text,
                "user_id": user,
                "channel_id": "C1",
                "team_id": "T1",
                "response_url": self.slack.response_url(),
                "trigger_id": "1.2.3",
            }
        )
        return httpx.post(
            f"{self.server.url}/slack/events", content=body, headers=headers or sign(body), timeout=10
        )

    def reply(self, after: int) -> dict[str, Any]:
        """The response_url message that follows the `after` ones already seen."""
        wait_until(lambda: len(self.slack.called("/response/cmd")) > after, timeout=10, what="command reply")
        return self.slack.called("/response/cmd")[after]

    def run(self, name: str, text: str, user: str = "U1") -> dict[str, Any]:
        seen = len(self.slack.called("/response/cmd"))
        response = self.command(name, text, user)
        assert response.status_code == 200, response.text
        return self.reply(seen)

    def button(self, action: str, value: str, user: str = "U2") -> httpx.Response:
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T1"},
            "channel": {"id": "C1"},
            "response_url": self.slack.response_url(),
            "trigger_id": "1.2.3",
            "actions": [{"action_id": action, "value": value, "type": "button", "block_id": "b"}],
        }
        body = urlencode({"payload": json.dumps(payload)})
        return httpx.post(f"{self.server.url}/slack/events", content=body, headers=sign(body), timeout=10)

    def event(self, event: dict[str, Any], event_id: str, retry: int | None = None) -> httpx.Response:
        body = json.dumps({"type": "event_callback", "team_id": "T1", "event_id": event_id, "event": event})
        headers = {**sign(body), "Content-Type": "application/json"}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return httpx.post(f"{self.server.url}/slack/events", content=body, headers=headers, timeout=10)

    def scalar(self, sql: str) -> Any:
        engine = sa.create_engine(self.database_url)
        with engine.connect() as connection:
            value = connection.execute(sa.text(sql)).scalar()
        engine.dispose()
        return value


@pytest.fixture
def world(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SlackWorld]:
    marker = request.node.get_closest_marker("sloguard_yaml")
    if marker is not None:
        (tmp_path / "sloguard.yaml").write_text(marker.args[0])
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel="C-INCIDENTS",
        )
        with UvicornThread(create_app(settings)) as server:
            yield SlackWorld(server, slack, settings.database_url)


def posted_ts(world: SlackWorld) -> str:
    """The ts the Slack stand-in gave the first message posted in the incident channel."""
    assert world.slack.wait_for(lambda: world.slack.messages("C-INCIDENTS"), timeout=10)
    ts: str = world.slack.messages("C-INCIDENTS")[0]["ts"]
    return ts


def test_declare_posts_one_message_that_ack_and_resolve_update(world: SlackWorld) -> None:
    reply = world.run("/incident", "declare Fraud scores all zero SEV2")
    # A private confirmation: the incident message itself tells the channel.
    assert reply["response_type"] == "ephemeral"
    assert reply["text"] == "You declared incident #1 (SEV2): Fraud scores all zero"
    wait_until(lambda: len(world.slack.called("chat.postMessage")) == 1, what="incident message")
    (posted,) = world.slack.called("chat.postMessage")
    assert posted["channel"] == "C-INCIDENTS"
    assert posted["blocks"][0]["text"]["text"] == "#1 Fraud scores all zero"
    # The notifier stores the message's ts right after Slack answers; give it that moment.
    wait_until(
        lambda: world.scalar("SELECT slack_ts FROM incident WHERE id = 1") is not None, what="stored ts"
    )
    ts = world.scalar("SELECT slack_ts FROM incident WHERE id = 1")
    assert ts == posted_ts(world)

    assert world.run("/incident", "ack 1")["text"] == "You moved incident #1 to acknowledged."
    wait_until(lambda: len(world.slack.called("chat.update")) == 1, what="update after ack")
    assert world.button("incident_resolve", "1").status_code == 200
    # (and again once the impact was measured: unknown, no SLO is linked)
    wait_until(lambda: len(world.slack.called("chat.update")) >= 2, what="update after resolve")
    wait_until(lambda: len(world.slack.called("chat.postMessage")) == 3, what="thread reply after resolve")
    updates = world.slack.called("chat.update")
    assert {u["ts"] for u in updates} == {ts}
    assert "resolved" in updates[-1]["text"]
    threads = [m for m in world.slack.called("chat.postMessage") if m.get("thread_ts") == ts]
    assert [m["text"] for m in threads] == [
        "triggered → acknowledged by <@U1>",
        "acknowledged → resolved by <@U2>",
    ]
    assert len(world.slack.called("chat.postMessage")) == 3  # one message, two thread replies
    assert world.scalar("SELECT status FROM incident WHERE id = 1") == "resolved"


def test_every_incident_verb(world: SlackWorld) -> None:
    world.run("/incident", "declare Feature store timeouts")
    assert world.run("/incident", "help")["response_type"] == "ephemeral"
    listed = world.run("/incident", "list")
    assert (listed["response_type"], listed["text"]) == (
        "ephemeral",
        "#1 SEV3 triggered: Feature store timeouts",
    )
    assert world.run("/incident", "sev 1 SEV1")["text"] == "You set incident #1 to SEV1."
    assert world.run("/incident", "assign 1 <@U9|ana>")["text"] == "You made <@U9> commander of incident #1."
    assert world.run("/incident", "note 1 restarted the feature store")["response_type"] == "ephemeral"
    assert world.run("/incident", "status 1 mitigated")["text"] == "You moved incident #1 to mitigated."
    shown = world.run("/incident", "show 1")["text"]
    assert (
        shown.startswith("#1 SEV1 mitigated: Feature store timeouts")
        and "restarted the feature store" in shown
    )
    assert world.scalar("SELECT commander FROM incident WHERE id = 1") == "U9"
    assert world.scalar("SELECT count(*) FROM timeline_event WHERE incident_id = 1 AND kind = 'note'") == 1
    assert world.run("/incident", "list all")["text"].startswith("#1")
    review = world.run("/incident", "postmortem 1")
    assert review["response_type"] == "ephemeral"
    assert review["text"].startswith("Review draft for incident #1 written to `")
    written = Path(review["text"].split("`")[1])
    assert written.read_text().startswith("# Post-incident review: Feature store timeouts")


@pytest.mark.parametrize(
    ("text", "starts"),
    [
        ("explode 1", "unknown verb `explode`"),
        ("ack", "an incident number is needed"),
        ("sev 1 SEV9", "`/incident sev ID SEV1|SEV2|SEV3|SEV4`"),
        ("ack 99", "incident 99 not found"),
    ],
)
def test_bad_arguments_answer_privately(world: SlackWorld, text: str, starts: str) -> None:
    reply = world.run("/incident", text)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(starts)
    assert world.scalar("SELECT count(*) FROM incident") == 0


def test_an_illegal_move_from_slack_names_the_allowed_ones(world: SlackWorld) -> None:
    world.run("/incident", "declare x")
    world.run("/incident", "resolve 1")
    reply = world.run("/incident", "ack 1")
    assert (reply["response_type"], reply["text"]) == (
        "ephemeral",
        "cannot move a resolved incident to acknowledged; allowed: none (it is closed)",
    )


def test_slo_verbs(world: SlackWorld) -> None:
    assert world.run("/slo", "list")["text"] == "No SLOs."
    reply = world.run("/slo", "status nope")
    assert reply["response_type"] == "ephemeral" and reply["text"] == "no SLO 'nope'"
    assert world.run("/slo", "frobnicate")["text"].startswith("unknown verb `frobnicate`")


@pytest.mark.parametrize("case", ["wrong-signature", "stale", "replayed"])
def test_forged_requests_get_401_and_change_nothing(world: SlackWorld, case: str) -> None:
    body = urlencode(
        {
            "command": "/incident",
            "text": "declare forged",
            "user_id": "U1",
            "response_url": world.slack.response_url(),
        }
    )
    if case == "wrong-signature":
        headers = sign(body, secret="not-the-secret")
    elif case == "stale":
        headers = sign(body, timestamp=int(time.time()) - 301)
    else:
        headers = sign(body)
        body = body.replace("forged", "replayed")
    response = httpx.post(f"{world.server.url}/slack/events", content=body, headers=headers, timeout=10)
    assert response.status_code == 401
    time.sleep(0.3)
    assert world.scalar("SELECT count(*) FROM incident") == 0
    assert world.slack.calls == []


def test_ack_does_not_wait_for_a_slow_web_api(world: SlackWorld) -> None:
    world.slack.delay = 5.0
    started = time.perf_counter()
    response = world.command("/incident", "declare slow slack")
    elapsed = time.perf_counter() - started
    assert response.status_code == 200
    assert elapsed < 3.0, elapsed  # Slack's limit; the reply and the message follow after the ack
    world.slack.delay = 0.0


def test_pushpin_captures_a_thread_message_once(world: SlackWorld) -> None:
    world.run("/incident", "declare pinned")
    wait_until(
        lambda: world.scalar("SELECT slack_ts FROM incident WHERE id = 1") is not None, what="message ts"
    )
    parent = world.scalar("SELECT slack_ts FROM incident WHERE id = 1")
    message = {
        "type": "message",
        "user": "U7",
        "text": "feature store p99 is 4s",
        "ts": "1764100100.000200",
        "thread_ts": parent,
    }
    world.slack.replies[("C-INCIDENTS", "1764100100.000200")] = [message]
    event = {
        "type": "reaction_added",
        "user": "U1",
        "reaction": "pushpin",
        "item": {"type": "message", "channel": "C-INCIDENTS", "ts": "1764100100.000200"},
    }
    assert world.event(event, "Ev1").status_code == 200
    assert world.event(event, "Ev1", retry=1).status_code == 200
    wait_until(
        lambda: world.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'slack_pin'") == 1, what="pin"
    )
    time.sleep(0.5)
    assert world.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'slack_pin'") == 1
    assert world.scalar("SELECT actor FROM timeline_event WHERE kind = 'slack_pin'") == "U7"


def test_hostile_text_renders_safely(world: SlackWorld) -> None:
    world.run("/incident", "declare <!channel> <script>alert(1)</script>")
    note = "x" * 5000
    reply = world.run("/incident", f"note 1 {note}")
    assert len(reply["text"]) < 2200
    # The incident message, then the note's thread reply (one outbox group: in that order).
    wait_until(lambda: len(world.slack.called("chat.postMessage")) == 2, what="message and note")
    posted, noted = world.slack.called("chat.postMessage")
    assert noted["thread_ts"] and noted["text"].startswith("note by <@U1>: xxx") and len(noted["text"]) < 2100
    # Everything Slack parses as mrkdwn is escaped; the header is plain_text, which Slack never parses.
    mrkdwn = [posted["text"]] + [
        part["text"]
        for block in posted["blocks"]
        for part in [block.get("text") or {}, *block.get("fields", [])]
        if part.get("type") == "mrkdwn"
    ]
    assert all("<!channel>" not in text and "<script>" not in text for text in mrkdwn)
    assert "&lt;!channel&gt; &lt;script&gt;" in posted["text"]
    assert posted["blocks"][0]["text"]["type"] == "plain_text"


def test_the_ack_button_does_what_the_command_does(world: SlackWorld) -> None:
    world.run("/incident", "declare button ack")
    seen = len(world.slack.called("/response/cmd"))
    assert world.button("incident_ack", "1", user="U5").status_code == 200
    assert world.reply(seen)["text"] == "You moved incident #1 to acknowledged."
    assert world.scalar("SELECT status FROM incident WHERE id = 1") == "acknowledged"
    assert (
        world.scalar("SELECT actor FROM timeline_event WHERE kind = 'status' ORDER BY id DESC LIMIT 1")
        == "U5"
    )
    seen = len(world.slack.called("/response/cmd"))
    world.button("incident_ack", "1")  # a second responder clicks too
    assert world.reply(seen) == {"text": "Incident #1 is already acknowledged.", "response_type": "ephemeral"}


@pytest.mark.sloguard_yaml(
    "slack:\n  incident_channels: true\n  responders: [U7, U8]\n  oncall_groups: {C-INCIDENTS: S0NCALL}\n"
    "incidents:\n  renotify_after: 1s\n"
)
def test_incident_channel_and_unacknowledged_reminder(world: SlackWorld) -> None:
    world.run("/incident", "declare Fraud model: scores all zero!")
    wait_until(lambda: len(world.slack.called("conversations.create")) == 1, what="incident channel")
    assert world.slack.called("conversations.create")[0]["name"] == "inc-1-fraud-model-scores-all-zero"
    wait_until(lambda: len(world.slack.called("conversations.invite")) == 1, what="invitations")
    assert (
        world.slack.called("conversations.invite")[0]["users"] == "U1,U7,U8"
    )  # the commander and responders

    from app.config import IncidentOptions

    time.sleep(1.1)
    state = world.server.server.config.app.state.services  # the running app's own engine and event bus
    escalated = incident_jobs.escalate_unacknowledged(
        state.engine, state.events, IncidentOptions(renotify_after="1s"), datetime.now(UTC)
    )
    assert escalated == [1]
    wait_until(
        lambda: any("S0NCALL" in m.get("text", "") for m in world.slack.called("chat.postMessage")),
        what="reminder",
    )
    reminder = next(m for m in world.slack.called("chat.postMessage") if "S0NCALL" in m.get("text", ""))
    assert reminder["text"].startswith("<!subteam^S0NCALL> incident #1 (SEV3) is still not acknowledged")
    assert reminder["thread_ts"] == world.scalar("SELECT slack_ts FROM incident WHERE id = 1")


def test_incident_list_shows_an_open_incident_behind_sixty_newer_resolved_ones(world: SlackWorld) -> None:
    """`/incident list` filters in the query: a page of newer closed incidents cannot hide an open one."""
    responder = bearer(personal_token(world.database_url, "U1", "respond"))
    with httpx.Client(base_url=world.server.url, headers=responder) as api:
        opened = api.post("/api/v1/incidents", json={"title": "still burning"})
        assert opened.status_code == 201, opened.text
        for number in range(60):
            created = api.post("/api/v1/incidents", json={"title": f"done {number}"})
            assert created.status_code == 201, created.text
            resolved = api.patch(f"/api/v1/incidents/{created.json()['id']}", json={"status": "resolved"})
            assert resolved.status_code == 200, resolved.text

    lines = world.run("/incident", "list")["text"].splitlines()
    assert lines == [f"#{opened.json()['id']} SEV3 triggered: still burning"]
    everything = world.run("/incident", "list all")["text"].splitlines()
    assert len(everything) == 50 and all("resolved: done" in line for line in everything)  # the newest 50
