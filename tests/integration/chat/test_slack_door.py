"""What the Slack door makes of signed bodies: commands that mention "payload", real interactive payloads,
bodies of the wrong shape, numbers no row can have, and failures nobody foresaw."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld, sign
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
HUGE = "99999999999999999999"  # past 2**63: SQLite cannot bind it, PostgreSQL's integer overflows


def serve(tmp_path: Path, **overrides: Any) -> Iterator[SlackWorld]:
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel="C-INCIDENTS",
            **overrides,
        )
        with UvicornThread(create_app(settings)) as server:
            yield SlackWorld(server, slack, settings.database_url)


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[SlackWorld]:
    yield from serve(tmp_path, database_url=database_url)


def post_signed(world: SlackWorld, body: str, content_type: str) -> httpx.Response:
    headers = {**sign(body), "Content-Type": content_type}
    return httpx.post(f"{world.server.url}/slack/events", content=body, headers=headers, timeout=10)


def test_a_command_whose_text_says_payload_is_still_a_command(world: SlackWorld) -> None:
    declared = world.run("/incident", "declare payload size grew SEV2")
    assert declared["text"] == "You declared incident #1 (SEV2): payload size grew"
    noted = world.run("/incident", "note 1 payload=big; the payload field doubled")
    assert (noted["response_type"], noted["text"]) == (
        "ephemeral",
        "You noted on incident #1: payload=big; the payload field doubled",
    )
    note = "SELECT text FROM timeline_event WHERE incident_id = 1 AND kind = 'note'"
    assert world.scalar(note) == "payload=big; the payload field doubled"


def test_a_button_click_is_read_from_its_interactive_payload(world: SlackWorld) -> None:
    """The other side: a real click (form field `payload` holding JSON) still reaches its listener."""
    world.run("/incident", "declare clicked")
    seen = len(world.slack.called("/response/cmd"))
    assert world.button("incident_ack", "1", user="U5").status_code == 200
    assert world.reply(seen)["text"] == "You moved incident #1 to acknowledged."
    assert world.scalar("SELECT status FROM incident WHERE id = 1") == "acknowledged"


@pytest.mark.parametrize(
    ("body", "content_type", "reason"),
    [
        ("payload=not-json", "application/x-www-form-urlencoded", "payload is not valid JSON"),
        (
            urlencode({"payload": "[1, 2]"}),
            "application/x-www-form-urlencoded",
            "payload is not a JSON object",
        ),
        ("[1, 2]", "application/json", "body is not a JSON object"),
        ("{not json", "application/json", "body is not valid JSON"),
        ("command=%2Fincident&command=%2Fslo", "application/x-www-form-urlencoded", "repeated"),
        (
            urlencode({"payload": json.dumps({"type": "block_actions", "team": 7, "user": {"id": "U1"}})}),
            "application/x-www-form-urlencoded",
            "field 'team' must be an id or an object",
        ),
        (
            urlencode({"payload": json.dumps({"type": "block_actions", "actions": {"action_id": "x"}})}),
            "application/x-www-form-urlencoded",
            "field 'actions' must be a list of objects",
        ),
        (
            json.dumps({"type": "event_callback", "authorizations": [7], "event": {"type": "x"}}),
            "application/json",
            "field 'authorizations' must be a list of objects",
        ),
        ("<xml/>", "text/xml", "Content-Type must be"),
    ],
)
def test_a_signed_body_of_the_wrong_shape_is_a_4xx_naming_it(
    world: SlackWorld, body: str, content_type: str, reason: str
) -> None:
    response = post_signed(world, body, content_type)
    assert 400 <= response.status_code < 500, response.text
    assert reason in response.json()["detail"]


@pytest.mark.parametrize(
    "text",
    [
        f"show {HUGE}",
        f"ack {HUGE}",
        f"resolve {HUGE}",
        f"status {HUGE} resolved",
        f"sev {HUGE} SEV1",
        f"assign {HUGE} <@U2>",
        f"note {HUGE} too big",
        f"postmortem {HUGE}",
        "show 2147483648",
        "show -3",
        "show 0",
        "show ²",
    ],
)
def test_an_incident_number_no_row_can_have_gets_a_private_answer(world: SlackWorld, text: str) -> None:
    reply = world.run("/incident", text)
    shown = text.split()[1]
    assert reply == {
        "text": f"`{shown}` is not an incident number (1 to 2147483647)\n" + USAGE,
        "response_type": "ephemeral",
    }


USAGE = (
    "Usage: /incident help | list [open|all] [service] | show ID | declare TITLE [SEV1-4] | ack ID | "
    "assign ID @user | sev ID SEVn | status ID STATUS | note ID TEXT | resolve ID | postmortem ID"
)


@pytest.mark.parametrize(("action", "what"), [("incident_ack", "incident"), ("rollback_confirm", "rollback")])
def test_a_button_carrying_a_huge_number_gets_a_private_answer(
    world: SlackWorld, action: str, what: str
) -> None:
    seen = len(world.slack.called("/response/cmd"))
    assert world.button(action, HUGE).status_code == 200
    reply = world.reply(seen)
    assert reply["response_type"] == "ephemeral"
    assert reply["text"].startswith(f"`{HUGE}` is not an {what} number (1 to 2147483647)")


def test_an_unforeseen_failure_is_answered_with_an_error_id_logged_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The review draft's folder is a file: writing the draft fails in a way no listener expects."""
    blocked = tmp_path / "postmortems-is-a-file"
    blocked.write_text("not a folder")
    for world in serve(tmp_path, postmortem_dir=blocked):
        world.run("/incident", "declare drafts cannot be written")
        caplog.clear()
        caplog.set_level(logging.INFO)
        reply = world.run("/incident", "postmortem 1")
        assert reply["response_type"] == "ephemeral"
        match = re.fullmatch(
            r"Something went wrong \(error id ([0-9a-f]{8})\); it is logged under that id\.", reply["text"]
        )
        assert match is not None, reply["text"]
        failures = [r for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(failures) == 1, [r.getMessage() for r in failures]
        assert getattr(failures[0], "error_id", None) == match.group(1)
        assert failures[0].exc_info is not None  # the traceback, once, under that id
