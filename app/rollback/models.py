"""RollbackAction (one proposed version change) and its audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow
from app.incidents.models import ActorField


class RollbackAction(SQLModel, table=True):
    __tablename__ = "rollback_action"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=300, unique=True)
    kind: str = Field(default="rollback", max_length=10)  # rollback or promote
    incident_id: int | None = Field(default=None, foreign_key="incident.id", index=True)
    model: str = Field(max_length=200)
    environment: str = Field(max_length=50)
    target: str = Field(max_length=20)
    from_version: str | None = Field(default=None, max_length=100)
    to_version: str = Field(max_length=100)
    actor: str = Field(max_length=100)
    approver: str | None = Field(default=None, max_length=100)
    reason: str = Field(default="", sa_type=sa.Text)
    dry_run: bool = False
    # proposed, confirmed, executing, succeeded, failed, verified, not_recovered
    state: str = Field(default="proposed", max_length=20)
    output: str = Field(default="", sa_type=sa.Text)
    verification: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    confirmed_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class AuditEvent(SQLModel, table=True):
    """Append-only: every step of every change, with who, what and the target's answer."""

    __tablename__ = "audit_event"

    id: int | None = Field(default=None, primary_key=True)
    action_id: int = Field(foreign_key="rollback_action.id", index=True)
    at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    step: str = Field(max_length=30)
    actor: str | None = Field(default=None, max_length=100)
    token_id: int | None = None  # the personal token the actor used (api_token.id), if one
    result: str = Field(default="", sa_type=sa.Text)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    trace_id: str | None = Field(default=None, max_length=64)


class RollbackRequest(SQLModel):
    model: str = Field(min_length=1, max_length=200)
    environment: str = Field(default="prod", min_length=1, max_length=50)
    to_version: str | None = Field(default=None, max_length=100)
    kind: Literal["rollback", "promote"] = "rollback"
    incident_id: int | None = Field(default=None, ge=1, le=2**31 - 1)  # a row id (PostgreSQL integer)
    actor: ActorField = None  # accepted from old clients; the caller acts (app/api.py Caller.acting)
    reason: str = Field(default="", max_length=2000)
    dry_run: bool = False
    confirm: bool = False


class ConfirmRequest(SQLModel):
    actor: ActorField = None


class RollbackRead(SQLModel):
    id: int
    kind: str
    incident_id: int | None
    model: str
    environment: str
    target: str
    from_version: str | None
    to_version: str
    actor: str
    approver: str | None
    reason: str
    dry_run: bool
    state: str
    output: str
    verification: dict[str, Any]
    created_at: datetime
    confirmed_at: datetime | None
    finished_at: datetime | None
