"""Alertmanager's webhook payload (version 4), validated strictly, and its mapping to incident terms."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from app.inputs import clamp_to_utc, json_path

ZERO_TIME_YEAR = 1  # Alertmanager sends "0001-01-01T00:00:00Z" for "no end yet"
FINGERPRINT_LIMIT = 64  # alert_link.fingerprint


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    # Alertmanager's fingerprints are 16 hex digits; any other length is stored by its hash (no limit
    # here: refusing would lose the page, since Alertmanager does not retry a 4xx).
    fingerprint: str = Field(min_length=1)

    @field_validator("endsAt")
    @classmethod
    def _zero_time_is_none(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        value = clamp_to_utc(value)
        return None if value.year == ZERO_TIME_YEAR else value

    @field_validator("startsAt")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, as Alertmanager sends it")
        return clamp_to_utc(value)

    @property
    def stored_fingerprint(self) -> str:
        """The fingerprint as stored (64 characters at most): itself, or its sha256 when longer."""
        if len(self.fingerprint) <= FINGERPRINT_LIMIT:
            return self.fingerprint
        return hashlib.sha256(self.fingerprint.encode("utf-8")).hexdigest()

    @property
    def known_start(self) -> datetime | None:
        """startsAt, unless it is Alertmanager's zero time (or a clock that far off): then unknown."""
        return None if self.startsAt.year == ZERO_TIME_YEAR else self.startsAt


class WebhookPayload(BaseModel):
    """https://prometheus.io/docs/alerting/latest/configuration/#webhook_config, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    # No length limit: the group key carries the group's label values, however long they are.
    groupKey: str = Field(min_length=1)
    truncatedAlerts: int = 0
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)
    commonLabels: dict[str, str] = Field(default_factory=dict)
    commonAnnotations: dict[str, str] = Field(default_factory=dict)
    externalURL: str = ""
    alerts: list[WebhookAlert] = Field(min_length=1)

    @property
    def title(self) -> str:
        annotations, labels = self.commonAnnotations, self.commonLabels
        name = labels.get("alertname") or self.groupLabels.get("alertname") or "alert"
        summary = annotations.get("summary") or annotations.get("title")
        return f"{name}: {summary}" if summary else name

    def common(self, *keys: str) -> str | None:
        for key in keys:
            value = self.commonLabels.get(key) or self.groupLabels.get(key)
            if value:
                return value
        return None


def describe_validation_error(exc: ValidationError) -> str:
    """`alerts[0].fingerprint: Field required` for the first problem; the rest counted."""
    errors = exc.errors()
    first = errors[0]
    path = json_path([part for part in first["loc"] if isinstance(part, str | int)])
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path}: {message}{more}"
