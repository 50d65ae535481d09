"""`sloguard outbox list` and `sloguard outbox retry`, run as a real process against a SQLite file that
holds rows in every state (pending with an error, dead, delivered)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import db, outbox
from app.config import OutboxOptions
from app.outbox import CHAT, DEAD, DONE, PENDING, WORK, DeliveryFailed, Effect, OutboxRow
from tests.conftest import REPO
from tests.integration.storage.test_outbox import put

pytestmark = pytest.mark.integration
PENDING_ERROR = "Prometheus query timed out"
DEAD_ERROR = "Slack chat.postMessage: channel_not_found"


def state(engine: Engine, row_id: int) -> str:
    with Session(engine) as session:
        row = session.get(OutboxRow, row_id)
        assert row is not None
        return row.state


def prepare(database: Path) -> tuple[Engine, dict[str, int]]:
    """A migrated SQLite file with a pending row (last error kept), two dead rows and a delivered one."""
    engine = db.make_engine(f"sqlite:///{database}")
    db.upgrade(engine)

    def handler(effect: Effect) -> None:
        if effect.payload["outcome"] == "pending":
            raise DeliveryFailed(PENDING_ERROR, retry_after=3600)  # not due again during the test
        if effect.payload["outcome"] == "dead":
            raise DeliveryFailed(DEAD_ERROR, sent=False, retry_after=0.02)

    handlers = {"evidence.enrich": handler, "slack.post": handler, "slack.thread": handler}
    dying = outbox.Worker(engine, handlers, OutboxOptions(dead_after=0.3))  # delivers the chat lane
    patient = outbox.Worker(engine, handlers, OutboxOptions())  # the work lane: nothing dies there
    ids = {
        "dead1": put(engine, "slack.post", "slack:incident:1", {"outcome": "dead"}, incident_id=1),
        "dead2": put(engine, "slack.post", "slack:incident:2", {"outcome": "dead"}, incident_id=2),
        "done": put(engine, "slack.thread", "slack:incident:3", {"outcome": "done"}, incident_id=3),
        "pending": put(engine, "evidence.enrich", "incident:4", {"outcome": "pending"}, incident_id=4),
    }
    assert patient.deliver_one(WORK) is True
    deadline = time.monotonic() + 30
    while {state(engine, ids[name]) for name in ("dead1", "dead2", "done")} != {DEAD, DONE}:
        assert time.monotonic() < deadline, "the rows never reached their states"
        if not dying.deliver_one(CHAT):
            time.sleep(0.01)
    assert state(engine, ids["dead1"]) == DEAD and state(engine, ids["dead2"]) == DEAD
    assert state(engine, ids["done"]) == DONE and state(engine, ids["pending"]) == PENDING
    return engine, ids


def sloguard(cwd: Path, database: Path, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {
        "PATH": "/usr/bin:/bin",
        "PYTHONPATH": str(REPO),
        "SLOGUARD_DATABASE_URL": f"sqlite:///{database}",
    }
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "outbox", *args],
        env=environment,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=60,
    )


def listed_ids(stdout: str) -> dict[int, str]:
    """id -> the rest of the line, from `outbox list`'s table (after its header)."""
    lines = stdout.strip().splitlines()
    assert lines[0].split()[:2] == ["id", "state"], stdout
    found = {}
    for line in lines[1:]:
        first, rest = line.split(maxsplit=1)
        found[int(first)] = rest
    return found


def test_outbox_list_shows_undelivered_rows_with_their_last_error(tmp_path: Path) -> None:
    database = tmp_path / "sloguard.db"
    engine, ids = prepare(database)
    engine.dispose()

    listed = sloguard(tmp_path, database, "list")
    assert listed.returncode == 0, listed.stderr
    table = listed_ids(listed.stdout)
    assert set(table) == {ids["dead1"], ids["dead2"], ids["pending"]}  # never the delivered row
    assert table[ids["pending"]].startswith(PENDING) and PENDING_ERROR in table[ids["pending"]]
    for name in ("dead1", "dead2"):
        assert table[ids[name]].startswith(DEAD) and DEAD_ERROR in table[ids[name]]
        assert "slack.post" in table[ids[name]]

    dead_only = sloguard(tmp_path, database, "list", "--dead")
    assert dead_only.returncode == 0, dead_only.stderr
    assert set(listed_ids(dead_only.stdout)) == {ids["dead1"], ids["dead2"]}

    as_json = sloguard(tmp_path, database, "list", "--json")
    assert as_json.returncode == 0, as_json.stderr
    objects = [json.loads(line) for line in as_json.stdout.splitlines()]
    by_id = {found["id"]: found for found in objects}
    assert len(objects) == 3 and set(by_id) == {ids["dead1"], ids["dead2"], ids["pending"]}
    assert by_id[ids["pending"]]["state"] == PENDING
    assert by_id[ids["pending"]]["last_error"] == PENDING_ERROR
    assert by_id[ids["pending"]]["kind"] == "evidence.enrich"
    assert by_id[ids["pending"]]["incident_id"] == 4
    for name in ("dead1", "dead2"):
        assert by_id[ids[name]]["state"] == DEAD and by_id[ids[name]]["last_error"] == DEAD_ERROR


def test_outbox_retry_revives_dead_rows_and_refuses_anything_else(tmp_path: Path) -> None:
    database = tmp_path / "sloguard.db"
    engine, ids = prepare(database)
    try:
        revived = sloguard(tmp_path, database, "retry", str(ids["dead1"]))
        assert revived.returncode == 0, revived.stderr
        assert str(ids["dead1"]) in revived.stdout
        assert state(engine, ids["dead1"]) == PENDING and state(engine, ids["dead2"]) == DEAD

        for name in ("pending", "done"):
            refused = sloguard(tmp_path, database, "retry", str(ids[name]))
            assert refused.returncode == 1, (name, refused.stdout, refused.stderr)
            assert f"outbox row {ids[name]} is not dead" in refused.stderr
        assert state(engine, ids["done"]) == DONE and state(engine, ids["pending"]) == PENDING

        usage = sloguard(tmp_path, database, "retry")
        assert usage.returncode == 2, (usage.stdout, usage.stderr)
        assert "give a row id or --all-dead" in usage.stderr
        assert state(engine, ids["dead2"]) == DEAD

        everything = sloguard(tmp_path, database, "retry", "--all-dead")
        assert everything.returncode == 0, everything.stderr
        assert str(ids["dead2"]) in everything.stdout
        assert state(engine, ids["dead2"]) == PENDING
        nothing = sloguard(tmp_path, database, "retry", "--all-dead")
        assert nothing.returncode == 1 and "no dead rows" in nothing.stderr
    finally:
        engine.dispose()
