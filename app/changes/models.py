"""ChangeEvent: one change MLflow's registry announced (its webhook), kept as sloguard's alias history."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class ChangeEvent(SQLModel, table=True):
    __tablename__ = "change_event"
    __table_args__ = (sa.Index("ix_change_event_alias_at", "registered_model", "alias", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    delivery_id: str = Field(max_length=100, unique=True)  # X-MLflow-Delivery-Id: one row per delivery
    body_digest: str = Field(max_length=64)  # SHA-256 of the signed body: a retry sends the same one
    source: str = Field(default="mlflow", max_length=20)
    kind: str = Field(max_length=20)  # alias_set, alias_deleted, version_created
    registered_model: str = Field(max_length=200)
    model: str = Field(max_length=200, index=True)  # sloguard.yaml's name, else the registered model's
    environment: str | None = Field(default=None, max_length=50)  # the alias's environment, if configured
    alias: str | None = Field(default=None, max_length=100)
    version: str | None = Field(default=None, max_length=100)
    from_version: str | None = Field(default=None, max_length=100)  # sloguard's last record of the alias
    at: datetime = Field(sa_type=UTCDateTime)  # when MLflow announced it
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # sloguard's own move (a rollback or promote through the MLflow alias target): its action and actor.
    action_id: int | None = Field(default=None, foreign_key="rollback_action.id", index=True)
    actor: str | None = Field(default=None, max_length=100)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)


class ChangeRead(SQLModel):
    id: int
    source: str
    kind: str
    registered_model: str
    model: str
    environment: str | None
    alias: str | None
    version: str | None
    from_version: str | None
    at: datetime
    received_at: datetime
    action_id: int | None
    actor: str | None
    text: str
    detail: dict[str, Any]
