"""`sloguard check-config`, one case per problem it must find (each of which `serve` would refuse, or
accept and then fail at), run as a user runs it. Every problem of one file is reported at once."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

SLO = """version: "prometheus/v1"
service: "fraud-model"
slos:
  - name: "availability"
    objective: {objective}
    sli:
      events:
        error_query: sum(rate(errors_total[{{{{.window}}}}]))
        total_query: sum(rate(requests_total[{{{{.window}}}}]))
    alerting:
      annotations: {{runbook_url: runbooks/fraud-model-availability.md}}
      page_alert: {{}}
      ticket_alert: {{}}
"""
RUNBOOK = "# Runbook: fraud-model availability\n\nSLO: fraud-model-availability\n"
PERMISSIONS = """groups: {{S0ONCALL: [U0ALICE]}}
models:
  fraud-detector:
    environments:
      prod:
        rollback: [{rollback}]
"""
OWN_NAMES = """automation: {name: ci}
groups: {S0ONCALL: [U0ALICE], oncall: [U0BOB]}
models:
  fraud-detector:
    environments:
      prod:
        rollback: [ci, S0ONCALL, U1, oncall]
"""
SLACK = {
    "SLOGUARD_SLACK_BOT_TOKEN": "xoxb-1234-5678-abcdefghijkl",
    "SLOGUARD_SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "SLOGUARD_SLACK_CHANNEL": "C0INCIDENTS",
}


def project(tmp_path: Path, objective: str = "99.9", config: str | None = None, runbook: bool = True) -> Path:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "fraud-model.yaml").write_text(SLO.format(objective=objective))
    (tmp_path / "runbooks").mkdir()
    if runbook:
        (tmp_path / "runbooks" / "fraud-model-availability.md").write_text(RUNBOOK)
    if config is not None:
        (tmp_path / "sloguard.yaml").write_text(config)
    return tmp_path


def check(folder: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "app.cli", "check-config"],
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(REPO)} | env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("objective", "config", "env", "runbook", "code", "says"),
    [
        ("99.9", None, {}, True, 0, "configuration is valid (1 SLOs, 0 models)"),
        ("99.9", PERMISSIONS.format(rollback="S0ONCALL, U0BOB"), SLACK, True, 0, "configuration is valid"),
        # Socket Mode: an app token, and no signing secret needed.
        (
            "99.9",
            None,
            {**SLACK, "SLOGUARD_SLACK_SIGNING_SECRET": "", "SLOGUARD_SLACK_APP_TOKEN": "xapp-1-A0-1-ab12"},
            True,
            0,
            "configuration is valid",
        ),  # fmt: skip
        ("120", None, {}, True, 1, "slo/fraud-model.yaml: slos[0].objective: must be between 0 and 100"),
        # The automation identity's name, a group of sloguard.yaml's own and a short Slack ID are entries too.
        ("99.9", OWN_NAMES, {}, True, 0, "configuration is valid (1 SLOs, 1 models)"),
        ("99.9", "outbox: {worker: process}\n", {}, True, 1, "outbox.worker: 'process' needs PostgreSQL"),
        (
            "99.9",
            None,
            {"SLOGUARD_API_TOKEN_FILE": "/nonexistent/api-token"},
            True,
            2,
            "/nonexistent/api-token",
        ),
        (
            "99.9",
            PERMISSIONS.format(rollback="alice"),
            {},
            True,
            1,
            "models.fraud-detector.environments.prod.rollback: 'alice' is not a Slack user ID",
        ),  # fmt: skip
        (
            "99.9",
            PERMISSIONS.format(rollback="S0NOBODY"),
            {},
            True,
            1,
            "rollback: S0NOBODY is a user group with no members in `groups:`",
        ),  # fmt: skip
        (
            "99.9",
            None,
            {**SLACK, "SLOGUARD_SLACK_BOT_TOKEN": "xapp-1-A0-1-ab12"},
            True,
            1,
            "SLOGUARD_SLACK_BOT_TOKEN: must be a bot token starting with xoxb- (this is an app-level token",
        ),  # fmt: skip
        (
            "99.9",
            None,
            {**SLACK, "SLOGUARD_SLACK_APP_TOKEN": "xoxb-1-2-3abc"},
            True,
            1,
            "SLOGUARD_SLACK_APP_TOKEN: must be an app-level token starting with xapp-",
        ),  # fmt: skip
        (
            "99.9",
            None,
            {k: v for k, v in SLACK.items() if k != "SLOGUARD_SLACK_CHANNEL"},
            True,
            1,
            "SLOGUARD_SLACK_CHANNEL: not set, and sloguard.yaml has no `channels:`",
        ),  # fmt: skip
        ("99.9", None, {}, False, 1, "runbooks/fraud-model-availability.md"),
        (
            "99.9",
            None,
            {"SLOGUARD_CONFIG_FILE": "missing.yaml"},
            True,
            2,
            "missing.yaml: SLOGUARD_CONFIG_FILE names it, and it does not exist",
        ),  # fmt: skip
        ("99.9", "models: [", {}, True, 2, "sloguard.yaml: not valid YAML"),
    ],
)
def test_each_problem_is_found(
    tmp_path: Path,
    objective: str,
    config: str | None,
    env: dict[str, str],
    runbook: bool,
    code: int,
    says: str,
) -> None:
    env = {key: value for key, value in env.items() if value}
    done = check(project(tmp_path, objective, config, runbook), **env)
    assert done.returncode == code, done.stdout + done.stderr
    assert says in (done.stdout if code == 0 else done.stderr), done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    printed = done.stdout + done.stderr
    for name, value in env.items():  # no token or secret is ever shown, however it is wrong
        if ("TOKEN" in name or "SECRET" in name) and not name.endswith("_FILE"):  # a path is no secret
            assert value not in printed and value[5:] not in printed, name


def test_every_problem_at_once(tmp_path: Path) -> None:
    config = """models:
  fraud-detector:
    environments:
      prod: {rollback: [U0ALICE], verify_for: soon}
slo: {min_events: -1}
colour: blue
"""
    env = {"SLOGUARD_EVAL_INTERVAL": "often", "SLOGUARD_SLO_DIRR": "typo"}
    done = check(project(tmp_path, "120", config, runbook=False), **env)
    assert done.returncode == 1, done.stdout + done.stderr
    lines = done.stderr.splitlines()
    for expected in (
        "SLOGUARD_SLO_DIRR: unknown setting",
        "SLOGUARD_EVAL_INTERVAL:",
        "sloguard.yaml: models.fraud-detector.environments.prod.verify_for:",
        "sloguard.yaml: slo.min_events:",
        "sloguard.yaml: colour: Extra inputs are not permitted",
        "slo/fraud-model.yaml: slos[0].objective:",
    ):
        assert any(line.startswith(expected) for line in lines), (expected, lines)
    assert lines[-1] == f"sloguard: {len(lines) - 1} problems"


def test_every_slack_problem_at_once(tmp_path: Path) -> None:
    """The bot and app tokens swapped: both are said, the kind of each named."""
    env = {
        "SLOGUARD_SLACK_BOT_TOKEN": "xapp-1-A0-1-ab12",
        "SLOGUARD_SLACK_APP_TOKEN": "xoxb-1234-5678-abcdefghijkl",
    }
    done = check(project(tmp_path), **env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "SLOGUARD_SLACK_BOT_TOKEN: must be a bot token starting with xoxb- (this is an app-level"
        in done.stderr
    )
    assert "SLOGUARD_SLACK_APP_TOKEN: must be an app-level token starting with xapp-" in done.stderr
    assert "xoxb-1234" not in done.stderr and "ab12" not in done.stderr
