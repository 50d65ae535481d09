"""Confirming a rollback that already ran changes nothing: no second change, no second announcement, no
second verification — through the Slack confirm button and through the API alike.

The target is a real program that appends each change it is asked for to a file. Each change is tied to
an incident whose SLO has its own metric, and a real Prometheus logs every query it answers: a
verification evaluates the SLO, so the number of queries naming that metric counts verifications. A
marker change in another environment (its own SLO of the same shape) is confirmed afterwards and its
verification awaited: it gives the count one verification makes, and, being started later with the same
delay, proves any second verification of the first change would have run by then. (A second
verification that finds the change verified already does not query; it logs "rollback verification
failed", which is checked too.)
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from app.main import create_app
from tests.conftest import API_TOKEN, People, make_settings
from tests.fakes.slack import FakeSlack
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld, sign
from tests.prometheus import PrometheusServer
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
API = {"Authorization": f"Bearer {API_TOKEN}"}  # the automation identity: reads
RECORDER = """
import json, sys
with open(sys.argv[1], "a", encoding="utf-8") as out:
    out.write(json.dumps(sys.argv[2:]) + "\\n")
"""
# Long enough that the second confirm comes while the first change is still being watched.
VERIFY_FOR = "2s"
SLO_SPEC = """
version: "prometheus/v1"
service: "ranker-{env}"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(ranker_{env}_errors_total[{{{{.window}}}}]))
        total_query: sum(rate(ranker_{env}_requests_total[{{{{.window}}}}]))
