"""The planned_silence table: one row per occurrence of a planned window that sloguard silences in
Alertmanager, from the moment it is asked for until it is expired or over."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime

WANTED, CREATED, CANCELLING, EXPIRED = "wanted", "created", "cancelling", "expired"


class PlannedSilence(SQLModel, table=True):
    __tablename__ = "planned_silence"
    __table_args__ = (sa.UniqueConstraint("key", name="uq_planned_silence_key"),)

    id: int | None = Field(default=None, primary_key=True)
    key: str = Field(max_length=120)  # "<window>@<occurrence start, ISO 8601 UTC>": the silence's comment
    window: str = Field(max_length=63)
    starts_at: datetime = Field(sa_type=UTCDateTime)
    ends_at: datetime = Field(sa_type=UTCDateTime)
    slo_ids: list[str] = Field(default_factory=list, sa_type=sa.JSON)
    state: str = Field(default=WANTED, max_length=12)
    silence_id: str | None = Field(default=None, max_length=64)  # Alertmanager's, once it answered
    created_at: datetime = Field(sa_type=UTCDateTime)
