"""sloguard.yaml's release-gate policy of one model environment (`models.M.environments.E.gate`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from app import durations


class SoakPolicy(BaseModel):
    """The candidate must first have served in the environment below (`from`) for `for` seconds, with at
    least `min_events` requests, failing no more than its SLO allows (and meeting `quality_slo`)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    from_environment: str = Field(alias="from", min_length=1, max_length=50)
    duration: float = Field(alias="for", gt=0)
    min_events: int = Field(default=100, ge=1)
    # The error ratio allowed; default: the budget of the target environment's tightest SLO.
    max_error_ratio: float | None = Field(default=None, ge=0, le=1)
    quality_slo: str | None = None  # an SLO whose SLI must meet its objective over the soak

    @field_validator("duration", mode="before")
    @classmethod
    def _duration(cls, value: object) -> float:
        return durations.parse_setting(value)


class GateExceptions(BaseModel):
    """Who may let a blocked release through anyway (with a reason, audited)."""

    model_config = ConfigDict(extra="forbid")

    by: list[str] = Field(default_factory=list)  # Slack user IDs and user groups
    two_person: bool = False  # a second person of `by` confirms the exception


class GatePolicy(BaseModel):
    """sloguard.yaml `models.M.environments.E.gate`: when promotions into E stop (README: Release gates)."""

    model_config = ConfigDict(extra="forbid")

    # Freeze while any of the environment's SLOs has less budget left than this (a fraction, 0.25 = 25 %),
    # and lift it only once all are above `unfreeze_above` (default: 5 points higher), so it does not flap.
    freeze_below: float | None = Field(default=None, ge=0, le=1)
    unfreeze_above: float | None = Field(default=None, ge=0, le=1)
    freeze_on_page: bool = True  # and while a page-level incident is open on one of them
    soak: SoakPolicy | None = None
    exceptions: GateExceptions = Field(default_factory=GateExceptions)

    @model_validator(mode="after")
    def _hysteresis(self) -> GatePolicy:
        if self.freeze_below is not None and self.unfreeze_above is None:
            self.unfreeze_above = min(1.0, self.freeze_below + 0.05)
        if (
            self.freeze_below is not None
            and self.unfreeze_above is not None
            and self.unfreeze_above < self.freeze_below
        ):
            raise ValueError("unfreeze_above must be at least freeze_below")
        return self
