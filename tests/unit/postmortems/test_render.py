from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from app.postmortems import service as postmortems
from app.postmortems.runbooks import lint
from app.slo.spec import load_specs
from tests.conftest import REPO


def test_markdown_escaping() -> None:
    assert postmortems.md("*bold* [link](http://x) <script>|pipe|") == (
        "\\*bold\\* \\[link\\]\\(http://x\\) \\<script\\>\\|pipe\\|"
    )
    assert postmortems.md(None) == ""


def test_the_sandbox_refuses_python_internals(tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text("{{ ''.__class__.__mro__ }}")
    with pytest.raises(SecurityError):
        postmortems.render({"incident": {}}, tmp_path)


def test_a_team_template_overrides_the_default(tmp_path: Path) -> None:
    (tmp_path / "postmortem.md.j2").write_text("# {{ incident.title | md }} ({{ figures.duration }})\n")
    assert postmortems.render({"incident": {"title": "a_b"}, "figures": {"duration": "5 min"}}, tmp_path) == (
        "# a\\_b (5 min)\n"
    )


def test_kept_sections_survive_and_the_rest_refreshes() -> None:
    old = "Duration: 5 min\n<!-- sloguard:keep lessons -->\nWe should page earlier.\n<!-- sloguard:end -->\n"
    new = "Duration: 7 min\n<!-- sloguard:keep lessons -->\n_fill in_\n<!-- sloguard:end -->\n"
    assert postmortems.merge_kept(new, old) == (
        "Duration: 7 min\n<!-- sloguard:keep lessons -->\nWe should page earlier.\n<!-- sloguard:end -->\n"
    )
    assert postmortems.merge_kept(new, None) == new


def test_durations_read_like_a_person_writes_them() -> None:
    assert postmortems.duration(26100) == "7 h 15 min"
    assert postmortems.duration(300) == "5 min"
    assert postmortems.duration(45) == "45 s"
    assert postmortems.duration(125) == "2 min 5 s"
    assert postmortems.duration(3605) == "1 h 0 min"  # seconds only for spans under an hour
    assert postmortems.duration(0) == "0 s"
    assert postmortems.duration(None) == "n/a"


def test_runbook_lint_flags_a_missing_runbook(tmp_path: Path) -> None:
    (tmp_path / "slo.yaml").write_text(
        (REPO / "slo" / "fraud-model.yaml").read_text().replace("fraud-model-latency.md", "gone.md")
    )
    runbooks = tmp_path / "runbooks"
    runbooks.mkdir()
    for name in ("fraud-model-availability.md", "fraud-model-latency.md"):
        (runbooks / name).write_text((REPO / "runbooks" / name).read_text())
    problems = lint(load_specs([tmp_path / "slo.yaml"]), runbooks)
    assert len(problems) == 1
    assert problems[0].endswith(
        "fraud-model-latency: annotations.runbook_url: runbooks/gone.md does not exist"
    )


def test_runbook_lint_passes_on_the_repository() -> None:
    sloguard = str(Path(sys.executable).parent / "sloguard")
    result = subprocess.run(
        [sloguard, "runbooks", "lint"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert (result.returncode, result.stdout.strip()) == (0, "runbooks OK"), result.stderr
