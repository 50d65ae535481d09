"""No text that came from an alert, an API caller or a Slack user can ping anyone.

Every field sloguard shows is filled with Slack control sequences (`<!channel>`, `<!here>`, `<!everyone>`,
`<!subteam^…>`, `<@…>`, `<#…>`, a disguised link) and bare `@here`-style words, sent through the real
doors (the Alertmanager webhook, the API, slash commands, buttons, a rollback), and every message the
service then sends to the Slack stand-in is read back. The only mentions allowed are the ones sloguard
itself means: the people who acted (signed by Slack, or the owner of the API token), and a commander
field that holds a Slack user id. An API caller cannot name a hostile actor at all: the actor is the
token's owner, and a body `actor` naming anyone else is refused with nothing stored or sent.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.main import create_app
from tests.conftest import REPO, WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.fakes.slack import FakeSlack
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
YAML = f"""
slack:
  oncall_groups: {{C-INCIDENTS: S0NCALL}}
models:
  fraud-detector:
    environments:
      prod:
        target: {{kind: command, argv: ["{sys.executable}", "-c", "pass", "{{to}}"]}}
        rollback: [U1, U2]
        two_person: true
"""
# One hostile value per field, each with its own tag so the test can tell that the field was shown.
HOSTILE = {
    "alert summary": "<!channel> alert-summary",
    "alert description": "<@UALERT> alert-description <http://evil.example/login|your dashboard>",
    "alert name": "Spike<!here>alertname",
    "alert service": "<!subteam^SALERT> alert-service",
    "title": "<!everyone> api-title @here",
    "summary": "<#CAPI|general> api-summary @channel <!date^1392734382^{date}|x>",
    "service": "<!subteam^SAPI|oncall> api-service",
    "model": "<@UMODEL> api-model",
    "commander": "<!channel> api-commander",
    "patched summary": "<@UPATCH> patched-summary",
    "patched commander": "<!here> patched-commander",
    "api note": "<!everyone> api-note",
    "slack note": "<!channel> slack-note <https://evil.example|click>",
    "slack title": "<!here> slack-title @everyone",
    "suspect version": "<!channel>",
    "typed model": "<@UTYPED>",
}
# Mentions sloguard means: the users who acted (Slack's signed user_id, or the API token's owner, U1) and
# a commander that is an id.
ALLOWED = {"<@U1>", "<@U2>", "<@U7>"}
BARE_BROADCAST = re.compile(r"@(here|channel|everyone)\b", re.IGNORECASE)
# The times sloguard writes itself, shown in each reader's time zone (app/chat/blocks.when); the hostile
# summary's own `<!date…>` has another shape, and must arrive as text.
OWN_DATE = re.compile(r"<!date\^\d+\^\{date_short\} \{time\}\|\d{4}-\d\d-\d\d \d\d:\d\d UTC>")


def mrkdwn_texts(value: Any) -> Iterator[str]:
    """Every string in a message that Slack parses as mrkdwn (plain_text objects it never parses)."""
    if isinstance(value, dict):
        if value.get("type") == "mrkdwn" and isinstance(value.get("text"), str):
            yield value["text"]
        for key, item in value.items():
            if key != "text" or not isinstance(item, str):
                yield from mrkdwn_texts(item)
    elif isinstance(value, list):
        for item in value:
            yield from mrkdwn_texts(item)


def sent(slack: FakeSlack) -> list[tuple[str, dict[str, Any]]]:
    methods = ("chat.postMessage", "chat.update", "chat.postEphemeral", "/response/cmd")
    return [(method, params) for method, params in list(slack.calls) if method in methods]


def texts_of(params: dict[str, Any]) -> list[str]:
    top = [params["text"]] if isinstance(params.get("text"), str) else []
    return top + list(mrkdwn_texts(params.get("blocks") or []))


class Hostile:
    def __init__(self, world: SlackWorld) -> None:
        self.world, self.url = world, world.server.url
        # The API caller: U1's personal token (the actor of its changes is U1, a Slack user id).
        self.headers = bearer(personal_token(world.database_url, "U1", "respond"))

    def api(self, method: str, path: str, **kwargs: Any) -> Any:
        response = httpx.request(method, f"{self.url}{path}", headers=self.headers, timeout=15, **kwargs)
        assert response.is_success, response.text
        return response.json()

    def changes(self, incident: int) -> tuple[Any, Any]:
        """The incident's recorded changes, and the thread replies queued for Slack about it (evidence
        gathered in the background adds neither)."""
        recorded = self.world.scalar(
            f"SELECT count(*) FROM timeline_event WHERE incident_id = {incident}"
            " AND kind IN ('status', 'update')"
        )
        queued = self.world.scalar(
            f"SELECT count(*) FROM outbox WHERE incident_id = {incident} AND kind = 'slack.thread'"
        )
        return recorded, queued

    def refused_actor(self, incident: int, body: dict[str, Any]) -> None:
        """A PATCH whose body names a hostile `actor`: 403, and nothing stored or queued for Slack."""
        path = f"/api/v1/incidents/{incident}"
        before, shown = self.changes(incident), self.api("GET", path)
        response = httpx.patch(f"{self.url}{path}", json=body, headers=self.headers, timeout=15)
        assert response.status_code == 403, response.text
        assert response.json()["detail"].startswith("actor:"), response.text
        assert self.changes(incident) == before
        after = self.api("GET", path)
        fields = [key for key in body if key != "actor"]
        assert [after[key] for key in fields] == [shown[key] for key in fields]

    def alert(self) -> None:
        payload = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
        labels = {"alertname": HOSTILE["alert name"], "service": HOSTILE["alert service"], "severity": "page"}
        annotations = {"summary": HOSTILE["alert summary"], "description": HOSTILE["alert description"]}
        payload["alerts"][0] |= {"labels": labels, "annotations": annotations}
        payload |= {"commonLabels": labels, "groupLabels": labels, "commonAnnotations": annotations}
        response = httpx.post(
            f"{self.url}/webhooks/alertmanager",
            json=payload,
            headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
            timeout=15,
        )
        assert response.status_code == 200, response.text

    def suspect(self, incident: int, version: str) -> None:
        """The version the incident's evidence names as the suspect (a metric label value, in real life).
        Added once the background evidence is stored, which replaces the incident's version rows."""
        wait_until(
            lambda: any(
                e["kind"] == "evidence_missing"
                for e in self.api("GET", f"/api/v1/incidents/{incident}")["timeline"]
            ),
            timeout=30,
            what="the background evidence",
        )
        engine = sa.create_engine(self.world.database_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO model_version_link (incident_id, model, version, role, source, detail,"
                    " created_at) VALUES (:incident, 'fraud-detector', :version, 'suspect', 'prometheus',"
                    " '{}', :now)"
                ),
                {"incident": incident, "version": version, "now": datetime.now(UTC)},
            )
        engine.dispose()


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[SlackWorld]:
    (tmp_path / "sloguard.yaml").write_text(YAML)
    with FakeSlack() as slack:
        settings = make_settings(
            tmp_path,
            database_url=database_url,
            slack_bot_token=TOKEN,
            slack_signing_secret=SECRET,
            slack_api_url=slack.api_url(),
            slack_channel="C-INCIDENTS",
        )
        with UvicornThread(create_app(settings)) as server:
            yield SlackWorld(server, slack, settings.database_url)


