"""The chat area's tables: Slack's signed deliveries seen recently, so that a captured request replayed
within its five minutes of validity is not acted on twice (the signature covers the timestamp and the
body, so it names one delivery); and the names of the Slack users sloguard has shown (users.info)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class SlackDelivery(SQLModel, table=True):
    __tablename__ = "slack_delivery"

    signature: str = Field(primary_key=True, max_length=100)
    received_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)


class SlackUser(SQLModel, table=True):
    """A Slack user's name as `users.info` gave it, so the record names people without asking each time."""

    __tablename__ = "slack_user"

    id: str = Field(primary_key=True, max_length=50)
    name: str = Field(max_length=200)
    fetched_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
