"""The incident record against a story whose truth the test knows (issue 18's acceptance).

The demo's model server (`app.demo.story.FraudModel`: every counter is the exact integral of its phases'
rates) holds 26 hours of history, backfilled with promtool (more than the SLO's one-day period), and is
then scraped every second by a real Prometheus. Version 1 serves with 0.05 % errors; version 2 begins
serving at T0 and is fine at first; from T1 its errors climb (0.4 %, 1 %, 2.5 %, 5 %), so the time the
page needs to fire is no fixed offset. sloguard evaluates every 2 s, opens the incident, finds version 2
the suspect; the test rolls back through the API (the signed HTTP webhook target the model server
serves) at T2; sloguard verifies the recovery, and the test resolves the incident.

Every expected figure is worked out here from the phases alone: the moments each tier's windows cross
their thresholds, the bad and total requests over the window sloguard reports, the period's budget.
"""

from __future__ import annotations

import csv
import json
import os
import re
import secrets
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from app.demo import stack
from app.demo.run import SLO_FILE, sloguard_yaml
from app.demo.story import RPS, FraudModel, ModelServer, Phase
from app.main import create_app
from tests.conftest import API_TOKEN, bearer, make_settings, personal_token, pg_schema_url
from tests.fakes.slack import FakeSlack
from tests.servers import UvicornThread
from tests.unit.postmortems.test_charts import check_self_contained, png_size, rendered, texts

pytestmark = pytest.mark.integration

STEP = 60  # the page tier's short window of a one-day SLO: the impact window's step
EVAL = 2.0  # sloguard's evaluation interval here
ALLOWED = 0.001  # 1 - 99.9 %
DAY = 86_400
SAMPLE = 15  # backfilled sample spacing
VERIFY_FOR = 70  # the page's 1-minute window is clean again by then
CALM = {"amount": 0.02, "merchant_category": 0.01, "hour_of_day": 0.01}
# (factor, long window, short window) of the SLO's tiers, from its one-day period (SLO-MATH.md's table
# scaled by 1d / 30d, minutes rounded): the test's own copy, not sloguard's.
TIERS = [(14.4, 120, 60), (6.0, 720, 60), (3.0, 2880, 240), (1.0, 8640, 720)]
DEPLOY_SECRET_ENV = "TRUE_RECORD_DEPLOY_SECRET"
CHANNEL = "C-INCIDENTS"
# Events rate() may misplace at a step's edges: a second's scrape of the worst phase (40/s at 5 %) at each.
EDGE = 2 * RPS * 0.05
SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"


@dataclass
class Story:
    t0: float
    t1: float
    model: FraudModel

    def bad(self, start: float, end: float) -> float:
        return sum(
            self.model._served(v, end, lambda p: p.error_ratio)
            - self.model._served(v, start, lambda p: p.error_ratio)
            for v in self.model.versions
        )

    def total(self, start: float, end: float) -> float:
        return sum(
            self.model._served(v, end, lambda p: 1.0) - self.model._served(v, start, lambda p: 1.0)
            for v in self.model.versions
        )


def first_page(story: Story, since: float, until: float) -> float:
    """The first moment, to a tenth of a second, at which some tier's long and short windows both burn
    above its factor: when a perfect evaluator would detect."""
    t = since
    while t < until:
        for factor, long, short in TIERS:
            if all(story.bad(t - w, t) / story.total(t - w, t) > factor * ALLOWED for w in (long, short)):
                return t
        t += 0.1
    raise AssertionError("the story never pages")


def expected_window(story: Story, detected: float, slop: float) -> tuple[float, float]:
    """The README's impact window worked out from the story: steps of a minute ending at detection and
    every minute either side; the run of steps whose bad events (give or take `slop`) are above the
    allowed share of their events that leads up to detection."""

    changes = [phase.start for phase in story.model.phases]

    def exceeds(end: float) -> bool:
        # The slop only where a phase changed within the step (or a scrape from its edges): elsewhere
        # the rates are constant and rate() is exact.
        edge = any(end - STEP - 1 <= change <= end + 1 for change in changes)
        return story.bad(end - STEP, end) + (slop if edge else 0) > ALLOWED * story.total(end - STEP, end)

    latest = detected
    while not exceeds(latest):
        latest -= STEP
        assert latest > detected - 720, "no exceeding step within the longest short window"
    earliest, last = latest, latest
    while exceeds(earliest - STEP):
        earliest -= STEP
        assert earliest > detected - DAY, "a run without a beginning"
    while exceeds(last + STEP):
        last += STEP
        assert last < detected + DAY, "a run without an end"
    return earliest - STEP, last


