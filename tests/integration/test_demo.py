"""`sloguard demo` end to end, as a user runs it: real Prometheus, Alertmanager and MLflow processes."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.integration.postmortems.test_draft import plotted
from tests.mlflow_server import MLFLOW

pytestmark = pytest.mark.integration
SLOGUARD = Path(sys.executable).parent / "sloguard"


def demo_command(output: Path) -> list[str]:
    return [str(SLOGUARD), "demo", "--output", str(output)]


def environment() -> dict[str, str]:
    # A narrow terminal: output to a pipe must still keep each step on one line (no wrapping);
    # SLOGUARD_TEST_MLFLOW points at `make test`'s MLflow.
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")}
    return env | {"COLUMNS": "80", "SLOGUARD_TEST_MLFLOW": str(MLFLOW)}


def processes_using(folder: str) -> list[str]:
    """Command lines of live processes that mention `folder` (the demo's servers all do)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if folder in cmdline:
            found.append(f"{entry.name}: {cmdline}")
    return found


def working_folder(output: str) -> str:
    match = re.search(r"working folder \(removed at the end\): (\S+)", output)
    assert match, output
    return match.group(1)


def test_the_demo_tells_the_whole_story_and_leaves_nothing_running(tmp_path: Path) -> None:
    output = tmp_path / "out"
    started = time.monotonic()
    done = subprocess.run(
        demo_command(output), capture_output=True, text=True, timeout=480, env=environment(), cwd=tmp_path
    )
    took = time.monotonic() - started
    text = done.stdout
    assert done.returncode == 0, text + done.stderr
    sys.stderr.write(f"demo took {took:.0f} s\n")  # the acceptance is under 3 minutes; shown, not asserted

    # Each step, with figures that came from the running servers.
    assert re.search(r"SLO breach: fraud-model-availability at page level", text)
    # 3 % errors against a 0.1 % budget: every window that only saw the bad phase burns at 30x.
    assert re.search(r"burn rates: 1m 30\.0×, 2m 30\.0×", text), text
    # The day's budget at the breach, from the story: 0.05 % errors for the day but its last 40 minutes,
    # 0.2 % for 34 of them, 3 % for the last 6 (and up to a minute more): 56.9 to 58.7 bad requests per
    # 86,400, against 86.4 allowed: 32 to 34 % left. The demo runs in the default batch mode, whose rules
    # began with it: the budget comes from the raw history, not from their minutes (-2900 %).
    left = re.search(r"error budget left for the day: (-?\d+)%", text)
    assert left and 31 <= int(left.group(1)) <= 35, text
    assert re.search(r"Incident #1 opened: .* \(SEV2\)", text)
    # Version 4 rolled out 40 minutes before the demo started; the burn is dated to its window's start,
    # and Prometheus sees the rollout at a range step's resolution: 39 to 41 minutes.
    suspect = (
        r"version 4 began serving (39|40|41) min before the burn and fails 3\.00% of requests against 0\.05%"
    )
    assert re.search(suspect, text), text
    assert re.search(
        r"drift: `amount` 0\.31 by the model server's own score \(threshold 0\.1\): drifting", text
    )
    assert "Alertmanager's notification joined incident #1: FraudModelAvailability (page)" in text
    assert "alice acknowledged incident #1" in text
    assert "sloguard proposed the rollback privately" in text
    assert "Rolled back through the MLflow alias `champion`: version 4 → 3" in text
    assert "MLflow now says champion = version 3" in text  # read back from the real MLflow server
    # Both page tiers read the 1m short window for a 1-day SLO; the lower threshold (6x) is the one to beat.
    verify = re.search(r"Verify: recovered after the change to 3: 1m burn ([0-9.]+) \(page at 6\)", text)
    assert verify and float(verify.group(1)) < 6, text
    assert "alice resolved incident #1" in text

    # The draft and its charts, on disk after the demo stopped.
    (draft,) = sorted(output.glob("*-1-*.md"))
    assert f"Review draft written: {draft}" in text
    body = draft.read_text()
    assert "resolved" in body.lower() and "fraud-model-availability" in body
    assert "version 4" in body and "amount" in body
    charts = sorted(output.glob("*-assets/*.svg"))
    assert {chart.name for chart in charts} == {"budget.svg", "error-ratio.svg"}
    for chart in charts:  # whole, though longer than the 80 columns: output to a pipe is not wrapped
        assert f"chart: {chart}" in text
    ratio = plotted(output / f"{draft.stem}-assets" / "error-ratio.svg")
    drawn = (output / f"{draft.stem}-assets" / "error-ratio.svg").read_text()
    assert "page-fast threshold (×14.4) 1.44 %" in drawn  # 14.4 x the 0.1 % budget, as text
    assert max(ratio) == pytest.approx(0.03, rel=0.05)  # version 4 after the sale: 3 % of requests fail
    assert min(ratio) < 0.003  # before the sale, and again after the rollback
    remaining = plotted(output / f"{draft.stem}-assets" / "budget.svg")
    assert 0 < remaining[-1] < remaining[0] <= 1  # the burn spent budget, and some is left

    folder = working_folder(text)
    assert not Path(folder).exists()
    assert processes_using(folder) == []


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path) -> None:
    process = subprocess.Popen(
        [*demo_command(tmp_path / "out"), "--registry", "webhook"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment(),
        cwd=tmp_path,
        # As from a terminal: a pytest-xdist worker ignores SIGINT, and a child would inherit that.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert process.stdout is not None
    seen = []
    for line in process.stdout:  # wait until every server is up, then interrupt like Ctrl-C does
        seen.append(line)
        if "Started sloguard" in line:
            break
    folder = working_folder("".join(seen))
    assert processes_using(folder), "the demo's servers should be running at this point"
    process.send_signal(signal.SIGINT)
    rest, errors = process.communicate(timeout=120)  # a guard against a hang; a loaded CI box is slow
    assert process.returncode == 130, "".join(seen) + rest + errors
    assert "stopped; everything it started is stopped" in errors
    assert processes_using(folder) == []
    assert not Path(folder).exists()


def test_the_demo_names_the_install_command_when_prometheus_is_missing(tmp_path: Path) -> None:
    env = environment() | {"PATH": str(Path(sys.executable).parent)}  # no Debian binaries on PATH
    done = subprocess.run(demo_command(tmp_path / "out"), capture_output=True, text=True, timeout=60, env=env)
    assert done.returncode == 1
    assert "apt-get install -y prometheus prometheus-alertmanager" in done.stderr
    assert not (tmp_path / "out").exists()


def test_make_demo_runs_the_demo() -> None:
    recipe = subprocess.run(["make", "-n", "demo"], capture_output=True, text=True, cwd=REPO, check=True)
    assert re.search(r"sloguard demo\s*$", recipe.stdout, re.MULTILINE), recipe.stdout
