"""Slack's signed deliveries seen recently, so that a captured request replayed within its five minutes
of validity is not acted on twice (the signature covers the timestamp and the body, so it names one
delivery)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class SlackDelivery(SQLModel, table=True):
    __tablename__ = "slack_delivery"

    signature: str = Field(primary_key=True, max_length=100)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
