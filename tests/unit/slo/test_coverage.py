"""The period budget's coverage: how much of the period the data behind it reaches, and how it is said."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

import promql_parser
import pytest

from app.slo import burn, coverage
from app.slo.burn import Coverage
from app.slo.model import EventsSli, RawSli, Slo

DAY = 86_400
AT = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
SLO = Slo(
    id="fraud-model-availability",
    service="fraud-model",
    name="availability",
    objective=0.999,
    sli=EventsSli("rate(bad[{{.window}}])", "rate(total[{{.window}}])"),
    source="slo/fraud.yaml",
    period_seconds=DAY,
    tiers=burn.tiers_for_period(DAY),
)


def test_partial_only_when_the_data_falls_short_by_more_than_a_step() -> None:
    # A 30-day period's subquery step is an hour (30 d / 720); a day's is two minutes.
    assert coverage.resolution(30 * DAY) == 3600 and coverage.resolution(DAY) == 120
    assert coverage.resolution(3600) == 60  # at least a minute
    assert not Coverage("raw", DAY - 120, DAY).partial
    assert Coverage("raw", DAY - 121, DAY).partial
    assert not Coverage("raw", None, DAY).partial  # unknown is not said to be partial


def test_reach_is_the_part_of_the_period_after_the_first_sample() -> None:
    assert coverage.reach(AT.timestamp() - 6 * 3600, AT, DAY) == 6 * 3600
    assert coverage.reach(AT.timestamp() - 3 * DAY, AT, DAY) == DAY
    assert coverage.reach(AT.timestamp() + 60, AT, DAY) == 0.0  # a clock ahead: nothing yet
    assert coverage.reach(None, AT, DAY) is None


def test_the_note_names_what_the_data_covers() -> None:
    partial = Coverage("raw", 6 * 3600 + 59, DAY).as_dict()
    assert coverage.partial_note(partial) == " partial (6h of 1d)"
    assert coverage.partial_note(Coverage("raw", DAY, DAY).as_dict()) == ""
    assert coverage.partial_note(Coverage("raw", 30, 30 * DAY).as_dict()) == " partial (1m of 30d)"
    assert coverage.partial_note(None) == ""


def test_raw_period_answers_are_read_per_slo() -> None:
    events = replace(SLO, id="events")
    raw = replace(SLO, id="raw", sli=RawSli("avg_over_time(ratio[{{.window}}])"))
    result = [
        {"metric": {coverage.SLO_LABEL: events.id, "sloguard_part": "bad"}, "value": [0, "0.5"]},
        {"metric": {coverage.SLO_LABEL: events.id, "sloguard_part": "total"}, "value": [0, "100"]},
        {"metric": {coverage.SLO_LABEL: raw.id, "sloguard_part": "ratio"}, "value": [0, "NaN"]},
    ]
    assert coverage.parse_raw_period([events, raw], result) == {events.id: 0.005, raw.id: None}
    # No bad series at all, with traffic: no errors. No traffic: unknown.
    quiet = [{"metric": {coverage.SLO_LABEL: events.id, "sloguard_part": "total"}, "value": [0, "100"]}]
    assert coverage.parse_raw_period([events], quiet) == {events.id: 0.0}
    assert coverage.parse_raw_period([events], []) == {events.id: None}


def test_raw_queries_tag_each_slo_and_cover_its_period() -> None:
    text = coverage.raw_period_query([SLO], AT)
    assert "bad[1d]" in text and "total[1d]" in text and '"sloguard_slo", "fraud-model-availability"' in text
    reach = coverage.raw_reach_query([SLO], AT)
    assert "min_over_time(timestamp(sum(rate(total[5m])))[1d:2m])" in reach, reach
    for query in (text, reach, coverage.rules_reach_query(DAY)):
        promql_parser.parse(query)  # a port of Prometheus' own parser: raises on a syntax error


@pytest.mark.parametrize("size", [1, 50, 51, 120])
def test_chunks_keep_every_slo_once(size: int) -> None:
    items = [replace(SLO, id=str(i)) for i in range(size)]
    parts = coverage.chunks(items)
    assert [x for part in parts for x in part] == items and all(len(part) <= coverage.CHUNK for part in parts)
