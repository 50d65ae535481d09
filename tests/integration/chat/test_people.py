"""People named as Slack knows them: users.info through slack-sdk against the Slack stand-in, cached in
the database, with the ID kept beside the name and standing alone when Slack cannot say."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from slack_sdk import WebClient
from sqlalchemy.engine import Engine

from app.chat import people
from app.config import load_file_config
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate, IncidentUpdate
from app.postmortems import service as postmortems
from app.services import Services, build_services
from tests.conftest import make_settings
from tests.fakes.slack import FakeSlack

pytestmark = pytest.mark.integration
TOKEN = "xoxb-1234-5678-abcdefghijkl"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
ALICE = {"id": "U0ALICE", "name": "alice", "real_name": "Alice Smith", "profile": {"display_name": "alice.s"}}
# Slack leaves display_name empty for someone who never set one: the real name is shown.
BOB = {"id": "U0BOB", "name": "bob", "profile": {"display_name": "", "real_name": "Bob Jones"}}


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        fake.users = {"U0ALICE": ALICE, "U0BOB": BOB}
        yield fake


@pytest.fixture
def services(tmp_path: Path, database_url: str, slack: FakeSlack) -> Iterator[Services]:
    settings = make_settings(
        tmp_path,
        database_url=database_url,
        slack_bot_token=TOKEN,
        slack_signing_secret="8f742231b10e8888abcd99yyyzzz85a5",
        slack_api_url=slack.api_url(),
    )
    built = build_services(settings, load_file_config(settings.config_file), [])
    yield built
    built.close()


def client(slack: FakeSlack) -> WebClient:
    return WebClient(token=TOKEN, base_url=slack.api_url(), retry_handlers=[])


def test_names_come_from_users_info_once_a_day_and_ids_stand_alone_otherwise(
    services: Services, slack: FakeSlack
) -> None:
    engine: Engine = services.engine
    ids = ["U0ALICE", "U0BOB", "U0NOBODY", "slo-engine", None]
    first = people.names(engine, client(slack), ids, NOW)
    assert first == {"U0ALICE": "alice.s", "U0BOB": "Bob Jones"}
    asked = [params["user"] for method, params in slack.calls if method == "users.info"]
    assert sorted(asked) == ["U0ALICE", "U0BOB", "U0NOBODY"]  # not the non-IDs

    # Within the day the cache answers, for the unknown one too (Slack said it has no such user).
    assert people.names(engine, client(slack), ids, NOW + timedelta(hours=23)) == first
    asked = [params["user"] for method, params in slack.calls if method == "users.info"]
    assert sorted(asked) == ["U0ALICE", "U0BOB", "U0NOBODY"]

    # Slack down: the cached names still come; without a cache or a client, only IDs.
    slack.users["U0ALICE"] = {**ALICE, "profile": {"display_name": "alice.renamed"}}
    slack.down()
    try:
        before = len(slack.calls)
        assert people.names(engine, client(slack), ids, NOW + timedelta(days=2)) == first
    finally:
        slack.up()
    assert len(slack.calls) == before  # nothing reached it
    # A day later Slack answers again and the new name replaces the old.
    assert (
        people.names(engine, client(slack), ["U0ALICE"], NOW + timedelta(days=2))["U0ALICE"]
        == "alice.renamed"
    )
    assert people.names(engine, None, ["U0CAROL"], NOW) == {}
    assert people.label(first, "U0BOB") == "Bob Jones (U0BOB)"
    assert people.label(first, "U0CAROL") == "U0CAROL"
    assert people.label(first, None) is None


def test_the_review_draft_names_people_with_their_ids(services: Services, slack: FakeSlack) -> None:
    incident = incidents.declare(
        services.engine, services.events, IncidentCreate(title="scores wrong"), NOW, actor="U0ALICE"
    )
    assert incident.id is not None
    later = NOW + timedelta(minutes=5)
    incidents.update(
        services.engine, services.events, incident.id, IncidentUpdate(commander="U0BOB"), later, actor="U0BOB"
    )
    incidents.add_note(services.engine, incident.id, "rolled the flag back", "U0NOBODY", later)
    draft = postmortems.write(services, incident.id, NOW + timedelta(minutes=10)).markdown
    # (the draft escapes Markdown: `\(` is a parenthesis)
    assert "**Authors:** Bob Jones \\(U0BOB\\) (commander)" in draft
    assert "**Responders:** alice.s \\(U0ALICE\\), Bob Jones \\(U0BOB\\), U0NOBODY" in draft
    timeline = draft.split("## Timeline", 1)[1].split("\n## ", 1)[0]
    assert "| status | alice.s \\(U0ALICE\\) | incident opened" in timeline
    assert "| U0NOBODY | rolled the flag back |" in timeline  # Slack does not know them: the ID
