"""The review draft's charts: markers at the stored moments, a span from the deploy to after the
resolution, percent axes, self-contained SVG that an independent renderer (rsvg-convert) draws."""

from __future__ import annotations

import csv
import io
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.incidents.models import Incident, TimelineEvent
from app.postmortems import charts
from app.rollback.models import RollbackAction

T = datetime(2026, 12, 2, 14, 0, tzinfo=UTC)
MIN = timedelta(minutes=1)
SVG = "{http://www.w3.org/2000/svg}"
LABELS = ["deploy", "impact began", "detected", "acknowledged", "rollback", "recovered", "resolved"]


def story() -> tuple[Incident, list[TimelineEvent], list[RollbackAction]]:
    incident = Incident(
        title="fraud errors",
        severity="page",
        started_at=T + 10 * MIN,
        detected_at=T + 13 * MIN,
        acknowledged_at=T + 14 * MIN,
        impact_started_at=T + 10 * MIN,
        impact_ended_at=T + 21 * MIN,
        resolved_at=T + 25 * MIN,
    )
    timeline = [
        TimelineEvent(incident_id=1, kind="deploy", at=T, text="version 2 began serving"),
        TimelineEvent(incident_id=1, kind="note", at=T + 15 * MIN, text="looking"),
    ]
    rollback = RollbackAction(
        incident_id=1,
        model="fraud",
        environment="prod",
        from_version="2",
        to_version="1",
        actor="U1",
        state="verified",
        created_at=T + 18 * MIN,
        finished_at=T + 19 * MIN,
    )
    refused = RollbackAction(
        incident_id=1, model="fraud", environment="prod", to_version="0", actor="U2", state="refused"
    )
    return incident, timeline, [rollback, refused]


def test_markers_are_the_stored_moments_in_order() -> None:
    incident, timeline, actions = story()
    moments = charts.markers(incident, timeline, actions)
    assert [(m.label, m.at) for m in moments] == [
        ("deploy", T),
        ("impact began", T + 10 * MIN),
        ("detected", T + 13 * MIN),
        ("acknowledged", T + 14 * MIN),
        ("rollback", T + 19 * MIN),  # when the change took effect; the refused one is not a marker
        ("recovered", T + 21 * MIN),  # the impact's end
        ("resolved", T + 25 * MIN),
    ]
    assert moments[4].text == "rollback to 1 14:19"


def test_the_span_runs_from_before_the_deploy_to_after_the_resolution_but_not_past_now() -> None:
    incident, timeline, actions = story()
    moments = charts.markers(incident, timeline, actions)
    # 25 minutes of story: the 15-minute margin is more than a fifth of it.
    assert charts.span(moments, incident.started_at, T + 3 * 60 * MIN, incident.resolved_at) == (
        T - 15 * MIN,
        T + 40 * MIN,
    )
    assert charts.span(moments, incident.started_at, T + 30 * MIN, incident.resolved_at) == (
        T - 15 * MIN,
        T + 30 * MIN,
    )
    # A deploy ten days before the impact: the chart starts 12 hours before it (and a fifth of that more).
    old = [charts.Marker("deploy", T - 10 * 24 * 60 * MIN), *moments[1:]]
    start, _ = charts.span(old, incident.started_at, T + 60 * MIN, incident.resolved_at)
    first = incident.started_at - 12 * 60 * MIN
    assert start == first - (T + 25 * MIN - first) * 0.2
    # Still open: the chart runs to now, whatever the last marker.
    opened = [m for m in moments if m.label in ("deploy", "impact began", "detected")]
    assert charts.span(opened, incident.started_at, T + 3 * 60 * MIN, None)[1] == T + 3 * 60 * MIN


def points(start: datetime, end: datetime, value: float) -> list[tuple[datetime, float | None]]:
    out: list[tuple[datetime, float | None]] = []
    moment = start
    while moment <= end:
        out.append((moment, value if T + 10 * MIN <= moment <= T + 21 * MIN else 0.0005))
        moment += MIN
    out[3] = (out[3][0], None)  # a gap: no data
    return out


