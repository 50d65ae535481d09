"""Which model versions served, and which change is the likely cause. Pure: values in, values out."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta


@dataclass(frozen=True)
class VersionSeen:
    version: str
    first_seen: datetime  # traffic began after this time (start of the first step that saw any)
    last_seen: datetime  # end of the last step that saw traffic
    error_ratio: float | None = None  # over the incident window
    requests: float | None = None


def versions_from_range(
    result: Sequence[Mapping[str, object]], label: str, step_seconds: int
) -> list[VersionSeen]:
    """From a range query of per-version request increases (`sum by (label) (increase(m[step]))`)."""
    seen = []
    for series in result:
        metric = series.get("metric")
        values = series.get("values")
        if not isinstance(metric, Mapping) or not isinstance(values, list):
            continue
        version = metric.get(label)
        times = [float(t) for t, v in values if float(v) > 0]
        if version is None or not times:
            continue
        first = datetime.fromtimestamp(min(times) - step_seconds, UTC)
        last = datetime.fromtimestamp(max(times), UTC)
        seen.append(VersionSeen(str(version), first, last))
    return sorted(seen, key=lambda v: (v.first_seen, v.version))


@dataclass(frozen=True)
class Verdict:
    suspect: VersionSeen | None
    previous_good: VersionSeen | None
    reason: str


def find_suspect(versions: Sequence[VersionSeen], burn_started: datetime, lookback: timedelta) -> Verdict:
    """A version that began serving within `lookback` before the burn and fails more than the one it
    replaced. The previous good version is the one that was serving when the suspect started."""
    candidates = [
        v
        for v in versions
        if burn_started - lookback <= v.first_seen <= burn_started and v.error_ratio is not None
    ]
    best: Verdict | None = None
    for candidate in sorted(candidates, key=lambda v: v.first_seen, reverse=True):
        before = [
            v
            for v in versions
            if v.version != candidate.version
            and v.first_seen < candidate.first_seen
            and v.last_seen >= candidate.first_seen
            and v.error_ratio is not None
        ]
        if not before:
            continue
        previous = min(before, key=lambda v: (v.error_ratio or 0.0, -(v.requests or 0.0)))
        assert candidate.error_ratio is not None and previous.error_ratio is not None
        if candidate.error_ratio > previous.error_ratio:
            minutes = (burn_started - candidate.first_seen).total_seconds() / 60
            reason = (
                f"version {candidate.version} began serving {minutes:.0f} min before the burn and fails "
                f"{candidate.error_ratio:.2%} of requests against {previous.error_ratio:.2%} for version "
                f"{previous.version}"
            )
            verdict = Verdict(candidate, previous, reason)
            if best is None or (candidate.error_ratio or 0) > (best.suspect.error_ratio or 0):  # type: ignore[union-attr]
                best = verdict
    return best or Verdict(None, None, "no version began serving shortly before the burn with more errors")
