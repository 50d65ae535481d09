"""POST /slack/events: only requests signed by Slack, recently, and only once, are acted on.

"Acted on" is read from the database and from the replies at the Slack stand-in. To show that a refused
request did nothing, a correctly signed marker command is sent after it and its reply awaited: work the
refused request had started would have landed by then.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa

from app.main import create_app
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack
from tests.security.conftest import row_counts, slack_headers
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
SECRET = "slack-signing-secret-9b1f0c2d7e"
OTHER_SECRET = "another-signing-secret-4a6e8c"
Headers = list[tuple[str, str]]


class Slack:
    def __init__(self, url: str, fake: FakeSlack, database_url: str) -> None:
        self.url, self.fake, self.database_url = url, fake, database_url
        self._markers = itertools.count(1)

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

    def post(self, body: str, headers: dict[str, str] | Headers) -> httpx.Response:
        return httpx.post(f"{self.url}/slack/events", content=body, headers=headers, timeout=10)

    def incidents(self) -> int:
        return row_counts(self.database_url)["incident"]

    def titles(self) -> list[str]:
        engine = sa.create_engine(self.database_url)
        with engine.connect() as connection:
            titles = connection.execute(sa.text("SELECT title FROM incident ORDER BY id")).scalars().all()
        engine.dispose()
        return list(titles)

    def replies(self) -> int:
        return len(self.fake.called("/response/cmd"))

    def marker(self) -> str:
        """A correctly signed declare, sent after whatever is under test; returns once it is stored."""
        title = f"marker {next(self._markers)}"
        body = self.declare_body(title)
        assert self.post(body, slack_headers(body, SECRET)).status_code == 200
        wait_until(
            lambda: any(title in r.get("text", "") for r in self.fake.called("/response/cmd")),
            what=f"the reply to {title}",
        )
        return title


def as_list(headers: dict[str, str]) -> Headers:
    return list(headers.items())


def with_header(headers: dict[str, str], name: str, *values: str) -> Headers:
    """`headers` with `name` sent once per value, in that order (a repeated header)."""
    return [(k, v) for k, v in headers.items() if k != name] + [(name, v) for v in values]


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


def forged_headers(slack: Slack, body: str, forgery: str) -> dict[str, str] | Headers:
    now = int(time.time())
    good = slack_headers(body, SECRET)
    signature, timestamp = good["X-Slack-Signature"], good["X-Slack-Request-Timestamp"]
    without = {k: v for k, v in good.items() if k not in ("X-Slack-Signature", "X-Slack-Request-Timestamp")}

    def signed_over(stamp: str) -> dict[str, str]:
        # A correct HMAC over a timestamp spelled some other way than Slack spells it.
        digest = hmac.new(SECRET.encode(), f"v0:{stamp}:{body}".encode(), hashlib.sha256).hexdigest()
        return {**without, "X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}"}

    cases: dict[str, dict[str, str] | Headers] = {
        "wrong secret": slack_headers(body, OTHER_SECRET),
        "signature of another body": slack_headers(slack.declare_body("other"), SECRET),
        "no signature": {k: v for k, v in good.items() if k != "X-Slack-Signature"},
        "no timestamp": {k: v for k, v in good.items() if k != "X-Slack-Request-Timestamp"},
        "garbage signature": {**good, "X-Slack-Signature": "v0=00"},
        "signature in upper case": {**good, "X-Slack-Signature": "v0=" + signature[3:].upper()},
        "signature repeated, junk first": with_header(good, "X-Slack-Signature", "v0=00", signature),
        "signature repeated, both valid": with_header(good, "X-Slack-Signature", signature, signature),
        "timestamp repeated, junk first": with_header(good, "X-Slack-Request-Timestamp", "x", timestamp),
        "timestamp with a plus sign": signed_over(f"+{timestamp}"),
        "timestamp with a fraction": signed_over(f"{timestamp}.5"),
        "timestamp with digit separators": signed_over(f"{timestamp[:5]}_{timestamp[5:]}"),
        "non-numeric timestamp": {**good, "X-Slack-Request-Timestamp": "yesterday"},
        # Correctly signed, but outside Slack's five minutes: what a captured request looks like later.
        "stale by 6 minutes": slack_headers(body, SECRET, now - 360),
        "from 6 minutes in the future": slack_headers(body, SECRET, now + 360),
    }
    return cases[forgery]


FORGERIES = [
    "wrong secret",
    "signature of another body",
    "no signature",
    "no timestamp",
    "garbage signature",
    "signature in upper case",
    "signature repeated, junk first",
    "signature repeated, both valid",
    "timestamp repeated, junk first",
    "timestamp with a plus sign",
    "timestamp with a fraction",
    "timestamp with digit separators",
    "non-numeric timestamp",
    "stale by 6 minutes",
    "from 6 minutes in the future",
]


@pytest.mark.parametrize("forgery", FORGERIES)
def test_forged_stale_or_ambiguous_requests_get_401_and_change_nothing(slack: Slack, forgery: str) -> None:
    body = slack.declare_body("forged")
    response = slack.post(body, forged_headers(slack, body, forgery))
    assert response.status_code == 401, response.text
    assert response.json()["detail"]  # a short reason, e.g. "X-Slack-Signature header repeated"
    slack.marker()
    assert slack.titles() == ["marker 1"]
    assert slack.replies() == 1  # the marker's reply only


def test_refusals_name_the_header_and_log_no_traceback(
    slack: Slack, caplog: pytest.LogCaptureFixture
) -> None:
    """Unauthenticated requests must not be able to flood the logs: no traceback, nothing above info."""
    body = slack.declare_body("flood")
    good = slack_headers(body, SECRET)
    caplog.set_level(logging.DEBUG)
    for _ in range(20):
        response = slack.post(body, {**good, "X-Slack-Request-Timestamp": "not-a-number"})
        assert response.status_code == 401
        assert response.json() == {"detail": "X-Slack-Request-Timestamp is not a Unix time in digits"}
    repeated = slack.post(body, with_header(good, "X-Slack-Signature", "v0=00", good["X-Slack-Signature"]))
    assert repeated.json() == {"detail": "X-Slack-Signature header repeated"}
    assert [r for r in caplog.records if r.exc_info] == []
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []


def test_a_replayed_request_is_not_acted_on_twice(slack: Slack) -> None:
    body = slack.declare_body("replayed")
    headers = slack_headers(body, SECRET)
    assert slack.post(body, headers).status_code == 200
    wait_until(lambda: slack.replies() == 1, what="reply to the first delivery")
    assert slack.incidents() == 1

    # The same bytes and signature again, well inside the five minutes: a captured request replayed.
    replay = slack.post(body, headers)
    assert replay.status_code == 200  # acknowledged, so that Slack would not retry it either
    slack.marker()
    assert slack.titles() == ["replayed", "marker 1"]
    assert slack.replies() == 2  # the first delivery's and the marker's

    # A new delivery of the same command (new timestamp, new signature) is a new request.
    fresh = slack_headers(body, SECRET, int(time.time()) + 1)
    assert slack.post(body, fresh).status_code == 200
    wait_until(lambda: slack.titles() == ["replayed", "marker 1", "replayed"], what="the fresh declare")


def test_one_signed_request_is_acted_on_once_however_its_headers_are_laid_out(slack: Slack) -> None:
    """A captured request replayed with its signature and timestamp repeated or reordered around junk:
    each layout is refused or recognised as the replay it is, so one signature declares once."""
    body = slack.declare_body("captured")
    good = slack_headers(body, SECRET)
    signature, timestamp = good["X-Slack-Signature"], good["X-Slack-Request-Timestamp"]
    layouts: list[Headers] = [
        as_list(good),
        with_header(good, "X-Slack-Signature", "v0=00", signature),
        with_header(good, "X-Slack-Signature", "v0=" + "0" * 64, signature),
        with_header(good, "X-Slack-Signature", signature, signature),
        with_header(good, "X-Slack-Request-Timestamp", "0", timestamp),
        with_header(good, "X-Slack-Request-Timestamp", timestamp, timestamp),
        [(k.lower(), v) for k, v in good.items()],
        as_list(good),
    ]
    statuses = [slack.post(body, layout).status_code for layout in layouts]
    assert statuses[0] == 200 and statuses[-1] == 200  # the delivery, then its exact replay
    assert set(statuses[1:-1]) <= {200, 401}
    slack.marker()
    assert slack.titles() == ["captured", "marker 1"]
    assert slack.replies() == 2
