"""The README promises only what exists: every `sloguard` command shown answers --help, every setting
in its table is a real setting."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from app.config import Settings
from tests.conftest import REPO

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
README = (REPO / "README.md").read_text()


def commands() -> set[tuple[str, ...]]:
    found = set()
    inline = re.findall(r"`sloguard ([a-z][a-z -]*)", README)
    fenced = "\n".join(re.findall(r"^```[a-z]*\n(.*?)^```", README, re.MULTILINE | re.DOTALL))
    blocks = re.findall(r"^(?:\$ )?(?:\.venv/bin/)?sloguard ([a-z][a-z -]*)", fenced, re.MULTILINE)
    for line in inline + blocks:
        words = []
        for word in line.split():
            if not re.fullmatch(r"[a-z][a-z-]*", word):
                break
            words.append(word)
        if words:
            found.add(tuple(words[:2]) if words[0] in ("slo", "db", "runbooks") else (words[0],))
    return found


def test_the_readme_shows_the_commands() -> None:
    assert {
        ("serve",),
        ("slo", "status"),
        ("slo", "rules"),
        ("postmortem",),
        ("runbooks", "lint"),
        ("demo",),
    } <= commands()


@pytest.mark.parametrize("command", sorted(commands()))
def test_every_command_in_the_readme_exists(command: tuple[str, ...]) -> None:
    result = subprocess.run([SLOGUARD, *command, "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, (command, result.stderr)


def test_every_setting_in_the_readme_exists() -> None:
    table = README.split("### Settings", 1)[1].split("\n\n", 3)[2]
    names = set()
    for row in table.splitlines():
        if row.startswith("| `"):
            names |= set(re.findall(r"`([A-Z_]+)`", row.split("|")[1]))
    assert len(names) > 15
    fields = {name.upper() for name in Settings.model_fields}
    assert names <= fields, names - fields
    assert fields <= names, f"settings missing from the README: {sorted(fields - names)}"
