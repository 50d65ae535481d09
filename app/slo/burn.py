"""Multi-window, multi-burn-rate maths (Google SRE Workbook ch. 5), as pure functions over plain values.

Vocabulary (see ../shared/design/SLO-MATH.md):
- objective `s` (0.999), budget `B = 1 - s`, period `T` (30 days by default);
- error ratio over a window `e(w) = bad(w) / total(w)`, summed counts, not an average of ratios;
- burn rate `e(w) / B`: 1 spends exactly the budget over `T`;
- a tier (page or ticket) has a long window `L`, a short window `S = L / 12` and a factor
  `k = budget share · T / L`; it fires when both `e(L)` and `e(S)` exceed `k · B`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from app import durations
from app.durations import DAY


class State(StrEnum):
    ok = "ok"
    ticket = "ticket"
    page = "page"
    no_data = "no_data"
    insufficient_data = "insufficient_data"
    source_error = "source_error"


# Higher wins when several tiers fire; the lower one is suppressed while the higher fires.
SEVERITY_RANK = {State.page: 2, State.ticket: 1}


@dataclass(frozen=True, order=True)
class Window:
    seconds: int

    @property
    def name(self) -> str:
        return durations.format_prometheus(self.seconds)

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Tier:
    """One alerting tier: fires when both windows burn faster than `factor`."""

    name: str  # "page-fast", "page-slow", "ticket-fast", "ticket-slow", or an AlertCondition's name
    severity: State  # State.page or State.ticket
    long: Window
    short: Window
    factor: float

    def threshold(self, budget: float) -> float:
        """The error ratio both windows must exceed: k · B."""
        return self.factor * budget


# The Workbook's tiers for a 30-day period: (severity, long window, share of the budget spent in it).
_GOOGLE_TIERS = (
    ("page-fast", State.page, 3600, 0.02),
    ("page-slow", State.page, 6 * 3600, 0.05),
    ("ticket-fast", State.ticket, DAY, 0.10),
    ("ticket-slow", State.ticket, 3 * DAY, 0.10),
)
_GOOGLE_PERIOD = 30 * DAY


def tiers_for_period(period_seconds: int) -> tuple[Tier, ...]:
    """The four MWMB tiers for a period.

    28 and 30 days use the Workbook's windows (1h/5m, 6h/30m, 1d/2h, 3d/6h) with k recomputed for the
    period (so 28d gives 13.44, 5.6, 2.8, 0.933). Any other period scales the windows with the period,
    as Pyrra does: a 7-day SLO pages on 14m/70s instead of 1h/5m, keeping k the same as for 30 days.
    """
    scale = 1.0 if period_seconds in (28 * DAY, 30 * DAY) else period_seconds / _GOOGLE_PERIOD
    tiers = []
    for name, severity, long_seconds, share in _GOOGLE_TIERS:
        long = Window(max(60, round(long_seconds * scale)))
        short = Window(max(60, round(long.seconds / 12)))
        tiers.append(Tier(name, severity, long, short, share * period_seconds / long.seconds))
    return tuple(tiers)


def windows_of(tiers: tuple[Tier, ...]) -> tuple[Window, ...]:
    """Every window the tiers read, shortest first."""
    return tuple(sorted({w for tier in tiers for w in (tier.long, tier.short)}))


def error_ratio(bad: float | None, total: float | None) -> float | None:
    """bad / total; None when there was no traffic to judge by."""
    if total is None or total <= 0 or math.isnan(total):
        return None
    bad = 0.0 if bad is None or math.isnan(bad) else bad
    return min(max(bad / total, 0.0), 1.0)


def burn_rate(ratio: float | None, budget: float) -> float | None:
    return None if ratio is None else ratio / budget


def budget_remaining(period_error_ratio: float | None, budget: float) -> float | None:
    """1 - e(T)/B over the whole period; negative when the budget is overspent."""
    return None if period_error_ratio is None else 1.0 - period_error_ratio / budget


def time_to_exhaustion(remaining: float | None, burn_1h: float | None, period_seconds: int) -> float | None:
    """Seconds until the budget is gone at the current (1h) burn: remaining · T / br(1h)."""
    if remaining is None or burn_1h is None or burn_1h <= 0:
        return None
    return max(remaining, 0.0) * period_seconds / burn_1h


@dataclass(frozen=True)
class WindowFigures:
    error_ratio: float | None
    burn_rate: float | None
    events: float | None = None  # how many events the window saw (None for raw-ratio SLIs)


@dataclass(frozen=True)
class TierMemory:
    """What the state machine remembers between cycles: the tier held and when it went quiet."""

    state: State = State.ok
    tier: str | None = None
    quiet_since: datetime | None = None


@dataclass(frozen=True)
class Evaluation:
    state: State
    windows: dict[str, WindowFigures]
    budget_remaining: float | None
    time_to_exhaustion: float | None
    firing: tuple[str, ...]  # names of tiers above threshold this cycle (before suppression)
    memory: TierMemory
    detail: str | None = None
    held: bool = False  # the state is kept only because the hold period has not passed


def tier_fires(tier: Tier, ratios: Mapping[int, float | None], budget: float) -> bool:
    """Both windows strictly above k · B. A window without data never fires."""
    threshold = tier.threshold(budget)
    long, short = ratios.get(tier.long.seconds), ratios.get(tier.short.seconds)
    return long is not None and short is not None and long > threshold and short > threshold


def hold_seconds(tier: Tier) -> float:
    """How long a tier must stay quiet before it clears: half its short window (SLO-MATH.md)."""
    return tier.short.seconds / 2


RULES = "rules"  # the period budget from the recording rules' period ratio, which cover the period
RAW = "raw"  # from the raw SLI over the period (direct mode, or batch mode before the rules cover it)
STEPS = 720  # subquery steps over a period when asking how far back data reaches: 1 h for 30 days


@dataclass(frozen=True)
class Coverage:
    """Where one evaluation's period budget came from, and how much of the period that data covers."""

    basis: str  # RULES or RAW
    seconds: float | None  # of the period the data covers (None: not known)
    period: float  # the period's length (elapsed, for a calendar period)

    @property
    def partial(self) -> bool:
        """The data covers less of the period than one subquery step short of all of it."""
        return self.seconds is not None and self.seconds < self.period - resolution(self.period)

    def as_dict(self) -> dict[str, Any]:
        return {
            "basis": self.basis,
            "coverage_seconds": self.seconds,
            "period_seconds": self.period,
            "partial": self.partial,
        }


