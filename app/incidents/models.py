"""Incident tables and their API models."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class IncidentStatus(StrEnum):
    triggered = "triggered"
    acknowledged = "acknowledged"
    mitigated = "mitigated"
    resolved = "resolved"
    cancelled = "cancelled"


CLOSED_STATUSES = (IncidentStatus.resolved.value, IncidentStatus.cancelled.value)


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
            sqlite_where=sa.text("status NOT IN ('resolved', 'cancelled')"),
            postgresql_where=sa.text("status NOT IN ('resolved', 'cancelled')"),
        ),
    )

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=300)
    status: IncidentStatus = Field(default=IncidentStatus.triggered, sa_type=sa.String(16), index=True)
    commander: str | None = Field(default=None, max_length=100)
    started_at: datetime = Field(sa_type=UTCDateTime)
    detected_at: datetime = Field(sa_type=UTCDateTime)
    acknowledged_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    mitigated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class IncidentRead(IncidentBase):
    id: int
    key: str
    status: IncidentStatus
    commander: str | None
    started_at: datetime
    detected_at: datetime
    acknowledged_at: datetime | None
    mitigated_at: datetime | None
    resolved_at: datetime | None


class TimelineEvent(SQLModel, table=True):
    """Append-only record of what happened to an incident, by whom, when."""

    __tablename__ = "timeline_event"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    kind: str = Field(max_length=40)
    actor: str | None = Field(default=None, max_length=100)
    text: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    trace_id: str | None = Field(default=None, max_length=64)


class TimelineEventRead(SQLModel):
    id: int
    at: datetime
    kind: str
    actor: str | None
    text: str
    data: dict[str, Any]
