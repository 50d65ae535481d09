"""Pure incident rules: the lifecycle table, dedupe keys, severity mapping and response times."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from app.errors import InvalidTransition
from app.incidents.models import IncidentStatus, Severity

S = IncidentStatus

# Where each status may go. `mitigated -> triggered` is a reopen (a new alert on a quiet incident);
# resolved and cancelled are final: a new problem opens a new incident.
TRANSITIONS: dict[IncidentStatus, frozenset[IncidentStatus]] = {
    S.triggered: frozenset({S.acknowledged, S.mitigated, S.resolved, S.cancelled}),
    S.acknowledged: frozenset({S.mitigated, S.resolved, S.cancelled}),
    S.mitigated: frozenset({S.triggered, S.resolved, S.cancelled}),
    S.resolved: frozenset(),
    S.cancelled: frozenset(),
}
OPEN_STATUSES = frozenset({S.triggered, S.acknowledged, S.mitigated})


def check_transition(current: IncidentStatus, target: IncidentStatus) -> None:
    """Raise InvalidTransition naming the allowed targets when `current -> target` is not legal."""
    allowed = TRANSITIONS[current]
    if target not in allowed:
        names = ", ".join(sorted(status.value for status in allowed)) or "none (it is closed)"
        raise InvalidTransition(f"cannot move a {current.value} incident to {target.value}; allowed: {names}")


def transition_stamps(
    target: IncidentStatus, now: datetime, acknowledged_at: datetime | None
) -> dict[str, datetime | None]:
    """Timestamps a transition sets. The first acknowledgement counts for MTTA; a reopen clears the
    mitigation and resolution times so they measure the last recovery."""
    if target == S.acknowledged:
        return {"acknowledged_at": acknowledged_at or now}
    if target == S.mitigated:
        return {"mitigated_at": now}
    if target in (S.resolved, S.cancelled):
        return {"resolved_at": now}
    if target == S.triggered:
        return {"mitigated_at": None, "resolved_at": None}
    return {}


def alert_group_key(group_key: str) -> str:
    """Incident key for an Alertmanager group: sha256 of its groupKey."""
    return "am:" + hashlib.sha256(group_key.encode("utf-8")).hexdigest()


def slo_key(slo_id: str) -> str:
    return f"slo:{slo_id}"


@dataclass(frozen=True)
class SeverityMap:
    """Label values and SLO tiers to severities (sloguard.yaml `incidents.severity`)."""

    mapping: Mapping[str, Severity]
    budget_exhausted: Severity = Severity.SEV1
    default: Severity = Severity.SEV4

    def for_labels(self, labels: Mapping[str, str], budget_remaining: float | None = None) -> Severity:
        explicit = labels.get("incident_severity") or labels.get("sloguard_severity")
        if explicit and explicit.upper() in Severity.__members__:
            return Severity(explicit.upper())
        for key in ("sloth_severity", "severity", "tier"):
            value = labels.get(key, "").lower()
            if value in self.mapping:
                severity = self.mapping[value]
                break
        else:
            severity = self.default
        return self.escalate(severity, budget_remaining)

    def for_tier(self, tier_severity: str, budget_remaining: float | None) -> Severity:
        return self.escalate(self.mapping.get(tier_severity, self.default), budget_remaining)

    def escalate(self, severity: Severity, budget_remaining: float | None) -> Severity:
        """A page-level burn on an SLO whose budget is already gone is the top severity."""
        if budget_remaining is not None and budget_remaining <= 0 and severity == self.mapping.get("page"):
            return self.budget_exhausted
        return severity


def seconds_between(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()


def response_times(
    started_at: datetime,
    detected_at: datetime,
    acknowledged_at: datetime | None,
    mitigated_at: datetime | None,
    resolved_at: datetime | None,
) -> dict[str, float | None]:
    return {
        "time_to_detect": seconds_between(started_at, detected_at),
        "time_to_acknowledge": seconds_between(detected_at, acknowledged_at),
        "time_to_mitigate": seconds_between(started_at, mitigated_at),
        "time_to_resolve": seconds_between(started_at, resolved_at),
    }
