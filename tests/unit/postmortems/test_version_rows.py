"""The review's versions table: one row per version, whatever roles the incident gave it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from app.ml.models import ModelVersionLink
from app.ml.versions import VersionSeen
from app.postmortems.service import version_rows

T = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)


def link(version: str, role: str, first: datetime | None, last: datetime | None = None) -> ModelVersionLink:
    source = "prometheus" if role in ("serving", "suspect", "previous_good") else "http_webhook"
    return ModelVersionLink(
        incident_id=1,
        model="fraud",
        version=version,
        role=role,
        source=source,
        first_seen=first,
        last_seen=last,
    )


LINKS = [
    link("1", "serving", T - 60 * MIN, T - 5 * MIN),
    link("2", "serving", T - 5 * MIN, T),
    link("2", "suspect", T - 5 * MIN, T),
    link("1", "previous_good", T - 60 * MIN, T - 5 * MIN),
    link("1", "rolled_back_to", T + 3 * MIN),
]


def test_each_version_once_with_its_roles_and_the_evidence_times() -> None:
    rows = version_rows(LINKS, None, T + 30 * MIN)
    assert [(r["version"], r["roles"]) for r in rows] == [
        ("1", "serving, previous good, rolled back to"),
        ("2", "serving, suspect"),
    ]
    assert rows[0]["first_seen"] == "2026-12-02 11:00:00"
    assert rows[1]["last_seen"] == "2026-12-02 12:00:00"
    assert {r["error_ratio"] for r in rows} == {None}  # no ratio over the impact window without the data


def test_the_traffic_read_at_writing_gives_the_times_and_the_ratio_over_the_impact_window() -> None:
    until = T + 30 * MIN
    table = [
        VersionSeen("1", T - 26 * 60 * MIN, until, error_ratio=0.0005),
        VersionSeen("2", T - 5 * MIN, T + 3 * MIN, error_ratio=0.0321),
        VersionSeen("0", T - 30 * 60 * MIN, T - 26 * 60 * MIN, error_ratio=None),
    ]
    rows = version_rows(LINKS, table, until, "fraud")
    assert [(r["version"], r["roles"]) for r in rows] == [
        ("0", "serving"),
        ("1", "serving, previous good, rolled back to"),
        ("2", "serving, suspect"),
    ]
    one, two = rows[1], rows[2]
    assert (one["first_seen"], one["last_seen"]) == ("2026-12-01 10:00:00", "still serving")
    assert (two["last_seen"], two["error_ratio"]) == ("2026-12-02 12:03:00", "3.21%")
    assert rows[0]["error_ratio"] is None


def test_a_draft_written_seconds_after_a_rollback_shows_the_switch_the_traffic_cannot_see_yet() -> None:
    change = T + 3 * MIN
    until = change + timedelta(seconds=8)  # resolved at once: the last traffic step still shows version 2
    table = [
        VersionSeen("1", T - 26 * 60 * MIN, T - 5 * MIN, error_ratio=0.0005),
        VersionSeen("2", T - 5 * MIN, until, error_ratio=0.0321),
    ]
    rows = {r["version"]: r for r in version_rows(LINKS, table, until, "fraud")}
    assert rows["1"]["last_seen"] == "still serving"  # sloguard moved the model back to it
    assert rows["2"]["last_seen"] == "2026-12-02 12:03:00"  # it stopped serving at the change
