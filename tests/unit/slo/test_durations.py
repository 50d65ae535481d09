"""The two duration grammars (app/durations.py): settings and sloguard.yaml, and Prometheus windows."""

from __future__ import annotations

import pytest

from app import durations
from app.config import parse_duration_seconds


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90", 90.0),
        ("1.5", 1.5),
        ("500ms", 0.5),
        ("10m", 600.0),
        ("1.5m", 90.0),
        (" 2 h ", 7200.0),
        ("1d", 86400.0),
        (90, 90.0),
        (0.25, 0.25),
    ],
)
def test_settings_take_one_number_with_an_optional_unit(text: object, seconds: float) -> None:
    assert parse_duration_seconds(text) == seconds
    assert durations.parse_setting(text) == seconds


@pytest.mark.parametrize("text", ["1h30m", "1w", "5x", ".5", "1.5.5", "", "soon", "5 m 5"])
def test_settings_refuse_what_is_not_one_duration(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration like 60s, 5m or 1h \(got "):
        durations.parse_setting(text)


@pytest.mark.parametrize("value", ["0", "0s", 0, -1])
def test_settings_must_be_positive(value: object) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        durations.parse_setting(value)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("5m", 300),
        ("1h30m", 5400),
        (" 30d ", 30 * 86400),
        ("1w", 7 * 86400),
        ("1y", 365 * 86400),
        ("2000ms", 2),
    ],
)
def test_prometheus_windows_take_whole_numbers_each_with_a_unit(text: str, seconds: int) -> None:
    assert durations.parse_prometheus(text) == seconds
    assert durations.format_prometheus(seconds) in (text.strip(), "7d", "365d", "2s")


@pytest.mark.parametrize("text", ["90", "1.5h", "5 m", "1h 30m", "10M", ""])
def test_prometheus_windows_refuse_setting_forms(text: str) -> None:
    with pytest.raises(ValueError, match=r"not a duration like 5m, 1h or 30d \(got "):
        durations.parse_prometheus(text)
