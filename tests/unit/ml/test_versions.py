from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ml.versions import VersionSeen, find_suspect, versions_from_range

BURN = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
SIX_HOURS = timedelta(hours=6)


def seen(version: str, started_minutes_before: float, ratio: float, requests: float = 1000) -> VersionSeen:
    return VersionSeen(
        version,
        BURN - timedelta(minutes=started_minutes_before),
        BURN + timedelta(minutes=10),
        ratio,
        requests,
    )


def test_a_new_version_that_fails_more_is_the_suspect() -> None:
    verdict = find_suspect([seen("3", 600, 0.001), seen("4", 40, 0.08)], BURN, SIX_HOURS)
    assert verdict.suspect is not None and verdict.suspect.version == "4"
    assert verdict.previous_good is not None and verdict.previous_good.version == "3"
    assert verdict.reason == (
        "version 4 began serving 40 min before the burn and fails 8.00% of requests "
        "against 0.10% for version 3"
    )


def test_a_new_version_that_fails_less_is_not_blamed() -> None:
    assert find_suspect([seen("3", 600, 0.05), seen("4", 40, 0.01)], BURN, SIX_HOURS).suspect is None


def test_a_version_older_than_the_lookback_is_not_a_suspect() -> None:
    assert find_suspect([seen("3", 900, 0.001), seen("4", 7 * 60, 0.08)], BURN, SIX_HOURS).suspect is None


def test_first_and_last_seen_from_a_range_query() -> None:
    t0 = BURN.timestamp()
    result = [
        {
            "metric": {"model_version": "4"},
            "values": [[t0 - 120, "0"], [t0 - 60, "12"], [t0, "30"], [t0 + 60, "0"]],
        },
        {"metric": {"model_version": "3"}, "values": [[t0 - 120, "5"], [t0 - 60, "5"]]},
        {"metric": {}, "values": [[t0, "1"]]},
    ]
    versions = versions_from_range(result, "model_version", 60)
    assert [(v.version, v.first_seen, v.last_seen) for v in versions] == [
        ("3", BURN - timedelta(minutes=3), BURN - timedelta(minutes=1)),
        ("4", BURN - timedelta(minutes=2), BURN),
    ]
