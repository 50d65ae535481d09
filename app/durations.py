"""Durations as people write them: one tokenizer, two grammars.

- `parse_setting` reads settings and sloguard.yaml (`90`, `1.5`, `500ms`, `10m`, `2 h`): one number,
  possibly with a fraction, and an optional unit up to days; seconds as a float.
- `parse_prometheus` reads SLO windows and periods in Prometheus' own form (`5m`, `1h30m`, `30d`, `1w`):
  whole numbers, each with a unit, written together; whole seconds, within what Prometheus can hold.
  `format_prometheus` writes seconds back in that form.

The two differ on purpose and both keep what they have always accepted: a setting is a timeout or an
interval (a fraction of a second is fine, a bare number means seconds), while a window is pasted into
PromQL and rule names (`ratio_rate1h30m`), so it must be whole seconds in Prometheus' spelling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

DAY = 86400
UNIT_SECONDS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY, "y": 365 * DAY}
SETTING_UNITS = frozenset({"ms", "s", "m", "h", "d"})
# Prometheus keeps durations as int64 nanoseconds: promtool refuses anything longer (about 292 years).
MAX_PROMETHEUS_SECONDS = (2**63 - 1) // 10**9

# `ms` before `m` and `s`: the longest unit that fits is the one meant.
_PART = re.compile(r"(\d+)(?:\.(\d+))?(\s*)(ms|s|m|h|d|w|y)?")


@dataclass(frozen=True)
class _Part:
    whole: str
    fraction: str | None  # digits after the point, None without one
    spaced: bool  # whitespace between the number and the unit
    unit: str | None

    @property
    def number(self) -> str:
        return self.whole if self.fraction is None else f"{self.whole}.{self.fraction}"


def _parts(text: str) -> list[_Part] | None:
    """`text` read as numbers with units, one after the other; None when anything else is in it."""
    parts: list[_Part] = []
    position = 0
    while position < len(text):
        match = _PART.match(text, position)
        if match is None:
            return None
        whole, fraction, space, unit = match.groups()
        parts.append(_Part(whole, fraction, bool(space), unit))
        position = match.end()
    return parts


def parse_setting(value: object) -> float:
    """`90`, `90s`, `1.5m`, `500ms`, `2h` (or a number) -> seconds. Raises ValueError."""
    if isinstance(value, int | float):
        seconds = float(value)
    else:
        parts = _parts(str(value).strip())
        if not parts or len(parts) > 1 or (parts[0].unit is not None and parts[0].unit not in SETTING_UNITS):
            raise ValueError(f"not a duration like 60s, 5m or 1h (got {value!r})")
        part = parts[0]
        seconds = float(part.number) * float(UNIT_SECONDS[part.unit or "s"])
    if seconds <= 0:
        raise ValueError(f"must be positive (got {value!r})")
    return seconds


def _shown(text: str) -> str:
    return repr(text if len(text) <= 40 else text[:37] + "...")


def parse_prometheus(text: str) -> int:
    """Prometheus duration (`5m`, `1h30m`, `30d`, `1w`) -> whole seconds. Raises ValueError."""
    text = text.strip()
    parts = _parts(text)
    if not parts or any(part.fraction is not None or part.spaced or part.unit is None for part in parts):
        raise ValueError(f"not a duration like 5m, 1h or 30d (got {_shown(text)})")
    milliseconds = 0
    for part in parts:
        assert part.unit is not None
        number = part.whole.lstrip("0") or "0"
        # Past 30 digits it is out of range anyway, and int() refuses strings of over 4300 digits.
        count = int(number) if len(number) <= 30 else 10**30
        milliseconds += count * round(UNIT_SECONDS[part.unit] * 1000)
    if milliseconds <= 0:
        raise ValueError(f"not a duration like 5m, 1h or 30d (got {_shown(text)})")
    seconds, rest = divmod(milliseconds, 1000)
    if rest:
        # Rules and queries name windows in whole seconds: 1500ms would silently become 2s.
        raise ValueError(f"must be a whole number of seconds (got {_shown(text)})")
    if seconds > MAX_PROMETHEUS_SECONDS:
        raise ValueError(
            f"out of range: Prometheus durations go up to {MAX_PROMETHEUS_SECONDS // DAY}d, about 292 years "
            f"(got {_shown(text)})"
        )
    return seconds


def format_prometheus(seconds: int) -> str:
    """Seconds -> the shortest Prometheus duration (`3600` -> `1h`, `5400` -> `1h30m`)."""
    if seconds <= 0:
        raise ValueError("duration must be positive")
    parts = []
    for unit, size in (("d", DAY), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)


def spoken(seconds: float | None) -> str:
    """A span as people say it: `2 h 5 min`, `7 min 3 s`, `45 s` (seconds only under an hour); n/a."""
    if seconds is None:
        return "n/a"
    if seconds < 0:
        return "−" + spoken(-seconds)  # an ordering the data did not expect shows as it is
    hours, rest = divmod(int(round(seconds)), 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours} h"] if hours else []
    if minutes or hours:
        parts.append(f"{minutes} min")
    if (secs and not hours) or not parts:
        parts.append(f"{secs} s")
    return " ".join(parts)
