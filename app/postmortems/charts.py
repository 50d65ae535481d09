"""SVG charts for review drafts, with pygal: each data point is written into the SVG (as the value of
its tooltip), so a reader's tooling and our tests can check what was plotted."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any


def _chart(title: str, y_title: str) -> Any:
    # Imported here: pygal installs an import hook for its map plugins, which only chart rendering needs.
    import pygal
    from pygal.style import CleanStyle

    chart = pygal.Line(
        title=title,
        y_title=y_title,
        x_label_rotation=30,
        show_minor_x_labels=False,
        style=CleanStyle,
        width=900,
        height=360,
        disable_xml_declaration=False,
        show_dots=True,
        dots_size=2,
        truncate_label=-1,
    )
    return chart


def error_ratio_chart(
    points: Sequence[tuple[datetime, float | None]], page_threshold: float, title: str, window: str = "5m"
) -> str:
    """The SLI error ratio over time, with the fast page threshold as a flat line."""
    chart = _chart(title, f"error ratio ({window})")
    chart.x_labels = [t.strftime("%H:%M") for t, _ in points]
    chart.x_labels_major_every = max(1, len(points) // 8)
    chart.add("error ratio", [v for _, v in points])
    chart.add(f"page threshold ({page_threshold:g})", [page_threshold] * len(points))
    svg: str = chart.render(is_unicode=True)
    return svg


def budget_chart(points: Sequence[tuple[datetime, float | None]], title: str) -> str:
    """Error budget remaining (1 = untouched, 0 = spent, negative = overspent)."""
    chart = _chart(title, "error budget remaining")
    chart.x_labels = [t.strftime("%H:%M") for t, _ in points]
    chart.x_labels_major_every = max(1, len(points) // 8)
    chart.add("budget remaining", [v for _, v in points])
    svg: str = chart.render(is_unicode=True)
    return svg
