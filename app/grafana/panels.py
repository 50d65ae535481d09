"""The building blocks of sloguard's dashboards: the data source every panel reads, thresholds, and
panels numbered as Grafana wants them (unique ids, a refId per query)."""

from __future__ import annotations

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders import prometheus
from grafana_foundation_sdk.builders import stat as stat_panel
from grafana_foundation_sdk.builders import table as table_panel
from grafana_foundation_sdk.builders import timeseries as series_panel
from grafana_foundation_sdk.builders.common import (
    GraphThresholdsStyleConfig,
    ReduceDataOptions,
    VizLegendOptions,
)
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models import dashboard as model
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

DATASOURCE = model.DataSourceRef(type_val="prometheus", uid="${datasource}")
TAG = "sloguard"


def steps(*pairs: tuple[float | None, str]) -> builders.ThresholdsConfig:
    """Absolute thresholds: (from value, colour), the first from minus infinity (None)."""
    return (
        builders.ThresholdsConfig()
        .mode(model.ThresholdsMode.ABSOLUTE)
        .steps([model.Threshold(value=value, color=color) for value, color in pairs])
    )


DASHED = GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
BUDGET_STEPS = steps((None, "red"), (0.0, "orange"), (0.25, "green"))
BURN_STEPS = steps((None, "green"), (1.0, "orange"), (6.0, "red"))


class Panels:
    """Numbers panels and their queries: Grafana wants unique panel ids, and each query its refId."""

    def __init__(self) -> None:
        self._last = 0

    def next_id(self) -> int:
        self._last += 1
        return self._last

    def row(self, title: str) -> builders.Row:
        return builders.Row(title).id(self.next_id())

    def query(
        self, expr: str, legend: str = "", *, index: int = 0, instant: bool = False
    ) -> prometheus.Dataquery:
        query = prometheus.Dataquery().expr(expr).ref_id(chr(ord("A") + index)).datasource(DATASOURCE)
        if legend:
            query = query.legend_format(legend)
        if instant:
            query = query.instant().format(PromQueryFormat.TABLE)
        return query

    def stat(self, title: str, description: str, expr: str, legend: str, unit: str) -> stat_panel.Panel:
        return (
            stat_panel.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .with_target(self.query(expr, legend))
            .reduce_options(ReduceDataOptions().calcs(["lastNotNull"]).values(False))
            .span(6)
            .height(4)
        )

    def series(
        self, title: str, description: str, unit: str, *queries: tuple[str, str], span: int = 12
    ) -> series_panel.Panel:
        panel = (
            series_panel.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .unit(unit)
            .span(span)
            .height(8)
            .legend(
                VizLegendOptions()
                .show_legend(True)
                .display_mode(common.LegendDisplayMode.TABLE)
                .placement(common.LegendPlacement.BOTTOM)
                .calcs(["lastNotNull", "max"])
            )
        )
        for index, (expr, legend) in enumerate(queries):
            panel = panel.with_target(self.query(expr, legend, index=index))
        return panel

    def table(
        self, title: str, description: str, expr: str, hidden: list[str], span: int = 12
    ) -> table_panel.Panel:
        """The instant result of `expr` as rows: one per series, its labels as columns."""
        excluded = {name: True for name in ["Time", "__name__", *hidden]}
        return (
            table_panel.Panel()
            .id(self.next_id())
            .title(title)
            .description(description)
            .datasource(DATASOURCE)
            .span(span)
            .height(8)
            .with_target(self.query(expr, instant=True))
            .with_transformation(
                model.DataTransformerConfig(id_val="organize", options={"excludeByName": excluded})
            )
        )


def dashboard(uid: str, title: str, description: str) -> builders.Dashboard:
    return (
        builders.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags([TAG, "slo"])
        .editable()
        .time("now-6h", "now")
        .refresh("1m")
        .timezone(common.TimeZoneBrowser)
        .tooltip(model.DashboardCursorSync.CROSSHAIR)
        .with_variable(builders.DatasourceVariable("datasource").label("Data source").type("prometheus"))
        .link(
            builders.DashboardLink("sloguard dashboards")
            .type(model.DashboardLinkType.DASHBOARDS)
            .tags([TAG])
            .as_dropdown(True)
            .keep_time(True)
            .include_vars(False)
            .target_blank(False)
        )
    )
