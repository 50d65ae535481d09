"""The impact window on hand-built step series: every expected figure is worked out here from the
README's definitions (1-minute steps, objective 99 %: allowed ratio 0.01, min_events 10)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.slo.impact import EVENTS, RATIO, UNKNOWN, Impact, Step, impact_window

DETECTED = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
MINUTE = 60
DAY = 86_400


def at(minutes: int) -> datetime:
    """The end of the step `minutes` after detection (negative: before)."""
    return DETECTED + timedelta(minutes=minutes)


def series(first: int, counts: list[tuple[float, float] | None]) -> list[Step]:
    """Steps ending at `first`, `first + 1`, … minutes from detection; None is a step without data."""
    return [
        Step(at(first + i), *(pair if pair is not None else (None, None))) for i, pair in enumerate(counts)
    ]


def window(steps: list[Step], period_total: float | None = 1_000_000.0, reach: int | None = None) -> Impact:
    return impact_window(
        steps,
        MINUTE,
        DETECTED,
        allowed=0.01,
        min_events=10,
        period_seconds=DAY,
        period_total=period_total,
        reach=reach,
    )


def test_a_run_leading_up_to_detection_and_ending_after_it() -> None:
    # Minutes -5..3: good, good, bad ×5 (-3 .. 1), good, good. Steps end at their minute.
    counts = [(0, 1000), (5, 1000), (30, 1000), (40, 1000), (50, 1000), (60, 1000), (70, 1000)]
    impact = window(series(-5, counts + [(1, 1000), (2, 1000)]))
    # Bad steps end at -3, -2, -1, 0, +1: the first covers (-4, -3], so impact starts at -4 and ends at +1.
    assert impact.method == EVENTS
    assert impact.started_at == at(-4)
    assert impact.ended_at == at(1)
    assert impact.bad_events == 30 + 40 + 50 + 60 + 70
    assert impact.total_events == 5000
    assert impact.budget_events == pytest.approx(0.01 * 1_000_000)
    assert impact.budget_consumed == pytest.approx(250 / 10_000)


def test_still_ongoing_when_no_step_after_the_run_was_measured() -> None:
    impact = window(series(-2, [(0, 1000), (20, 1000), (30, 1000), (40, 1000)]))  # -2 good; -1, 0, +1 bad
    assert impact.started_at == at(-2) and impact.ended_at is None
    assert impact.bad_events == 90


def test_a_quiet_step_breaks_the_run_before_detection() -> None:
    # -4, -3 bad; -2 quiet (ratio 0.005, under the allowed 0.01); -1, 0 bad; +1 good.
    counts = [(50, 1000), (50, 1000), (5, 1000), (50, 1000), (50, 1000), (0, 1000)]
    impact = window(series(-4, counts))
    assert impact.started_at == at(-2)  # after the quiet step
    assert impact.ended_at == at(0)
    assert impact.bad_events == 100


def test_a_quiet_step_after_detection_ends_the_impact_even_if_errors_return() -> None:
    counts = [(0, 1000), (50, 1000), (50, 1000), (0, 1000), (50, 1000), (50, 1000)]
    impact = window(series(-2, counts))  # -2 good; -1, 0 bad; +1 good; +2, +3 bad again
    assert (impact.started_at, impact.ended_at) == (at(-2), at(0))


def test_a_low_traffic_step_does_not_exceed_however_bad_its_ratio() -> None:
    # -3 bad; -2 holds 9 events, all bad (< min_events 10): it breaks the run; -1, 0 bad; +1 good.
    counts = [(50, 1000), (9, 9), (50, 1000), (50, 1000), (0, 1000)]
    impact = window(series(-3, counts))
    assert impact.started_at == at(-2)
    assert impact.bad_events == 100 and impact.total_events == 2000


def test_a_gap_in_the_data_breaks_the_run() -> None:
    counts: list[tuple[float, float] | None] = [(50, 1000), None, (50, 1000), (50, 1000), (0, 1000)]
    steps = [s for s in series(-3, counts) if s.total is not None]  # the source returned no point at -2
    impact = window(steps)
    assert impact.started_at == at(-2) and impact.ended_at == at(0)


def test_the_latest_exceeding_step_before_detection_anchors_the_run() -> None:
    # The step ending at detection is under the line (a noisy minute), the two before it exceed.
    counts = [(0, 1000), (40, 1000), (40, 1000), (5, 1000), (0, 1000)]
    impact = window(series(-3, counts))
    assert (impact.started_at, impact.ended_at) == (at(-3), at(-1))
    assert impact.bad_events == 80


def test_a_window_longer_than_the_history_starts_at_the_first_step() -> None:
    # Every step since the data began exceeds: the impact starts where the history does.
    impact = window(series(-2, [(30, 1000), (30, 1000), (30, 1000), (0, 1000)]), period_total=4000)
    assert impact.started_at == at(-3) and impact.ended_at == at(0)
    # The period's budget is the allowed share of all events so far (4,000): 40; 90 bad is 225 % of it.
    assert impact.budget_consumed == pytest.approx(90 / 40)


def test_no_exceeding_step_means_the_window_is_unknown() -> None:
    impact = window(series(-3, [(1, 1000), (2, 1000), (3, 1000), (0, 1000)]))
    assert impact.method == UNKNOWN and impact.started_at is None
    assert window([]).method == UNKNOWN


def test_a_raw_ratio_sli_integrates_ratio_over_allowed() -> None:
    steps = [Step(at(m), ratio=r) for m, r in [(-2, 0.0), (-1, 0.05), (0, 0.03), (1, 0.0)]]
    impact = impact_window(
        steps, MINUTE, DETECTED, allowed=0.01, min_events=10, period_seconds=DAY, period_total=None
    )
    assert impact.method == RATIO
    assert (impact.started_at, impact.ended_at) == (at(-2), at(0))
    # (0.05 / 0.01 + 0.03 / 0.01) × 60 s = 480 budget-seconds of a 86,400 s period.
    assert impact.budget_consumed == pytest.approx(480 / 86_400)


def test_an_earlier_run_that_ended_out_of_reach_is_not_this_impact() -> None:
    # -10, -9 bad, then good up to +1: with a reach of 5 minutes the run at -10..-9 is another story.
    counts = [(50, 1000), (50, 1000)] + [(0, 1000)] * 10
    assert window(series(-10, counts), reach=5 * MINUTE).method == UNKNOWN
    # Within a reach of 10 minutes it is the latest run before detection (steps -10 and -9).
    reached = window(series(-10, counts), reach=11 * MINUTE)
    assert (reached.started_at, reached.ended_at) == (at(-11), at(-9))
