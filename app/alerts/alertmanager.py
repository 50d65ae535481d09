"""Alertmanager's webhook payload (version 4), validated strictly, and its mapping to incident terms."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

ZERO_TIME_YEAR = 1  # Alertmanager sends "0001-01-01T00:00:00Z" for "no end yet"


class WebhookAlert(BaseModel):
    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(min_length=1)
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime
    endsAt: datetime | None = None
    generatorURL: str = ""
    fingerprint: str = Field(min_length=1, max_length=64)

    @field_validator("endsAt")
    @classmethod
    def _zero_time_is_none(cls, value: datetime | None) -> datetime | None:
        return None if value is None or value.year == ZERO_TIME_YEAR else value

    @field_validator("startsAt")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("must carry a time zone, as Alertmanager sends it")
        return value


class WebhookPayload(BaseModel):
    """https://prometheus.io/docs/alerting/latest/configuration/#webhook_config, version 4."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1, max_length=4096)
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
    path = ""
    for part in first["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{path or 'body'}: {message}{more}"
