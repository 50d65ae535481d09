"""Which state changes become breach and clear events."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.events import SloBreached, SloCleared
from app.slo import burn
from app.slo.burn import State
from app.slo.model import EventsSli, Slo
from app.slo.service import SloResult, transitions

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SLO = Slo(
    id="fraud-model-availability",
    service="fraud-model",
    name="availability",
    objective=0.999,
    sli=EventsSli("bad[{{.window}}]", "total[{{.window}}]"),
    source="slo/fraud.yaml",
    labels={"model": "fraud-detector"},
    tiers=burn.tiers_for_period(30 * 86400),
)


def result(before: State, now: State) -> SloResult:
    return SloResult(SLO, now, NOW, None, None, before)


@pytest.mark.parametrize(
    ("before", "now", "expected"),
    [
        (State.ok, State.page, [SloBreached]),
        (State.ok, State.ticket, [SloBreached]),
        (State.ticket, State.page, [SloBreached]),  # escalation
        (State.page, State.page, []),
        (State.page, State.ticket, []),  # de-escalation is not a new breach, nor a clear
        (State.page, State.ok, [SloCleared]),
        (State.ticket, State.ok, [SloCleared]),
        # Missing data never clears an open incident.
        (State.page, State.no_data, []),
        (State.page, State.source_error, []),
        (State.page, State.insufficient_data, []),
        (State.no_data, State.ok, []),
    ],
)
def test_transitions(before: State, now: State, expected: list[type]) -> None:
    assert [type(event) for event in transitions([result(before, now)])] == expected


def test_clear_names_what_was_firing() -> None:
    (event,) = transitions([result(State.page, State.ok)])
    assert isinstance(event, SloCleared)
    assert (event.slo_id, event.previous_severity, event.at) == ("fraud-model-availability", "page", NOW)