"""


class QueryLoggingPrometheus(PrometheusServer):
    """A real, empty Prometheus that writes every query it answers to a log file."""

    def __init__(self, folder: Path) -> None:
        super().__init__(folder / "data")
        self.query_log = folder / "queries.jsonl"

    def config(self) -> dict[str, Any]:
        config = super().config()
        config["global"]["query_log_file"] = str(self.query_log)
        return config

    def queries_naming(self, metric: str) -> int:
        if not self.query_log.exists():
            return 0
        lines = self.query_log.read_text(encoding="utf-8").splitlines()
        return sum(metric in json.loads(line)["params"]["query"] for line in lines if line.strip())


class Rollbacks:
    def __init__(self, world: SlackWorld, calls: Path, prometheus: QueryLoggingPrometheus) -> None:
        self.world, self.calls, self.prometheus = world, calls, prometheus
        self.http = httpx.Client(base_url=world.server.url, headers=API, timeout=30)
        self.people = People(world.database_url)  # who declares, proposes and confirms through the API
        self.clicks = 0

    def changes(self) -> list[list[str]]:
        """What the deploy program was asked to do, one [environment, version] per run."""
        if not self.calls.exists():
            return []
        return [json.loads(line) for line in self.calls.read_text(encoding="utf-8").splitlines()]

    def verifications(self, environment: str) -> int:
        """Queries Prometheus answered for the SLO of `environment`'s incident."""
        return self.prometheus.queries_naming(f"ranker_{environment}_requests_total")

    def incident(self, environment: str) -> int:
        body = {
            "title": f"ranker failing in {environment}",
            "model": "ranker",
            "environment": environment,
            "slo_id": f"ranker-{environment}-availability",
        }
        response = self.http.post("/api/v1/incidents", json=body, headers=self.people("U1", "respond"))
        assert response.status_code == 201, response.text
        number: int = response.json()["id"]
        return number

    def action(self, action_id: int) -> dict[str, Any]:
        response = self.http.get(f"/api/v1/rollbacks/{action_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    def propose(self, environment: str, version: str, incident: int) -> int:
        body = {
            "model": "ranker",
            "environment": environment,
            "to_version": version,
            "incident_id": incident,
        }
        response = self.http.post("/api/v1/rollbacks", json=body, headers=self.people("U1"))
        assert response.status_code == 201, response.text
        number: int = response.json()["id"]
        return number

    def confirm_by_api(self, action_id: int, actor: str = "U2") -> httpx.Response:
        """Confirm as `actor`, with that person's own token."""
        return self.http.post(f"/api/v1/rollbacks/{action_id}/confirm", headers=self.people(actor))

    def click_confirm(self, action_id: int, user: str) -> dict[str, Any]:
        """Click Confirm as `user`; the reply. Each click is its own request, as Slack sends it (its own
        action_ts and trigger_id), so the door does not take a second click for a replay of the first."""
        self.clicks += 1
        payload = {
            "type": "block_actions",
            "user": {"id": user},
            "team": {"id": "T1"},
            "channel": {"id": "C1"},
            "response_url": self.world.slack.response_url(),
            "trigger_id": f"click.{self.clicks}",
            "actions": [
                {
                    "action_id": "rollback_confirm",
                    "value": str(action_id),
                    "type": "button",
                    "block_id": "b",
                    "action_ts": f"1764100000.{self.clicks:06d}",
                }
            ],
        }
        body = urlencode({"payload": json.dumps(payload)})
        seen = len(self.world.slack.called("/response/cmd"))
        response = self.http.post("/slack/events", content=body, headers=sign(body))
        assert response.status_code == 200, response.text
        return self.world.reply(seen)

    def watched(self, action_id: int) -> None:
        """Wait until the change's burn was looked at (the SLO has no data here: `not_recovered`)."""
        wait_until(lambda: self.action(action_id)["state"] != "succeeded", timeout=30, what="verification")

    def marker(self) -> int:
        """A change in staging, confirmed now and watched for as long: its verification runs after any
        verification started before it, and makes the queries one verification makes."""
        action_id = self.propose("staging", "5", self.incident("staging"))
        assert self.confirm_by_api(action_id).json()["state"] == "succeeded"
        self.watched(action_id)
        return action_id


@pytest.fixture
def rollbacks(tmp_path: Path, database_url: str) -> Iterator[Rollbacks]:
    recorder = tmp_path / "deploy.py"
    recorder.write_text(RECORDER)
    calls = tmp_path / "calls.jsonl"
    argv = [sys.executable, str(recorder), str(calls), "{environment}", "{to}"]
    env = {"target": {"kind": "command", "argv": argv}, "rollback": ["U1", "U2"], "verify_for": VERIFY_FOR}
    config = {"models": {"ranker": {"environments": {"prod": env, "staging": env}}}}
    (tmp_path / "sloguard.yaml").write_text(json.dumps(config))
    (tmp_path / "slo").mkdir()
    for environment in ("prod", "staging"):
        (tmp_path / "slo" / f"ranker-{environment}.yaml").write_text(SLO_SPEC.format(env=environment))
    (tmp_path / "prometheus" / "data").mkdir(parents=True)
    prometheus = QueryLoggingPrometheus(tmp_path / "prometheus").start()
    try:
        with FakeSlack() as slack:
            settings = make_settings(
                tmp_path,
                database_url=database_url,
                prometheus_url=prometheus.url,
                slack_bot_token=TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url(),
            )
            with UvicornThread(create_app(settings)) as server:
                helper = Rollbacks(SlackWorld(server, slack, settings.database_url), calls, prometheus)
                yield helper
                helper.http.close()
    finally:
        prometheus.stop()


def verification_failures(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.getMessage() == "rollback verification failed"]


def assert_one_change_and_one_verification(rollbacks: Rollbacks, action_id: int, caplog: Any) -> None:
    rollbacks.marker()
    rollbacks.watched(action_id)
    assert rollbacks.changes() == [["prod", "3"], ["staging", "5"]]
    steps = [step["step"] for step in rollbacks.action(action_id)["audit"]]
    assert steps == ["proposed", "executing", "succeeded", "not_recovered"]
    one = rollbacks.verifications("staging")
    assert one > 0  # the marker's single verification did query its SLO
    assert rollbacks.verifications("prod") == one
    assert verification_failures(caplog) == []


def test_a_second_click_on_confirm_says_already_done_and_starts_nothing(
    rollbacks: Rollbacks, caplog: pytest.LogCaptureFixture
) -> None:
    world = rollbacks.world
    rollbacks.incident("prod")  # the open incident /rollback ties the change to
    proposal = world.run("/rollback", "ranker prod to 3", user="U1")
    action_id = int(proposal["blocks"][-1]["elements"][0]["value"])

    first = rollbacks.click_confirm(action_id, "U2")
    assert first["response_type"] == "ephemeral"  # the incident's thread tells the channel
    assert first["text"].startswith("Your rollback: ranker in prod now serves 3")

    for clicker in ("U2", "U1"):  # the same person again, and the proposer
        again = rollbacks.click_confirm(action_id, clicker)
        assert again["response_type"] == "ephemeral"
        assert again["text"].startswith(
            f"Rollback {action_id} of ranker in prod is already succeeded (by <@U2> at "
        ), again["text"]

    assert_one_change_and_one_verification(rollbacks, action_id, caplog)
    announced = [m for m in world.slack.called("/response/cmd") if "now serves" in m.get("text", "")]
    assert len(announced) == 1


def test_a_second_api_confirm_answers_the_action_as_it_is_and_starts_nothing(
    rollbacks: Rollbacks, caplog: pytest.LogCaptureFixture
) -> None:
    action_id = rollbacks.propose("prod", "3", rollbacks.incident("prod"))
    first = rollbacks.confirm_by_api(action_id)
    assert (first.status_code, first.json()["state"]) == (200, "succeeded")

    again = rollbacks.confirm_by_api(action_id)
    assert again.status_code == 200
    assert again.json() == rollbacks.action(action_id)  # as it is: nothing moved
    assert (again.json()["state"], again.json()["approver"]) == ("succeeded", "U2")

    assert_one_change_and_one_verification(rollbacks, action_id, caplog)
