"""Where a model version change is carried out. Each target sets a version only if the one serving is
still the one the person saw (compare-and-set), and reports what it did."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


@dataclass(frozen=True)
class Change:
    model: str
    environment: str
    from_version: str | None
    to_version: str
    actor: str
    reason: str
    incident_id: int | None
    idempotency_key: str


@dataclass(frozen=True)
class TargetResult:
    output: str = ""
    details: dict[str, object] = field(default_factory=dict)


class TargetFailed(Exception):
    """The target refused or failed; nothing is marked done. `output` keeps what it said."""

    def __init__(self, message: str, output: str = "") -> None:
        super().__init__(message)
        self.output = output


class StaleVersion(TargetFailed):
    """The serving version is no longer the one the change was proposed against."""


class RollbackTarget(Protocol):
    kind: str

    def current(self) -> str | None:
        """The version serving now (None when the target cannot tell)."""

    def candidates(self) -> list[str]:
        """Versions that could be served (newest first), when the target knows them."""

    def set_version(self, change: Change) -> TargetResult:
        """Serve `change.to_version`, refusing with StaleVersion unless `change.from_version` still serves."""