def seconds(text: str) -> float:
    """`1 h 2 min 3 s` -> 3723 (the draft's durations)."""
    units = {"h": 3600, "min": 60, "s": 1}
    found = re.findall(r"(\d+) (h|min|s)\b", text)
    assert found, text
    return float(sum(int(n) * units[u] for n, u in found))


def moment(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


@pytest.fixture
def pg_url(pg_database: Any) -> Iterator[str]:
    """PostgreSQL only: the story takes minutes of wall clock, and the backends' figures are the same
    code (tests/integration/incidents/test_impact_record.py runs on both)."""
    yield from pg_schema_url(pg_database)


@pytest.fixture
def deploy_secret(monkeypatch: pytest.MonkeyPatch) -> str:
    secret = secrets.token_hex(16)
    monkeypatch.setenv(DEPLOY_SECRET_ENV, secret)
    return secret


@pytest.fixture
def world(tmp_path: Path, pg_url: str, deploy_secret: str) -> Iterator[dict[str, Any]]:
    now = time.time()
    t0, t1 = now - 300, now + 25
    phases = [
        Phase(now - 26 * 3600, "1", 0.0005, 0.004, CALM),
        Phase(t0, "2", 0.0005, 0.004, CALM),
        Phase(t1, "2", 0.004, 0.01, CALM),
        Phase(t1 + 40, "2", 0.01, 0.02, CALM),
        Phase(t1 + 80, "2", 0.025, 0.05, CALM),
        Phase(t1 + 120, "2", 0.05, 0.09, CALM),
    ]
    port = stack.free_port()
    model = FraudModel(phases, instance=f"127.0.0.1:{port}", recovered={"1": (0.0005, 0.004)})
    end = int(now) // SAMPLE * SAMPLE
    history = tmp_path / "history.om"
    stack.write_openmetrics(history, model.history(), int(phases[0].start) // SAMPLE * SAMPLE, end, SAMPLE)
    stack.backfill(history, tmp_path / "prometheus-data")
    server = ModelServer(model, port, deploy_secret).start()
    prometheus = stack.PrometheusServer(tmp_path / "prometheus-data", scrape={"fraud-model": model.instance})
    prometheus.start()
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "fraud-model.yaml").write_text(SLO_FILE)
    target = {
        "kind": "http_webhook",
        "url": f"http://{model.instance}/deploy",
        "secret_env": DEPLOY_SECRET_ENV,
    }
    config = json.loads(sloguard_yaml(target, registry=False))
    config["models"]["fraud-model"]["environments"]["prod"]["verify_for"] = VERIFY_FOR
    (tmp_path / "sloguard.yaml").write_text(json.dumps(config))
    slack = FakeSlack().__enter__()
    settings = make_settings(
        tmp_path,
        slack_bot_token="xoxb-1234-5678-abcdefghijkl",
        slack_signing_secret=SIGNING_SECRET,
        slack_api_url=slack.api_url(),
        slack_channel=CHANNEL,
        database_url=pg_url,
        prometheus_url=prometheus.url,
        scheduler_enabled=True,
        eval_interval=EVAL,
    )
    try:
        with (
            UvicornThread(create_app(settings)) as sloguard,
            httpx.Client(
                base_url=sloguard.url, headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=30
            ) as api,
        ):
            yield {
                "api": api,
                # Alice acts through the API with her own token (she may roll the model back).
                "alice": bearer(personal_token(pg_url, "U0ALICE", "change")),
                "story": Story(t0, t1, model),
                "postmortems": tmp_path / "postmortems",
                "cli_env": {
                    **{k: v for k, v in os.environ.items() if not k.startswith("SLOGUARD_")},
                    "SLOGUARD_PROMETHEUS_URL": prometheus.url,
                    "SLOGUARD_SLO_DIR": str(tmp_path / "slo"),
                    "SLOGUARD_CONFIG_FILE": str(tmp_path / "sloguard.yaml"),
                },
                "slack": slack,
            }
    finally:
        slack.__exit__(None, None, None)
        server.stop()
        prometheus.stop()


def wait_for(what: str, check: Any, timeout: float) -> Any:
    found: list[Any] = []

    def probe() -> bool:
        value = check()
        if value:
            found.append(value)
        return bool(value)

    stack.wait_until(probe, timeout=timeout, interval=0.5, what=what)
    return found[-1]


def test_the_record_of_a_climbing_outage_follows_the_story(world: dict[str, Any]) -> None:
    api: httpx.Client = world["api"]
    story: Story = world["story"]
    model = story.model

    # Detection, and the evidence that names version 2.
    incident = wait_for("the incident", lambda: next(iter(api.get("/api/v1/incidents").json()), None), 300)
    number = incident["id"]
    # While it pages, `slo status` shows the one-day SLO's own windows and fails on `page`.
    status = subprocess.run(
        [str(Path(sys.executable).parent / "sloguard"), "slo", "status", "--fail-on", "page"],
        env=world["cli_env"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 1, status.stdout + status.stderr
    header, row = status.stdout.splitlines()[:2]
    assert header.split()[2:6] == ["page-fast", "short", "page-fast", "long"], header
    assert row.split()[2] == "1m" and row.split()[4] == "2m" and row.rstrip().endswith("page"), row
    detail = wait_for(
        "the suspect",
        lambda: (lambda d: d if any(v["role"] == "suspect" for v in d["model_versions"]) else None)(
            api.get(f"/api/v1/incidents/{number}").json()
        ),
        60,
    )
    assert {v["version"] for v in detail["model_versions"] if v["role"] == "suspect"} == {"2"}

    # Alice acknowledges from Slack, as Slack sends a slash command: she becomes the commander.
    slack: FakeSlack = world["slack"]
    body = urlencode(
        {
            "command": "/incident",
            "text": f"ack {number}",
            "user_id": "U0ALICE",
            "user_name": "alice",
            "channel_id": CHANNEL,
            "team_id": "T1",
            "response_url": slack.response_url("alice"),
            "trigger_id": "t.1",
        }
    )
    stamp = str(int(time.time()))
    signed = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=stamp, body=body)
    headers = {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": signed or ""}
    headers |= {"Content-Type": "application/x-www-form-urlencoded"}
    assert api.post("/slack/events", content=body, headers=headers).status_code == 200
    assert slack.wait_for(lambda: slack.called("/response/alice"), timeout=20)
    assert slack.called("/response/alice")[0]["response_type"] == "ephemeral"  # only to her

    # Roll back through the API: the model server switches to version 1 when the webhook reaches it.
    alice: dict[str, str] = world["alice"]
    answer = api.post(
        "/api/v1/rollbacks",
        json={"model": "fraud-model", "incident_id": number, "confirm": True},
        headers=alice,
    )
    assert answer.status_code == 201, answer.text
    action = answer.json()
    assert (action["to_version"], action["state"]) == ("1", "succeeded"), action
    t2 = model.phases[-1].start
    assert model.phases[-1].version == "1"

    # Alice resolves straight after the rollback, as people do: the step after the impact is not over
    # yet, so the measurement at resolution waits for it (two steps and a scrape margin), and the draft
    # follows the measurement.
    resolved = api.patch(f"/api/v1/incidents/{number}", json={"status": "resolved"}, headers=alice)
    assert resolved.status_code == 200, resolved.text
    resolved_at = moment(resolved.json()["resolved_at"])

    # The verification still says recovered, and the incident was mitigated when the change succeeded.
    wait_for(
        "the verified recovery",
        lambda: api.get(f"/api/v1/rollbacks/{action['id']}").json()["state"] == "verified",
        VERIFY_FOR + 60,
    )
    draft_path = wait_for(
        "the review draft", lambda: sorted(world["postmortems"].glob(f"*-{number}-*.md")), 240
    )[0]
    shown = api.get(f"/api/v1/incidents/{number}").json()
    assert shown["status"] == "resolved"
    assert moment(shown["mitigated_at"]) == pytest.approx(moment(action["finished_at"]), abs=0.01)
    assert moment(shown["impact"]["measured_at"]) >= resolved_at + 2 * STEP
    draft = draft_path.read_text()

    # The impact window: from within a step of T1 to within a step of T2, and exactly the steps the
    # story says exceed on the grid aligned back from detection (either way for a step whose bad count
    # is within EDGE of its allowance: rate() cannot see where, within a scrape, a burst began or ended).
    impact = shown["impact"]
    assert impact["method"] == "events"
    start, end = moment(impact["started_at"]), moment(impact["ended_at"])
    assert story.t1 - STEP <= start <= story.t1 + STEP, start - story.t1
    assert t2 - STEP <= end <= t2 + STEP, end - t2
    detected = moment(shown["detected_at"])
    windows = {expected_window(story, detected, slop) for slop in (-EDGE, 0, EDGE)}
    assert any(abs(start - a) < 0.01 and abs(end - b) < 0.01 for a, b in windows), (start, end, windows)
    assert moment(shown["started_at"]) == start

    # The budget: bad events in sloguard's window over 0.1 % of the day's events ending there.
    bad, total = story.bad(start, end), story.total(start, end)
    budget = ALLOWED * story.total(end - DAY, end)
    assert budget == pytest.approx(ALLOWED * RPS * DAY)  # 26 h of history: a full day
    assert impact["bad_events"] == pytest.approx(bad, rel=0.05)
    assert impact["total_events"] == pytest.approx(total, rel=0.05)
    assert impact["budget_consumed"] == pytest.approx(bad / budget, rel=0.05)

    # Detection: a perfect evaluator pages at `paged`; sloguard within an evaluation (and a scrape).
    paged = first_page(story, story.t1, t2)
    detected = moment(shown["detected_at"])
    assert paged - 2 <= detected <= paged + EVAL + 3, detected - paged
    margin = STEP + EVAL + 3
    assert abs(shown["time_to_detect"] - (paged - story.t1)) <= margin
    assert shown["time_to_detect"] == pytest.approx(detected - start, abs=0.01)
    assert abs(shown["time_to_mitigate"] - (t2 - story.t1)) <= margin

    # The timeline: the deploy at T0 (the data's step of a minute), impact began and ended at their times.
    timeline = shown["timeline"]
    (deploy,) = [e for e in timeline if e["kind"] == "deploy"]
    assert "version 2" in deploy["text"]
    assert story.t0 - STEP <= moment(deploy["at"]) <= story.t0 + 1
    (began,) = [e for e in timeline if e["kind"] == "impact_began"]
    (ended,) = [e for e in timeline if e["kind"] == "impact_ended"]
    assert (moment(began["at"]), moment(ended["at"])) == (start, end)
    rows = [(e["kind"], e["text"]) for e in timeline if e["kind"] not in ("burn",)]
    assert len(rows) == len(set(rows)), rows

    # The draft states the same figures.
    assert f"from {datetime.fromtimestamp(start, UTC):%Y-%m-%d %H:%M:%S} to" in draft
    assert f"{impact['budget_consumed'] * 100:.1f} % of the 1d budget" in draft
    mttd = re.search(r"\*\*Time to detect \(MTTD\):\*\* ([^\n]+)", draft)
    ttm = re.search(r"\*\*Time to mitigate:\*\* ([^\n]+)", draft)
    assert mttd and ttm, draft
    assert abs(seconds(mttd.group(1)) - shown["time_to_detect"]) <= 1
    assert abs(seconds(ttm.group(1)) - shown["time_to_mitigate"]) <= 1
    # Each version once in the versions table, with its roles and its ratio over the impact window.
    table = draft.split("## Model versions", 1)[1].split("\n## ", 1)[0]
    versions = [
        line.split("|")[2].strip() for line in table.splitlines() if line.startswith("| fraud-model |")
    ]
    assert sorted(versions) == ["1", "2"], table
    row2 = next(line for line in table.splitlines() if line.split("|")[2:3] == [" 2 "])
    assert "suspect" in row2
    row1 = next(line for line in table.splitlines() if line.split("|")[2:3] == [" 1 "])
    assert "rolled back to" in row1 and "still serving" in row1

    def cell(row: str, index: int) -> float:
        return (
            datetime.strptime(row.split("|")[index].strip(), "%Y-%m-%d %H:%M:%S")
            .replace(tzinfo=UTC)
            .timestamp()
        )

    # First and last serving times from the traffic, to the minute: version 1 since the history began.
    assert model.phases[0].start - STEP <= cell(row1, 4) <= model.phases[0].start + 1
    assert story.t0 - STEP <= cell(row2, 4) <= story.t0 + 1
    assert t2 - 1 <= cell(row2, 5) <= t2 + STEP
    two_bad = model._served("2", end, lambda p: p.error_ratio) - model._served(
        "2", start, lambda p: p.error_ratio
    )
    two_total = model._served("2", end, lambda p: 1.0) - model._served("2", start, lambda p: 1.0)
    shown_ratio = float(row2.split("|")[6].strip().rstrip("%").strip()) / 100
    assert shown_ratio == pytest.approx(two_bad / two_total, rel=0.05)

    # The Slack message, redrawn once the impact was measured, gives the same times.

    def message() -> str:
        found = slack.messages(CHANNEL)
        return json.dumps(found[0]["blocks"], ensure_ascii=False) if found else ""

    began = f"*Impact*: from <!date^{int(start)}^"
    assert slack.wait_for(lambda: began in message() and f"<!date^{int(end)}^" in message(), timeout=30), (
        message()
    )
    text = message()
    assert f"{impact['budget_consumed']:.1%} of the error budget" in text
    assert f"(MTTD {mttd.group(1)})" in text
    assert f"*mitigated* <!date^{int(moment(shown['mitigated_at']))}^" in text
    assert f"(after {ttm.group(1)})" in text

    # ... and follows the incident: the SLO over its own windows, the runbook, the suspect, the
    # commander who acknowledged, the rollback recovered, and no rollback button any more.
    (posted,) = slack.messages(CHANNEL)
    rendered_by = time.time()  # the message was last drawn before this, after the impact was measured
    check_slo_line(posted, story, since=moment(impact["measured_at"]) - EVAL - 3, until=rendered_by)
    assert "*SLO* `fraud-model-availability`" in text
    assert "*Runbook*: `runbooks/fraud-model-availability.md`" in text
    # Version 1 failed 0.05 % of requests all the while it served (the story's first phase).
    assert f"previous good 1 ({model.phases[0].error_ratio:.2%} errors)" in text
    assert "*Suspect*: version 2 (" in text
    assert "*Commander*\\n<@U0ALICE>" in text
    assert "*Rollback*: fraud-model 2 → 1 in prod by <@U0ALICE>: recovered" in text
    actions = [e for b in posted["blocks"] if b["type"] == "actions" for e in b["elements"]]
    assert "incident_rollback" not in {e["action_id"] for e in actions}
    # One thread reply per change, each naming who made it: the status changes after the opening and
    # the rollback's two outcomes (done, recovered); nothing else in the channel.
    replies = [r["text"] for r in slack.thread(CHANNEL, posted["ts"])]
    changes = [e for e in timeline if e["kind"] == "status" and "opened" not in e["text"]]
    assert len(replies) == len(changes) + 2, replies
    assert all(" by " in reply for reply in replies), replies
    assert "triggered → acknowledged by <@U0ALICE>" in replies
    assert "acknowledged → resolved by <@U0ALICE>" in replies

    # The charts tell the same story: see `check_charts`.
    check_charts(draft_path, story, shown, action, detected=detected, deploy=moment(deploy["at"]))


def window_name(seconds: int) -> str:
    """`8640` -> `2h24m`: how Prometheus (and so the message) names a window."""
    hours, minutes = divmod(seconds // 60, 60)
    return (f"{hours}h" if hours else "") + (f"{minutes}m" if minutes else "")


def check_slo_line(posted: dict[str, Any], story: Story, since: float, until: float) -> None:
    """The message's SLO line: the one-day SLO's own windows in tier order (each tier's short, then its
    long window, each once), the 1-minute burn of the recovered version, and the day's budget left as
    the story has it when sloguard last evaluated before drawing the message (between `since` and
    `until`), to the percent shown and the rate() tolerance the other figures get."""
    sections = [b["text"]["text"] for b in posted["blocks"] if b["type"] == "section" and "text" in b]
    (line,) = [row for s in sections for row in s.splitlines() if row.startswith("*SLO* ")]
    found = re.fullmatch(r"\*SLO\* `fraud-model-availability`: (\w+); burn (.+), budget left (-?\d+)%", line)
    assert found, line
    burns = dict(cell.rsplit(" ", 1) for cell in found.group(2).split(", "))
    own = list(dict.fromkeys(window_name(w) for _, long, short in TIERS for w in (short, long)))
    assert own == ["1m", "2m", "12m", "4m", "48m", "2h24m"]  # the test's TIERS, read back
    assert list(burns) == own, line
    assert all(re.fullmatch(r"\d+\.\d×", burn) for burn in burns.values()), line
    # Evaluated over a minute after the rollback: version 1 alone, at 0.05 % of a 0.1 % allowance.
    recovered = story.bad(since - 60, since) / story.total(since - 60, since) / ALLOWED
    assert float(burns["1m"].rstrip("×")) == pytest.approx(recovered, abs=0.1), line

    def left(at: float) -> float:
        return 1 - story.bad(at - DAY, at) / (ALLOWED * story.total(at - DAY, at))

    low, high = sorted((left(since), left(until)))
    # rel 5 % of the consumed share (as for the impact's budget), and half a percent of rounding.
    tolerance = 0.05 * (1 - low) + 0.005
    assert low - tolerance <= int(found.group(3)) / 100 <= high + tolerance, (line, low, high)


def series(path: Path) -> list[tuple[float, float | None, bool]]:
    with path.open(newline="") as file:
        rows = list(csv.reader(file))[1:]
    return [(moment(t), float(v) if v else None, flag == "1") for t, v, flag in rows]


def check_charts(
    draft_path: Path,
    story: Story,
    shown: dict[str, Any],
    action: dict[str, Any],
    detected: float,
    deploy: float,
) -> None:
    """The draft's charts, as SVG, as PNG and as their CSV series, against the story and the record."""
    assets = draft_path.parent / f"{draft_path.stem}-assets"
    impact = shown["impact"]
    start, end = moment(impact["started_at"]), moment(impact["ended_at"])
    # Every marker at its stored time (the CSV keeps whole seconds).
    with (assets / "markers.csv").open(newline="") as file:
        markers = {row["marker"]: moment(row["time_utc"]) for row in csv.DictReader(file)}
    stored = {
        "deploy": deploy,
        "impact began": start,
        "detected": detected,
        "acknowledged": moment(shown["acknowledged_at"]),
        "rollback": moment(action["finished_at"]),
        "recovered": end,
        "resolved": moment(shown["resolved_at"]),
    }
    assert markers.keys() == stored.keys(), markers
    for label, at in stored.items():
        assert int(at) - 1 <= markers[label] <= at, (label, markers[label], at)

    ratio = series(assets / "error-ratio.csv")
    remaining = series(assets / "budget.csv")
    for points in (ratio, remaining):
        # The time axis covers the deploy through the resolution; the shaded points are the impact window.
        assert points[0][0] < deploy and points[-1][0] >= stored["resolved"] - STEP, (points[0], points[-1])
        assert [flag for _, _, flag in points] == [start <= t <= end for t, _, _ in points]
    changes = [phase.start for phase in story.model.phases]
    flat = [
        (t, value)
        for t, value, _ in ratio
        if value is not None and not any(t - STEP - SAMPLE <= c <= t + SAMPLE for c in changes)
    ]
    assert len(flat) >= 10, ratio
    for t, value in flat:  # the 1-minute error ratio where the story's rate was the same all minute
        assert value == pytest.approx(story.bad(t - STEP, t) / story.total(t - STEP, t), rel=0.01), t
    # Where a phase changed within the minute, rate() places a scrape's events either side of the change
    # (1 s scrapes): each point is the story's minute within that much; the climb shows as the story says.
    edge = EDGE / (RPS * STEP)
    for t, value, _ in ratio:
        if value is not None:
            assert abs(value - story.bad(t - STEP, t) / story.total(t - STEP, t)) <= 2 * edge, t
    peak = max(story.bad(t - STEP, t) / story.total(t - STEP, t) for t, v, _ in ratio if v is not None)
    assert max(v for _, v, _ in ratio if v is not None) == pytest.approx(peak, abs=2 * edge)
    assert peak > 5 * ALLOWED  # the chart shows a real climb, not the background
    for t, value, _ in remaining:  # the budget left over the day ending at each point
        expected = 1 - story.bad(t - DAY, t) / (ALLOWED * story.total(t - DAY, t))
        assert value == pytest.approx(expected, abs=0.01), t
    before = [v for t, v, _ in remaining if t <= start and v is not None][-1]
    after = next(v for t, v, _ in remaining if t >= end and v is not None)  # the day ending after it
    # What the impact window spent is what the chart's budget line dropped by across it.
    assert before - after == pytest.approx(impact["budget_consumed"], rel=0.1, abs=0.01)

    for name in ("error-ratio", "budget"):
        svg = (assets / f"{name}.svg").read_text()
        shown_texts = texts(svg)
        for label, at in markers.items():
            assert any(
                text.startswith(label) and text.endswith(f"{datetime.fromtimestamp(at, UTC):%H:%M}")
                for text in shown_texts
            ), (label, shown_texts)
        check_self_contained(svg)
        assert png_size(rendered(svg, assets.parent))[0] > 600
