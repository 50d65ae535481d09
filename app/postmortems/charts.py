"""Review-draft charts a commander can put on a slide, drawn with matplotlib.

Each chart spans the incident's story: from before the suspect version began serving to after the
resolution. Vertical markers name the moments stored with the incident (deploy, impact began, detected,
acknowledged, rollback, recovered, resolved), the impact window is shaded, values are in percent, and the
time axis carries its UTC date. The SVG is self-contained: text stays `<text>` (`svg.fonttype: none`) in
generic font families, and nothing in it points outside the file. Each chart's series is also written as
CSV beside it (`csv_text`), so a reader and a test can check what was plotted.
"""

from __future__ import annotations

import csv
import io
import math
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

Points = Sequence[tuple[datetime, float | None]]
MARGIN = timedelta(minutes=15)  # at least this much before the first moment and after the last
MARGIN_SHARE = 0.2  # or this share of the story's span, if more
LOOKBACK = timedelta(hours=12)  # a deploy longer ago than this before the impact starts the chart no earlier
# matplotlib's rcParams are process-wide: charts are drawn one at a time, in their own context.
_DRAWING = threading.Lock()
STYLE = {
    "svg.fonttype": "none",  # text as <text>, not paths: searchable, selectable, small
    "svg.hashsalt": "sloguard",  # the same ids on every run: a draft regenerated unchanged is unchanged
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Liberation Sans", "Arial", "Helvetica"],
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.grid": True,
    "grid.color": "#e5e5e5",
    "axes.titlesize": 12,
    "axes.titleweight": "bold",
}
MARKER_COLOURS = {
    "deploy": "#6a3d9a",
    "impact began": "#e31a1c",
    "detected": "#ff7f00",
    "acknowledged": "#1f78b4",
    "rollback": "#33a02c",
    "recovered": "#b15928",
    "resolved": "#444444",
}
LINE = "#1f77b4"
IMPACT = "#fdd0d0"
PLANNED = "#8c8c8c"
LABEL_SIZE = 8.0  # points
# DOCTYPE (a DTD address) and RDF metadata (namespace addresses) are all matplotlib writes that names
# anything outside the file; neither is needed to show it.
_DOCTYPE = re.compile(r"<!DOCTYPE[^>]*>\s*", re.DOTALL)
_METADATA = re.compile(r"\s*<metadata>.*?</metadata>", re.DOTALL)


@dataclass(frozen=True)
class Marker:
    label: str  # one of MARKER_COLOURS' names
    at: datetime
    detail: str = ""  # e.g. the version a rollback went to

    @property
    def text(self) -> str:
        """What the chart writes at the marker: the label, its detail, its UTC time."""
        detail = f" {self.detail}" if self.detail else ""
        return f"{self.label}{detail} {self.at.astimezone(UTC):%H:%M}"


@dataclass(frozen=True)
class Threshold:
    label: str
    value: float  # an error ratio: 0.0144 is 1.44 %


def markers(incident: Any, timeline: Sequence[Any], actions: Sequence[Any]) -> list[Marker]:
    """The incident's moments at their stored times: the suspect's deploy (the timeline's `deploy` row,
    placed where the traffic says it began serving), the impact window's ends ("recovered" is the end),
    detection, acknowledgement, each rollback when it took effect, and the resolution."""
    found = [Marker("deploy", row.at) for row in timeline if row.kind == "deploy"]
    found += [
        Marker(label, at)
        for label, at in (
            ("impact began", incident.impact_started_at),
            ("detected", incident.detected_at),
            ("acknowledged", incident.acknowledged_at),
            ("recovered", incident.impact_ended_at),
            ("resolved", incident.resolved_at),
        )
        if at is not None
    ]
    for action in actions:
        if action.kind == "rollback" and action.state in ("succeeded", "verified", "not_recovered"):
            found.append(
                Marker("rollback", action.finished_at or action.created_at, f"to {action.to_version}")
            )
    return sorted(found, key=lambda m: m.at)


