"""Several `sloguard serve` processes on one real PostgreSQL: one scheduler leader, doors exactly once."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import sqlalchemy as sa
import yaml

from tests.alertmanager import group_notification
from tests.conftest import API_TOKEN, REPO, WEBHOOK_TOKEN, People, pg_schema_url
from tests.fakes.slack import FakeSlack
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SIGNING_SECRET = "replica-signing-secret-0123456789"
TAKEOVER = 3.0  # seconds: SLOGUARD_LEADER_TAKEOVER for these replicas
INTERVAL = 1.0  # seconds between SLO evaluations


class Replica:
    def __init__(self, folder: Path, env: dict[str, str], name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = folder / f"{name}.log"
        self.log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [SLOGUARD, "serve", "--port", str(self.port)], env=env, stdout=self.log, stderr=subprocess.STDOUT
        )

    def ready(self) -> bool:
        if self.process.poll() is not None:
            raise RuntimeError(f"replica exited: {self.log_path.read_text()[-2000:]}")
        return httpx.get(f"{self.url}/readyz", timeout=2).status_code == 200

    def leads(self) -> bool:
        body = httpx.get(f"{self.url}/readyz", timeout=5).json()
        leading: bool = body["scheduler"]["leader"]
        return leading

    def metric(self, name: str) -> float:
        text = httpx.get(f"{self.url}/metrics", timeout=5).text
        return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name))

    def kill(self) -> None:
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.log.close()


class Cluster:
    def __init__(self, folder: Path, database_url: str, slack: FakeSlack) -> None:
        self.folder, self.database_url, self.slack = folder, database_url, slack
        self.replicas: list[Replica] = []
        self.engine = sa.create_engine(database_url)
        # Personal tokens in the replicas' database: each request looks its token up there, on any replica.
        self.person = People(database_url)

    def env(self) -> dict[str, str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")}
        return base | {
            "SLOGUARD_DATABASE_URL": self.database_url,
            "SLOGUARD_API_TOKEN": API_TOKEN,
            "SLOGUARD_WEBHOOK_TOKEN": WEBHOOK_TOKEN,
            "SLOGUARD_PROMETHEUS_URL": "http://127.0.0.1:9",  # nothing listens: cycles store source_error
            "SLOGUARD_SOURCE_TIMEOUT": "3",  # also the Slack client timeout: the Slack test delays calls
            "SLOGUARD_SLO_DIR": str(self.folder / "slo"),
            "SLOGUARD_RUNBOOK_DIR": str(self.folder / "runbooks"),
            "SLOGUARD_POSTMORTEM_DIR": str(self.folder / "postmortems"),
            "SLOGUARD_CONFIG_FILE": str(self.folder / "sloguard.yaml"),
            "SLOGUARD_EVAL_INTERVAL": str(INTERVAL),
            "SLOGUARD_LEADER_TAKEOVER": str(TAKEOVER),
            "SLOGUARD_SLACK_BOT_TOKEN": "xoxb-replica-test",
            "SLOGUARD_SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "SLOGUARD_SLACK_API_URL": self.slack.api_url(),
            "SLOGUARD_SLACK_CHANNEL": "C-INCIDENTS",
            "SLOGUARD_LOG_FORMAT": "text",
        }

    def start(self, count: int) -> list[Replica]:
        started = [
            Replica(self.folder, self.env(), f"replica-{len(self.replicas) + i}") for i in range(count)
        ]
        self.replicas += started
        for replica in started:
            wait_until(replica.ready, timeout=60, interval=0.2, what=f"replica on {replica.url}")
        return started

    def scalar(self, sql: str, **params: Any) -> Any:
        with self.engine.connect() as connection:
            return connection.execute(sa.text(sql), params).scalar()

    def leaders(self) -> list[Replica]:
        return [r for r in self.replicas if r.process.poll() is None and r.leads()]

    def close(self) -> None:
        for replica in self.replicas:
            replica.stop()
            # Captured output: pytest shows it only when the test failed, to say what the replicas did.
            tail = replica.log_path.read_text(errors="replace")[-6000:]
            sys.stdout.write(f"--- {replica.log_path.name} ---\n{tail}\n")
        self.engine.dispose()


@pytest.fixture
def cluster(tmp_path: Path, pg_database: str, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    verify_for = getattr(request, "param", 600)  # seconds to watch the burn after a change
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "fraud-model.yaml").write_text((REPO / "slo" / "fraud-model.yaml").read_text())
    marker = tmp_path / "target-calls.txt"
    config = {
        "models": {
            "fraud-model": {
                "environments": {
                    "prod": {
                        "target": {
                            "kind": "command",
                            # Each call of the target appends one line: how many times it changed.
                            "argv": [
                                sys.executable,
                                "-c",
                                "import sys; open(sys.argv[1], 'a').write(sys.argv[2] + '\\n')",
                                str(marker),
                                "{to}",
                            ],
                        },
                        "rollback": ["U1", "U2"],
                        "verify_for": verify_for,
                    }
                }
            }
        }
    }
    (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump(config))
    with FakeSlack() as slack:
        for url in pg_schema_url(pg_database):
            cluster = Cluster(tmp_path, url, slack)
            try:
                yield cluster
            finally:
                cluster.close()


def cycles(cluster: Cluster) -> int:
    """Evaluation cycles stored for one SLO (every cycle stores one row per SLO)."""
    count: int = cluster.scalar("SELECT count(*) FROM slo_status WHERE slo_id = 'fraud-model-availability'")
    return count


def test_one_replica_runs_the_schedule_and_another_takes_over_after_sigkill(cluster: Cluster) -> None:
    replicas = cluster.start(3)
    wait_until(lambda: len(cluster.leaders()) == 1, timeout=2 * TAKEOVER, what="one leader")
    (leader,) = cluster.leaders()
    assert [r.metric("sloguard_scheduler_leader") for r in replicas].count(1.0) == 1
    assert leader.metric("sloguard_scheduler_leader") == 1.0

    # Over a measured stretch the three replicas together evaluate about once an interval, not three times.
    before, started = cycles(cluster), time.monotonic()
    time.sleep(8 * INTERVAL)
    ran, elapsed = cycles(cluster) - before, time.monotonic() - started
    assert 0.5 * elapsed / INTERVAL <= ran <= elapsed / INTERVAL + 2, (ran, elapsed)
    followers = [r for r in replicas if r is not leader]
    assert sum(r.metric("sloguard_slo_evaluation_cycles_total") for r in followers) == 0

    leader.kill()
    killed_at = time.monotonic()
    wait_until(lambda: len(cluster.leaders()) == 1, timeout=3 * TAKEOVER, what="a new leader")
    (new_leader,) = cluster.leaders()
    assert new_leader is not leader
    after_kill = cycles(cluster)
    wait_until(
        lambda: cycles(cluster) >= after_kill + 2, timeout=TAKEOVER + 5 * INTERVAL, what="cycles resume"
    )
    took = time.monotonic() - killed_at
    sys.stderr.write(f"evaluation resumed {took:.1f} s after the leader was killed (takeover {TAKEOVER} s)\n")
    assert new_leader.metric("sloguard_slo_evaluation_cycles_total") >= 2
    # Still only one replica evaluates: the survivors' cycles add up to one an interval.
    before, started = cycles(cluster), time.monotonic()
    time.sleep(5 * INTERVAL)
    assert cycles(cluster) - before <= (time.monotonic() - started) / INTERVAL + 2


def notification(group: int, alerts: int) -> dict[str, Any]:
    return group_notification(group, alerts, "Storm")


def test_duplicate_webhooks_spread_across_replicas_make_one_incident_per_group(cluster: Cluster) -> None:
    replicas = cluster.start(3)
    groups, alerts, copies = 20, 5, 6  # each notification delivered six times, twice to every replica
    jobs = [(group, replicas[copy % 3]) for group in range(groups) for copy in range(copies)]

    def send(job: tuple[int, Replica]) -> int:
        group, replica = job
        response = httpx.post(
            f"{replica.url}/webhooks/alertmanager", json=notification(group, alerts), headers=HOOK, timeout=30
        )
        return response.status_code

    with ThreadPoolExecutor(max_workers=18) as pool:
        statuses = list(pool.map(send, jobs))
    assert statuses == [200] * len(jobs)
    assert cluster.scalar("SELECT count(*) FROM incident") == groups
    assert cluster.scalar("SELECT count(*) FROM alert_link") == groups * alerts
    assert cluster.scalar("SELECT count(DISTINCT fingerprint) FROM alert_link") == groups * alerts
    assert (
        cluster.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'alert_firing'") == groups * alerts
    )


def sign(body: str, at: float | None = None) -> dict[str, str]:
    timestamp = str(int(at if at is not None else time.time()))
    digest = hmac.new(SIGNING_SECRET.encode(), f"v0:{timestamp}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }


def at_once(calls: list[Callable[[], httpx.Response]]) -> list[httpx.Response]:
    with ThreadPoolExecutor(max_workers=len(calls)) as pool:
        return list(pool.map(lambda call: call(), calls))


def test_the_same_slack_request_delivered_to_two_replicas_is_handled_once(cluster: Cluster) -> None:
    first, second = cluster.start(2)
    body = urlencode(
        {
            "command": "/incident",
            "text": "declare checkout scoring down SEV2",
            "user_id": "U1",
            "channel_id": "C1",
            "team_id": "T1",
            "response_url": cluster.slack.response_url(),
            "trigger_id": "1.2.3",
        }
    )
    headers = sign(body)
    responses = at_once(
        [
            lambda: httpx.post(f"{first.url}/slack/events", content=body, headers=headers, timeout=15),
            lambda: httpx.post(f"{second.url}/slack/events", content=body, headers=headers, timeout=15),
        ]
    )
    assert [r.status_code for r in responses] == [200, 200]
    wait_until(lambda: cluster.scalar("SELECT count(*) FROM incident") == 1, what="the declared incident")
    time.sleep(1.0)  # let a second handling, if any, land before counting
    assert cluster.scalar("SELECT count(*) FROM incident") == 1
    assert cluster.scalar("SELECT title FROM incident") == "checkout scoring down"


def propose(cluster: Cluster, replica: Replica, to_version: str) -> int:
    """A rollback proposed by U1 (with U1's token)."""
    proposed = httpx.post(
        f"{replica.url}/api/v1/rollbacks",
        json={"model": "fraud-model", "to_version": to_version, "reason": "v4 fails"},
        headers=cluster.person("U1"),
        timeout=15,
    )
    assert proposed.status_code == 201, proposed.text
    action_id: int = proposed.json()["id"]
    return action_id


def confirm(cluster: Cluster, replica: Replica, action_id: int, actor: str) -> Callable[[], httpx.Response]:
    """A confirmation by `actor`, with that person's token (made now, before the call is sent)."""
    url = f"{replica.url}/api/v1/rollbacks/{action_id}/confirm"
    headers = cluster.person(actor)
    return lambda: httpx.post(url, headers=headers, timeout=30)


def test_two_replicas_confirming_the_same_rollback_change_the_target_once(
    cluster: Cluster, tmp_path: Path
) -> None:
    first, second = cluster.start(2)
    calls = tmp_path / "target-calls.txt"
    action_id = propose(cluster, first, "3")
    responses = at_once([confirm(cluster, first, action_id, "U1"), confirm(cluster, second, action_id, "U2")])
    # A repeated confirm is answered with the action as it stands (idempotent), never run again.
    assert [r.status_code for r in responses] == [200, 200], [r.text for r in responses]
    assert calls.read_text() == "3\n"  # the command ran exactly once
    assert cluster.scalar("SELECT state FROM rollback_action WHERE id = :id", id=action_id) == "succeeded"
    steps = cluster.scalar(
        "SELECT string_agg(step, ',' ORDER BY id) FROM audit_event WHERE action_id = :id", id=action_id
    )
    assert steps.split(",").count("executing") == 1 and steps.split(",").count("succeeded") == 1, steps
    approver = cluster.scalar("SELECT approver FROM rollback_action WHERE id = :id", id=action_id)
    assert approver in ("U1", "U2")


def test_two_changes_of_one_target_on_two_replicas_run_one_at_a_time(
    cluster: Cluster, tmp_path: Path
) -> None:
    """Two proposals made against the same serving version, confirmed on two replicas at once: the
    second to run finds sloguard's record moved on and refuses (compare-and-set across replicas)."""
    first, second = cluster.start(2)
    calls = tmp_path / "target-calls.txt"
    one, other = propose(cluster, first, "3"), propose(cluster, second, "2")
    at_once([confirm(cluster, first, one, "U1"), confirm(cluster, second, other, "U2")])
    states = {
        action: cluster.scalar("SELECT state FROM rollback_action WHERE id = :id", id=action)
        for action in (one, other)
    }
    assert sorted(states.values()) == ["failed", "succeeded"], states
    (ran,) = [action for action, state in states.items() if state == "succeeded"]
    assert calls.read_text() == ("3\n" if ran == one else "2\n")


def test_one_slack_message_per_incident_kept_in_order_across_replicas(cluster: Cluster) -> None:
    first, second = cluster.start(2)
    cluster.slack.delay = 0.6  # a slow Web API (the client gives up after 3 s): the first post is in flight
    created = httpx.post(
        f"{first.url}/api/v1/incidents",
        json={"title": "scoring slow", "severity": "SEV3"},
        headers=cluster.person("U1", "respond"),
        timeout=15,
    )
    assert created.status_code == 201, created.text
    number = created.json()["id"]
    time.sleep(0.3)
    # Changed on the other replica while the first is still posting the message.
    changed = httpx.patch(
        f"{second.url}/api/v1/incidents/{number}",
        json={"severity": "SEV1"},
        headers=cluster.person("U2", "respond"),
    )
    assert changed.status_code == 200, changed.text
    # Everything that follows from the two requests has been delivered once the outbox is drained.
    wait_until(
        lambda: cluster.scalar("SELECT count(*) FROM outbox WHERE state != 'done'") == 0,
        timeout=30,
        interval=0.2,
        what="the outbox drained",
    )
    posts = [p for p in cluster.slack.called("chat.postMessage") if not p.get("thread_ts")]
    assert len(posts) == 1
    update = cluster.slack.called("chat.update")[-1]
    assert "SEV1" in update["text"] and "SEV3" not in update["text"]  # the message ends on the latest state
    replies = [p["text"] for p in cluster.slack.called("chat.postMessage") if p.get("thread_ts")]
    assert replies == ["severity: SEV1 by <@U2>"], replies


@pytest.mark.parametrize("cluster", [2], indirect=True)
def test_a_change_is_verified_even_when_the_replica_that_made_it_dies(cluster: Cluster) -> None:
    first, second = cluster.start(2)
    declared = httpx.post(
        f"{first.url}/api/v1/incidents",
        json={"title": "fraud model failing", "severity": "SEV2", "model": "fraud-model"},
        headers=cluster.person("U1"),
        timeout=15,
    )
    assert declared.status_code == 201, declared.text
    incident = declared.json()["id"]
    proposed = httpx.post(
        f"{first.url}/api/v1/rollbacks",
        json={
            "model": "fraud-model",
            "to_version": "3",
            "reason": "v4 fails",
            "incident_id": incident,
        },
        headers=cluster.person("U1"),
        timeout=15,
    )
    assert proposed.status_code == 201, proposed.text
    action_id = proposed.json()["id"]
    done = confirm(cluster, first, action_id, "U1")()
    assert done.status_code == 200 and done.json()["state"] == "succeeded", done.text
    first.kill()  # its verification is an outbox row, due in two seconds, that any replica delivers
    wait_until(
        lambda: (
            cluster.scalar("SELECT state FROM rollback_action WHERE id = :id", id=action_id) != "succeeded"
        ),
        timeout=30,
        interval=0.5,
        what="the verification",
    )
    state = cluster.scalar("SELECT state FROM rollback_action WHERE id = :id", id=action_id)
    # No incident links the change to an SLO: there is nothing to watch, which counts as verified.
    assert state == "verified"
    verified = cluster.scalar(
        "SELECT count(*) FROM audit_event WHERE action_id = :id AND step = 'verified'", id=action_id
    )
    assert verified == 1
    # And announced, once, in the incident's thread (the survivor delivers what the dead replica left).
    wait_until(
        lambda: cluster.scalar("SELECT count(*) FROM outbox WHERE state != 'done'") == 0,
        timeout=90,  # a row the dead replica had claimed waits for its lease (60 s) to run out
        interval=0.5,
        what="the outbox drained",
    )
    ts = cluster.scalar("SELECT slack_ts FROM incident WHERE id = :id", id=incident)
    replies = [reply["text"] for reply in cluster.slack.thread("C-INCIDENTS", ts)]
    assert sum("nothing to watch" in text for text in replies) == 1, replies


def test_a_slack_event_and_its_retry_on_two_replicas_capture_one_note(cluster: Cluster) -> None:
    first, second = cluster.start(2)
    created = httpx.post(
        f"{first.url}/api/v1/incidents",
        json={"title": "scoring errors"},
        headers=cluster.person("U1", "respond"),
    )
    number = created.json()["id"]
    query = "SELECT slack_ts FROM incident WHERE id = :id"
    wait_until(lambda: cluster.scalar(query, id=number), timeout=60, what="the incident message")
    ts = cluster.scalar(query, id=number)
    cluster.slack.replies[("C-INCIDENTS", ts)] = [
        {"ts": ts, "text": "feature store timing out", "user": "U1"}
    ]
    event = {
        "type": "event_callback",
        "team_id": "T1",
        "event_id": "Ev0PIN",
        "event": {
            "type": "reaction_added",
            "user": "U2",
            "reaction": "pushpin",
            "item": {"type": "message", "channel": "C-INCIDENTS", "ts": ts},
        },
    }
    body = json.dumps(event)

    def deliver(replica: Replica, retry: int | None) -> Callable[[], httpx.Response]:
        # Slack signs a retry anew (new timestamp), so only the event id says it is the same event.
        headers = sign(body, time.time() + (retry or 0)) | {"Content-Type": "application/json"}
        if retry is not None:
            headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
        return lambda: httpx.post(f"{replica.url}/slack/events", content=body, headers=headers, timeout=15)

    responses = at_once([deliver(first, None), deliver(second, 1)])
    assert [r.status_code for r in responses] == [200, 200]
    pins = "SELECT count(*) FROM timeline_event WHERE incident_id = :id AND kind = 'slack_pin'"
    wait_until(lambda: cluster.scalar(pins, id=number) >= 1, timeout=60, what="the pinned note")
    time.sleep(1.0)  # the other delivery, if it were to add a second note, has landed by now
    assert cluster.scalar(pins, id=number) == 1
