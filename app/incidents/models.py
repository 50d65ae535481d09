"""Incident tables and their API models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

import sqlalchemy as sa
from pydantic import model_validator
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow
from app.inputs import UtcDatetime

# Who acts is the authenticated caller. A body may still carry `actor` (old clients): naming anyone but
# the caller is a 403 (app/api.py Caller.acting). Left out of the schema: it is not part of the API.
ActorField = SkipJsonSchema[Annotated[str, Field(max_length=100)] | None]


class IncidentStatus(StrEnum):
    triggered = "triggered"
    acknowledged = "acknowledged"
    mitigated = "mitigated"
    resolved = "resolved"
    cancelled = "cancelled"


# The one list of statuses an incident is over in (nothing moves it on): every query, index and button
# that asks "is it open?" uses these.
CLOSED_STATUSES = (IncidentStatus.resolved.value, IncidentStatus.cancelled.value)
OPEN_STATUSES = tuple(status.value for status in IncidentStatus if status.value not in CLOSED_STATUSES)


Priority = Literal["P0", "P1", "P2", "P3"]


class Severity(StrEnum):
    SEV1 = "SEV1"
    SEV2 = "SEV2"
    SEV3 = "SEV3"
    SEV4 = "SEV4"


class IncidentBase(SQLModel):
    title: str = Field(max_length=300)
    service: str | None = Field(default=None, max_length=200, index=True)
    slo_id: str | None = Field(default=None, max_length=200, index=True)
    model: str | None = Field(default=None, max_length=200, index=True)
    environment: str | None = Field(default=None, max_length=50)
    severity: Severity = Field(default=Severity.SEV3, sa_type=sa.String(8))
    summary: str | None = Field(default=None, sa_type=sa.Text)


class Incident(IncidentBase, table=True):
    # `key` is the dedupe key: at most one open incident per key. Closed incidents keep theirs, so the
    # uniqueness is a partial index over open rows (SQLite and PostgreSQL both support it).
    __table_args__ = (
        sa.Index(
            "uq_incident_open_key",
            "key",
            unique=True,
            sqlite_where=sa.column("status").not_in(CLOSED_STATUSES),
            postgresql_where=sa.column("status").not_in(CLOSED_STATUSES),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300)
    status: IncidentStatus = Field(default=IncidentStatus.triggered, sa_type=sa.String(16), index=True)
    commander: str | None = Field(default=None, max_length=100)
    # alertmanager, slo, manual
    source: str = Field(default="manual", max_length=20, sa_column_kwargs={"server_default": "manual"})
    started_at: datetime = Field(sa_type=UTCDateTime)
    detected_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    mitigated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    escalated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Where the incident's Slack message lives, so every change updates that one message.
    slack_channel: str | None = Field(default=None, max_length=40)
    slack_ts: str | None = Field(default=None, max_length=40)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # The impact window measured from the SLI (app/slo/impact.py); method None until measured.
    impact_method: str | None = Field(default=None, max_length=10)
    impact_started_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    impact_ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    impact_bad_events: float | None = None
    impact_total_events: float | None = None
    impact_budget_events: float | None = None
    impact_budget_consumed: float | None = None
    impact_measured_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ImpactRead(SQLModel):
    """The impact window (README: "The incident record"): `method` is `events` (counted from the SLI),
    `ratio` (a raw-ratio SLI: budget only), `unknown` (no SLI to measure it from, or nothing exceeded),
    or `not_measured` (not yet: measured when the incident is mitigated and when it is resolved)."""

    method: str
    started_at: datetime | None = None
    ended_at: datetime | None = None
    bad_events: float | None = None
    total_events: float | None = None
    budget_events: float | None = None
    budget_consumed: float | None = None
    measured_at: datetime | None = None


class IncidentRead(SQLModel):
    # Not IncidentBase: a read never re-checks input limits, so nothing stored can break a later read.
    title: str
    service: str | None
    slo_id: str | None
    model: str | None
    environment: str | None
    severity: Severity
    summary: str | None
    id: int
    key: str
    status: IncidentStatus
    commander: str | None
    source: str
    started_at: datetime
    detected_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None
    # Seconds, from the stored timestamps: detect = detected - started, acknowledge = acknowledged -
    # detected, mitigate/resolve = mitigated/resolved - started. None until the step happened.
    time_to_detect: float | None = None
    time_to_acknowledge: float | None = None
    time_to_mitigate: float | None = None
    time_to_resolve: float | None = None
    impact: ImpactRead | None = None


class IncidentCreate(SQLModel):
    title: str = Field(min_length=1, max_length=300)
    service: str | None = Field(default=None, max_length=200)
    slo_id: str | None = Field(default=None, max_length=200)
    model: str | None = Field(default=None, max_length=200)
    environment: str | None = Field(default=None, max_length=50)
    severity: Severity = Severity.SEV3
    summary: str | None = None
    commander: str | None = Field(default=None, max_length=100)
    started_at: UtcDatetime | None = None
    actor: ActorField = None


class IncidentUpdate(SQLModel):
    status: IncidentStatus | None = None
    severity: Severity | None = None
    commander: str | None = Field(default=None, max_length=100)
    title: str | None = Field(default=None, min_length=1, max_length=300)
    summary: str | None = None
    actor: ActorField = None


class NoteCreate(SQLModel):
    text: str = Field(min_length=1, max_length=10_000)
    actor: ActorField = None
    kind: str = Field(default="note", max_length=40)


class TimelineEvent(SQLModel, table=True):
    """Append-only record of what happened to an incident, by whom, when."""

    __tablename__ = "timeline_event"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=40)
    actor: str | None = Field(default=None, max_length=100)
    token_id: int | None = None  # the personal token the actor used (api_token.id), if one
    text: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    trace_id: str | None = Field(default=None, max_length=64)


class TimelineEventRead(SQLModel):
    id: int
    at: datetime
    kind: str
    actor: str | None
    token_id: int | None = None
    text: str
    data: dict[str, Any]


class AlertLink(SQLModel, table=True):
    """One Alertmanager alert (fingerprint + startsAt) attached to an incident."""

    __tablename__ = "alert_link"
    __table_args__ = (
        sa.UniqueConstraint("fingerprint", "starts_at", name="uq_alert_link_fingerprint_start"),
    )

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    fingerprint: str = Field(max_length=64)
    alertname: str | None = Field(default=None, max_length=200)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    status: str = Field(default="firing", max_length=16)
    labels: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    annotations: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    generator_url: str | None = Field(default=None, sa_type=sa.Text)
    group_key: str | None = Field(default=None, sa_type=sa.Text)
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class AlertLinkRead(SQLModel):
    id: int
    fingerprint: str
    alertname: str | None
    starts_at: datetime
    ends_at: datetime | None
    status: str
    labels: dict[str, Any]
    annotations: dict[str, Any]


class ActionItem(SQLModel, table=True):
    __tablename__ = "action_item"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    text: str = Field(sa_type=sa.Text)
    owner: str | None = Field(default=None, max_length=100)
    due: datetime | None = Field(default=None, sa_type=UTCDateTime)
    priority: str = Field(default="P2", max_length=4)
    done: bool = False
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ActionItemCreate(SQLModel):
    text: str = Field(min_length=1, max_length=2000)
    owner: str | None = Field(default=None, max_length=100)
    due: UtcDatetime | None = None
    priority: Priority = "P2"


class ActionItemUpdate(SQLModel):
    # Left out keeps the value; only owner and due may be null (cleared), so the schema says so
    # (SkipJsonSchema: None is the "not given" default, not a value a client may send).
    # The length limits sit on the text itself: on the union they were applied to a `null` too, which
    # pydantic answers with a TypeError (a 500) instead of a validation error.
    text: Annotated[str, Field(min_length=1, max_length=2000)] | SkipJsonSchema[None] = None
    owner: str | None = Field(default=None, max_length=100)  # null clears it
    due: UtcDatetime | None = None  # null clears it
    priority: Priority | SkipJsonSchema[None] = None
    done: bool | SkipJsonSchema[None] = None

    @model_validator(mode="after")
    def _required_fields_are_not_cleared(self) -> ActionItemUpdate:
        # Leaving a field out keeps it; `null` would clear it, which only owner and due may be.
        for name in ("text", "priority", "done"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null: leave it out to keep the current value")
        return self


class ActionItemRead(SQLModel):
    id: int
    text: str
    owner: str | None
    due: datetime | None
    priority: str
    done: bool


class IncidentDetail(IncidentRead):
    timeline: list[TimelineEventRead] = []
    alerts: list[AlertLinkRead] = []
    action_items: list[ActionItemRead] = []
    # Evidence gathered by app.ml (rows of model_version_link, drift_signal, log_evidence).
    model_versions: list[dict[str, Any]] = []
    drift_signals: list[dict[str, Any]] = []
    log_evidence: list[dict[str, Any]] = []
    # The budget of the SLO's period spent by each model version, measured with the evidence
    # (app/ml/budget.py): `available`, and its `reason` when false.
    budget_by_version: dict[str, Any] | None = None