def span(
    moments: Sequence[Marker], started: datetime, now: datetime, resolved: datetime | None = None
) -> tuple[datetime, datetime]:
    """From a margin before the first moment (the deploy, when known; at most LOOKBACK before the start)
    to a margin after the last (the resolution; now while the incident is open), and no later than now."""
    times = [m.at for m in moments] + [started, resolved or now]
    first, last = min(times), max(times)
    if first < started - LOOKBACK:
        first = started - LOOKBACK
    margin = max(MARGIN, (last - first) * MARGIN_SHARE)
    return first - margin, min(now, last + margin)


def csv_text(column: str, points: Points, impact: tuple[datetime, datetime | None] | None) -> str:
    """The plotted series: UTC time, the value as a fraction (empty where there was no data), and
    whether the point lies in the impact window (1/0)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["time_utc", column, "in_impact_window"])
    for at, value in points:
        inside = impact is not None and impact[0] <= at and (impact[1] is None or at <= impact[1])
        writer.writerow([_iso(at), "" if value is None else repr(value), int(inside)])
    return out.getvalue()


def chart_step(start: datetime, end: datetime, window: int = 300) -> int:
    """About 60 points, on whole multiples of the window so each point's window lines up with the next."""
    span = (end - start).total_seconds()
    return max(window, math.ceil(span / 60 / window) * window)


def spans_csv(spans: Sequence[tuple[datetime, datetime]]) -> str:
    """The planned windows shaded on the charts, one row each."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["planned_window_start_utc", "planned_window_end_utc"])
    for began, ended in spans:
        writer.writerow([_iso(began), _iso(ended)])
    return out.getvalue()


def markers_csv(moments: Sequence[Marker]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["marker", "detail", "time_utc"])
    for marker in moments:
        writer.writerow([marker.label, marker.detail, _iso(marker.at)])
    return out.getvalue()


def error_ratio_chart(
    points: Points,
    *,
    title: str,
    window: str,
    allowed: float,
    thresholds: Sequence[Threshold],
    moments: Sequence[Marker],
    impact: tuple[datetime, datetime | None] | None,
    bounds: tuple[datetime, datetime],
    planned: Sequence[tuple[datetime, datetime]] = (),
) -> str:
    """The SLI's error ratio over `window` in percent, with the allowed ratio and each page threshold."""
    with _DRAWING, _matplotlib().rc_context(STYLE):
        figure, axes = _figure()
        _shade(axes, impact, bounds)
        _shade_planned(axes, planned)
        times, values = _split(points)
        axes.plot(times, values, color=LINE, linewidth=1.8, label=f"error ratio over {window}")
        axes.axhline(
            allowed, color="#2ca02c", linestyle="--", linewidth=1.2, label=f"allowed {_pct(allowed)}"
        )
        for number, threshold in enumerate(thresholds):
            axes.axhline(
                threshold.value,
                color=("#d62728", "#ff7f0e", "#9467bd", "#8c564b")[number % 4],
                linestyle=":",
                linewidth=1.2,
                label=f"{threshold.label} {_pct(threshold.value)}",
            )
        top = max([v for v in values if v is not None] + [t.value for t in thresholds] + [allowed])
        axes.set_ylim(0, top * 1.1 or 1)
        axes.yaxis.set_major_formatter(_ticker().PercentFormatter(xmax=1, symbol=" %"))
        axes.set_ylabel(f"error ratio ({window} window)")
        return _finish(figure, axes, title, moments, bounds)


def budget_chart(
    points: Points,
    *,
    title: str,
    period: str,
    moments: Sequence[Marker],
    impact: tuple[datetime, datetime | None] | None,
    bounds: tuple[datetime, datetime],
    planned: Sequence[tuple[datetime, datetime]] = (),
) -> str:
    """The error budget remaining over the SLO's period ending at each point, in percent of the budget,
    on a 0-100 % axis (lower when it was overspent)."""
    with _DRAWING, _matplotlib().rc_context(STYLE):
        figure, axes = _figure()
        _shade(axes, impact, bounds)
        _shade_planned(axes, planned)
        times, values = _split(points)
        axes.plot(times, values, color=LINE, linewidth=1.8, label=f"budget remaining ({period} period)")
        known = [v for v in values if v is not None]
        lowest = min([*known, 0.0])
        axes.set_ylim(lowest * 1.1 if lowest < 0 else 0, max([*known, 1.0]))
        axes.yaxis.set_major_formatter(_ticker().PercentFormatter(xmax=1, symbol=" %"))
        axes.set_ylabel("error budget remaining")
        return _finish(figure, axes, title, moments, bounds)


