"""The impact window of a log-based SLI, read through the real elasticsearch client from the local
Elasticsearch stand-in holding log lines whose story the test wrote: one scoring request every 20 s for a
day; one in five fails from E0 to E1, half an hour that straddles the detection."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from app.slo.impact import EVENTS, UNKNOWN
from app.slo.measure import measure_logs
from app.slo.spec import load_specs
from app.sources.elasticsearch import ElasticsearchSource
from tests.conftest import REPO
from tests.fakes.elasticsearch import FakeElasticsearch

pytestmark = pytest.mark.integration
DETECTED = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
DELAY = 60  # the ingest delay: the detecting evaluation saw the logs up to DETECTED - 60 s
SEEN = DETECTED - timedelta(seconds=DELAY)
E0, E1 = SEEN - timedelta(minutes=20), SEEN + timedelta(minutes=10)  # on the 5-minute steps from SEEN
START, END = DETECTED - timedelta(days=1), DETECTED + timedelta(hours=1)
SPACING = timedelta(seconds=20)


def story() -> list[dict[str, Any]]:
    docs, moment, number = [], START + timedelta(seconds=7), 0
    while moment < END:
        failing = E0 <= moment < E1 and number % 5 == 0
        docs.append(
            {
                "@timestamp": moment.isoformat().replace("+00:00", "Z"),
                "event": "prediction",
                "level": "error" if failing else "info",
                "http": {"status": 503 if failing else 200},
            }
        )
        moment, number = moment + SPACING, number + 1
    return docs


@pytest.fixture(scope="module")
def logs() -> Iterator[tuple[FakeElasticsearch, list[dict[str, Any]]]]:
    docs = story()
    with FakeElasticsearch() as server:
        server.add_documents("logs-fraud-model-2026.11.25", docs)
        yield server, docs


def count(docs: list[dict[str, Any]], start: datetime, end: datetime, bad: bool) -> int:
    def at(doc: dict[str, Any]) -> datetime:
        return datetime.fromisoformat(doc["@timestamp"].replace("Z", "+00:00"))

    return sum(1 for doc in docs if start <= at(doc) < end and (not bad or doc["http"]["status"] >= 500))


def test_the_log_based_impact_window_and_budget_follow_the_log_lines(
    logs: tuple[FakeElasticsearch, list[dict[str, Any]]], tmp_path: Path
) -> None:
    server, docs = logs
    shutil.copy(REPO / "slo" / "fraud-model-logs.yaml", tmp_path)
    (slo,) = load_specs([tmp_path])
    source = ElasticsearchSource(server.url, timeout=60)  # the stand-in is slower than a cluster under load
    try:
        impact = measure_logs(
            source, slo, DETECTED, DETECTED + timedelta(minutes=40), min_events=10, ingest_delay=DELAY
        )
    finally:
        source.close()
    # 5-minute steps (the 30-day SLO's fast page short window), aligned back from SEEN; 20 % fail in
    # the six from E0 to E1, none elsewhere; 0.5 % is allowed.
    assert impact.method == EVENTS
    assert (impact.started_at, impact.ended_at) == (E0, E1)
    bad, total = count(docs, E0, E1, bad=True), count(docs, E0, E1, bad=False)
    assert (bad, total) == (18, 90)  # 30 min at one every 20 s, every fifth failing
    assert (impact.bad_events, impact.total_events) == (bad, total)
    # The period's budget at E1: the history (a day) is shorter than the 30 days, so all lines so far.
    budget = 0.005 * count(docs, E1 - timedelta(days=30), E1, bad=False)
    assert impact.budget_events == pytest.approx(budget)
    assert impact.budget_consumed == pytest.approx(bad / budget)


def test_steps_the_ingest_delay_may_still_fill_are_not_read(
    logs: tuple[FakeElasticsearch, list[dict[str, Any]]], tmp_path: Path
) -> None:
    server, _ = logs
    shutil.copy(REPO / "slo" / "fraud-model-logs.yaml", tmp_path)
    (slo,) = load_specs([tmp_path])
    source = ElasticsearchSource(server.url, timeout=60)  # the stand-in is slower than a cluster under load
    try:
        # Measured at E1 + 4 min (logs seen to E1 + 3 min): the step ending at E1 is read, the one after
        # it is not final yet, so the impact is still going on.
        going = measure_logs(
            source, slo, DETECTED, E1 + timedelta(minutes=4), min_events=10, ingest_delay=DELAY
        )
        quiet = measure_logs(
            source, slo, DETECTED - timedelta(hours=3), DETECTED, min_events=10, ingest_delay=DELAY
        )
    finally:
        source.close()
    assert (going.started_at, going.ended_at) == (E0, None)
    assert quiet.method == UNKNOWN
