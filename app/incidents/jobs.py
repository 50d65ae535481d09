"""Scheduled incident work: re-announce unacknowledged incidents, resolve long-quiet ones."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from app.config import IncidentOptions
from app.incidents import service as incidents

log = logging.getLogger(__name__)


def escalate(state: Any, options: IncidentOptions) -> None:
    try:
        escalated = incidents.escalate_unacknowledged(state.engine, state.events, options, datetime.now(UTC))
    except Exception:
        log.exception("incident escalation job failed")
        return
    if escalated:
        log.info("incidents escalated", extra={"incident_ids": escalated})


def auto_resolve(state: Any, options: IncidentOptions) -> None:
    try:
        resolved = incidents.auto_resolve(state.engine, state.events, options, datetime.now(UTC))
    except Exception:
        log.exception("incident auto-resolve job failed")
        return
    if resolved:
        log.info("incidents auto-resolved", extra={"incident_ids": resolved})
