"""Release gates (issue 23) at every door, against a real Prometheus holding 30 days of backfilled,
version-labelled traffic whose figures the test chose.

Four models, each telling one part of the story (their traffic is TRAFFIC and LABELLED below):
- ranker: prod's budget is down to 12 % (version 1 failed 1.12 % of its requests for 20 days, version 2
  0.4 % for the last 10), under the gate's `freeze_below: 0.25`. Versions 3 and 5 soaked cleanly in test.
- recommender: prod's budget is healthy (0.1 % failed: 90 % left). In test, version 2 soaked cleanly for
  two days, version 3 only for the last two hours, and version 4 failed 3 % of its requests (1 % allowed).
- classifier: prod is healthy and version 2 soaked cleanly in test, but 8 % of its labelled predictions
  there were wrong: its quality SLO allows 5 %. Version 6, as clean in test, has also served a slice of
  prod's traffic for the last hour, as a canary does while Argo or Flagger analyse it.
- embedder: its metrics carry no version label, so no version's soak can be told apart (and its test
  deployment was scaled down a quarter of an hour ago, after its soak: its series have gone stale).

Each version's error and success counters start from 0 at the same instant, so Prometheus'
extrapolation at a window's edges scales both alike and each version's error ratio is exact; a sum over
versions that stopped serving is off by at most half a sample interval of traffic in 20 days (~1e-5).
Every expected figure is worked out here from TRAFFIC, never from sloguard's code.

The freeze announcement (posted once, with hysteresis) is not tested here (tests/integration/gates/
test_freeze_watch.py holds the watch); the scheduler runs only its first SLO evaluation during this module,
so no freeze is stored and the gate judges prod's budget by `freeze_below` alone.
"""

from __future__ import annotations

import html
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
import yaml

from app.config import Settings
from app.identity import service as identity
from app.main import create_app
from tests.conftest import REPO, bearer, make_settings
from tests.fakes.slack import FakeSlack
from tests.integration.chat.test_slack import SECRET, TOKEN, SlackWorld
from tests.prometheus import PrometheusServer, Series, aligned_now, promtool, write_openmetrics
from tests.servers import UvicornThread, free_port, wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")  # the installed console script
STEP = 60
HOUR, DAY = 3600, 86400
PERIOD = 30 * DAY  # every Sloth SLO's period
SOAK = 24 * HOUR  # the gate's `soak.for`
AVAILABILITY = 0.99  # every prod SLO's objective: 1 % of requests may fail
QUALITY = 0.95  # every quality SLO's objective: 5 % of labelled predictions may be wrong


@dataclass(frozen=True)
class Serving:
    """`version` of `model` answered `rps` requests a second in `env`, failing `bad` of them, from
    `since` seconds before the end of the history until `until` seconds before it."""

    model: str
    env: str
    version: str | None  # None: the metrics carry no version label
    rps: float
    bad: float
    since: int
    until: int = 0


TRAFFIC = [
    Serving("ranker", "prod", "1", 10, 0.0112, PERIOD + HOUR, 10 * DAY),
    Serving("ranker", "prod", "2", 10, 0.004, 10 * DAY),
    Serving("ranker", "test", "3", 5, 0.002, 2 * DAY),
    Serving("ranker", "test", "5", 5, 0.002, 2 * DAY),
    Serving("recommender", "prod", "1", 10, 0.001, PERIOD + HOUR),
    Serving("recommender", "test", "2", 5, 0.003, 2 * DAY),
    Serving("recommender", "test", "3", 5, 0.003, 2 * HOUR),
    Serving("recommender", "test", "4", 5, 0.03, 2 * DAY),
    Serving("classifier", "prod", "1", 10, 0.001, PERIOD + HOUR),
    Serving("classifier", "test", "2", 5, 0.002, 2 * DAY),
    # a canary: version 6 soaked in test and has served a slice of prod's traffic for the last hour
    Serving("classifier", "test", "6", 5, 0.002, 2 * DAY),
    Serving("classifier", "prod", "6", 1, 0.001, HOUR),
    Serving("embedder", "prod", None, 10, 0.001, PERIOD + HOUR),
    Serving("embedder", "test", None, 5, 0.002, 2 * DAY, 15 * 60),
]
# Labelled predictions in test (2 a second for two days): the share found wrong, per model.
LABELLED = {"ranker": 0.02, "recommender": 0.01, "classifier": 0.08}


def spec(model: str, labels: str) -> str:
    """The model's prod availability SLO and, for a model with labelled predictions, its quality SLO in
    test."""
    requests = f'http_requests_total{{service="{model}",env="prod"'
    availability = f"""version: "prometheus/v1"
service: "{model}"
labels: {{model: "{model}"}}
slos:
  - name: "availability"
    objective: {AVAILABILITY * 100:g}
    labels: {labels}
    sli:
      events:
        error_query: sum(rate({requests},code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate({requests}}}[{{{{.window}}}}]))
"""
    if model not in LABELLED:
        return availability
    labelled = f'predictions_labelled_total{{service="{model}",env="test"'
    sli = (
        f"""      events:
        error_query: sum(rate({labelled},outcome="wrong"}}[{{{{.window}}}}]))
        total_query: sum(rate({labelled}}}[{{{{.window}}}}]))"""
        if model == "recommender"  # as events; the others as a raw ratio
        else f"""      raw:
        error_ratio_query: >-
          sum(rate({labelled},outcome="wrong"}}[{{{{.window}}}}]))
          / sum(rate({labelled}}}[{{{{.window}}}}]))"""
    )
    return f"""{availability}  - name: "quality"
    objective: {QUALITY * 100:g}
    labels: {{environment: "test"}}
    sli:
{sli}
"""