def texts(svg: str) -> list[str]:
    return ["".join(element.itertext()) for element in ET.fromstring(svg).iter(f"{SVG}text")]


def check_self_contained(svg: str) -> None:
    root = ET.fromstring(svg)
    for element in root.iter():
        for name, value in element.attrib.items():
            if name.endswith("href"):
                assert value.startswith("#"), (name, value)  # only the file's own definitions
        assert element.tag not in (f"{SVG}script", f"{SVG}foreignObject", f"{SVG}image")
    assert "<!DOCTYPE" not in svg and "@import" not in svg
    assert not re.search(r"url\((?!#)", svg)  # a CSS url() to anything but an id in the file
    fonts = set(re.findall(r"font-family: ([^;\"]+)", svg))
    assert fonts and all(font.rstrip().endswith("sans-serif") for font in fonts), fonts


def rendered(svg: str, folder: Path) -> bytes:
    """The chart drawn to PNG by librsvg, a renderer that is not matplotlib."""
    rsvg = shutil.which("rsvg-convert")
    assert rsvg, "rsvg-convert is installed by `make test` (Debian's librsvg2-bin)"
    source = folder / "chart.svg"
    source.write_text(svg, encoding="utf-8")
    subprocess.run([rsvg, "-o", str(folder / "chart.png"), str(source)], check=True, timeout=60)
    return (folder / "chart.png").read_bytes()


def png_size(data: bytes) -> tuple[int, int]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


@pytest.mark.parametrize("kind", ["error-ratio", "budget"])
def test_charts_mark_every_moment_in_text_and_render_without_anything_outside(
    kind: str, tmp_path: Path
) -> None:
    incident, timeline, actions = story()
    moments = charts.markers(incident, timeline, actions)
    bounds = charts.span(moments, incident.started_at, T + 3 * 60 * MIN, incident.resolved_at)
    impact = (T + 10 * MIN, T + 21 * MIN)
    if kind == "error-ratio":
        svg = charts.error_ratio_chart(
            points(*bounds, 0.05),
            title="fraud: error ratio",
            window="5m",
            allowed=0.001,
            thresholds=[charts.Threshold("page-fast threshold (×14.4)", 0.0144)],
            moments=moments,
            impact=impact,
            bounds=bounds,
        )
    else:
        svg = charts.budget_chart(
            points(*bounds, 0.4),
            title="fraud: budget",
            period="30d",
            moments=moments,
            impact=impact,
            bounds=bounds,
        )
    shown = texts(svg)
    for marker in moments:
        assert f"{marker.label}{' ' + marker.detail if marker.detail else ''} {marker.at:%H:%M}" in shown
    assert {m.label for m in moments} == set(LABELS)
    assert "2026-12-02 UTC" in shown  # the date on the time axis
    # The time axis runs from 13:45 to 14:40: ticks inside it, the first at or after its start.
    ticks = [t for t in shown if re.fullmatch(r"\d\d:\d\d", t)]
    assert ticks and all("13:45" <= tick <= "14:40" for tick in ticks), ticks
    # Percent axes, and the legend's entries whole.
    assert any(re.fullmatch(r"\d+(\.\d+)? %", t) for t in shown), shown
    if kind == "error-ratio":
        assert "page-fast threshold (×14.4) 1.44 %" in shown and "allowed 0.1 %" in shown
        assert "error ratio over 5m" in shown
    else:
        assert "100 %" in shown and "0 %" in shown  # a 0-100 % axis
        assert "budget remaining (30d period)" in shown
    assert "impact window" in shown
    check_self_contained(svg)
    width, height = png_size(rendered(svg, tmp_path))
    assert width > 600 and height > 250


