"""The HTTP webhook and command targets, and the verify step, end to end through the service."""

from __future__ import annotations

import hashlib
import hmac
import json
import shutil
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app import db
from app.config import FileConfig, ModelConfig, ModelEnvironment, TargetConfig
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate
from app.ml.models import ModelVersionLink
from app.rollback import service as rollbacks
from app.rollback.models import RollbackRequest
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.integration.incidents.test_burn_door import BLIP_SPEC
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.integration
SECRET = "deploy-hook-secret-0123456789"


class Receiver:
    """A deploy system's hook: checks the HMAC, answers from a script of statuses, may stall."""

    def __init__(self, statuses: list[int], stall: float = 0.0) -> None:
        self.statuses, self.stall, self.received = statuses, stall, []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers.get("X-Sloguard-Timestamp", "")
                signed = stamp.encode() + b"." + body
                expected = "sha256=" + hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
                fresh = stamp.isdigit() and abs(time.time() - int(stamp)) < 300
                valid = fresh and hmac.compare_digest(expected, self.headers.get("X-Sloguard-Signature", ""))
                receiver.received.append({"body": json.loads(body), "valid": valid})
                time.sleep(receiver.stall)
                status = 401 if not valid else (receiver.statuses.pop(0) if receiver.statuses else 200)
                self.send_response(status)
                self.end_headers()
                self.wfile.write(b'{"ok": true}')

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/deploy"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


def setup(target: TargetConfig, **env: Any) -> FileConfig:
    return FileConfig(
        models={
            "ranker": ModelConfig(
                environments={"prod": ModelEnvironment(target=target, rollback=["U1"], **env)}
            )
        }
    )


def propose_and_confirm(engine: Engine, config: FileConfig, to: str, slo_id: str | None = None) -> Any:
    incident = incidents.declare(
        engine, None, IncidentCreate(title="ranker bad", model="ranker", slo_id=slo_id), datetime.now(UTC)
    )
    with Session(engine) as session:
        session.add(
            ModelVersionLink(
                incident_id=incident.id or 0, model="ranker", version="7", role="suspect", source="prometheus"
            )
        )
        session.commit()
    request = RollbackRequest(
        model="ranker", to_version=to, incident_id=incident.id, actor="U1", reason="bad ranking"
    )
    action = rollbacks.propose(engine, config, None, request, "U1")
    return rollbacks.confirm(engine, config, None, None, action.id, "U1")


