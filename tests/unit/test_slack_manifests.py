"""The two Slack app manifests ask for the same commands, scopes and events; the Socket Mode one names no
URL (Slack cannot reach that sloguard) and the HTTP one sends everything to POST /slack/events. The
commands are the ones sloguard's listeners answer."""

from __future__ import annotations

import re

import yaml

from tests.conftest import REPO


def load(name: str) -> dict:  # type: ignore[type-arg]
    found: dict = yaml.safe_load((REPO / "slack" / name).read_text())  # type: ignore[type-arg]
    return found


def test_the_http_and_socket_mode_manifests_agree() -> None:
    http, socket = load("manifest.yaml"), load("manifest-socket-mode.yaml")
    assert http["oauth_config"] == socket["oauth_config"]
    commands = [c["command"] for c in http["features"]["slash_commands"]]
    assert commands == [c["command"] for c in socket["features"]["slash_commands"]]
    assert (
        http["settings"]["event_subscriptions"]["bot_events"]
        == socket["settings"]["event_subscriptions"]["bot_events"]
    )
    assert (http["settings"]["socket_mode_enabled"], socket["settings"]["socket_mode_enabled"]) == (
        False,
        True,
    )
    assert "http" not in (REPO / "slack" / "manifest-socket-mode.yaml").read_text().split("\n", 6)[-1]
    urls = re.findall(r"https://[^\s]+", (REPO / "slack" / "manifest.yaml").read_text())
    assert urls and all(url == "https://sloguard.example.com/slack/events" for url in urls)
    listened = set(
        re.findall(
            r'command\("(/[a-z]+)"\)',
            "".join(p.read_text() for p in (REPO / "app" / "chat" / "listeners").glob("*.py")),
        )
    )
    assert set(commands) == listened, listened