def test_labels_close_together_take_separate_rows() -> None:
    bounds = (T, T + 60 * MIN)
    close = [
        charts.Marker("detected", T + 30 * MIN),
        charts.Marker("acknowledged", T + 30 * MIN + 10 * timedelta(seconds=1)),
    ]
    far = [charts.Marker("deploy", T + 1 * MIN), charts.Marker("resolved", T + 55 * MIN)]
    assert charts._rows(close, bounds, 8.0) == [0, 1]
    assert charts._rows(far, bounds, 8.0) == [0, 0]


def test_an_overspent_budget_extends_the_axis_below_zero() -> None:
    bounds = (T, T + 30 * MIN)
    series = [(T + i * MIN, 0.5 - i * 0.05) for i in range(31)]  # down to -100 %
    svg = charts.budget_chart(series, title="b", period="30d", moments=[], impact=None, bounds=bounds)
    assert any(t.startswith("−") or t.startswith("-") for t in texts(svg)), texts(svg)  # negative ticks


def test_the_csv_is_the_series_plotted_with_the_impact_window() -> None:
    series: list[tuple[datetime, float | None]] = [(T, 0.001), (T + MIN, 0.05), (T + 2 * MIN, None)]
    rows = list(csv.reader(io.StringIO(charts.csv_text("error_ratio_5m", series, (T + MIN, T + MIN)))))
    assert rows == [
        ["time_utc", "error_ratio_5m", "in_impact_window"],
        ["2026-12-02T14:00:00Z", "0.001", "0"],
        ["2026-12-02T14:01:00Z", "0.05", "1"],
        ["2026-12-02T14:02:00Z", "", "0"],
    ]
    going_on = list(csv.reader(io.StringIO(charts.csv_text("x", series, (T + MIN, None)))))
    assert [row[2] for row in going_on[1:]] == ["0", "1", "1"]
    moments = list(csv.reader(io.StringIO(charts.markers_csv([charts.Marker("rollback", T, "to 1")]))))
    assert moments == [["marker", "detail", "time_utc"], ["rollback", "to 1", "2026-12-02T14:00:00Z"]]


def test_the_same_chart_twice_is_the_same_file() -> None:
    bounds = (T, T + 30 * MIN)
    series = [(T + i * MIN, 0.5) for i in range(31)]

    def draw() -> str:
        return charts.budget_chart(series, title="b", period="30d", moments=[], impact=None, bounds=bounds)

    assert draw() == draw()


def test_a_chart_with_no_marker_or_impact_still_draws() -> None:
    svg = charts.budget_chart([], title="empty", period="30d", moments=[], impact=None, bounds=(T, T + MIN))
    check_self_contained(svg)
    assert "empty" in texts(svg)


def test_planned_windows_are_hatched_on_both_charts_and_listed_beside_them() -> None:
    bounds = (T, T + 60 * MIN)
    planned = [(T + 10 * MIN, T + 20 * MIN), (T + 40 * MIN, T + 45 * MIN)]
    series = [(T + i * MIN, 0.9) for i in range(61)]
    budget = charts.budget_chart(
        series, title="b", period="30d", moments=[], impact=None, bounds=bounds, planned=planned
    )
    ratio = charts.error_ratio_chart(
        series,
        title="r",
        window="5m",
        allowed=0.001,
        thresholds=[],
        moments=[],
        impact=None,
        bounds=bounds,
        planned=planned,
    )
    for svg in (budget, ratio):
        assert texts(svg).count("planned window") == 1  # one legend entry for both spans
        assert "<pattern" in svg  # the hatch, drawn in the file itself
    plain = charts.budget_chart(series, title="b", period="30d", moments=[], impact=None, bounds=bounds)
    assert "planned window" not in texts(plain) and "<pattern" not in plain
    rows = list(csv.reader(io.StringIO(charts.spans_csv(planned))))
    assert rows == [
        ["planned_window_start_utc", "planned_window_end_utc"],
        ["2026-12-02T14:10:00Z", "2026-12-02T14:20:00Z"],
        ["2026-12-02T14:40:00Z", "2026-12-02T14:45:00Z"],
    ]