def model_config(model: str, prod_slos: str = "[]", quality: bool = True) -> str:
    target = f'{{kind: command, argv: ["{sys.executable}", "-c", "pass", "{{to}}"]}}'
    quality_slo = f", quality_slo: {model}-quality" if quality else ""
    return f"""  {model}:
    selector: 'service="{model}"'
    version_label: model_version
    environments:
      test: {{selector: 'env="test"'}}
      prod:
        selector: 'env="prod"'
        slos: {prod_slos}
        target: {target}
        rollback: [U1, U2]
        promote: [U1, U2]
        gate:
          freeze_below: 0.25
          soak: {{from: test, for: 24h, min_events: 1000{quality_slo}}}
          exceptions: {{by: [U0LEAD]}}
"""


# ranker's and classifier's prod SLOs belong to prod by their `environment` label; recommender's is listed
# in its prod environment's `slos:` instead.
CONFIG = (
    "models:\n"
    + model_config("ranker")
    + model_config("recommender", prod_slos="[recommender-availability]")
    + model_config("classifier")
    + model_config("embedder", quality=False)
)
SPECS = {
    "ranker": spec("ranker", '{environment: "prod"}'),
    "recommender": spec("recommender", "{}"),
    "classifier": spec("classifier", '{environment: "prod"}'),
    "embedder": spec("embedder", '{environment: "prod"}'),
}


# ---------------------------------------------------------------- the arithmetic


def counter(start: int, end: int, per_second: float) -> Callable[[int], float | None]:
    def value(t: int) -> float | None:
        return per_second * (t - start) if start <= t <= end else None

    return value


def history(end: int) -> list[Series]:
    series = []
    for s in TRAFFIC:
        version = {"model_version": s.version} if s.version is not None else {}
        for code, share in (("500", s.bad), ("200", 1 - s.bad)):
            labels = {"service": s.model, "env": s.env, "code": code, **version}
            series.append(
                Series("http_requests_total", labels, counter(end - s.since, end - s.until, s.rps * share))
            )
    for model, wrong in LABELLED.items():
        for outcome, share in (("wrong", wrong), ("right", 1 - wrong)):
            labels = {"service": model, "env": "test", "outcome": outcome}
            series.append(
                Series("predictions_labelled_total", labels, counter(end - 2 * DAY, end, 2 * share))
            )
    return series


def prod_budget_left(model: str, end: int, now: float) -> float:
    """1 - (failed ÷ all requests in prod over the SLO's 30 days up to `now`) ÷ (1 - objective)."""
    bad = total = 0.0
    for s in TRAFFIC:
        if s.model == model and s.env == "prod":
            seconds = max(0.0, min(end - s.until, now) - max(end - s.since, now - PERIOD))
            bad, total = bad + s.rps * s.bad * seconds, total + s.rps * seconds
    return 1 - (bad / total) / (1 - AVAILABILITY)


def serving(model: str, env: str, version: str) -> Serving:
    return next(s for s in TRAFFIC if (s.model, s.env, s.version) == (model, env, version))


# ---------------------------------------------------------------- the world


@dataclass
class Gates:
    url: str
    settings: Settings
    slack: SlackWorld
    end: int  # the history's last sample (unix seconds)
    read: str  # a read-scope token of U0VIEW
    lead: str  # a change-scope token of U0LEAD, who may grant exceptions
    lead_read: str  # a read-scope token of U0LEAD
    other: str  # a change-scope token of U0OTHER, who may not
    lead_token_id: int

    def cli_env(self, **overrides: str) -> dict[str, str]:
        """The CLI deciding on its own from the same settings as the server (same database: it sees the
        exceptions granted through the API)."""
        s = self.settings
        base = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")}
        return base | {
            "SLOGUARD_DATABASE_URL": s.database_url,
            "SLOGUARD_PROMETHEUS_URL": str(s.prometheus_url),
            "SLOGUARD_SLO_DIR": str(s.slo_dir),
            "SLOGUARD_CONFIG_FILE": str(s.config_file),
            "SLOGUARD_RUNBOOK_DIR": str(s.runbook_dir),
            "SLOGUARD_POSTMORTEM_DIR": str(s.postmortem_dir),
            "SLOGUARD_SCHEDULER_ENABLED": "false",
            "SLOGUARD_SOURCE_TIMEOUT": "20",
            **overrides,
        }

    def gate(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [SLOGUARD, "gate", *args], env=self.cli_env(**env), capture_output=True, text=True, timeout=120
        )

    def http(self, token: str) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=bearer(token), timeout=60)

    def rows(self, sql: str) -> Any:
        return self.slack.scalar(sql)