def test_webhook_is_signed_and_retried_on_5xx(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RANKER_HOOK_SECRET", SECRET)
    receiver = Receiver([503, 502, 200])
    try:
        config = setup(
            TargetConfig(kind="http_webhook", url=receiver.url, secret_env="RANKER_HOOK_SECRET", retries=2)
        )
        action = propose_and_confirm(engine, config, "6")
    finally:
        receiver.close()
    assert action.state == "succeeded"
    assert [r["valid"] for r in receiver.received] == [True, True, True]
    body = receiver.received[0]["body"]
    assert (body["model"], body["environment"], body["from"], body["to"], body["actor"]) == (
        "ranker",
        "prod",
        "7",
        "6",
        "U1",
    )
    assert body["idempotency_key"] == action.idempotency_key
    assert action.output.splitlines()[0].startswith("attempt 1: HTTP 503")


def test_webhook_timeout_fails_with_nothing_marked_done(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RANKER_HOOK_SECRET", SECRET)
    receiver = Receiver([], stall=3.0)
    try:
        config = setup(
            TargetConfig(kind="http_webhook", url=receiver.url, secret_env="RANKER_HOOK_SECRET", timeout=0.5)
        )
        action = propose_and_confirm(engine, config, "6")
    finally:
        receiver.close()
    assert action.state == "failed"
    with Session(engine) as session:
        roles = [link.role for link in session.exec(select(ModelVersionLink)).all()]
        last = rollbacks.audit_trail(session, action.id)[-1]
    assert "rolled_back_to" not in roles
    assert last.result == "failed: deploy hook timed out after 0.5s"
    # The same change can be asked for again after a failure: a new action, not the failed one.
    again = rollbacks.propose(
        engine,
        config,
        None,
        RollbackRequest(model="ranker", to_version="6", incident_id=action.incident_id, actor="U1"),
        "U1",
    )
    assert (again.id != action.id, again.state, again.from_version) == (True, "proposed", "7")


def test_command_output_and_exit_code_are_recorded(engine: Engine) -> None:
    argv = [
        sys.executable,
        "-c",
        "import sys; print('rolled', sys.argv[1], 'to', sys.argv[2])",
        "{model}",
        "{to}",
    ]
    action = propose_and_confirm(engine, setup(TargetConfig(kind="command", argv=argv)), "6")
    assert (action.state, action.output.strip()) == ("succeeded", "rolled ranker to 6")
    failing = [sys.executable, "-c", "import sys; print('no such rollout'); sys.exit(3)"]
    failed = propose_and_confirm(engine, setup(TargetConfig(kind="command", argv=failing)), "5")
    assert (failed.state, failed.output.strip()) == ("failed", "no such rollout")
    with Session(engine) as session:
        assert (
            rollbacks.audit_trail(session, failed.id)[-1].result == f"failed: {sys.executable} exited with 3"
        )


@pytest.mark.parametrize("version", ["6; rm -rf /", "$(id)", "6 && curl x", "../../etc"])
def test_command_placeholders_with_shell_characters_are_refused(
    engine: Engine, tmp_path: Path, version: str
) -> None:
    marker = tmp_path / "ran"
    argv = [shutil.which("touch") or "/usr/bin/touch", str(marker), "{to}"]
    action = propose_and_confirm(engine, setup(TargetConfig(kind="command", argv=argv)), version)
    assert action.state == "failed"
    assert not marker.exists()
    with Session(engine) as session:
        assert rollbacks.audit_trail(session, action.id)[-1].result.startswith("failed: refused: to ")


def test_verify_reports_recovered_and_not_recovered_with_figures(
    engine: Engine,
    history_prometheus: PrometheusServer,
    history_end: int,
    scenario_slo_dir: Path,
    tmp_path: Path,
) -> None:
    (tmp_path / "blip.yaml").write_text(BLIP_SPEC)
    slo_engine = SloEngine(
        load_specs([scenario_slo_dir, tmp_path]), PrometheusSource(history_prometheus.url), None
    )
    argv = [sys.executable, "-c", "print('ok')"]
    T = datetime.fromtimestamp(history_end, UTC)

    burning = propose_and_confirm(
        engine, setup(TargetConfig(kind="command", argv=argv)), "6", "fraud-model-availability"
    )
    still = rollbacks.verify(engine, slo_engine, None, burning.id, T)
    # At T fraud-model's 5m burn is 300 (page at 14.4) and its 30m burn 66.7 (page at 6).
    assert still.state == "not_recovered"
    assert still.verification["figures"]["5m"]["burn_rate"] == pytest.approx(300.0)
    assert still.verification["text"].startswith(
        "not recovered after the change to 6: 5m burn 300.00 (page at 14.4)"
    )

    calmed = propose_and_confirm(
        engine, setup(TargetConfig(kind="command", argv=argv)), "5", "fraud-blip-availability"
    )
    recovered = rollbacks.verify(engine, slo_engine, None, calmed.id, T - timedelta(hours=3))
    # Three hours before T the blip is seven hours old: 5m and 30m are back at the 0.05 % background.
    assert recovered.state == "verified"
    assert recovered.verification["figures"]["5m"]["burn_rate"] == pytest.approx(0.5)
    assert recovered.verification["figures"]["30m"]["burn_rate"] == pytest.approx(0.5)
    assert recovered.verification["text"].startswith("recovered after the change to 5")
    # The recovery mitigated its incident, at the time the change succeeded; the other one still burns.
    with Session(engine) as session:
        mitigated = incidents.get(session, calmed.incident_id)  # type: ignore[arg-type]
        burning_incident = incidents.get(session, burning.incident_id)  # type: ignore[arg-type]
    assert (mitigated.status, mitigated.mitigated_at) == ("mitigated", calmed.finished_at)
    assert (burning_incident.status, burning_incident.mitigated_at) == ("triggered", None)


def test_two_proposals_from_the_same_version_run_once_and_a_failure_can_be_retried(engine: Engine) -> None:
    argv = [sys.executable, "-c", "print('ok')"]
    config = setup(TargetConfig(kind="command", argv=argv))
    incident = incidents.declare(
        engine, None, IncidentCreate(title="ranker", model="ranker"), datetime.now(UTC)
    )
    with Session(engine) as session:
        session.add(
            ModelVersionLink(
                incident_id=incident.id or 0, model="ranker", version="7", role="suspect", source="prometheus"
            )
        )
        session.commit()
    first = rollbacks.propose(
        engine,
        config,
        None,
        RollbackRequest(model="ranker", to_version="6", incident_id=incident.id, actor="U1"),
        "U1",
    )
    second = rollbacks.propose(
        engine,
        config,
        None,
        RollbackRequest(model="ranker", to_version="5", incident_id=incident.id, actor="U1"),
        "U1",
    )
    assert (first.from_version, second.from_version) == ("7", "7")
    assert rollbacks.confirm(engine, config, None, None, first.id, "U1").state == "succeeded"  # type: ignore[arg-type]
    # sloguard's record now says 6 serves: the second, proposed against 7, is stale for a command target.
    stale = rollbacks.confirm(engine, config, None, None, second.id, "U1")  # type: ignore[arg-type]
    assert stale.state == "failed"
    with Session(engine) as session:
        assert rollbacks.audit_trail(session, second.id)[-1].result.startswith(  # type: ignore[arg-type]
            f"refused: since this was proposed, change {first.id} moved ranker in prod to 6"
        )
    retried = rollbacks.propose(
        engine,
        config,
        None,
        RollbackRequest(model="ranker", to_version="5", incident_id=incident.id, actor="U1"),
        "U1",
    )
    assert retried.id != second.id and retried.from_version == "6"
    assert rollbacks.confirm(engine, config, None, None, retried.id, "U1").state == "succeeded"  # type: ignore[arg-type]