def resolution(period_seconds: float) -> int:
    """The subquery step: a 720th of the period, at least a minute."""
    return max(60, int(period_seconds) // STEPS)


@dataclass(frozen=True)
class Measurement:
    """What a source measured for one SLO at one time, per window (keyed by window seconds)."""

    ratios: dict[int, float | None]
    events: dict[int, float | None] = field(default_factory=dict)
    period_ratio: float | None = None
    coverage: Coverage | None = None  # where period_ratio came from, and how much of the period it covers


def evaluate(
    measurement: Measurement,
    *,
    objective: float,
    period_seconds: int,
    tiers: tuple[Tier, ...],
    now: datetime,
    previous: TierMemory | None = None,
    min_events: float = 0,
) -> Evaluation:
    """One SLO's state this cycle, from what the source measured and what was remembered."""
    budget = 1.0 - objective
    previous = previous or TierMemory()
    windows = {
        durations.format_prometheus(seconds): WindowFigures(
            ratio, burn_rate(ratio, budget), measurement.events.get(seconds)
        )
        for seconds, ratio in sorted(measurement.ratios.items())
    }
    remaining = budget_remaining(measurement.period_ratio, budget)
    burn_1h = windows["1h"].burn_rate if "1h" in windows else None
    exhaustion = time_to_exhaustion(remaining, burn_1h, period_seconds)

    above = [tier for tier in tiers if tier_fires(tier, measurement.ratios, budget)]
    starved = [
        tier
        for tier in above
        if tier.long.seconds in measurement.events
        and (measurement.events[tier.long.seconds] or 0.0) < min_events
    ]
    firing = [tier for tier in above if tier not in starved]
    result = partial_evaluation(windows, remaining, exhaustion, tuple(t.name for t in above))

    if firing:
        top = max(firing, key=lambda tier: (SEVERITY_RANK[tier.severity], tier.factor))
        if previous.state in SEVERITY_RANK and SEVERITY_RANK[previous.state] > SEVERITY_RANK[top.severity]:
            # A page quietening into a ticket-level burn is still held as a page until its hold passes.
            held = _held(previous, tiers, now)
            if held is not None:
                return replace(result, state=previous.state, memory=held, held=True)
        return replace(result, state=top.severity, memory=TierMemory(top.severity, top.name, None))

    if previous.state in SEVERITY_RANK:
        tier = next((t for t in tiers if t.name == previous.tier), None)
        if tier is not None and any(
            measurement.ratios.get(window.seconds) is None for window in (tier.long, tier.short)
        ):
            # The firing tier's windows went silent: no data is not "below threshold" and never clears.
            silent = TierMemory(previous.state, previous.tier, None)
            return replace(
                result, state=previous.state, memory=silent, held=True, detail="no data in the firing tier"
            )
        held = _held(previous, tiers, now)
        if held is not None:
            return replace(result, state=previous.state, memory=held, held=True)

    if all(ratio is None for ratio in measurement.ratios.values()):
        return replace(result, state=State.no_data, detail="no window returned data")
    if starved:
        names = ", ".join(tier.name for tier in starved)
        return replace(
            result,
            state=State.insufficient_data,
            detail=f"{names} above threshold on fewer than {min_events:g} events",
        )
    return result


def partial_evaluation(
    windows: dict[str, WindowFigures],
    remaining: float | None,
    exhaustion: float | None,
    firing: tuple[str, ...],
) -> Evaluation:
    return Evaluation(State.ok, windows, remaining, exhaustion, firing, TierMemory())


def _held(previous: TierMemory, tiers: tuple[Tier, ...], now: datetime) -> TierMemory | None:
    """The memory to keep if the previously firing tier is still inside its hold period, else None."""
    tier = next((t for t in tiers if t.name == previous.tier), None)
    if tier is None:
        return None
    quiet_since = previous.quiet_since or now
    if (now - quiet_since) < timedelta(seconds=hold_seconds(tier)):
        return TierMemory(previous.state, previous.tier, quiet_since)
    return None
