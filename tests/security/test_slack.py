"""POST /slack/events: only requests signed by Slack, recently, and only once, are acted on."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.security.conftest import row_counts, slack_headers
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
SECRET = "slack-signing-secret-9b1f0c2d7e"
OTHER_SECRET = "another-signing-secret-4a6e8c"


class Slack:
    def __init__(self, url: str, fake: FakeSlack, database_url: str) -> None:
        self.url, self.fake, self.database_url = url, fake, database_url

    def declare_body(self, title: str) -> str:
        return urlencode(
            {
                "command": "/incident",
                "text": f"declare {title} SEV2",
                "user_id": "U1",
                "channel_id": "C1",
                "team_id": "T1",
                "response_url": self.fake.response_url(),
                "trigger_id": "1.2.3",
            }
        )

    def post(self, body: str, headers: dict[str, str]) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=10)

    def incidents(self) -> int:
        return row_counts(self.database_url)["incident"]


@pytest.fixture
def slack(tmp_path: Path, database_url: str) -> Iterator[Slack]:
    with FakeSlack() as fake:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            slack_bot_token="xoxb-1111-2222-securitytests",
            slack_signing_secret=SECRET,
            slack_api_url=fake.api_url(),
        )
        with UvicornThread(create_app(settings)) as server:
            yield Slack(server.url, fake, database_url)


def test_a_correctly_signed_command_is_acted_on(slack: Slack) -> None:
    """The control for the refusals below: the same request, rightly signed, does declare."""
    body = slack.declare_body("signed")
    assert slack.post(body, slack_headers(body, SECRET)).status_code == 200
    wait_until(lambda: slack.incidents() == 1, what="declared incident")


@pytest.mark.parametrize(
    "forgery",
    [
        "wrong secret",
        "signature of another body",
        "no signature",
        "no timestamp",
        "garbage signature",
        "stale by 6 minutes",
        "from 6 minutes in the future",
    ],
)
def test_forged_or_stale_requests_get_401_and_change_nothing(slack: Slack, forgery: str) -> None:
    body = slack.declare_body("forged")
    now = int(time.time())
    headers = {
        "wrong secret": slack_headers(body, OTHER_SECRET),
        "signature of another body": {
            **slack_headers(slack.declare_body("other"), SECRET),
        },
        "no signature": {k: v for k, v in slack_headers(body, SECRET).items() if k != "X-Slack-Signature"},
        "no timestamp": {
            k: v for k, v in slack_headers(body, SECRET).items() if k != "X-Slack-Request-Timestamp"
        },
        "garbage signature": {**slack_headers(body, SECRET), "X-Slack-Signature": "v0=00"},
        # Correctly signed, but outside Slack's five minutes: what a captured request looks like later.
        "stale by 6 minutes": slack_headers(body, SECRET, now - 360),
        "from 6 minutes in the future": slack_headers(body, SECRET, now + 360),
    }[forgery]
    before = row_counts(slack.database_url)
    response = slack.post(body, headers)
    assert response.status_code == 401, response.text
    time.sleep(0.3)  # work after the ack would run now: give it the chance to show up
    assert row_counts(slack.database_url) == before
    assert slack.fake.called("/response/cmd") == []


def test_a_replayed_request_is_not_acted_on_twice(slack: Slack) -> None:
    body = slack.declare_body("replayed")
    headers = slack_headers(body, SECRET)
    assert slack.post(body, headers).status_code == 200
    wait_until(lambda: len(slack.fake.called("/response/cmd")) == 1, what="reply to the first delivery")
    assert slack.incidents() == 1

    # The same bytes and signature again, well inside the five minutes: a captured request replayed.
    replay = slack.post(body, headers)
    assert replay.status_code == 200  # acknowledged, so that Slack would not retry it either
    time.sleep(0.5)
    assert slack.incidents() == 1
    assert len(slack.fake.called("/response/cmd")) == 1

    # A new delivery of the same command (new timestamp, new signature) is a new request.
    fresh = slack_headers(body, SECRET, int(time.time()) + 1)
    assert slack.post(body, fresh).status_code == 200
    wait_until(lambda: slack.incidents() == 2, what="second, freshly signed declare")
