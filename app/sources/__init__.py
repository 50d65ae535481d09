"""The backends sloguard reads: Prometheus, Elasticsearch, the MLflow registry.

Each source keeps `last_call`: how its latest call ended at the transport level (it answered, timed out,
refused, or answered as something that is not that backend), whoever made it. /readyz reports the newer
of that and the background probe's ping, so what an evaluation cycle just saw shows there too. An
answer that is an error about the request itself (a bad query, an unknown model) says the backend is up
and is not recorded as a failure.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from app.errors import SourceError, SourceTimeout

State = Literal["ok", "timeout", "unavailable"]


@dataclass(frozen=True)
class SourceCheck:
    """One source's health as last seen."""

    state: State
    checked_at: datetime  # when the answer (or the timeout) came
    seconds: float
    detail: str | None = None

    @classmethod
    def ended(cls, started: float, error: SourceError | None = None) -> SourceCheck:
        """The check of a call that began at `started` (time.monotonic()) and ended now, with `error`."""
        state: State = (
            "ok" if error is None else "timeout" if isinstance(error, SourceTimeout) else "unavailable"
        )
        detail = None if error is None else str(error)
        return cls(state, datetime.now(UTC), time.monotonic() - started, detail)

    def summary(self) -> str:
        return "ok" if self.state == "ok" else f"error: {self.detail}"

    def as_dict(self) -> dict[str, Any]:
        return {
            "state": self.state,
            "detail": self.detail,
            "checked_at": self.checked_at.isoformat().replace("+00:00", "Z"),
            "seconds": round(self.seconds, 3),
        }