def _matplotlib() -> Any:
    import matplotlib  # imported on first use: only drafts with charts pay its start-up

    return matplotlib


def _ticker() -> Any:
    from matplotlib import ticker

    return ticker


def _figure() -> tuple[Any, Any]:
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    figure = Figure(figsize=(10, 4.2), dpi=100)
    return figure, figure.subplots()


def _split(points: Points) -> tuple[list[datetime], list[float | None]]:
    return [t for t, _ in points], [v for _, v in points]


def _shade(
    axes: Any, impact: tuple[datetime, datetime | None] | None, bounds: tuple[datetime, datetime]
) -> None:
    if impact is None:
        return
    began, ended = impact
    axes.axvspan(began, ended or bounds[1], color=IMPACT, alpha=0.6, linewidth=0, label="impact window")


def _shade_planned(axes: Any, planned: Sequence[tuple[datetime, datetime]]) -> None:
    """Planned windows (app/planned), hatched: their events are left out of sloguard's own figures."""
    for number, (began, ended) in enumerate(planned):
        axes.axvspan(
            began,
            ended,
            facecolor="none",
            edgecolor=PLANNED,
            hatch="//",
            linewidth=0,
            label="planned window" if number == 0 else None,
        )


def _rows(moments: Sequence[Marker], bounds: tuple[datetime, datetime], width: float) -> list[int]:
    """The row (0 = nearest the plot) of each marker's label, so no two labels in a row overlap: a label
    takes its text's width (estimated) to the right of its line."""
    seconds = max((bounds[1] - bounds[0]).total_seconds(), 1.0)
    ends: list[float] = []  # per row: where its last label ends, in inches from the left of the axes
    rows = []
    for marker in moments:
        x = (marker.at - bounds[0]).total_seconds() / seconds * width
        length = len(marker.text) * LABEL_SIZE * 0.6 / 72 + 0.1
        row = next((i for i, end in enumerate(ends) if x >= end), len(ends))
        if row == len(ends):
            ends.append(0.0)
        ends[row] = x + length
        rows.append(row)
    return rows


def _finish(
    figure: Any, axes: Any, title: str, moments: Sequence[Marker], bounds: tuple[datetime, datetime]
) -> str:
    from matplotlib import dates

    start, end = bounds
    axes.set_xlim(start, end)
    same_day = start.date() == end.date()
    axes.xaxis.set_major_locator(dates.AutoDateLocator(tz=UTC, maxticks=10))  # type: ignore[no-untyped-call]
    ticks = "%H:%M" if same_day else "%m-%d %H:%M"
    axes.xaxis.set_major_formatter(dates.DateFormatter(ticks, tz=UTC))  # type: ignore[no-untyped-call]
    axes.set_xlabel(f"{start:%Y-%m-%d} UTC" if same_day else f"{start:%Y-%m-%d} to {end:%Y-%m-%d} UTC")
    inside = [m for m in moments if start <= m.at <= end]
    width = figure.get_figwidth() * axes.get_position().width
    placed = _rows(inside, bounds, width)
    for marker, row in zip(inside, placed, strict=True):
        colour = MARKER_COLOURS.get(marker.label, "#444444")
        axes.axvline(marker.at, color=colour, linestyle="--", linewidth=1.1)
        axes.annotate(
            marker.text,
            xy=(dates.date2num(marker.at), 1.0),  # type: ignore[no-untyped-call]
            xycoords=("data", "axes fraction"),
            xytext=(2, 4 + row * (LABEL_SIZE + 4)),
            textcoords="offset points",
            fontsize=LABEL_SIZE,
            color=colour,
            ha="left",
            va="bottom",
            annotation_clip=False,
        )
    rows = max(placed, default=-1) + 1
    axes.set_title(title, loc="left", pad=8 + rows * (LABEL_SIZE + 4))
    axes.legend(loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=3, frameon=False, fontsize=9)
    out = io.StringIO()
    figure.savefig(out, format="svg", bbox_inches="tight", metadata={"Date": None})
    return _METADATA.sub("", _DOCTYPE.sub("", out.getvalue()), count=1)


def _pct(ratio: float) -> str:
    return f"{ratio * 100:.3g} %"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
