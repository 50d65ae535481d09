"""An incident's impact window, from its SLI cut into steps: when users began, and stopped, getting worse
than the objective allows, how many events went bad in between, and what share of the budget that was.
Pure: the step series and the period's events come in, figures go out (the README's definitions).

- A **step** is the SLO's page tier's short window (1 min for a 1-day SLO, 5 min for 30 days); the steps
  are aligned back from the detection time, so one of them ends exactly at detection.
- A step **exceeds** when its error ratio is above the allowed ratio (1 − objective) and it holds at least
  `min_events` events. A step without data, or with fewer events, does not exceed.
- **Impact start** is the start of the earliest step of the unbroken run of exceeding steps leading up to
  detection: the run through the latest exceeding step that ends at or before detection, looked for no
  further back than `reach` (the longest short window of the SLO's tiers: a tier that fired saw errors
  within its short window). An earlier run that had ended before that is another story.
- **Impact end** is the end of the run's last exceeding step, known once the step after it has not
  exceeded; until then the impact is ongoing (`ended_at` None).
- **Budget consumed**: the bad events in the window over the period's budget, allowed ratio × the events
  of the period window ending at impact end. For a raw-ratio SLI (no event counts), the integral of
  ratio / allowed ratio over the window, over the period.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

EVENTS, RATIO, UNKNOWN = "events", "ratio", "unknown"


@dataclass(frozen=True)
class Step:
    """One step of the SLI, covering (end − step, end]: its bad and total events (a raw-ratio SLI has
    only `ratio`). None where the source had no data."""

    end: datetime
    bad: float | None = None
    total: float | None = None
    ratio: float | None = None

    @property
    def error_ratio(self) -> float | None:
        if self.ratio is not None:
            return self.ratio
        if self.bad is None or not self.total:
            return None
        return self.bad / self.total


@dataclass(frozen=True)
class Impact:
    method: str  # events, ratio, or unknown (no SLI to measure it from, or no exceeding step)
    started_at: datetime | None = None
    ended_at: datetime | None = None  # None while the impact goes on
    bad_events: float | None = None
    total_events: float | None = None
    budget_events: float | None = None
    budget_consumed: float | None = None  # a share of the period's budget: 0.25 is a quarter of it

    def as_dict(self) -> dict[str, object]:
        return {
            "method": self.method,
            "started_at": self.started_at.isoformat() if self.started_at else None,
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "bad_events": self.bad_events,
            "total_events": self.total_events,
            "budget_events": self.budget_events,
            "budget_consumed": self.budget_consumed,
        }


def with_budget(impact: Impact, allowed: float, period_total: float | None) -> Impact:
    """An events impact with its budget: allowed ratio × the period's events, and the share spent."""
    if impact.method != EVENTS or not period_total or impact.bad_events is None:
        return impact
    budget_events = allowed * period_total
    return replace(impact, budget_events=budget_events, budget_consumed=impact.bad_events / budget_events)


def exceeds(step: Step, allowed: float, min_events: float, counted: bool) -> bool:
    """Whether a step is worse than the objective allows (and, with event counts, busy enough to say)."""
    ratio = step.error_ratio
    if ratio is None or ratio <= allowed:
        return False
    return not counted or (step.total or 0.0) >= min_events


def impact_window(
    steps: Sequence[Step],
    step_seconds: int,
    detected_at: datetime,
    *,
    allowed: float,
    min_events: float,
    period_seconds: int,
    period_total: float | None = None,
    reach: int | None = None,
) -> Impact:
    """The impact window around `detected_at` (see the module's rules). `steps` are consecutive, in time
    order, aligned so that one ends at `detected_at` (missing steps count as steps without data);
    `period_total` is the events of the period window ending at the impact's end (all events so far when
    the history is shorter), needed for the budget of an events SLI."""
    counted = any(s.total is not None for s in steps) and all(s.ratio is None for s in steps)
    step = timedelta(seconds=step_seconds)
    by_end = {s.end: s for s in steps}
    if not by_end:
        return Impact(UNKNOWN)
    first_end, last_end = min(by_end), max(by_end)

    def bad(moment: datetime) -> bool:
        found = by_end.get(moment)
        return found is not None and exceeds(found, allowed, min_events, counted)

    # The latest exceeding step ending at or before detection, then back to the start of its run.
    floor = first_end if reach is None else max(first_end, detected_at - timedelta(seconds=reach) + step)
    latest = detected_at
    while latest >= floor and not bad(latest):
        latest -= step
    if latest < floor:
        return Impact(UNKNOWN)
    earliest = latest
    while earliest - step >= first_end and bad(earliest - step):
        earliest -= step
    # Forward from it, through detection, until a step that does not exceed.
    last = latest
    while last + step <= last_end and bad(last + step):
        last += step
    closed = last + step <= last_end  # the step after it was measured (a gap does not exceed either)
    run = [by_end[earliest + k * step] for k in range(round((last - earliest) / step) + 1)]
    started, ended = earliest - step, last if closed else None
    if counted:
        bad_events = sum(s.bad or 0.0 for s in run)
        total_events = sum(s.total or 0.0 for s in run)
        counts = Impact(EVENTS, started, ended, bad_events=bad_events, total_events=total_events)
        return with_budget(counts, allowed, period_total)
    spent = sum((s.error_ratio or 0.0) * step_seconds for s in run) / allowed
    return Impact(RATIO, started, ended, budget_consumed=spent / period_seconds)
