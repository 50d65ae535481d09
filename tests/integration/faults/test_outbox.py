"""Nothing lost after a 2xx: a real `sloguard serve` (SQLite) with the Slack Web API refusing, rate
limiting, and the process SIGKILLed at the worst moments. Every consequence of a 200 arrives exactly once.

Slack is the wire-level stand-in (`tests/fakes/slack.py`): it keeps the messages the way Slack does,
answers `conversations.history` with their metadata, and can go down, answer 429, or take a post and
withhold the answer.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.alertmanager import group_notification
from tests.conftest import API_TOKEN, WEBHOOK_TOKEN, bearer, personal_token
from tests.fakes.slack import FakeSlack
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.integration
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
CHANNEL = "C0INCIDENTS"


class Service:
    """`sloguard serve` on a SQLite file (or `database_url`), started and SIGKILLed at will; its
    database outlives it."""

    def __init__(self, folder: Path, slack: FakeSlack, database_url: str | None = None) -> None:
        self.folder, self.slack = folder, slack
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.database_url = database_url or f"sqlite:///{folder / 'sloguard.db'}"
        (folder / "postmortems").mkdir()
        # A model the incidents match, so evidence gathering runs (its Prometheus does not answer:
        # what could not be had is noted, once per gathering).
        config = {"models": {"svc-model": {"services": ["svc-1", "svc-2", "svc-3"]}}}
        (folder / "sloguard.yaml").write_text(yaml.safe_dump(config))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")} | {
            "SLOGUARD_DATABASE_URL": self.database_url,
            "SLOGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "SLOGUARD_API_TOKEN": API_TOKEN,
            "SLOGUARD_SLO_DIR": str(folder / "no-slos"),
            "SLOGUARD_RUNBOOK_DIR": str(folder / "runbooks"),
            "SLOGUARD_POSTMORTEM_DIR": str(folder / "postmortems"),
            "SLOGUARD_CONFIG_FILE": str(folder / "sloguard.yaml"),
            "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",
            "SLOGUARD_SOURCE_TIMEOUT": "2",  # also the Slack client's timeout
            "SLOGUARD_SLACK_BOT_TOKEN": "xoxb-outbox-test",
            "SLOGUARD_SLACK_SIGNING_SECRET": "outbox-signing-secret-0123456789",
            "SLOGUARD_SLACK_API_URL": slack.api_url(),
            "SLOGUARD_SLACK_CHANNEL": CHANNEL,
            "SLOGUARD_LOG_FORMAT": "text",
        }
        self.log = (folder / "serve.log").open("ab")
        self.process: subprocess.Popen[bytes] | None = None
        self.responder: dict[str, str] | None = None  # U0ANA's personal token, made on first use

    def start(self) -> None:
        self.process = subprocess.Popen(
            [SLOGUARD, "serve", "--port", str(self.port)],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_until(self.ready, timeout=60, interval=0.2, what="sloguard serve")

    def ready(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise RuntimeError(f"sloguard exited: {(self.folder / 'serve.log').read_text()[-3000:]}")
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()

    def notify(self, group: int, alerts: int = 2, status: str = "firing") -> dict[str, Any]:
        body = group_notification(group, alerts, "Outbox")
        if status == "resolved":
            body["status"] = "resolved"
            for alert in body["alerts"]:
                alert["status"], alert["endsAt"] = "resolved", "2026-11-26T01:30:00Z"
        response = httpx.post(f"{self.url}/webhooks/alertmanager", json=body, headers=HOOK, timeout=30)
        assert response.status_code == 200, response.text
        return dict(response.json())

    def patch(self, incident_id: int, **fields: Any) -> None:
        """Change the incident as U0ANA (the actor is the token's owner)."""
        if self.responder is None:
            self.responder = bearer(personal_token(self.database_url, "U0ANA", "respond"))
        response = httpx.patch(
            f"{self.url}/api/v1/incidents/{incident_id}", json=fields, headers=self.responder
        )
        assert response.status_code == 200, response.text

    def scalar(self, sql: str, **params: Any) -> Any:
        engine = sa.create_engine(self.database_url)
        try:
            with engine.connect() as connection:
                return connection.execute(sa.text(sql), params).scalar()
        finally:
            engine.dispose()

    def undelivered(self) -> int:
        count: int = self.scalar("SELECT count(*) FROM outbox WHERE state != 'done'")
        return count


@pytest.fixture
def world(tmp_path: Path) -> Iterator[tuple[Service, FakeSlack]]:
    with FakeSlack() as slack:
        service = Service(tmp_path, slack)
        try:
            yield service, slack
        finally:
            service.stop()


def incident_messages(slack: FakeSlack, incident_id: int) -> list[dict[str, Any]]:
    """Top-level messages in the channel that carry this incident's metadata (what Slack shows)."""
    return [
        message
        for message in slack.messages(CHANNEL)
        if (message.get("metadata") or {}).get("event_payload", {}).get("incident_id") == incident_id
    ]


def test_slack_refusing_connections_for_30_s_then_the_message_is_posted_once_and_followed(
    world: tuple[Service, FakeSlack],
) -> None:
    service, slack = world
    service.start()
    slack.down()
    went_down = time.monotonic()
    assert service.notify(1)["created"] is True  # stored and answered while Slack refuses

    # While it waits, the backlog is visible and sloguard stays ready.
    def backlog() -> dict[str, Any]:
        ready = httpx.get(f"{service.url}/readyz", timeout=5)
        assert ready.status_code == 200, ready.text
        found: dict[str, Any] = ready.json()["outbox"]
        return found

    wait_until(lambda: backlog()["by_kind"].get("slack.post", {}).get("pending") == 1, timeout=15)
    assert backlog()["oldest_age_seconds"] >= 0
    metrics = httpx.get(f"{service.url}/metrics", timeout=5).text
    assert 'sloguard_outbox_pending{kind="slack.post"} 1.0' in metrics, metrics[-2000:]
    assert "sloguard_outbox_oldest_age_seconds" in metrics
    wait_until(lambda: time.monotonic() - went_down >= 30, timeout=40, interval=0.5, what="30 s of refusals")
    slack.up()
    back = time.monotonic()
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=15), "not posted within 15 s"
    posted_after = time.monotonic() - back
    sys.stderr.write(f"posted {posted_after:.1f} s after Slack came back\n")
    (message,) = incident_messages(slack, 1)
    # Its later state lands on that message, and the thread says what changed.
    service.patch(1, status="acknowledged")
    assert slack.wait_for(
        lambda: "(acknowledged)" in (slack.message(CHANNEL, message["ts"]) or {}).get("text", ""), timeout=15
    )
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    assert len(incident_messages(slack, 1)) == 1  # after everything was delivered: still exactly one
    replies = [reply["text"] for reply in slack.thread(CHANNEL, message["ts"])]
    assert replies == ["triggered → acknowledged by <@U0ANA>"], replies
    stored_ts = service.scalar("SELECT slack_ts FROM incident WHERE id = 1")
    assert stored_ts == message["ts"]
    wait_until(lambda: backlog()["pending"] == 0, timeout=15)  # the gauges follow the drained outbox


