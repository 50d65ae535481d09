"""Planned windows' occurrences, worked out by hand from the calendar (2026-12-06 is a Sunday)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from app.planned.windows import Occurrence, PlannedWindow, held, merged, overlaps


def at(day: int, hour: int = 0, minute: int = 0, month: int = 12) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def window(**fields: object) -> PlannedWindow:
    base: dict[str, object] = {"name": "db-migration", "start": "2026-12-06T02:00:00Z", "duration": "2h"}
    base.update(fields)
    if not any(key in fields for key in ("slos", "services", "models")):
        base["services"] = ["checkout"]
    return PlannedWindow.model_validate(base)


def test_a_one_off_window_is_on_from_its_start_to_its_end_only() -> None:
    plan = window()
    assert plan.occurrences(at(1), at(31)) == [Occurrence("db-migration", at(6, 2), at(6, 4))]
    assert [o.start for o in held([plan], at(6, 2))] == [at(6, 2)]  # the start is inside
    assert held([plan], at(6, 3, 59)) and not held([plan], at(6, 4))  # the end is not
    assert not held([plan], at(6, 1, 59))
    assert plan.occurrences(at(6, 4), at(7)) == []


def test_a_weekly_window_recurs_on_sundays_and_stops_at_its_count() -> None:
    plan = window(every="FREQ=WEEKLY;BYDAY=SU;COUNT=3")
    found = plan.occurrences(at(1), at(1, month=12) + timedelta(days=60))
    assert [(o.start, o.end) for o in found] == [
        (at(6, 2), at(6, 4)),
        (at(13, 2), at(13, 4)),
        (at(20, 2), at(20, 4)),
    ]
    # One that began before the asked span and is still on is in it.
    assert plan.occurrences(at(13, 3), at(13, 3, 30)) == [Occurrence("db-migration", at(13, 2), at(13, 4))]
    assert not held([plan], at(27, 3))  # a fourth Sunday: past COUNT


def test_the_offset_of_start_fixes_the_time_in_utc() -> None:
    plan = window(start="2026-12-06T03:00:00+01:00", every="RRULE:FREQ=DAILY;INTERVAL=2")
    assert [o.start for o in plan.occurrences(at(6), at(11))] == [at(6, 2), at(8, 2), at(10, 2)]


def test_overlaps_are_merged_and_clipped() -> None:
    a = window(name="a", start="2026-12-06T02:00:00Z", duration="2h")
    b = window(name="b", start="2026-12-06T03:00:00Z", duration="3h")
    c = window(name="c", start="2026-12-06T09:00:00Z", duration="30m")
    assert merged(a.occurrences(at(1), at(31)) + b.occurrences(at(1), at(31))) == [(at(6, 2), at(6, 6))]
    assert overlaps([a, b, c], at(6, 5), at(6, 9, 10)) == [(at(6, 5), at(6, 6)), (at(6, 9), at(6, 9, 10))]


def test_cancelled_windows_hold_nothing() -> None:
    assert window(cancelled=True).occurrences(at(1), at(31)) == []


def test_what_a_window_covers() -> None:
    plan = window(slos=["checkout-availability"], models=["ranker"], services=[])
    assert plan.covers("checkout-availability", "checkout", None)
    assert plan.covers("search-latency", "search", "ranker")
    assert not plan.covers("search-latency", "search", None)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"start": "2026-12-06T02:00:00"}, "UTC offset"),
        ({"duration": "8d"}, "duration"),
        ({"duration": "soon"}, "not a duration"),
        ({"every": "FREQ=SOMETIMES"}, "RRULE"),
        ({"every": "DTSTART:20261206T020000Z\nRRULE:FREQ=DAILY"}, "DTSTART"),
        ({"name": "Big Migration!"}, "lower-case"),
        ({"slos": [], "services": [], "models": []}, "names no SLO"),
        ({"every": "FREQ=WEEKLY;BYDAY=MO"}, "start is not an occurrence"),  # start is a Sunday
        ({"every": "FREQ=DAILY;UNTIL=20261201T000000Z"}, "none at all"),  # ends before it starts
        ({"when": "now"}, "Extra inputs"),
    ],
)
def test_bad_windows_are_refused_with_the_field_named(fields: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError) as refused:
        window(**fields)
    assert message in str(refused.value)
