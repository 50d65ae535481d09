"""Three `sloguard serve` replicas on one PostgreSQL deliver one outbox: with the Slack Web API flapping
(down 5 s, up 5 s, for a minute) under 200 Alertmanager notifications over 50 groups, every incident gets
exactly one message showing its final state, its thread replies in the order things happened, and the
outbox drains to zero."""

from __future__ import annotations

import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from tests.alertmanager import group_notification
from tests.integration.replicas.test_replicas import HOOK, Cluster, cluster  # noqa: F401  (the fixture)
from tests.servers import wait_until

pytestmark = pytest.mark.integration
CHANNEL = "C-INCIDENTS"
GROUPS = 50


def notifications(group: int) -> list[dict[str, Any]]:
    """A group's four notifications, in order: it fires (2 alerts), a third alert joins, all three
    resolve (the incident is mitigated), a fourth fires (it is triggered again)."""
    firing_two = group_notification(group, 2, "Flap")
    firing_three = group_notification(group, 3, "Flap")
    resolved = group_notification(group, 3, "Flap")
    resolved["status"] = "resolved"
    for alert in resolved["alerts"]:
        alert["status"], alert["endsAt"] = "resolved", "2026-11-26T01:30:00Z"
    again = group_notification(group, 4, "Flap")
    again["alerts"] = again["alerts"][3:]  # only the new alert fires
    return [firing_two, firing_three, resolved, again]


def expected_replies(connection: sa.Connection, incident_id: int) -> list[str]:
    """What the incident's thread must say, in order: one line per status change and per field change,
    read from the timeline (the record of what happened, written with each change) — not from Slack."""
    lines = []
    rows = connection.execute(
        sa.text(
            "SELECT kind, actor, data FROM timeline_event"
            " WHERE incident_id = :id AND kind IN ('status', 'update') ORDER BY id"
        ),
        {"id": incident_id},
    )
    for kind, actor, data in rows:
        data = data if isinstance(data, dict) else json.loads(data)
        # Each line names who made the change: a Slack user as a mention, anyone else as text.
        who = (
            (f" by <@{actor}>" if actor.startswith("U0") else f" by {actor}")
            if actor
            else " (no actor given)"
        )
        if kind == "status" and "from" in data:
            lines.append(f"{data['from']} → {data['to']}{who}")
        elif kind == "update":
            lines.append(", ".join(f"{key}: {value}" for key, value in data.items()) + who)
    return lines


def test_three_replicas_with_slack_flapping_deliver_each_message_once_in_order(cluster: Cluster) -> None:  # noqa: F811
    replicas = cluster.start(3)
    anna = cluster.person("U0ANA", "respond")  # who raises the severities (the actor is the token's owner)
    slack = cluster.slack
    slack.flap(5, 5, 60)
    flapping_since = time.monotonic()

    def send_group(group: int) -> list[int]:
        """The group's notifications in order, each on another replica; while the resolution is being
        sent, someone raises the severity on a third replica (two writers of one incident at once)."""
        statuses = []
        number = 0
        for step, body in enumerate(notifications(group)):
            replica = replicas[(group + step) % 3]
            if step == 2:
                other = replicas[(group + step + 1) % 3]
                with ThreadPoolExecutor(max_workers=2) as both:
                    sent = both.submit(
                        httpx.post,
                        f"{replica.url}/webhooks/alertmanager",
                        json=body,
                        headers=HOOK,
                        timeout=30,
                    )
                    patched = both.submit(
                        httpx.patch,
                        f"{other.url}/api/v1/incidents/{number}",
                        json={"severity": "SEV1"},
                        headers=anna,
                        timeout=30,
                    )
                    statuses += [sent.result().status_code, patched.result().status_code]
                continue
            response = httpx.post(f"{replica.url}/webhooks/alertmanager", json=body, headers=HOOK, timeout=30)
            statuses.append(response.status_code)
            if step == 0:
                number = response.json()["incident_id"]  # the first notification opened it
        return statuses

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = [status for group in pool.map(send_group, range(GROUPS)) for status in group]
    assert statuses == [200] * (5 * GROUPS)
    sent_in = time.monotonic() - flapping_since
    assert cluster.scalar("SELECT count(*) FROM incident") == GROUPS

    wait_until(
        lambda: time.monotonic() - flapping_since >= 60 and slack.is_up,
        timeout=90,
        interval=0.5,
        what="the minute of flapping",
    )
    wait_until(
        lambda: cluster.scalar("SELECT count(*) FROM outbox WHERE state != 'done'") == 0,
        timeout=60,
        interval=0.5,
        what="the outbox drained",
    )

    with cluster.engine.connect() as connection:
        incidents = {
            row.id: row
            for row in connection.execute(
                sa.text("SELECT id, title, status, severity, slack_ts FROM incident")
            )
        }
        expected = {number: expected_replies(connection, number) for number in incidents}
    messages = [m for m in slack.messages(CHANNEL) if (m.get("metadata") or {}).get("event_type")]
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for message in messages:
        by_incident.setdefault(message["metadata"]["event_payload"]["incident_id"], []).append(message)
    assert sorted(by_incident) == sorted(incidents), "an incident has no message"
    doubled = {number: len(found) for number, found in by_incident.items() if len(found) != 1}
    assert doubled == {}, f"incidents with more than one message: {doubled}"
    for number, (message,) in by_incident.items():
        incident = incidents[number]
        assert (incident.status, incident.severity) == ("triggered", "SEV1")
        assert incident.slack_ts == message["ts"]
        # The message shows the incident's final state (posted as SEV2, it must have been redrawn after
        # the last change).
        assert message["text"].startswith(f"#{number} [SEV1]") and "(triggered)" in message["text"], message[
            "text"
        ]
        replies = [reply["text"] for reply in slack.thread(CHANNEL, message["ts"])]
        # Both status changes and the severity change, each once, in the order they were recorded.
        changes = sorted(line.split(" by ")[0].split(" (no actor")[0] for line in expected[number])
        assert changes == sorted(["triggered → mitigated", "mitigated → triggered", "severity: SEV1"]), (
            expected[number]
        )
        assert replies == expected[number], (number, replies)
    sys.stderr.write(f"sent 200 notifications in {sent_in:.1f} s; {len(slack.log)} Slack calls answered\n")