def test_killed_right_after_the_200_and_restarted_delivers_everything_once(
    world: tuple[Service, FakeSlack],
) -> None:
    service, slack = world
    service.start()
    slack.down()  # so the Slack call cannot have happened when the process dies
    assert service.notify(2)["created"] is True
    service.kill()
    assert service.undelivered() >= 2  # the post and the evidence gathering are waiting in the outbox
    slack.up()
    service.start()
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=20), "never posted after the restart"
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    # Evidence gathered and recorded once: one note per source that could not be asked.
    missing = service.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'evidence_missing'")
    distinct = service.scalar(
        "SELECT count(DISTINCT text) FROM timeline_event WHERE kind = 'evidence_missing'"
    )
    assert missing == distinct and missing >= 1, (missing, distinct)
    # Resolved: the review draft is written once, and the resolution lands on the one message.
    service.patch(1, status="resolved")
    assert slack.wait_for(
        lambda: service.undelivered() == 0 and list((service.folder / "postmortems").glob("*.md")), timeout=30
    )
    drafts = list((service.folder / "postmortems").glob("*-1-*.md"))
    assert len(drafts) == 1, drafts
    notes = service.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'postmortem'")
    assert notes == 1
    (message,) = incident_messages(slack, 1)
    assert "(resolved)" in message["text"]


def test_killed_after_slack_took_the_post_but_before_the_answer_was_stored_posts_once(
    world: tuple[Service, FakeSlack],
) -> None:
    service, slack = world
    service.start()
    slack.hold_answer("chat.postMessage")  # Slack posts it, the answer never comes back
    assert service.notify(3)["created"] is True
    assert slack.held.wait(15), "the post never reached Slack"
    service.kill()
    slack.release()
    assert len(incident_messages(slack, 1)) == 1  # Slack has it; sloguard does not know
    assert service.scalar("SELECT slack_ts FROM incident WHERE id = 1") is None
    service.start()
    assert slack.wait_for(lambda: service.scalar("SELECT slack_ts FROM incident WHERE id = 1"), timeout=20)
    (message,) = incident_messages(slack, 1)
    assert service.scalar("SELECT slack_ts FROM incident WHERE id = 1") == message["ts"]
    # The restarted process looked before it posted, and its later updates land on that one message.
    assert slack.called("conversations.history"), "the unknown outcome was not looked up"
    service.patch(1, severity="SEV1")
    assert slack.wait_for(
        lambda: "[SEV1]" in (slack.message(CHANNEL, message["ts"]) or {}).get("text", ""), timeout=15
    )
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    assert len(incident_messages(slack, 1)) == 1


