"""Planned windows: maintenance that is announced ahead, one-off or recurring (an RFC 5545 RRULE), for some
SLOs, services or models (sloguard.yaml `planned_windows:`). Pure: no I/O here.

While an occurrence is on, the SLOs it covers do not page, the events inside it are left out of their
budget and burn figures, and `sloguard_planned_window_active{slo}` is 1 so that the generated alert rules
hold Prometheus-side paging too.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from dateutil import rrule
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import durations

NAME = re.compile(r"[a-z0-9][a-z0-9._-]{0,62}")
# The longest occurrence accepted: a longer pause is not a maintenance window.
MAX_DURATION = 7 * 86400.0


class PlannedWindow(BaseModel):
    """One planned window. `start` is the first occurrence (with its UTC offset); `every` an RRULE such
    as `FREQ=WEEKLY;BYDAY=SU` (its times follow `start`'s); `duration` how long each occurrence lasts.
    It covers the SLOs named in `slos`, every SLO of a service in `services`, of a model in `models`."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=63)
    reason: str = Field(default="", max_length=500)
    start: datetime
    duration: float
    every: str | None = Field(default=None, max_length=500)
    slos: list[str] = Field(default_factory=list, max_length=1000)
    services: list[str] = Field(default_factory=list, max_length=1000)
    models: list[str] = Field(default_factory=list, max_length=1000)
    cancelled: bool = False  # kept for its history; nothing is held and its silences are removed

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if NAME.fullmatch(value) is None:
            raise ValueError("lower-case letters, digits, '.', '_' and '-', starting with a letter or digit")
        return value

    @field_validator("start")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("needs a UTC offset, such as 2026-12-06T02:00:00Z")
        return value.astimezone(UTC)

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> float:
        seconds = durations.parse_setting(value)
        if seconds > MAX_DURATION:
            raise ValueError("at most 7 days: a longer pause is not a maintenance window")
        return seconds

    @field_validator("every")
    @classmethod
    def _rule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        text = value.strip().removeprefix("RRULE:")
        if "DTSTART" in text.upper():
            raise ValueError("the first occurrence is `start`, not a DTSTART in the rule")
        try:
            rrule.rrulestr(text, dtstart=datetime(2026, 1, 1, tzinfo=UTC))
        except (ValueError, TypeError) as error:
            raise ValueError(f"not an RFC 5545 RRULE such as FREQ=WEEKLY;BYDAY=SU ({error})") from None
        return text

    @model_validator(mode="after")
    def _scoped(self) -> PlannedWindow:
        if not (self.slos or self.services or self.models):
            raise ValueError("names no SLO: give slos, services or models")
        if self.every is not None:
            # dateutil leaves out a start the rule does not produce (BYDAY=MO from a Sunday): refused, so
            # that `start` is always the first occurrence, as it says.
            first = rrule.rrulestr(self.every, dtstart=self.start).after(self.start, inc=True)
            if first != self.start:
                then = first.isoformat() if first is not None else "none at all"
                raise ValueError(f"start is not an occurrence of `every` (its first from start: {then})")
        return self

    def covers(self, slo_id: str, service: str, model: str | None) -> bool:
        return slo_id in self.slos or service in self.services or (model is not None and model in self.models)

    def occurrences(self, since: datetime, until: datetime) -> list[Occurrence]:
        """Every occurrence that overlaps [since, until), in time order (cancelled: none)."""
        if self.cancelled or until <= since:
            return []
        length = timedelta(seconds=self.duration)
        if self.every is None:
            starts: Iterable[datetime] = [self.start]
        else:
            rule = rrule.rrulestr(self.every, dtstart=self.start)
            starts = rule.between(since - length, until, inc=True)
        found = []
        for begin in starts:
            end = begin + length
            if begin < until and end > since:
                found.append(Occurrence(self.name, begin, end, self.reason))
        return found


@dataclass(frozen=True)
class Occurrence:
    name: str
    start: datetime
    end: datetime
    reason: str = ""


def for_slo(
    windows: Sequence[PlannedWindow], slo_id: str, service: str, model: str | None
) -> list[PlannedWindow]:
    return [window for window in windows if window.covers(slo_id, service, model)]


def merged(occurrences: Iterable[Occurrence]) -> list[tuple[datetime, datetime]]:
    """The union of the occurrences as disjoint (start, end) intervals in time order."""
    spans: list[tuple[datetime, datetime]] = []
    for item in sorted(occurrences, key=lambda o: (o.start, o.end)):
        if spans and item.start <= spans[-1][1]:
            spans[-1] = (spans[-1][0], max(spans[-1][1], item.end))
        else:
            spans.append((item.start, item.end))
    return spans


def held(windows: Sequence[PlannedWindow], at: datetime) -> list[Occurrence]:
    """The occurrences on at `at`."""
    return [o for window in windows for o in window.occurrences(at, at + timedelta(microseconds=1))]


def overlaps(
    windows: Sequence[PlannedWindow], since: datetime, until: datetime
) -> list[tuple[datetime, datetime]]:
    """The planned time inside [since, until): the merged occurrences, clipped to it."""
    spans = merged(o for window in windows for o in window.occurrences(since, until))
    return [(max(start, since), min(end, until)) for start, end in spans]
