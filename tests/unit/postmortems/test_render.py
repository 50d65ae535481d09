from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError

from app.postmortems import service as postmortems
from app.postmortems.runbooks import lint
from app.slo.spec import load_specs
from tests.conftest import REPO


def test_markdown_escaping() -> None:
    assert postmortems.md("*bold* [link](http://x) <script>|pipe|") == (
        "\\*bold\\* \\[link\\]\\(http://x\\) &lt;script&gt;\\|pipe\\|"
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


class RangeRecorder:
    """Answers query_range with one value per step, echoing timestamps as Prometheus does (in ms)."""

    def __init__(self) -> None:
        self.asked: list[tuple[float, float, int]] = []

    def query_range(self, query: str, start: Any, end: Any, step: int) -> list[dict[str, Any]]:
        self.asked.append((start.timestamp(), end.timestamp(), step))
        times = range(int(start.timestamp()), int(end.timestamp()) + 1, step)
        return [{"metric": {}, "values": [[round(t + 0.0, 3), "0.5"] for t in times]}]


def test_chart_points_sit_on_whole_steps_of_the_page_window(tmp_path: Path) -> None:
    (thirty_days,) = [
        s for s in load_specs([REPO / "slo" / "fraud-model.yaml"]) if s.id.endswith("availability")
    ]
    assert postmortems.chart_window(thirty_days).seconds == 300  # the 1h/5m page reads 5m
    one_day_file = tmp_path / "day.yaml"
    one_day_file.write_text(
        (REPO / "slo" / "fraud-model-quality.yaml").read_text().replace("duration: 30d", "duration: 1d")
    )
    (one_day,) = load_specs([one_day_file])
    assert postmortems.chart_window(one_day).seconds == 60  # 5m scaled by 1/30 is 10 s, floored at 1 minute

    # 70 minutes at about 60 points on whole minutes: 70 / 60 rounds up to 2-minute steps.
    start = datetime(2026, 11, 26, 1, 0, 0, 654321, tzinfo=UTC)  # real incident times carry microseconds
    end = start + timedelta(minutes=70)
    assert postmortems.chart_step(start, end, 60) == 120
    assert postmortems.chart_step(start, end, 300) == 300
    prometheus = RangeRecorder()
    points = postmortems._range_points(prometheus, "q", start, end, 60)
    ((asked_start, _, step),) = prometheus.asked
    assert step == 120 and asked_start == datetime(2026, 11, 26, 1, 0, tzinfo=UTC).timestamp()
    assert len(points) == 36 and all(value == 0.5 for _, value in points)  # every point found its value
    assert points[-1][0] <= end