def test_slack_answering_429_is_not_called_again_before_its_retry_after(
    world: tuple[Service, FakeSlack],
) -> None:
    service, slack = world
    service.start()
    slack.rate_limit(1, retry_after=3)
    assert service.notify(1)["created"] is True
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=20)
    calls = [(at, method) for at, method, _ in slack.log if method.startswith(("chat.", "conversations."))]
    limited_at = calls[0][0]
    assert calls[0][1] == "chat.postMessage"
    later = [at - limited_at for at, _ in calls[1:]]
    assert later, "delivered without a second call"
    assert min(later) >= 3.0, later  # nothing before Retry-After had passed
    assert len(incident_messages(slack, 1)) == 1


def test_an_incident_channel_whose_name_is_taken_is_found_and_used_once(tmp_path: Path) -> None:
    with FakeSlack() as slack:
        service = Service(tmp_path, slack)
        config = yaml.safe_load((tmp_path / "sloguard.yaml").read_text())
        config["slack"] = {"incident_channels": True, "responders": ["U0ANA", "U0BOB"]}
        (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump(config))
        # Someone (or an earlier attempt whose answer was lost) made the channel already.
        taken = slack.answer("conversations.create", {"name": "inc-1-outbox1"})
        assert taken["ok"], taken
        try:
            service.start()
            assert service.notify(1)["created"] is True
            assert slack.wait_for(
                lambda: service.undelivered() == 0 and slack.called("chat.postMessage"), timeout=30
            )
            room = taken["channel"]["id"]
            (invite,) = slack.called("conversations.invite")
            assert invite["channel"] == room and invite["users"] == "U0ANA,U0BOB"
            assert len(slack.messages(room)) == 1  # the copy, in the channel that was there
            (message,) = incident_messages(slack, 1)
            links = [reply["text"] for reply in slack.thread(CHANNEL, message["ts"])]
            assert links == [f"Working channel: <#{room}>"]
            assert len([c for c in slack.channels() if c.get("name") == "inc-1-outbox1"]) == 1
        finally:
            service.stop()


def test_work_from_before_the_outbox_is_posted_and_verified_after_the_upgrade(
    world: tuple[Service, FakeSlack],
) -> None:
    """A database at migration 0008 (no outbox) holds an open incident that never reached Slack and a
    change whose watch time is over but that nobody verified (its timer died with the old version)."""
    from datetime import UTC, datetime, timedelta

    from sqlmodel import Session

    from app import db
    from app.rollback.models import RollbackAction

    service, slack = world
    engine = db.make_engine(service.database_url)
    try:
        db.upgrade(engine, "0008_installation")
        opened = datetime.now(UTC) - timedelta(hours=1)
        # The incident table as 0008 left it (today's model has columns it lacks), written like 0.3 did.
        table = sa.Table("incident", sa.MetaData(), autoload_with=engine)
        with Session(engine) as session:
            incident_id = session.execute(
                table.insert()
                .values(
                    key="alertmanager:before-the-outbox",
                    title="scoring errors",
                    severity="SEV2",
                    status="triggered",
                    source="alertmanager",
                    service="svc-1",
                    started_at=opened,
                    detected_at=opened,
                    created_at=opened,
                    updated_at=opened,
                )
                .returning(table.c.id)
            ).scalar_one()
            session.add(
                RollbackAction(
                    idempotency_key="before-the-outbox",
                    incident_id=incident_id,
                    model="svc-model",
                    environment="prod",
                    target="command",
                    from_version="4",
                    to_version="3",
                    actor="U0ANA",
                    state="succeeded",
                    finished_at=opened + timedelta(minutes=5),  # its 10 minutes of watching are long over
                )
            )
            session.commit()
    finally:
        engine.dispose()

    service.start()  # migrates to 0009 and records what the old version left undone
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=20), "the incident was never posted"
    (message,) = incident_messages(slack, 1)
    assert slack.wait_for(
        lambda: any("nothing to watch" in r["text"] for r in slack.thread(CHANNEL, message["ts"])), timeout=20
    ), "the change was never verified and announced"
    assert service.scalar("SELECT state FROM rollback_action WHERE id = 1") == "verified"
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    service.stop()
    # A second start records nothing again: still one message, one verification.
    service.log = (service.folder / "serve.log").open("ab")
    service.start()
    assert service.scalar("SELECT count(*) FROM outbox WHERE kind IN ('slack.post', 'rollback.verify')") == 2
    assert len(incident_messages(slack, 1)) == 1
