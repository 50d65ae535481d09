"""The installed `sloguard` command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.conftest import REPO
from tests.servers import free_port, wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")


def clean_env(tmp_path: Path, **variables: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SLOGUARD_")}
    env.update(SLOGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'sloguard.db'}", SLOGUARD_LOG_FORMAT="text")
    env.update(variables)
    return env


def test_serve_starts_on_sqlite_and_answers_healthz(tmp_path: Path) -> None:
    port = free_port()
    process = subprocess.Popen(
        [SLOGUARD, "serve", "--port", str(port)],
        env=clean_env(tmp_path),
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200,
            timeout=30,
            what="sloguard serve",
        )
        assert (tmp_path / "sloguard.db").exists()
    finally:
        process.terminate()
        output = process.communicate(timeout=15)[0].decode()
    # uvicorn shuts down cleanly on SIGTERM, then re-raises the signal so supervisors see it.
    assert process.returncode in (0, -15), output
    assert "Application shutdown complete" in output
    # One line says what is on and what is off, and why.
    (started,) = [line for line in output.splitlines() if "sloguard started: " in line]
    for said in (
        "slack: off (SLOGUARD_SLACK_BOT_TOKEN not set)",
        "mlflow: off (SLOGUARD_MLFLOW_URL not set)",
        "elasticsearch: off (SLOGUARD_ELASTICSEARCH_URL not set)",
        "alertmanager webhook: off (SLOGUARD_WEBHOOK_TOKEN not set: alerts are refused)",
        "scheduler: on (evaluations and jobs)",
    ):
        assert said in started, started


def test_logs_are_json_when_not_on_a_terminal_with_the_features_as_fields(tmp_path: Path) -> None:
    """LOG_FORMAT unset: stderr is a pipe here, so JSON, and the start-up record carries each feature."""
    import json

    port = free_port()
    env = clean_env(tmp_path, SLOGUARD_MLFLOW_URL="http://127.0.0.1:9", SLOGUARD_WEBHOOK_TOKEN="w" * 8 + "1")
    del env["SLOGUARD_LOG_FORMAT"]
    process = subprocess.Popen(
        [SLOGUARD, "serve", "--port", str(port)],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_until(
            lambda: httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200, timeout=30, what="serve"
        )
    finally:
        process.terminate()
        errors = process.communicate(timeout=15)[1].decode()
    records = [json.loads(line) for line in errors.splitlines() if line.startswith("{")]
    (started,) = [r for r in records if r["message"].startswith("sloguard started: ")]
    assert started["feature_mlflow"] == "on: registry and rollback by alias"
    assert started["feature_slack"] == "off: SLOGUARD_SLACK_BOT_TOKEN not set"
    assert started["feature_alertmanager_webhook"] == "on: POST /webhooks/alertmanager"


@pytest.mark.parametrize(
    ("variables", "expected"),
    [
        ({"SLOGUARD_PROMETHEUS_URL": "prometheus:9090"}, "SLOGUARD_PROMETHEUS_URL: "),
        ({"SLOGUARD_LOG_LEVEL": "loud"}, "SLOGUARD_LOG_LEVEL: Input should be"),
        ({"SLOGUARD_SLACK_BOT_TOKEN": "xoxb-123-456-abc"}, "SLOGUARD_SLACK_SIGNING_SECRET: required"),
    ],
)
def test_bad_settings_stop_start_up_with_one_line(
    tmp_path: Path, variables: dict[str, str], expected: str
) -> None:
    result = subprocess.run(
        [SLOGUARD, "serve", "--port", str(free_port())],
        env=clean_env(tmp_path, **variables),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"sloguard: {expected}")
    assert not (tmp_path / "sloguard.db").exists()


def test_db_upgrade_migrates_an_empty_file(tmp_path: Path) -> None:
    result = subprocess.run(
        [SLOGUARD, "db", "upgrade"], env=clean_env(tmp_path), capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert "latest revision" in result.stdout
    assert (tmp_path / "sloguard.db").stat().st_size > 0
