"""Domain events and their in-process dispatcher.

Lower floors announce what happened (an SLO breached, an incident opened) without importing the floors
that react to it: the SLO engine publishes `SloBreached`, the incidents service subscribes. Handlers run
synchronously in the publisher's thread; one failing handler is logged and does not stop the others.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

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
class IncidentEscalated:
    """Still `triggered` after the re-notify period: nobody has acknowledged it."""

    incident_id: int
    severity: str
    unacknowledged_seconds: float


Event = Any
E = TypeVar("E")


class Dispatcher:
    def __init__(self) -> None:
        self._handlers: dict[type, list[Callable[[Any], object]]] = defaultdict(list)

    def subscribe(self, event_type: type[E], handler: Callable[[E], object]) -> None:
        self._handlers[event_type].append(handler)

    def publish(self, event: Event) -> None:
        for handler in list(self._handlers.get(type(event), ())):
            try:
                handler(event)
            except Exception:
                log.exception(
                    "event handler failed",
                    extra={"event": type(event).__name__, "handler": getattr(handler, "__qualname__", "?")},
                )
