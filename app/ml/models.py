"""Evidence tables attached to incidents: model versions, drift signals, log signatures."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from pydantic import computed_field
from sqlmodel import Field, SQLModel

from app.db import UTCDateTime, utcnow


class ModelVersionLink(SQLModel, table=True):
    """A model version involved in an incident: serving, suspect, previous_good or rolled_back_to."""

    __tablename__ = "model_version_link"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    model: str = Field(max_length=200)
    version: str = Field(max_length=100)
    role: str = Field(max_length=20)
    source: str = Field(max_length=20)  # prometheus or registry
    first_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    detail: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class DriftSignal(SQLModel, table=True):
    __tablename__ = "drift_signal"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    model: str = Field(max_length=200)
    feature: str = Field(max_length=200)
    method: str = Field(max_length=20)  # psi, ks, wasserstein, chi2, gauge (the model server's own)
    score: float | None = None  # the statistic; none when there were too few values to judge
    p_value: float | None = None
    threshold: float | None = None  # calibrated at this window's size (a gauge: the configured one)
    drifted: bool
    # drifted, ok or insufficient_data; the current window's values; the effect size compared with the
    # method's minimum; numeric or categorical (null on rows from before calibration, and for gauges).
    state: str | None = Field(default=None, max_length=20)
    n: int | None = None
    effect: float | None = None
    kind: str | None = Field(default=None, max_length=12)
    # A categorical feature's categories the reference never held: {"unseen": [[name, count], ...],
    # "unseen_share": share of the window}.
    detail: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON(none_as_null=True))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class LogEvidence(SQLModel, table=True):
    __tablename__ = "log_evidence"

    id: int | None = Field(default=None, primary_key=True)
    incident_id: int = Field(foreign_key="incident.id", index=True, ondelete="CASCADE")
    signature: str = Field(sa_type=sa.Text)
    count: int
    sample: dict[str, Any] = Field(default_factory=dict, sa_type=sa.JSON)
    first_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_seen: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ModelVersionRead(SQLModel):
    model: str
    version: str
    role: str
    source: str
    first_seen: datetime | None
    last_seen: datetime | None
    detail: dict[str, Any]


class DriftSignalRead(SQLModel):
    model: str
    feature: str
    method: str
    score: float | None
    p_value: float | None
    threshold: float | None
    drifted: bool
    state: str | None = None
    n: int | None = None
    effect: float | None = None
    kind: str | None = None
    detail: dict[str, Any] | None = None

    @computed_field  # type: ignore[prop-decorator]
    @property
    def judged_by(self) -> str:
        """Whose judgement the signal is: the model server's own gauge, or sloguard's calibrated test."""
        return "model_server" if self.method == "gauge" else "sloguard"


class LogEvidenceRead(SQLModel):
    signature: str
    count: int
    sample: dict[str, Any]
    first_seen: datetime | None
    last_seen: datetime | None
