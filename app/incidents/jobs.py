"""Scheduled incident work: re-announce unacknowledged incidents, resolve long-quiet ones."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from app.config import IncidentOptions
from app.incidents import service as incidents

log = logging.getLogger(__name__)
Sweep = Callable[[Any, Any, IncidentOptions, datetime], list[int]]


def _sweep(what: str, sweep: Sweep, state: Any, options: IncidentOptions) -> None:
    """Run one sweep over incidents; never raise into the scheduler."""
    try:
        changed = sweep(state.engine, state.events, options, datetime.now(UTC))
    except Exception:
        log.exception("incident job failed", extra={"job": what})
        return
    if changed:
        log.info("incidents changed by job", extra={"job": what, "incident_ids": changed})


def escalate(state: Any, options: IncidentOptions) -> None:
    _sweep("escalation", incidents.escalate_unacknowledged, state, options)


def auto_resolve(state: Any, options: IncidentOptions) -> None:
    _sweep("auto-resolve", incidents.auto_resolve, state, options)
