"""`sloguard serve` on PostgreSQL delivers its outbox from a child process: a real server, a real
PostgreSQL, the Slack Web API stand-in. The child is started with the server, started again when it dies,
stopped with the server however the server goes, and what it delivers is counted on the server's
/metrics. Nothing of a 200 is lost or doubled across any of it.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from tests.conftest import pg_schema_url
from tests.fakes.slack import FakeSlack
from tests.integration.faults.test_outbox import SLOGUARD, Service, incident_messages
from tests.servers import wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def pg_world(tmp_path: Path, pg_database: str) -> Iterator[tuple[Service, FakeSlack]]:
    with FakeSlack() as slack:
        for database_url in pg_schema_url(pg_database):
            service = Service(tmp_path, slack, database_url)
            config = yaml.safe_load((tmp_path / "sloguard.yaml").read_text())
            # A lease a dead child held runs out in 5 s (60 s by default).
            (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump(config | {"outbox": {"lease": 5}}))
            try:
                yield service, slack
            finally:
                service.stop()


def delivery(service: Service) -> dict[str, Any]:
    ready = httpx.get(f"{service.url}/readyz", timeout=5)
    assert ready.status_code == 200, ready.text
    found: dict[str, Any] = ready.json()["outbox"]["delivery"]
    return found


def parent_of(pid: int) -> int | None:
    """The parent pid of a live process (None once it has exited, zombies included)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    except FileNotFoundError:
        return None
    return None if fields[0] == "Z" else int(fields[1])


def delivered_total(service: Service, kind: str) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=5).text
    found = re.search(rf'^sloguard_outbox_delivered_total\{{kind="{re.escape(kind)}"\}} (\S+)$', text, re.M)
    return float(found.group(1)) if found else 0.0


def test_serve_on_postgresql_delivers_from_a_child_process_counted_on_its_own_metrics(
    pg_world: tuple[Service, FakeSlack],
) -> None:
    service, slack = pg_world
    config = yaml.safe_load((service.folder / "sloguard.yaml").read_text())
    config["outbox"]["poll_interval"] = 30  # so only the server's wake can make the child deliver soon
    (service.folder / "sloguard.yaml").write_text(yaml.safe_dump(config))
    service.start()
    assert service.process is not None
    where = delivery(service)
    assert where["in"] == "child process" and where["restarts"] == 0, where
    assert parent_of(where["pid"]) == service.process.pid  # a child of this very server
    log = service.folder / "serve.log"
    wait_until(lambda: "outbox worker process delivering" in log.read_text(), timeout=30, what="the child")

    assert service.notify(1)["created"] is True
    # Within 10 s, so not by the child's 30-second poll: the server woke it when it committed the row.
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=10), "not posted within 10 s"
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=10)
    assert len(incident_messages(slack, 1)) == 1
    # The child reported its deliveries; the server that answers /metrics counted them.
    assert slack.wait_for(lambda: delivered_total(service, "slack.post") == 1.0, timeout=10)


def test_a_child_that_dies_is_started_again_and_what_was_waiting_is_delivered_once(
    pg_world: tuple[Service, FakeSlack],
) -> None:
    service, slack = pg_world
    service.start()
    first = delivery(service)["pid"]
    slack.down()  # so what is waiting cannot have been sent when the child dies
    assert service.notify(1)["created"] is True
    os.kill(first, signal.SIGKILL)
    wait_until(lambda: parent_of(first) is None, timeout=10, what="the child gone")
    slack.up()
    wait_until(lambda: delivery(service)["pid"] not in (first, None), timeout=30, what="a new child")
    again = delivery(service)
    assert service.process is not None
    assert again["restarts"] == 1 and parent_of(again["pid"]) == service.process.pid
    # The dead child may have held the row's lease: it is taken over when the lease runs out.
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=30), "never posted"
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    assert service.notify(2)["created"] is True
    assert slack.wait_for(lambda: incident_messages(slack, 2), timeout=15)
    assert len(incident_messages(slack, 1)) == len(incident_messages(slack, 2)) == 1


def test_the_child_goes_with_a_killed_server_and_the_restarted_one_delivers_everything_once(
    pg_world: tuple[Service, FakeSlack],
) -> None:
    service, slack = pg_world
    service.start()
    child = delivery(service)["pid"]
    slack.down()
    assert service.notify(2)["created"] is True
    service.kill()
    # No orphan keeps delivering for a server that is gone.
    wait_until(lambda: parent_of(child) is None, timeout=20, what="the child gone with its parent")
    assert service.undelivered() >= 2  # the post and the evidence gathering wait in the outbox
    slack.up()
    service.start()
    assert slack.wait_for(lambda: incident_messages(slack, 1), timeout=30), "never posted after the restart"
    assert slack.wait_for(lambda: service.undelivered() == 0, timeout=30)
    missing = service.scalar("SELECT count(*) FROM timeline_event WHERE kind = 'evidence_missing'")
    distinct = service.scalar(
        "SELECT count(DISTINCT text) FROM timeline_event WHERE kind = 'evidence_missing'"
    )
    assert missing == distinct and missing >= 1, (missing, distinct)
    service.patch(1, status="resolved")
    assert slack.wait_for(
        lambda: service.undelivered() == 0 and list((service.folder / "postmortems").glob("*-1-*.md")),
        timeout=30,
    )
    assert len(list((service.folder / "postmortems").glob("*-1-*.md"))) == 1
    (message,) = incident_messages(slack, 1)
    assert "(resolved)" in message["text"]


def test_a_stopped_server_stops_its_child(pg_world: tuple[Service, FakeSlack]) -> None:
    service, _ = pg_world
    service.start()
    assert service.process is not None
    child = delivery(service)["pid"]
    service.process.terminate()
    # uvicorn shuts down, then exits by the signal it caught
    assert service.process.wait(timeout=30) in (0, -signal.SIGTERM)
    assert parent_of(child) is None  # stopped (and waited for) before the server exited


def test_a_child_process_on_sqlite_is_refused_naming_the_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "sloguard.yaml"
    config.write_text(yaml.safe_dump({"outbox": {"worker": "process"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")} | {
        "SLOGUARD_DATABASE_URL": f"sqlite:///{tmp_path / 'sloguard.db'}",
        "SLOGUARD_CONFIG_FILE": str(config),
        "SLOGUARD_SLO_DIR": str(tmp_path / "no-slos"),
    }
    done = subprocess.run(
        [SLOGUARD, "serve", "--port", "9"], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert str(config) in done.stderr and "outbox.worker" in done.stderr, done.stderr