def make_token(database_url: str, user: str, scope: str) -> tuple[int, str]:
    from app import db

    engine = db.make_engine(database_url)
    try:
        db.upgrade(engine)
        row, token = identity.create(
            engine, user=user, scope=scope, name=f"{user}-{scope}", expires="1d", created_by="test",
            now=datetime.now(UTC),
        )  # fmt: skip
    finally:
        engine.dispose()
    assert row.id is not None
    return row.id, token


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Gates]:
    folder = tmp_path_factory.mktemp("gates")
    end = aligned_now(STEP, margin=60)
    write_openmetrics(folder / "history.om", history(end), end - PERIOD - HOUR, end, STEP)
    # Blocks as long as the history: with 24 h blocks promtool reads the file once per day (13 s, not 2 s).
    made = promtool(
        "tsdb", "create-blocks-from", "openmetrics", f"--max-block-duration={(PERIOD + DAY) // HOUR}h",
        str(folder / "history.om"), str(folder / "data"),
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    (folder / "slo").mkdir()
    for model, text in SPECS.items():
        (folder / "slo" / f"{model}.yaml").write_text(text, encoding="utf-8")
    (folder / "sloguard.yaml").write_text(CONFIG, encoding="utf-8")
    prometheus = PrometheusServer(folder / "data").start()
    try:
        with FakeSlack() as slack:
            settings = make_settings(
                folder,
                prometheus_url=prometheus.url,
                source_timeout=20,
                slack_bot_token=TOKEN,
                slack_signing_secret=SECRET,
                slack_api_url=slack.api_url(),
                slack_channel="C-INCIDENTS",
                # The evaluation runs at start (the running sloguard's gate reads its stored budgets);
                # nothing else of the scheduler's runs during the module.
                scheduler_enabled=True,
                eval_interval="1h",
            )
            _, read = make_token(settings.database_url, "U0VIEW", "read")
            lead_id, lead = make_token(settings.database_url, "U0LEAD", "change")
            _, lead_read = make_token(settings.database_url, "U0LEAD", "read")
            _, other = make_token(settings.database_url, "U0OTHER", "change")
            with UvicornThread(create_app(settings)) as server:
                world = Gates(
                    server.url,
                    settings,
                    SlackWorld(server, slack, settings.database_url),
                    end,
                    read,
                    lead,
                    lead_read,
                    other,
                    lead_id,
                )
                with world.http(read) as http:

                    def evaluated() -> bool:
                        found = http.get("/api/v1/slos").json()
                        return len(found) == 7 and all(s["evaluated_at"] for s in found)

                    wait_until(evaluated, timeout=60, interval=0.2, what="the first SLO evaluation")
                yield world
    finally:
        prometheus.stop()


def reasons(answer: dict[str, Any], check: str) -> list[dict[str, Any]]:
    return [r for r in answer["reasons"] if r["check"] == check]


def budget_line(text: str) -> float:
    """The percentage a `prod budget 12.0 % < 25.0 % (...)` reason prints."""
    match = re.search(r"prod budget (\d+\.\d) % < 25\.0 % \(ranker-availability\)", text)
    assert match, text
    return float(match.group(1))


def asked(world: Gates, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """`sloguard gate ... --url` against the running sloguard, with no settings of its own."""
    plain = {k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")} | env
    return subprocess.run(
        [SLOGUARD, "gate", *args, "--url", world.url], env=plain, capture_output=True, text=True, timeout=60
    )


# ---------------------------------------------------------------- sloguard gate, on its own


def test_the_cli_blocks_while_prods_budget_is_under_the_threshold(world: Gates) -> None:
    done = world.gate("ranker", "3", "--to", "prod")
    now = time.time()
    assert done.returncode == 1, done.stdout + done.stderr
    left = prod_budget_left("ranker", world.end, now)
    assert left == pytest.approx(0.12, abs=1e-4)  # (20 d × 1.12 % + 10 d × 0.4 %) / 30 d = 0.88 % failed
    lines = done.stdout.splitlines()
    assert lines[0] == "blocked: ranker 3 → prod"
    assert f"{budget_line(done.stdout):.1f}" == f"{left * 100:.1f}" == "12.0"
    assert "  ✗ prod budget 12.0 % < 25.0 % (ranker-availability)" in lines
    # Only the budget blocks: version 3 soaked cleanly in test (0.2 % failed; 2 % wrong of 5 % allowed).
    assert [line[2] for line in lines[1:]].count("✗") == 1, done.stdout
    assert any(
        re.fullmatch(
            r"  ✓ version 3 failed 0\.200% of \d+ requests in test over 24 h \(≤ 1\.000% allowed\)", x
        )
        for x in lines
    ), done.stdout
    assert "  ✓ quality SLI ranker-quality: 2.00% wrong over the soak (≤ 5.00% allowed)" in lines


def test_the_cli_answers_json_with_every_figure(world: Gates) -> None:
    done = world.gate("ranker", "3", "--to", "prod", "--json")
    now = time.time()
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    assert (answer["decision"], answer["exit_code"], answer["model"], answer["to"]) == (
        "blocked", 1, "ranker", "prod",
    )  # fmt: skip
    (budget,) = reasons(answer, "budget")
    assert budget["verdict"] == "blocked"
    assert (budget["figures"]["slo"], budget["figures"]["threshold"]) == ("ranker-availability", 0.25)
    left = prod_budget_left("ranker", world.end, now)
    assert budget["figures"]["remaining"] == pytest.approx(left, abs=1e-4)
    (soak,) = [r for r in reasons(answer, "soak") if "error_ratio" in r["figures"]]
    assert soak["verdict"] == "allowed"
    figures = soak["figures"]
    assert figures["error_ratio"] == pytest.approx(serving("ranker", "test", "3").bad, rel=1e-6)
    assert figures["allowed"] == pytest.approx(1 - AVAILABILITY)  # prod's tightest SLO's budget
    # 5 requests a second over the 24 h soak (the history ends a minute or two before now)
    assert figures["total"] == pytest.approx(5 * SOAK, rel=0.01)
    assert figures["served_seconds"] >= SOAK
    (quality,) = reasons(answer, "quality")
    assert quality["verdict"] == "allowed"
    assert quality["figures"]["error_ratio"] == pytest.approx(LABELLED["ranker"], rel=1e-6)
    assert quality["figures"]["allowed"] == pytest.approx(1 - QUALITY)


def workflow_commands(stdout: str) -> list[tuple[str, str, str]]:
    """(level, title, message) of each GitHub Actions workflow command, as the runner reads them back
    (its documented escaping: %25 %0D %0A, and %3A %2C in a property)."""

    def back(value: str) -> str:
        for escaped, plain in (("%0D", "\r"), ("%0A", "\n"), ("%3A", ":"), ("%2C", ","), ("%25", "%")):
            value = value.replace(escaped, plain)
        return value

    found = []
    for line in stdout.splitlines():
        if line.startswith("::"):
            match = re.fullmatch(r"::(error|warning|notice) title=([^:,]*)::(.*)", line)
            assert match, line
            found.append((match.group(1), back(match.group(2)), back(match.group(3))))
    return found


def test_the_cli_prints_github_annotations(world: Gates) -> None:
    done = world.gate("recommender", "4", "--to", "prod", "--format", "github")
    assert done.returncode == 1, done.stderr
    assert done.stdout.splitlines()[-1] == "blocked: recommender 4 → prod"
    with world.http(world.read) as http:
        answer = http.post("/api/v1/gates/check", json={"model": "recommender", "version": "4", "to": "prod"})
    level = {"blocked": "error", "allowed": "notice", "undecided": "warning"}

    def counted(text: str) -> str:  # the requests counted grow as the 24 h window moves past the history
        return re.sub(r"of \d+ requests", "of N requests", text)

    shown = workflow_commands(done.stdout)
    assert {title for _, title, _ in shown} == {"sloguard gate recommender 4 → prod"}
    assert [(lv, counted(text)) for lv, _, text in shown] == [
        (level[r["verdict"]], counted(r["text"])) for r in answer.json()["reasons"]
    ]
    errors = [text for lv, _, text in shown if lv == "error"]
    assert len(errors) == 1 and re.fullmatch(
        r"version 4 failed 3\.000% of \d+ requests in test over 24 h \(> 1\.000% allowed\)", errors[0]
    ), errors


def test_the_cli_blocks_a_candidate_whose_soak_was_too_short(world: Gates) -> None:
    done = world.gate("recommender", "3", "--to", "prod", "--json")
    finished = time.time()
    assert done.returncode == 1, done.stderr
    answer = json.loads(done.stdout)
    blocking = [r for r in answer["reasons"] if r["verdict"] == "blocked"]
    assert [r["check"] for r in blocking] == ["soak"], blocking
    # Version 3 began serving in test two hours before the history ended, a minute or two ago; the gate
    # reads the soak in steps of 6 minutes (a 250th of 24 h, in whole minutes).
    served = blocking[0]["figures"]["served_seconds"]
    since = serving("recommender", "test", "3").since
    assert since - 360 <= served <= since + (finished - world.end) + 360, served
    # (to a tenth of an hour, a whole one without its ".0")
    match = re.fullmatch(
        r"version 3 served (\d+(?:\.\d)?) h in test; the soak needs 24 h", blocking[0]["text"]
    )
    assert match and abs(float(match.group(1)) - served / 3600) <= 0.05, blocking[0]["text"]
    # Its requests were clean, and prod's budget is healthy: 0.1 % failed, 90 % left.
    (budget,) = reasons(answer, "budget")
    assert budget["verdict"] == "allowed"
    left = prod_budget_left("recommender", world.end, finished)
    assert budget["figures"]["remaining"] == pytest.approx(left, abs=1e-4)
    assert left == pytest.approx(0.9, abs=1e-4)


def test_the_cli_blocks_a_candidate_whose_quality_is_below_its_objective(world: Gates) -> None:
    done = world.gate("classifier", "2", "--to", "prod")
    assert done.returncode == 1, done.stdout + done.stderr
    blocked = [line for line in done.stdout.splitlines() if line.startswith("  ✗")]
    assert blocked == [
        "  ✗ quality SLI classifier-quality: 8.00% wrong over the soak, above the 5.00% allowed"
    ], done.stdout


def test_the_cli_cannot_decide_without_prometheus(world: Gates) -> None:
    closed = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    done = world.gate("ranker", "3", "--to", "prod", "--json", SLOGUARD_PROMETHEUS_URL=closed)
    assert done.returncode == 2, done.stdout + done.stderr
    answer = json.loads(done.stdout)
    assert answer["decision"] == "undecided"
    undecided = {r["check"] for r in answer["reasons"] if r["verdict"] == "undecided"}
    assert {"budget", "soak"} <= undecided, answer["reasons"]
    assert not [r for r in answer["reasons"] if r["verdict"] == "allowed"], answer["reasons"]


def test_the_cli_cannot_decide_without_a_version_label(world: Gates) -> None:
    done = world.gate("embedder", "7", "--to", "prod")
    assert done.returncode == 2, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "undecided: embedder 7 → prod"
    assert (
        "  ? embedder's metrics in test carry no version label: version 7's soak cannot be told from "
        "other versions'" in lines
    ), done.stdout


def test_a_quality_slo_that_is_not_there_leaves_the_gate_undecided(world: Gates, tmp_path: Path) -> None:
    """A typo in `quality_slo` must not let a candidate pass without its quality judged."""
    from app.config import load_file_config
    from app.gates import service as gates
    from app.services import build_services
    from app.slo.spec import load_specs

    (tmp_path / "sloguard.yaml").write_text(
        CONFIG.replace("quality_slo: recommender-quality", "quality_slo: recomender-quality")
    )
    settings = world.settings.model_copy(
        update={"config_file": tmp_path / "sloguard.yaml", "scheduler_enabled": False}
    )
    services = build_services(
        settings, load_file_config(settings.config_file), load_specs([settings.slo_dir])
    )
    try:
        decision = gates.decide_now(
            services, model="recommender", version="2", environment="prod", now=datetime.now(UTC), fresh=True
        )
    finally:
        services.close()
    assert decision.as_dict()["decision"] == "undecided", decision
    (soak,) = [r for r in decision.reasons if r.check == "soak"]
    assert soak.text == (
        "the soak in test could not be read: "
        "its quality_slo 'recomender-quality' is not an SLO sloguard has loaded"
    )


# ---------------------------------------------------------------- sloguard gate --url, and exceptions


def test_the_cli_asks_a_running_sloguard(world: Gates) -> None:
    done = asked(world, "ranker", "3", "--to", "prod", "--token", world.read)
    now = time.time()
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.splitlines()[0] == "blocked: ranker 3 → prod"
    assert f"{budget_line(done.stdout):.1f}" == f"{prod_budget_left('ranker', world.end, now) * 100:.1f}"
    healthy = asked(world, "recommender", "2", "--to", "prod", SLOGUARD_API_TOKEN=world.read)
    assert healthy.returncode == 0, healthy.stdout + healthy.stderr
    assert healthy.stdout.splitlines()[0] == "allowed: recommender 2 → prod"
    short = asked(world, "recommender", "3", "--to", "prod", "--token", world.read)
    assert short.returncode == 1, short.stdout
    unknown = asked(world, "embedder", "7", "--to", "prod", "--token", world.read)
    assert unknown.returncode == 2, unknown.stdout
    # A running sloguard that refuses the token leaves the gate undecided, not allowed.
    refused = asked(world, "recommender", "2", "--to", "prod", "--token", "sloguard_pat_" + "x" * 38)
    assert refused.returncode == 2, refused.stdout


def test_an_exception_by_a_named_person_lets_a_blocked_release_through(world: Gates) -> None:
    assert world.gate("ranker", "5", "--to", "prod").returncode == 1
    why = "fixes INC-12: 40% of searches fail\nthe freeze would keep the outage going"
    body = {"model": "ranker", "version": "5", "to": "prod", "reason": why, "expires": "2h"}
    with world.http(world.other) as http:  # change scope, but not named in `exceptions.by`
        refused = http.post("/api/v1/gates/exceptions", json=body)
    assert refused.status_code == 403, refused.text
    assert refused.json()["detail"] == "you may not grant a gate exception for ranker in prod; ask <@U0LEAD>"
    with world.http(world.lead_read) as http:  # the right person, with a read-only token
        assert http.post("/api/v1/gates/exceptions", json=body).status_code == 403
    assert world.rows("SELECT count(*) FROM gate_exception") == 0

    before = datetime.now(UTC)
    with world.http(world.lead) as http:
        granted = http.post("/api/v1/gates/exceptions", json=body)
    after = datetime.now(UTC)
    assert granted.status_code == 201, granted.text
    with world.http(world.read) as http:
        (row,) = http.get("/api/v1/gates/exceptions", params={"model": "ranker"}).json()
        still_frozen = http.post(
            "/api/v1/gates/check", json={"model": "ranker", "version": "3", "to": "prod"}
        )
    # The row is the audit record: who (and with which token), why, when, for what, until when.
    assert (row["granted_by"], row["token_id"], row["reason"], row["state"]) == (
        "U0LEAD", world.lead_token_id, why, "granted",
    )  # fmt: skip
    assert (row["model"], row["version"], row["environment"]) == ("ranker", "5", "prod")
    created = datetime.fromisoformat(row["created_at"].replace("Z", "+00:00"))
    assert before - timedelta(seconds=1) <= created <= after + timedelta(seconds=1)
    expires = datetime.fromisoformat(row["expires_at"].replace("Z", "+00:00"))
    assert expires - created == timedelta(hours=2)
    assert still_frozen.json()["decision"] == "blocked"  # for that version only

    here = world.gate("ranker", "5", "--to", "prod", "--format", "github")
    assert here.returncode == 0, here.stdout + here.stderr
    assert here.stdout.splitlines()[-1] == "allowed: ranker 5 → prod"
    shown = workflow_commands(here.stdout)
    assert (
        "error",
        "sloguard gate ranker 5 → prod",
        "prod budget 12.0 % < 25.0 % (ranker-availability)",
    ) in shown
    # the whole reason, its second line and its percent sign too, in one annotation
    assert ("notice", "sloguard gate ranker 5 → prod", f"exception granted by U0LEAD: {why}") in shown
    there = asked(world, "ranker", "5", "--to", "prod", "--token", world.read)
    assert there.returncode == 0, there.stdout + there.stderr
    # and through Slack
    proposal = world.slack.run("/promote", "ranker 5 to prod", user="U1")
    assert proposal["text"].startswith("*Promote ranker* in *prod*"), proposal["text"]
    assert "→ *5*" in proposal["text"]
    assert world.rows("SELECT count(*) FROM rollback_action WHERE model = 'ranker' AND to_version = '5'") == 1


# ---------------------------------------------------------------- Slack

FROZEN = (
    "the release gate for ranker 3 into prod is blocked: prod budget 12.0 % < 25.0 % (ranker-availability)"
)


def test_promote_in_slack_gives_the_same_decisions(world: Gates) -> None:
    def promote(text: str) -> str:
        return html.unescape(str(world.slack.run("/promote", text, user="U1")["text"]))

    said = promote("ranker 3 to prod")
    assert said == FROZEN
    said = promote("recommender 3 to prod")
    assert re.fullmatch(
        r"the release gate for recommender 3 into prod is blocked: version 3 served 2(?:\.\d)? h in test; "
        r"the soak needs 24 h",
        said,
    ), said
    said = promote("classifier 2 to prod")
    assert said == (
        "the release gate for classifier 2 into prod is blocked: quality SLI classifier-quality: 8.00% "
        "wrong over the soak, above the 5.00% allowed"
    )
    said = promote("embedder 7 to prod")
    assert said == (
        "the release gate for embedder 7 into prod could not be decided: embedder's metrics in test carry "
        "no version label: version 7's soak cannot be told from other versions'"
    )
    for model, version in (("ranker", "3"), ("recommender", "3"), ("classifier", "2"), ("embedder", "7")):
        stored = world.rows(
            f"SELECT count(*) FROM rollback_action WHERE model = '{model}' AND to_version = '{version}'"
        )
        assert stored == 0, (model, version)
    said = promote("recommender 2 to prod")
    assert said.startswith("*Promote recommender* in *prod*: version ? → *2*"), said
    stored = world.rows("SELECT state FROM rollback_action WHERE model = 'recommender' AND to_version = '2'")
    assert stored == "proposed"


def test_rollback_in_slack_passes_a_freeze_only_to_a_version_that_served_there(world: Gates) -> None:
    # Version 1 served in prod until ten days ago (the traffic says so): a rollback, never blocked.
    proposal = world.slack.run("/rollback", "ranker prod to 1", user="U1")
    assert proposal["text"].startswith("*Rollback ranker* in *prod*: version ? → *1*"), proposal["text"]
    button = proposal["blocks"][-1]["elements"][0]
    assert button["action_id"] == "rollback_confirm"
    seen = len(world.slack.slack.called("/response/cmd"))
    world.slack.button("rollback_confirm", button["value"], user="U2")  # the confirm asks the gate again
    done = world.slack.reply(seen)
    assert done["text"].startswith("Your rollback: ranker in prod now serves 1"), done["text"]
    assert world.rows(f"SELECT state FROM rollback_action WHERE id = {int(button['value'])}") == "succeeded"
    # Version 3 never served in prod: a "rollback" to it is a promotion, and the freeze holds.
    refused = html.unescape(world.slack.run("/rollback", "ranker prod to 3", user="U1")["text"])
    assert refused == FROZEN
    assert world.rows("SELECT count(*) FROM rollback_action WHERE model = 'ranker' AND to_version = '3'") == 0


# ---------------------------------------------------------------- Argo Rollouts and Flagger


class Expr:
    """The part of expr-lang (https://expr-lang.org) that an AnalysisTemplate's conditions use, with
    `result` bound to the measured value as Argo Rollouts binds it: literals (strings, numbers, true,
    false, nil), member access `result.a.b` (a key the map lacks is nil), == != < <= > >=, `in [...]`,
    `!`/not, &&/and, ||/or and parentheses."""

    TOKEN = re.compile(
        r'\s*(?:(?P<string>"(?:[^"\\]|\\.)*")|(?P<number>\d+(?:\.\d+)?)'
        r"|(?P<op>==|!=|<=|>=|&&|\|\||[<>!()\[\],.])|(?P<name>[A-Za-z_][A-Za-z0-9_]*))"
    )

    def __init__(self, source: str, env: dict[str, Any]) -> None:
        self.tokens: list[tuple[str, str]] = []
        at, source = 0, source.strip()
        while at < len(source):
            match = self.TOKEN.match(source, at)
            assert match and match.lastgroup, f"cannot read {source[at:]!r}"
            self.tokens.append((match.lastgroup, match.group(match.lastgroup)))
            at = match.end()
        self.at, self.env = 0, env

    def peek(self) -> str | None:
        return self.tokens[self.at][1] if self.at < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        token = self.tokens[self.at]
        assert expected is None or token[1] == expected, (expected, token)
        self.at += 1
        return token

    def run(self) -> Any:
        value = self.either()
        assert self.at == len(self.tokens), f"left over: {self.tokens[self.at :]}"
        return value

    def either(self) -> Any:
        value = self.both()
        while self.peek() in ("||", "or"):
            self.take()
            right = self.both()
            value = bool(value) or bool(right)
        return value

    def both(self) -> Any:
        value = self.compare()
        while self.peek() in ("&&", "and"):
            self.take()
            right = self.compare()
            value = bool(value) and bool(right)
        return value

    def compare(self) -> Any:
        left = self.unary()
        operator = self.peek()
        if operator not in ("==", "!=", "<", "<=", ">", ">=", "in"):
            return left
        self.take()
        right = self.unary()
        if operator in ("==", "!="):
            return (left == right) == (operator == "==")
        if operator == "in":
            return left in right
        assert isinstance(left, (int, float)) and isinstance(right, (int, float)), (left, right)
        return {"<": left < right, "<=": left <= right, ">": left > right, ">=": left >= right}[operator]

    def unary(self) -> Any:
        if self.peek() in ("!", "not"):
            self.take()
            return not self.unary()
        return self.member()

    def member(self) -> Any:
        kind, text = self.take()
        value: Any
        if kind == "string":
            value = json.loads(text)
        elif kind == "number":
            value = float(text) if "." in text else int(text)
        elif text == "(":
            value = self.either()
            self.take(")")
        elif text == "[":
            value = []
            while self.peek() != "]":
                value.append(self.either())
                if self.peek() == ",":
                    self.take()
            self.take("]")
        elif kind == "name":
            value = {"true": True, "false": False, "nil": None}.get(text, self.env.get(text))
        else:
            raise AssertionError(f"unexpected {text!r}")
        while self.peek() == ".":
            self.take()
            value = value.get(self.take()[1]) if isinstance(value, dict) else None
        return value


def argo_phase(result: Any, success: str, failure: str) -> str:
    """Argo Rollouts' EvaluateResult: a true failureCondition fails; a true successCondition succeeds;
    with both conditions given and neither true, the measurement is Inconclusive; with only a
    successCondition, a false one fails (and with only a failureCondition, a false one succeeds)."""
    succeeded = bool(Expr(success, {"result": result}).run()) if success else False
    failed = bool(Expr(failure, {"result": result}).run()) if failure else False
    if not success and not failure:
        return "Successful"
    if success and not failure:
        failed = not succeeded
    elif failure and not success:
        succeeded = not failed
    if failed:
        return "Failed"
    return "Successful" if succeeded else "Inconclusive"


def test_the_expression_evaluator_reads_argo_conditions() -> None:
    result = {"decision": "allowed", "exit_code": 0, "reasons": [{"check": "budget"}]}
    assert Expr('result.decision == "allowed"', {"result": result}).run() is True
    assert Expr('result.decision != "allowed" || result.exit_code > 0', {"result": result}).run() is False
    assert Expr('result.decision in ["blocked", "undecided"]', {"result": result}).run() is False
    assert Expr("!(result.exit_code >= 1) and result.missing == nil", {"result": result}).run() is True
    assert argo_phase(result, 'result.decision == "allowed"', "") == "Successful"
    assert argo_phase({"decision": "undecided"}, 'result.decision == "allowed"', "") == "Failed"
    assert argo_phase({"decision": "undecided"}, "", 'result.decision == "blocked"') == "Successful"


def measure(world: Gates, model: str, version: str, token: str) -> tuple[str, dict[str, Any]]:
    """One measurement of the shipped AnalysisTemplate's metric (deploy/gates), as Argo's web provider
    takes it: its URL and headers with the arguments filled in (the service's address replaced by the
    test's server), the whole JSON answer (`jsonPath: {$}`) as `result`, judged by its conditions."""
    template = yaml.safe_load((REPO / "deploy/gates/argo-analysistemplate.yaml").read_text())
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    args = {a["name"]: a.get("value") for a in template["spec"]["args"]}
    args |= {"model": model, "version": version, "sloguard-token": token}  # `to` keeps its default

    def fill(text: str, escape: Callable[[str], str] = lambda value: value) -> str:
        return re.sub(r"\{\{args\.([\w-]+)\}\}", lambda m: escape(str(args[m.group(1)])), text)

    url = re.sub(r"^https?://[^/]+", world.url, fill(web["url"], lambda value: quote(value, safe="")))
    headers = {h["key"]: fill(h["value"]) for h in web["headers"]}
    answer = httpx.get(url, headers=headers, timeout=web["timeoutSeconds"])
    assert answer.status_code == 200, answer.text  # any other status is Argo's Error, not a measurement
    assert web["jsonPath"] == "{$}"
    result = answer.json()
    return argo_phase(result, metric["successCondition"], metric["failureCondition"]), result


def test_argo_analysis_passes_fails_and_is_inconclusive(world: Gates) -> None:
    phase, healthy = measure(world, "recommender", "2", world.read)
    assert (phase, healthy["to"]) == ("Successful", "prod"), healthy
    phase, burning = measure(world, "recommender", "4", world.read)
    assert phase == "Failed", burning
    assert [r["check"] for r in burning["reasons"] if r["verdict"] == "blocked"] == ["soak"]
    phase, frozen = measure(world, "ranker", "3", world.read)
    assert phase == "Failed", frozen
    phase, unknown = measure(world, "embedder", "7", world.read)
    assert phase == "Inconclusive", unknown
    # With only a successCondition, undecided would fail the rollout: the failureCondition is what leaves it
    # inconclusive.
    assert argo_phase(unknown, 'result.decision == "allowed"', "") == "Failed"
    assert httpx.get(f"{world.url}/api/v1/gates/argo", params={"model": "x"}, timeout=10).status_code == 401


def confirm_promotion(world: Gates, model: str, version: str, token: str) -> httpx.Response:
    """What Flagger posts to the shipped Canary's confirm-promotion webhook (deploy/gates): a JSON body
    with the canary's name, namespace, phase, checksum and the hook's metadata, and no header but its
    content type."""
    canary = yaml.safe_load((REPO / "deploy/gates/flagger-canary.yaml").read_text())
    (hook,) = canary["spec"]["analysis"]["webhooks"]
    assert hook["type"] == "confirm-promotion"
    payload = {
        "name": canary["metadata"]["name"],
        "namespace": canary["metadata"]["namespace"],
        "phase": "Progressing",
        "checksum": "6c8f2b1d5d",
        "metadata": hook["metadata"] | {"model": model, "version": version, "token": token},
    }
    url = re.sub(r"^https?://[^/]+", world.url, hook["url"])
    return httpx.post(
        url, content=json.dumps(payload), headers={"Content-Type": "application/json"}, timeout=30
    )


def test_flagger_confirm_promotion_answers_200_or_403(world: Gates) -> None:
    healthy = confirm_promotion(world, "recommender", "2", world.read)
    assert healthy.status_code == 200, healthy.text
    assert healthy.json()["decision"] == "allowed"
    for model, version, decision in (
        ("recommender", "4", "blocked"),  # burning in test
        ("ranker", "3", "blocked"),  # prod frozen
        ("embedder", "7", "undecided"),  # no version label: Flagger waits and asks again
    ):
        held = confirm_promotion(world, model, version, world.read)
        assert (held.status_code, held.json()["decision"]) == (403, decision), held.text
    # The token is a real one, or nothing is decided.
    assert confirm_promotion(world, "recommender", "2", "sloguard_pat_" + "y" * 38).status_code == 401
    with world.http(world.read) as http:  # a bearer header also does, for a caller that can send one
        incomplete = http.post("/api/v1/gates/flagger", json={"name": "x", "metadata": {"model": "ranker"}})
    detail = incomplete.json()["detail"]
    assert incomplete.status_code == 422 and "metadata.version" in detail and "metadata.to" in detail
    with httpx.Client(base_url=world.url, timeout=60) as http:  # no token: a bad payload says only that
        anonymous = http.post("/api/v1/gates/flagger", content=b"\xff not json")
    assert anonymous.status_code == 401, anonymous.text


def test_check_answers_a_read_token_and_exceptions_need_change(world: Gates) -> None:
    body = {"model": "recommender", "version": "2", "to": "prod"}
    with world.http(world.read) as http:
        checked = http.post("/api/v1/gates/check", json=body)
        assert checked.status_code == 200 and checked.json()["decision"] == "allowed"
        refused = http.post("/api/v1/gates/exceptions", json=body | {"reason": "r"})
        assert refused.status_code == 403
        assert "needs change" in refused.json()["detail"]
    assert httpx.post(f"{world.url}/api/v1/gates/check", json=body, timeout=10).status_code == 401


def test_a_canary_serving_part_of_prod_is_still_a_promotion(world: Gates) -> None:
    # classifier 6 soaked cleanly in test, but its quality there is below objective (8 % wrong of 5 %); it
    # has served 1 request a second of prod's traffic for the last hour, as Argo's and Flagger's canaries do.
    with world.http(world.read) as http:
        answer = http.post("/api/v1/gates/check", json={"model": "classifier", "version": "6", "to": "prod"})
    assert answer.json()["decision"] == "blocked", answer.json()["reasons"]
