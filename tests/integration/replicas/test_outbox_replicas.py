"""Three `sloguard serve` replicas on one PostgreSQL deliver one outbox: with the Slack Web API flapping
(down 5 s, up 5 s, for a minute) under 200 Alertmanager notifications over 50 groups, every incident gets
exactly one message showing its final state, its thread replies in the order things happened, and the
outbox drains to zero."""

from __future__ import annotations

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


# What each incident's thread must say, in this order (from the scenario, not from sloguard).
EXPECTED_REPLIES = ["triggered → mitigated", "mitigated → triggered"]


def test_three_replicas_with_slack_flapping_deliver_each_message_once_in_order(cluster: Cluster) -> None:  # noqa: F811
    replicas = cluster.start(3)
    slack = cluster.slack
    slack.flap(5, 5, 60)
    flapping_since = time.monotonic()

    def send_group(group: int) -> list[int]:
        statuses = []
        for step, body in enumerate(notifications(group)):
            replica = replicas[(group + step) % 3]  # each step of a group lands on another replica
            response = httpx.post(f"{replica.url}/webhooks/alertmanager", json=body, headers=HOOK, timeout=30)
            statuses.append(response.status_code)
            time.sleep(0.2)
        return statuses

    with ThreadPoolExecutor(max_workers=10) as pool:
        statuses = [status for group in pool.map(send_group, range(GROUPS)) for status in group]
    assert statuses == [200] * (4 * GROUPS)
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
            for row in connection.execute(sa.text("SELECT id, title, status, slack_ts FROM incident"))
        }
    messages = [m for m in slack.messages(CHANNEL) if (m.get("metadata") or {}).get("event_type")]
    by_incident: dict[int, list[dict[str, Any]]] = {}
    for message in messages:
        by_incident.setdefault(message["metadata"]["event_payload"]["incident_id"], []).append(message)
    assert sorted(by_incident) == sorted(incidents), "an incident has no message"
    doubled = {number: len(found) for number, found in by_incident.items() if len(found) != 1}
    assert doubled == {}, f"incidents with more than one message: {doubled}"
    for number, (message,) in by_incident.items():
        incident = incidents[number]
        assert incident.status == "triggered"
        assert incident.slack_ts == message["ts"]
        # The message shows the incident's final state (its last redraw came after the last change).
        assert f"({incident.status})" in message["text"], (number, message["text"])
        replies = [reply["text"] for reply in slack.thread(CHANNEL, message["ts"])]
        assert replies == EXPECTED_REPLIES, (number, replies)
    sys.stderr.write(f"sent 200 notifications in {sent_in:.1f} s; {len(slack.log)} Slack calls answered\n")
