"""Scheduled incident work: re-announce unacknowledged incidents, resolve long-quiet ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

from app.config import IncidentOptions
from app.events import Dispatcher
from app.incidents import service as incidents

if TYPE_CHECKING:
    from app.services import Services

log = logging.getLogger(__name__)
Sweep = Callable[[Engine, Dispatcher | None, IncidentOptions, datetime], list[int]]


def _sweep(what: str, sweep: Sweep, services: Services, options: IncidentOptions) -> None:
    """Run one sweep over incidents; never raise into the scheduler."""
    try:
        changed = sweep(services.engine, services.events, options, datetime.now(UTC))
    except Exception:
        log.exception("incident job failed", extra={"job": what})
        return
    if changed:
        log.info("incidents changed by job", extra={"job": what, "incident_ids": changed})


def escalate(services: Services, options: IncidentOptions) -> None:
    _sweep("escalation", incidents.escalate_unacknowledged, services, options)


def auto_resolve(services: Services, options: IncidentOptions) -> None:
    _sweep("auto-resolve", incidents.auto_resolve, services, options)
