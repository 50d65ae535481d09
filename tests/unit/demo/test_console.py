"""The demo's Slack stand-in prints messages in boxes: cut nowhere, whatever the output is."""

from __future__ import annotations

import io
import re

import pytest
from rich.console import Console

from app.demo.console import ConsoleSlack

SLO_LINE = (
    "*SLO* `fraud-model-availability`: page; burn 1m 30.0×, 2m 30.0×, 12m 16.1×, 4m 30.0×, 48m 5.5×, "
    "2h24m 2.2×, budget left 33%"
)
DRAFT = "demo-output/2026-11-26-1-fraud-model-availability-error-budget-burning-page.md"
MESSAGE = {
    "channel": "C-INCIDENTS",
    "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "#1 fraud-model-availability burning"}},
        {"type": "section", "fields": [{"type": "mrkdwn", "text": "*Status*\ntriggered"}]},
        {"type": "section", "text": {"type": "mrkdwn", "text": f"{SLO_LINE}\n*Draft*: `{DRAFT}`"}},
    ],
}
# What a reader sees of the SLO line: the stand-in drops mrkdwn's asterisks.
SHOWN = SLO_LINE.replace("*SLO*", "SLO")


def printed(console: Console) -> list[str]:
    slack = ConsoleSlack(console)
    slack.show("chat.postMessage", MESSAGE)
    slack.show(
        "/response/alice", {"response_type": "ephemeral", "text": f"Review draft written to `{DRAFT}`"}
    )
    file = console.file
    assert isinstance(file, io.StringIO)
    return file.getvalue().splitlines()


def test_a_pipe_or_log_gets_every_line_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    console = Console(file=io.StringIO(), soft_wrap=True)  # as the demo builds it when stdout is no tty
    assert not console.is_terminal and console.width == 80
    lines = printed(console)
    assert any(f"│ {SHOWN} " in line for line in lines), lines  # the budget figure included
    assert any(f"`{DRAFT}`" in line for line in lines), lines
    assert any(f"Review draft written to `{DRAFT}`" in line for line in lines), lines
    # Each box still closes: its lines are as wide as its top border.
    first = [line for line in lines if line.startswith("╭")][0]
    box = lines[lines.index(first) : lines.index(first) + 6]
    assert box[-1].startswith("╰") and {len(line) for line in box} == {len(first)}, box


def test_a_terminal_wraps_inside_the_box() -> None:
    console = Console(file=io.StringIO(), force_terminal=True, width=80, color_system=None)
    lines = printed(console)
    assert all(len(line) <= 80 for line in lines), lines
    inside = " ".join(line.strip("│ ") for line in lines if line.startswith("│"))
    assert re.sub(r"\s+", " ", SHOWN) in re.sub(r"\s+", " ", inside)
