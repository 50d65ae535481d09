"""The start-up line: every feature, off by default where it needs a setting, on once that setting is
given, each flipped on its own."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import features
from app.config import ConsoleOptions, FileConfig, OidcOptions
from tests.conftest import make_settings

SLACK = {
    "slack_bot_token": "xoxb-1234-5678-abcdefghijkl",
    "slack_signing_secret": "8f742231b10e8888abcd99yyyzzz85a5",
}
FLIPS: list[tuple[str, dict[str, Any], str]] = [
    ("slack", SLACK, "HTTP, POST /slack/events"),
    ("api automation token", {"api_token": "a" * 31 + "b"}, "SLOGUARD_API_TOKEN"),
    ("alertmanager webhook", {"webhook_token": "w" * 15 + "x"}, "POST /webhooks/alertmanager"),
    ("elasticsearch", {"elasticsearch_url": "http://127.0.0.1:9200"}, "log-based SLIs and log evidence"),
    ("mlflow", {"mlflow_url": "http://127.0.0.1:5000"}, "registry and rollback by alias"),
    ("mlflow webhooks", {"mlflow_webhook_secret": "m" * 15 + "n"}, "POST /webhooks/mlflow"),
    ("alertmanager silences", {"alertmanager_url": "http://127.0.0.1:9093"}, "planned windows are silenced"),
    ("scheduler", {"scheduler_enabled": True}, "evaluations and jobs"),
]


def states(tmp_path: Path, config: FileConfig | None = None, **overrides: Any) -> dict[str, tuple[bool, str]]:
    base: dict[str, Any] = {"api_token": None, "webhook_token": None, "scheduler_enabled": False}
    settings = make_settings(tmp_path, **(base | overrides))
    return {name: (on, why) for name, on, why in features.features(settings, config or FileConfig())}


@pytest.mark.parametrize(("name", "setting", "why"), FLIPS, ids=[f[0] for f in FLIPS])
def test_each_setting_turns_its_feature_on(
    tmp_path: Path, name: str, setting: dict[str, Any], why: str
) -> None:
    off, on = states(tmp_path), states(tmp_path, **setting)
    assert off[name][0] is False and off[name][1]  # off, and says what turns it on
    assert on[name] == (True, why)
    changed = {key for key in on if on[key][0] != off.get(key, (None,))[0]}
    assert changed <= {name, "slack channel"}  # nothing else moved


def test_slack_says_socket_mode_and_a_missing_channel(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    socket = states(tmp_path, slack_bot_token=SLACK["slack_bot_token"], slack_app_token="xapp-1-A0-1-ab12")
    assert socket["slack"] == (True, "Socket Mode")
    assert socket["slack channel"][0] is False
    posted = states(tmp_path, **SLACK, slack_channel="C0INCIDENTS")
    assert posted["slack channel"] == (True, "incidents are posted")
    assert states(tmp_path, FileConfig(channels={"fraud": "C0FRAUD"}), **SLACK)["slack channel"][0] is True
    oidc = FileConfig(
        console=ConsoleOptions(oidc=OidcOptions(issuer="https://id.example.com", client_id="s"))
    )
    assert states(tmp_path, oidc)["console sign-in"] == (True, "personal tokens, OpenID Connect")
    assert states(tmp_path)["tracing"][0] is False
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318")
    assert states(tmp_path)["tracing"] == (True, "OTLP")


def test_the_line_names_each_feature_once(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, api_token=None)
    found = features.features(settings, FileConfig())
    line = features.line(found)
    assert line.count("; ") == len(found) - 1
    assert "api automation token: off (SLOGUARD_API_TOKEN not set," in line


def test_a_password_in_a_url_is_not_logged(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, prometheus_url="https://reader:s3cretpass@prometheus.internal:9090")
    line = features.line(features.features(settings, FileConfig()))
    assert "s3cretpass" not in line and "prometheus: on (https://reader:***@prometheus.internal:9090" in line
