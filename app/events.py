"""Domain events and the dispatcher that runs reactions to them inside the announcing unit of work.

Lower floors announce what happened (an SLO breached, an incident opened) without importing the floors
that react to it: the SLO engine announces `SloBreached`, the incidents service reacts by opening an
incident. Reactions run in the unit of work that announced the event, before it commits (`db.unit_of_work`
calls `react`), so a change and everything it causes commit together or not at all: they touch only the
database, and an effect outside it (a Slack call, evidence gathering) is recorded as an outbox row there
(`app.outbox.enqueue`). A reaction may announce further events; they are reacted to in the same unit. A
failing reaction fails the unit.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from sqlmodel import Session

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SloBreached:
    """An SLO entered a firing tier (or escalated from ticket to page)."""

    slo_id: str
    severity: str  # "page" or "ticket"
    tier: str | None
    at: datetime
    service: str
    model: str | None
    burn_rates: dict[str, float | None] = field(default_factory=dict)
    budget_remaining: float | None = None
    runbook: str | None = None
    burn_started_at: datetime | None = None  # the tier's short window back from `at`: impact began by then


@dataclass(frozen=True)
class SloCleared:
    """Every tier of an SLO stayed below threshold for its hold period."""

    slo_id: str
    previous_severity: str
    at: datetime


@dataclass(frozen=True)
class IncidentOpened:
    incident_id: int
    key: str
    title: str
    severity: str
    source: str
    service: str | None = None
    slo_id: str | None = None
    model: str | None = None


@dataclass(frozen=True)
class IncidentStatusChanged:
    incident_id: int
    old: str
    new: str
    actor: str | None


@dataclass(frozen=True)
class IncidentUpdated:
    incident_id: int
    changes: dict[str, Any]
    actor: str | None


@dataclass(frozen=True)
class IncidentNoted:
    """Someone added a note to the incident's timeline."""

    incident_id: int
    text: str
    actor: str | None
    redraw: bool = False  # news the incident message shows (a registry move): redraw it too


@dataclass(frozen=True)
class IncidentEscalated:
    """Still `triggered` after the re-notify period: nobody has acknowledged it."""

    incident_id: int
    severity: str
    unacknowledged_seconds: float


@dataclass(frozen=True)
class ModelChanged:
    """The model registry announced a change (its webhook): an alias moved or was removed, a version was
    registered. `action_id` is set when the change was sloguard's own rollback or promote."""

    change_id: int
    kind: str  # alias_set, alias_deleted, version_created
    registered_model: str
    model: str
    text: str
    at: datetime
    environment: str | None = None
    alias: str | None = None
    version: str | None = None
    from_version: str | None = None
    action_id: int | None = None


Event = Any
E = TypeVar("E")


Reaction = Callable[["Session", list[Any], Any], object]


class Dispatcher:
    def __init__(self) -> None:
        self._reactions: dict[type, list[Reaction]] = defaultdict(list)

    def subscribe(self, event_type: type[E], reaction: Callable[[Session, list[Any], E], object]) -> None:
        """`reaction(session, events, event)` runs in the unit of work that announced `event`."""
        self._reactions[event_type].append(reaction)

    def react(self, session: Session, events: list[Any]) -> None:
        index = 0
        while index < len(events):  # reactions may announce more
            event = events[index]
            for reaction in list(self._reactions.get(type(event), ())):
                reaction(session, events, event)
            index += 1
