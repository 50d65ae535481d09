"""The SloStatus table: one row per SLO per evaluation cycle."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime


class SloStatus(SQLModel, table=True):
    __tablename__ = "slo_status"
    __table_args__ = (
        sa.Index("ix_slo_status_slo_evaluated", "slo_id", "evaluated_at"),
        # the newest cycle's rows (the console's overview) and the retention's delete
        sa.Index("ix_slo_status_evaluated_at", "evaluated_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    slo_id: str = Field(max_length=200)
    evaluated_at: datetime = Field(sa_type=UTCDateTime)
    # {"5m": {"error_ratio": 0.0004, "burn_rate": 0.4}, ...}; null values where a window had no data.
    windows: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    budget_remaining: float | None = None
    state: str = Field(max_length=24)
    tier: str | None = Field(default=None, max_length=100)
    time_to_exhaustion: float | None = None
    detail: str | None = Field(default=None, sa_type=sa.Text)
    # Where the period's budget came from ("rules" or "raw") and how many seconds of the period that data
    # covers (app/slo/coverage.py); null when not known.
    budget_basis: str | None = Field(default=None, max_length=10)
    budget_coverage: float | None = None
    # The page tier's burn rate over its long window: the overview's sparkline (one query for a page).
    page_burn: float | None = None


SPARK_BUCKET = 900  # seconds: the console's sparklines show the highest page burn of each quarter hour


class SloSpark(SQLModel, table=True):
    """The highest page-tier burn of each SLO in each SPARK_BUCKET (bucket = epoch seconds // SPARK_BUCKET):
    a rollup kept by every cycle's store, for the console's sparklines, pruned with SloStatus."""

    __tablename__ = "slo_spark"
    __table_args__ = (sa.Index("ix_slo_spark_bucket", "bucket"),)

    slo_id: str = Field(primary_key=True, max_length=200)
    bucket: int = Field(primary_key=True, sa_type=sa.BigInteger)
    burn: float
