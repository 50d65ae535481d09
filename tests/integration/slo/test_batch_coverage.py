"""Batch mode is right from the first minute (issue 19, part 4).

A real Prometheus holds 26 hours of backfilled raw history for three one-day SLOs, and evaluates their
generated recording rules live:

- `fresh`: the raw history covers the day; the rules have run for ten minutes (their 5-minute series are
  backfilled for the history's last ten minutes, as the rules would have recorded them, and the live
  rules go on from there). Their own period ratio holds only those minutes, which burn at 2 %: as a
  budget it reads about -1900 %. sloguard takes the period from the raw SLI.
- `ruled`: steady, and the rules' 5-minute series are backfilled for the 26 hours too (as if the rules had
  always run, at the history's step): the rules cover the period, and sloguard reads their period ratio.
- `young`: its traffic began 6 hours ago: even the raw data covers a quarter of the period: partial.

Every expected budget is worked out here from the generator's formulas (bad and total requests over the
day ending at the evaluation), and batch mode is compared with direct mode on the same data.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import yaml

from app.config import SloOptions
from app.errors import SourceError
from app.slo import queries, rules
from app.slo.service import SloEngine, SloResult
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.prometheus import PrometheusServer, Series, backfill, write_openmetrics
from tests.servers import wait_until

pytestmark = pytest.mark.integration
STEP = 30
DAY = 86_400
HISTORY = 26 * 3600
RATE = 10.0  # requests per second
CALM, BURN = 0.0005, 0.02  # error ratios: before, and in the last BURNING seconds
BURNING = 15 * 60
RULES_RAN = 10 * 60  # how long the fresh SLO's rules have recorded (backfilled), within the burn
YOUNG = 6 * 3600
ALLOWED = 0.001
SPEC = """\
apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
  labels:
    model: {name}
