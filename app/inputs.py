"""Hostile-input helpers shared by every door: JSON shape checks, timestamps, and text that fits a column.

Pure functions over plain values. The doors use them so that input of any length, Unicode or shape gets a
4xx that names the field (or, for Alertmanager, is repaired and stored), never a 500 from a driver.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

MAX_ROW_ID = 2**31 - 1  # row ids are PostgreSQL `integer`s: a larger number is refused, not overflowed
MAX_JSON_DEPTH = 32  # the deepest body any door accepts is Alertmanager's (4 levels); this is generous
TRUNCATED = "…"  # ends a display value cut to fit its column; the whole value is kept elsewhere
_LONE_SURROGATE = re.compile(r"[\ud800-\udfff]")  # a str from json.loads holds pairs already combined
REPLACEMENT = "\ufffd"


class JsonProblem(ValueError):
    """A JSON document that no door accepts as it is."""


class JsonTooDeep(JsonProblem):
    """Nested deeper than any door's schema goes."""


class JsonNotText(JsonProblem):
    """A string (or key) holds a lone UTF-16 surrogate."""


def json_path(parts: list[str | int]) -> str:
    """`alerts[0].labels.service` from the parts of a location (`body` for the whole document)."""
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def check_json(document: Any, max_depth: int = MAX_JSON_DEPTH, *, surrogates: bool = False) -> None:
    """Raise JsonTooDeep naming the first place nested deeper than `max_depth`, or JsonNotText for a lone
    UTF-16 surrogate unless `surrogates` (`"\\ud800"` is valid JSON syntax but no Unicode text: drivers
    and encoders refuse it)."""
    stack: list[tuple[Any, list[str | int]]] = [(document, [])]
    while stack:
        node, path = stack.pop()
        if len(path) > max_depth:
            raise JsonTooDeep(f"{json_path(path)}: nested deeper than {max_depth} levels")
        if isinstance(node, str):
            if not surrogates and _LONE_SURROGATE.search(node):
                raise JsonNotText(f"{json_path(path)}: holds a lone UTF-16 surrogate, which is not text")
        elif isinstance(node, dict):
            for key, value in node.items():
                if not surrogates and _LONE_SURROGATE.search(key):
                    raise JsonNotText(f"{json_path(path)}: a key holds a lone UTF-16 surrogate")
                stack.append((value, [*path, key]))
        elif isinstance(node, list):
            stack.extend((value, [*path, index]) for index, value in enumerate(node))


def repair_surrogates(document: Any) -> Any:
    """The document with every lone surrogate replaced by U+FFFD, as Go's encoder (Alertmanager's) does
    with text that is not UTF-8. Used where refusing would lose an alert; depth is checked first."""
    if isinstance(document, str):
        return _LONE_SURROGATE.sub(REPLACEMENT, document)
    if isinstance(document, dict):
        return {repair_surrogates(key): repair_surrogates(value) for key, value in document.items()}
    if isinstance(document, list):
        return [repair_surrogates(value) for value in document]
    return document


def fit(text: str | None, limit: int) -> str | None:
    """`text` cut to `limit` characters, its end marked with `…` when something was cut."""
    if text is None or len(text) <= limit:
        return text
    return text[: limit - len(TRUNCATED)] + TRUNCATED


def to_utc(value: datetime) -> datetime:
    """An aware timestamp in UTC; naive ones and ones whose UTC time is not representable are refused."""
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError("must carry a time zone offset, e.g. 2026-01-31T12:00:00Z")
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError("is out of range once converted to UTC (years 1 to 9999)") from None


def rfc3339_only(value: Any) -> Any:
    """Refuse numbers (pydantic would read them as Unix times): a request's time is an RFC 3339 string."""
    if isinstance(value, bool | int | float):
        raise ValueError("must be an RFC 3339 time string, e.g. 2026-01-31T12:00:00Z")
    return value


# A request's timestamp: an RFC 3339 string with an offset, stored and compared in UTC.
UtcDatetime = Annotated[datetime, BeforeValidator(rfc3339_only), AfterValidator(to_utc)]


def clamp_to_utc(value: datetime) -> datetime:
    """Alertmanager's times in UTC, held to the representable range rather than refused (a page must not
    be lost because a clock said 0001-01-01T00:00:00+01:00)."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        return (datetime.min if value.year < 5000 else datetime.max).replace(tzinfo=UTC)
