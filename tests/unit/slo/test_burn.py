"""Burn-rate maths against the SRE Workbook's numbers (SLO-MATH.md), computed by hand in each test."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from app import durations
from app.slo import burn
from app.slo.burn import Measurement, State, TierMemory

DAY = 86400
T30 = 30 * DAY
TIERS = burn.tiers_for_period(T30)
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
WINDOWS = [300, 1800, 3600, 7200, 21600, DAY, 3 * DAY]


def flat(
    ratio: float | None, events_per_second: float = 100.0, period_ratio: float | None = None
) -> Measurement:
    """The same error ratio in every window, with steady traffic."""
    return Measurement(
        ratios={w: ratio for w in WINDOWS},
        events={w: events_per_second * w for w in WINDOWS},
        period_ratio=period_ratio,
    )


def run(measurement: Measurement, previous: TierMemory | None = None, now: datetime = NOW) -> burn.Evaluation:
    return burn.evaluate(
        measurement,
        objective=0.999,
        period_seconds=T30,
        tiers=TIERS,
        now=now,
        previous=previous,
        min_events=10,
    )


def test_the_four_tiers_of_a_30_day_period() -> None:
    # (long, short, k): k = share · 720h / long
    got = [(t.name, t.severity, t.long.name, t.short.name, round(t.factor, 9)) for t in TIERS]
    assert got == [
        ("page-fast", State.page, "1h", "5m", 14.4),  # 0.02 · 720 / 1
        ("page-slow", State.page, "6h", "30m", 6.0),  # 0.05 · 720 / 6
        ("ticket-fast", State.ticket, "1d", "2h", 3.0),  # 0.10 · 720 / 24
        ("ticket-slow", State.ticket, "3d", "6h", 1.0),  # 0.10 · 720 / 72
    ]
    assert [round(t.threshold(0.001), 12) for t in TIERS] == [0.0144, 0.006, 0.003, 0.001]


def test_28_days_keeps_the_windows_and_rescales_k() -> None:
    tiers = burn.tiers_for_period(28 * DAY)
    assert [(t.long.name, t.short.name) for t in tiers] == [
        ("1h", "5m"),
        ("6h", "30m"),
        ("1d", "2h"),
        ("3d", "6h"),
    ]
    # 0.02·672 = 13.44; 0.05·112 = 5.6; 0.1·28 = 2.8; 0.1·28/3 = 0.9333…
    assert [round(t.factor, 6) for t in tiers] == [13.44, 5.6, 2.8, 0.933333]


def test_other_periods_scale_the_windows() -> None:
    tiers = burn.tiers_for_period(7 * DAY)
    # 1h · 7/30 = 14 min, short = 70 s; k stays 14.4 because share · T / L is unchanged.
    assert (tiers[0].long.seconds, tiers[0].short.seconds) == (840, 70)
    assert tiers[0].long.name == "14m" and tiers[0].short.name == "1m10s"
    assert round(tiers[0].factor, 9) == 14.4


def test_full_outage_pages() -> None:
    evaluation = run(flat(1.0))
    assert evaluation.state == State.page
    assert evaluation.memory.tier == "page-fast"
    assert evaluation.windows["1h"].burn_rate == pytest.approx(1000.0)  # 1 / 0.001


def test_two_percent_pages_and_suppresses_the_tickets() -> None:
    evaluation = run(flat(0.02))
    assert evaluation.state == State.page
    # 0.02 > 0.0144, 0.006, 0.003 and 0.001: every tier is above threshold, only the page is reported.
    assert evaluation.firing == ("page-fast", "page-slow", "ticket-fast", "ticket-slow")
    assert evaluation.windows["5m"].burn_rate == pytest.approx(20.0)


def test_half_a_percent_only_tickets() -> None:
    # br = 5: below the page factors 14.4 and 6, above the ticket factors 3 and 1.
    evaluation = run(flat(0.005))
    assert evaluation.state == State.ticket
    assert evaluation.firing == ("ticket-fast", "ticket-slow")


def test_a_short_spike_alone_does_not_fire() -> None:
    measurement = Measurement(
        ratios={**{w: 0.0 for w in WINDOWS}, 300: 1.0}, events={w: 1e6 for w in WINDOWS}
    )
    assert run(measurement).state == State.ok


def test_budget_remaining_from_summed_counts() -> None:
    # 4,000 bad of 10 M over the period: e(T) = 0.0004, 40 % of a 0.001 budget spent, 60 % left.
    evaluation = run(flat(0.0, period_ratio=burn.error_ratio(4_000, 10_000_000)))
    assert evaluation.budget_remaining == pytest.approx(0.6)


def test_overspent_budget_goes_negative() -> None:
    assert burn.budget_remaining(0.0025, 0.001) == pytest.approx(-1.5)


def test_time_to_exhaustion() -> None:
    # 60 % left, burning at 20x: 0.6 · 30 d / 20 = 0.9 d = 77,760 s.
    measurement = Measurement(ratios={**{w: 0.0 for w in WINDOWS}, 3600: 0.02}, period_ratio=0.0004)
    assert run(measurement).time_to_exhaustion == pytest.approx(77_760.0)


def test_no_data_is_its_own_state() -> None:
    evaluation = run(Measurement(ratios={w: None for w in WINDOWS}))
    assert evaluation.state == State.no_data


def test_a_breach_on_too_few_events_is_insufficient_data() -> None:
    # 1 failed request of 5 in the last hour: a 20 % ratio, but below the 10-event minimum.
    measurement = Measurement(ratios={w: 0.2 for w in WINDOWS}, events={w: 5.0 for w in WINDOWS})
    evaluation = run(measurement)
    assert evaluation.state == State.insufficient_data
    assert "fewer than 10 events" in (evaluation.detail or "")


def test_clear_waits_for_half_the_short_window() -> None:
    paging = run(flat(1.0))
    assert paging.state == State.page
    quiet = flat(0.0)
    # page-fast's short window is 5 m: the hold is 150 s from the first quiet cycle.
    first_quiet = NOW + timedelta(minutes=1)
    held = run(quiet, paging.memory, first_quiet)
    assert (held.state, held.held) == (State.page, True)
    still = run(quiet, held.memory, first_quiet + timedelta(seconds=149))
    assert still.state == State.page
    cleared = run(quiet, still.memory, first_quiet + timedelta(seconds=150))
    assert (cleared.state, cleared.held) == (State.ok, False)


def test_a_page_quietening_to_a_ticket_burn_is_held_then_drops_to_ticket() -> None:
    paging = run(flat(1.0))
    later = NOW + timedelta(minutes=1)
    held = run(flat(0.005), paging.memory, later)
    assert held.state == State.page
    dropped = run(flat(0.005), held.memory, later + timedelta(seconds=150))
    assert dropped.state == State.ticket


def test_durations_round_trip() -> None:
    assert durations.parse_prometheus("1h30m") == 5400
    assert durations.format_prometheus(5400) == "1h30m"
    assert durations.parse_prometheus("30d") == 30 * DAY
    with pytest.raises(ValueError, match="not a duration"):
        durations.parse_prometheus("5 minutes")


# ---------------------------------------------------------------- properties

ratios = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


def _state(ratio_by_window: dict[int, float]) -> State:
    return run(Measurement(ratios=ratio_by_window, events={w: 1e9 for w in WINDOWS})).state


RANK = {State.ok: 0, State.ticket: 1, State.page: 2}


@given(
    st.lists(ratios, min_size=len(WINDOWS), max_size=len(WINDOWS)), st.lists(ratios, min_size=7, max_size=7)
)
def test_more_errors_never_lower_the_state(base: list[float], extra: list[float]) -> None:
    lower = dict(zip(WINDOWS, base, strict=True))
    higher = {w: min(1.0, r + e) for (w, r), e in zip(lower.items(), extra, strict=True)}
    assert RANK[_state(higher)] >= RANK[_state(lower)]


@given(
    st.lists(st.integers(min_value=0, max_value=10**6), min_size=7, max_size=7),
    st.integers(min_value=1, max_value=10**6),
    st.integers(min_value=1, max_value=1000),
)
def test_state_is_invariant_to_traffic_scale(bad: list[int], extra: int, scale: int) -> None:
    totals = [b + extra for b in bad]

    def state(factor: int) -> State:
        measurement = Measurement(
            ratios={
                w: burn.error_ratio(b * factor, t * factor)
                for w, b, t in zip(WINDOWS, bad, totals, strict=True)
            },
            events={w: 1e9 for w in WINDOWS},
        )
        return run(measurement).state

    assert state(1) == state(scale)


@given(st.lists(ratios, min_size=7, max_size=7), st.sampled_from(TIERS))
def test_a_tier_never_fires_with_a_window_at_or_below_its_threshold(
    values: list[float], tier: burn.Tier
) -> None:
    ratio_by_window: dict[int, float | None] = dict(zip(WINDOWS, values, strict=True))
    threshold = tier.threshold(0.001)
    ratio_by_window[tier.short.seconds] = min(ratio_by_window[tier.short.seconds] or 0.0, threshold)
    assert not burn.tier_fires(tier, ratio_by_window, 0.001)


def test_a_page_never_clears_while_its_windows_have_no_data() -> None:
    paging = run(flat(1.0))
    silent = Measurement(ratios={w: None for w in WINDOWS})
    later = NOW + timedelta(minutes=1)
    for minutes in (0, 5, 60):
        held = run(silent, paging.memory, later + timedelta(minutes=minutes))
        assert (held.state, held.detail) == (State.page, "no data in the firing tier")
    # Data comes back quiet: only now does the hold (150 s) start.
    back = later + timedelta(hours=2)
    assert run(flat(0.0), held.memory, back).state == State.page
    assert (
        run(flat(0.0), held.memory, back + timedelta(seconds=150)).state == State.page
    )  # memory of first quiet
    quiet = run(flat(0.0), held.memory, back)
    assert run(flat(0.0), quiet.memory, back + timedelta(seconds=150)).state == State.ok
