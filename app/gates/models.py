"""GateException: a person's permission for one release the gate blocks (kept as the audit record)."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class GateException(SQLModel, table=True):
    __tablename__ = "gate_exception"

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=200, index=True)
    version: str = Field(max_length=100)
    environment: str = Field(max_length=50)
    reason: str = Field(sa_type=sa.Text)
    granted_by: str = Field(max_length=100)
    token_id: int | None = None
    confirmed_by: str | None = Field(default=None, max_length=100)
    state: str = Field(default="granted", max_length=12)  # proposed (two_person) or granted
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)


class GateCheck(SQLModel):
    """POST /api/v1/gates/check: may `model` move to `version` in environment `to`?"""

    model: str = Field(min_length=1, max_length=200)
    version: str = Field(min_length=1, max_length=100)
    to: str = Field(min_length=1, max_length=50)


class ExceptionCreate(GateCheck):
    reason: str = Field(min_length=1, max_length=2000)
    expires: str = Field(default="24h", max_length=5, schema_extra={"pattern": r"^[1-9][0-9]{0,2}[smhd]$"})


class GateFreeze(SQLModel, table=True):
    """Whether promotions into one environment of a model are frozen, as last judged (hysteresis)."""

    __tablename__ = "gate_freeze"
    __table_args__ = (sa.UniqueConstraint("model", "environment", name="uq_gate_freeze_model_environment"),)

    id: int | None = Field(default=None, primary_key=True)
    model: str = Field(max_length=200)
    environment: str = Field(max_length=50)
    frozen: bool = False
    changed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lowest: float | None = None  # the lowest budget left when it changed