spec:
  service: {name}
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 1d
      isRolling: true
  objectives:
    - target: 0.999
  indicator:
    metadata:
      name: {name}-5xx
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{{service="{name}",code=~"5.."}}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{{service="{name}"}}
"""


class Traffic:
    """Counters that are the exact integral of RATE with CALM errors, then BURN for the last `burning` s."""

    def __init__(self, end: int, begin: int, burning: int = BURNING) -> None:
        self.end, self.begin, self.burning = end, begin, burning

    def bad(self, t: float) -> float:
        """Bad requests from `begin` to `t` (piecewise linear)."""
        t = min(max(t, self.begin), self.end)
        turn = self.end - self.burning
        calm = max(0.0, min(t, turn) - self.begin)
        return RATE * (CALM * calm + BURN * max(0.0, t - max(turn, self.begin)))

    def total(self, t: float) -> float:
        return RATE * (min(max(t, self.begin), self.end) - self.begin)

    def counters(self, name: str) -> list[Series]:
        def sample(value: Callable[[float], float]) -> Callable[[int], float | None]:
            return lambda t: None if t < self.begin else 1000 + value(t)

        return [
            Series("http_requests_total", {"service": name, "code": "500"}, sample(self.bad)),
            Series(
                "http_requests_total",
                {"service": name, "code": "200"},
                sample(lambda t: self.total(t) - self.bad(t)),
            ),
        ]


def recorded(
    rendered: dict[str, Any], slo_id: str, traffic: Traffic, since: int | None = None
) -> list[Series]:
    """The rules' own 5-minute series for one SLO, as they would have been recorded all along (or from
    `since` on): the same names and labels as the generated rules, the values from the generator."""
    labels = {}
    for group in rendered["groups"]:
        for rule in group["rules"]:
            if rule.get("labels", {}).get("sloth_id") == slo_id and rule.get("record", "").endswith("5m"):
                labels[rule["record"]] = rule["labels"]

    def rate(count: Callable[[float], float]) -> Callable[[int], float | None]:
        return lambda t: None if since is not None and t < since else (count(t) - count(t - 300)) / 300

    def ratio(t: int) -> float | None:
        total = traffic.total(t) - traffic.total(t - 300)
        if (since is not None and t < since) or not total:
            return None
        return (traffic.bad(t) - traffic.bad(t - 300)) / total

    return [
        Series("sloguard:sli_error:rate5m", labels["sloguard:sli_error:rate5m"], rate(traffic.bad), "gauge"),
        Series(
            "sloguard:sli_total:rate5m", labels["sloguard:sli_total:rate5m"], rate(traffic.total), "gauge"
        ),
        Series("slo:sli_error:ratio_rate5m", labels["slo:sli_error:ratio_rate5m"], ratio, "gauge"),
    ]


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    folder = tmp_path_factory.mktemp("coverage")
    (folder / "slo").mkdir()
    for name in ("fresh", "ruled", "young"):
        (folder / "slo" / f"{name}.yaml").write_text(SPEC.format(name=name))
    # The fresh service's data under a calendar day that began six hours ago (on the hour): no rule
    # records a calendar period's ratio.
    day_start = (datetime.now(UTC) - timedelta(hours=6)).replace(minute=0, second=0, microsecond=0)
    calendar = SPEC.format(name="fresh").replace("name: availability", "name: daily")
    begins = f"{day_start:%Y-%m-%dT%H:%M:%SZ}"
    calendar = calendar.replace(
        "isRolling: true", f'isRolling: false\n      calendar: {{startTime: "{begins}"}}'
    )
    (folder / "slo" / "calendar.yaml").write_text(calendar)
    slos = load_specs([folder / "slo"])
    text = rules.render(slos)
    (folder / "rules.yml").write_text(text)
    end = (int(time.time()) - 5) // STEP * STEP
    start = end - HISTORY
    traffic = {
        "fresh": Traffic(end, start),
        # No burn: past its end the live rules keep recording the last 5 minutes the history holds.
        "ruled": Traffic(end, start, burning=0),
        "young": Traffic(end, end - YOUNG),
    }
    series = [s for name, t in traffic.items() for s in t.counters(name)]
    series += recorded(yaml.safe_load(text), "ruled-availability", traffic["ruled"])
    series += recorded(yaml.safe_load(text), "fresh-availability", traffic["fresh"], since=end - RULES_RAN)
    write_openmetrics(folder / "history.om", series, start, end, STEP)
    backfill(folder / "history.om", folder / "data")
    server = PrometheusServer(folder / "data", [folder / "rules.yml"], evaluation_interval=f"{STEP}s").start()
    try:
        wait_until(
            # Each SLO's group evaluates its rules in order, sloth_slo_info last: then all have values.
            lambda: len(server.query("sloth_slo_info")) == len(slos),
            timeout=90,
            what="every rule group",
        )
        yield {"server": server, "slos": slos, "traffic": traffic, "end": end, "day_start": day_start}
    finally:
        server.stop()


def expected_budget(traffic: Traffic, at: float) -> float:
    """1 - (bad / total over the day ending at `at`) / allowed, from the samples Prometheus holds: the
    first one in the window to the last one (rate()'s extrapolation scales bad and total alike)."""
    first = -(-(at - DAY) // STEP) * STEP
    first = max(first, traffic.begin)
    bad = traffic.bad(traffic.end) - traffic.bad(first)
    total = traffic.total(traffic.end) - traffic.total(first)
    return 1 - bad / total / ALLOWED


def evaluate(world: dict[str, Any], batch: bool, at: datetime) -> dict[str, SloResult]:
    engine = SloEngine(world["slos"], PrometheusSource(world["server"].url), None, SloOptions(batch=batch))
    return {result.slo.id: result for result in engine.evaluate(at)}


def budget(result: SloResult) -> float:
    assert result.evaluation is not None and result.evaluation.budget_remaining is not None, result
    return result.evaluation.budget_remaining


def test_new_rules_give_the_raw_budget_not_their_own_minutes(world: dict[str, Any]) -> None:
    at = datetime.now(UTC)
    batch, direct = evaluate(world, True, at), evaluate(world, False, at)
    fresh = world["traffic"]["fresh"]
    want = expected_budget(fresh, at.timestamp())
    assert -0.5 < want < 0.8  # 15 minutes at 20x the allowed ratio spend a fifth of a day's budget
    assert budget(batch["fresh-availability"]) == pytest.approx(want, abs=0.01)
    assert budget(batch["fresh-availability"]) == pytest.approx(
        budget(direct["fresh-availability"]), abs=0.01
    )
    # The rules have recorded for ten minutes (and the seconds since), all inside the burn; their own
    # period ratio covers those minutes only.
    first = 'min_over_time(timestamp(slo:sli_error:ratio_rate5m{sloth_id="fresh-availability"})[1d:30s])'
    (began,) = world["server"].query(first)
    assert float(began["value"][1]) == world["end"] - RULES_RAN
    (own,) = world["server"].query('slo:sli_error:ratio_rate1d{sloth_id="fresh-availability"}')
    assert 1 - float(own["value"][1]) / ALLOWED < -10  # what batch mode read before: below -1000 %
    coverage = batch["fresh-availability"].as_dict()["budget"]
    assert coverage["basis"] == "raw" and coverage["partial"] is False, coverage
    assert coverage["coverage_seconds"] == pytest.approx(DAY, abs=150)  # to the subquery's 2-minute step


def test_rules_that_cover_the_period_are_read(world: dict[str, Any]) -> None:
    at = datetime.now(UTC)
    batch, direct = evaluate(world, True, at), evaluate(world, False, at)
    want = expected_budget(world["traffic"]["ruled"], at.timestamp())
    assert budget(batch["ruled-availability"]) == pytest.approx(want, abs=0.01)
    assert budget(batch["ruled-availability"]) == pytest.approx(
        budget(direct["ruled-availability"]), abs=0.01
    )
    coverage = batch["ruled-availability"].as_dict()["budget"]
    assert coverage["basis"] == "rules" and coverage["partial"] is False, coverage


def test_raw_data_younger_than_the_period_is_partial_and_says_how_much(world: dict[str, Any]) -> None:
    at = datetime.now(UTC)
    for mode in (True, False):
        result = evaluate(world, mode, at)["young-availability"]
        want = expected_budget(world["traffic"]["young"], at.timestamp())
        assert budget(result) == pytest.approx(want, abs=0.01)
        coverage = result.as_dict()["budget"]
        assert coverage["basis"] == "raw" and coverage["partial"] is True, coverage
        # Six hours of data (to the subquery's step of two minutes, and the time since the last sample).
        age = at.timestamp() - world["end"]
        assert YOUNG - 120 <= coverage["coverage_seconds"] <= YOUNG + age + 120, coverage


def test_a_calendar_period_is_read_from_the_raw_sli(world: dict[str, Any]) -> None:
    at = datetime.now(UTC)
    result = evaluate(world, True, at)["fresh-daily"]
    fresh = world["traffic"]["fresh"]
    first = -(-world["day_start"].timestamp() // STEP) * STEP  # the first sample of the day
    bad = fresh.bad(fresh.end) - fresh.bad(first)
    total = fresh.total(fresh.end) - fresh.total(first)
    assert budget(result) == pytest.approx(1 - bad / total / ALLOWED, abs=0.01)
    assert result.as_dict()["budget"]["basis"] == "raw"


class Flaky(PrometheusSource):
    """Prometheus whose 'how far back' subqueries time out, as a slow one would: the rest answers."""

    def query(self, promql: str, at: datetime | None = None) -> list[dict[str, Any]]:
        if "timestamp(" in promql:
            raise SourceError("prometheus at test: ReadTimeout")
        return super().query(promql, at)


def test_failing_reach_queries_leave_the_budget_right_and_are_not_asked_every_cycle(
    world: dict[str, Any],
) -> None:
    engine = SloEngine(world["slos"], Flaky(world["server"].url), None, SloOptions(batch=True))
    at = datetime.now(UTC)
    results = {r.slo.id: r for r in engine.evaluate(at)}
    assert all(r.state.value != "source_error" for r in results.values()), results
    # Not knowing how far the rules reach, the raw period is read: the budget is still the day's.
    want = expected_budget(world["traffic"]["fresh"], at.timestamp())
    assert budget(results["fresh-availability"]) == pytest.approx(want, abs=0.01)
    assert results["fresh-availability"].as_dict()["budget"]["coverage_seconds"] is None
    engine.evaluate(datetime.fromtimestamp(at.timestamp() + 2, UTC))
    assert engine.last_stats.queries == len(queries.batch_window_names(world["slos"]))  # no retry yet


def test_a_second_cycle_asks_nothing_more_than_the_windows(world: dict[str, Any]) -> None:
    engine = SloEngine(world["slos"], PrometheusSource(world["server"].url), None, SloOptions(batch=True))
    at = datetime.now(UTC)
    engine.evaluate(at)
    first = engine.last_stats.queries
    engine.evaluate(datetime.fromtimestamp(at.timestamp() + 2, UTC))
    # One query per window of a 1-day SLO, and its period. The first cycle also asked since when the
    # rules and the raw data reach back, and the raw period of the SLOs the rules do not cover (fresh,
    # young, and the calendar day);
    # those answers hold for a while (the raw period for 10 s on a one-day SLO).
    windows = len(queries.batch_window_names(world["slos"]))
    assert engine.last_stats.queries == windows, engine.last_stats
    assert first == windows + 1 + 1 + 1, first