def test_no_untrusted_text_reaches_slack_as_a_mention_or_link(world: SlackWorld) -> None:
    hostile = Hostile(world)
    hostile.alert()  # incident 1, from an alert's labels and annotations
    created = {
        "title": HOSTILE["title"],
        "summary": HOSTILE["summary"],
        "service": HOSTILE["service"],
        "model": HOSTILE["model"],
        "commander": HOSTILE["commander"],
    }
    assert hostile.api("POST", "/api/v1/incidents", json=created)["id"] == 2
    third = {"title": "rollback target", "model": "fraud-detector", "commander": "U7"}
    assert hostile.api("POST", "/api/v1/incidents", json=third)["id"] == 3
    hostile.suspect(3, HOSTILE["suspect version"])

    # Updates thread their changes under the incident message and re-render it.
    patch = {"summary": HOSTILE["patched summary"], "commander": HOSTILE["patched commander"]}
    # A hostile actor cannot be named: refused, and nothing of the change is stored or sent.
    hostile.refused_actor(2, patch | {"actor": "<!channel>"})
    hostile.refused_actor(2, {"status": "acknowledged", "actor": "<!here>"})
    hostile.api("PATCH", "/api/v1/incidents/2", json=patch)
    hostile.api("PATCH", "/api/v1/incidents/2", json={"status": "acknowledged"})
    hostile.api("POST", "/api/v1/incidents/2/timeline", json={"text": HOSTILE["api note"]})
    hostile.api("PATCH", "/api/v1/incidents/3", json={"severity": "SEV1"})  # re-renders the suspect

    # Slash commands and buttons: replies to the person, and to the channel.
    world.run("/incident", f"note 2 {HOSTILE['slack note']}")
    world.run("/incident", f"declare {HOSTILE['slack title']}")
    for text in ("show 1", "show 2", "list all"):
        world.run("/incident", text)
    world.run("/rollback", HOSTILE["typed model"])  # refused: no such model (the reply quotes it)
    seen = len(world.slack.called("/response/cmd"))
    world.button("incident_rollback", "2:3", user="U1")  # incident 2 names a model sloguard does not know
    world.reply(seen)

    # A rollback proposed against the hostile suspect version, confirmed by the second person.
    proposal = world.run("/rollback", "fraud-detector prod to 3", user="U1")
    assert proposal["response_type"] == "in_channel"  # two_person: posted where U2 can click
    seen = len(world.slack.called("/response/cmd"))
    world.button("rollback_confirm", proposal["blocks"][-1]["elements"][0]["value"], user="U2")
    done = world.reply(seen)
    assert done["response_type"] == "ephemeral", done  # the thread tells the channel

    # The notifier sends in order from one worker: a last incident's message means all before it went out.
    hostile.api("POST", "/api/v1/incidents", json={"title": "last one"})
    wait_until(
        lambda: any("last one" in p.get("text", "") for _, p in sent(world.slack)),
        timeout=15,
        what="the last incident's message",
    )

    messages = sent(world.slack)
    every_text = [text for _, params in messages for text in texts_of(params)]
    assert [p for _, p in messages if "link_names" in p or p.get("parse") not in (None, "none")] == []
    parseable = sorted(
        {
            (method, found)
            for method, params in messages
            for text in texts_of(params)
            for found in [*re.findall(r"<[^<>]*>", text), *(m[0] for m in BARE_BROADCAST.finditer(text))]
            if found not in ALLOWED and not OWN_DATE.fullmatch(found)
        }
    )
    assert parseable == []
    # Each hostile value was shown whole, as text, so every path above was really taken. (An invisible
    # word joiner may follow an @: it is what keeps `@here` from being a word Slack could link.)
    shown = "\n".join(every_text).replace("\u2060", "")
    for field, value in HOSTILE.items():
        escaped = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
        assert escaped in shown, f"{field} ({value!r}) never reached Slack as text"
    assert "&lt;!channel&gt; api-commander" in shown  # the free-text commander, as text
    assert "now serves 3 (was &lt;!channel&gt;)" in shown  # the suspect version in the confirm text
    assert "*Commander*\n<@U7>" in shown  # a commander that is a Slack user id stays a mention
