"""The three Grafana dashboards, built with grafana-foundation-sdk and encoded as Grafana's JSON model.

- `sloguard-slo-overview`: every SLO from sloguard's own gauges (`sloguard_slo_state`,
  `sloguard_slo_error_budget_remaining`, `sloguard_slo_burn_rate`), with the recording rules' budgets
  beside them for the SLOs Prometheus records.
- `sloguard-slo-detail`: one SLO (`$slo`, a `sloth_id`) from the Sloth-compatible recording rules
  only (app/slo/rules.py), so it works where sloguard is not running and for SLOs Sloth generated.
- `sloguard-health`: sloguard itself (HTTP, webhook outcomes, outbox, scheduler leader, evaluation
  cycles), from the metrics in app/telemetry.py.

Every panel reads the data source chosen in `$datasource` (type prometheus), so the files import into any
Grafana without editing. Nothing here depends on the SLO specs: the detail dashboard reads each SLO's
windows from its `sloth_window` labels, so the files stay current when SLOs change. The outbox gauges are
read with `max` (every replica reports the same shared table); counters are summed over replicas.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from grafana_foundation_sdk.builders import dashboard as builders
from grafana_foundation_sdk.builders.common import TableSortByFieldState
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as model

from app.grafana.panels import BUDGET_STEPS, BURN_STEPS, DASHED, DATASOURCE, Panels, dashboard, steps

OVERVIEW_UID, DETAIL_UID, HEALTH_UID = "sloguard-slo-overview", "sloguard-slo-detail", "sloguard-health"
# The selector every detail panel uses: Grafana puts the chosen sloth_id in place of `$slo`.
ONE_SLO = 'sloth_id="$slo"'
SLO_RATIOS = f'{{__name__=~"slo:sli_error:ratio_rate.+", {ONE_SLO}}}'
PER_BUDGET = f"/ on(sloth_id, sloth_slo, sloth_service) group_left() slo:error_budget:ratio{{{ONE_SLO}}}"


def overview() -> builders.Dashboard:
    panels = Panels()
    detail = f"/d/{DETAIL_UID}?var-datasource=${{datasource}}&var-slo=${{__data.fields.sloth_id}}"
    return (
        dashboard(
            OVERVIEW_UID,
            "sloguard / SLO overview",
            "Every SLO sloguard evaluates: state, error budget left and burn rates (sloguard's gauges), "
            "and the recording rules' budgets for the SLOs Prometheus records.",
        )
        .with_row(panels.row("State (sloguard's evaluation)"))
        .with_panel(
            panels.stat(
                "SLOs paging",
                "SLOs whose page tier fires now (sloguard_slo_state).",
                'count(max by (slo) (sloguard_slo_state{state="page"}) == 1) or vector(0)',
                "",
                "none",
            ).thresholds(steps((None, "green"), (1.0, "red")))
        )
        .with_panel(
            panels.stat(
                "SLOs with a ticket",
                "SLOs whose ticket tier fires now.",
                'count(max by (slo) (sloguard_slo_state{state="ticket"}) == 1) or vector(0)',
                "",
                "none",
            ).thresholds(steps((None, "green"), (1.0, "orange")))
        )
        .with_panel(
            panels.stat(
                "Open incidents",
                "Incidents triggered, acknowledged or mitigated, by severity.",
                "max by (severity) (sloguard_incidents_open)",
                "{{severity}}",
                "none",
            )
        )
        .with_panel(
            panels.stat(
                "Lowest error budget left",
                "The smallest fraction of its period's error budget any SLO has left.",
                "min(max by (slo) (sloguard_slo_error_budget_remaining))",
                "",
                "percentunit",
            ).thresholds(BUDGET_STEPS)
        )
        .with_panel(
            panels.table(
                "State of every SLO",
                "Each SLO's current state (ok, ticket, page, no_data, insufficient_data, source_error).",
                "max by (slo, state) (sloguard_slo_state) == 1",
                ["Value"],
            )
        )
        .with_panel(
            panels.table(
                "Error budget left, lowest first",
                "The 20 SLOs with the least error budget left (negative: overspent).",
                "bottomk(20, max by (slo) (sloguard_slo_error_budget_remaining))",
                [],
            )
            .unit("percentunit")
            .thresholds(BUDGET_STEPS)
            .sort_by([TableSortByFieldState().display_name("Value").desc(False)])
        )
        .with_row(panels.row("Burn rates"))
        .with_panel(
            panels.series(
                "Burn rate, short windows",
                "1 spends exactly the period's budget; the page tiers fire at 14.4 and 6 by default.",
                "none",
                ('max by (slo, window) (sloguard_slo_burn_rate{window=~"5m|30m|1h"})', "{{slo}} {{window}}"),
            )
            .thresholds(BURN_STEPS)
            .thresholds_style(DASHED)
        )
        .with_panel(
            panels.series(
                "Burn rate, long windows",
                "The ticket tiers fire at 3 and 1 by default.",
                "none",
                (
                    'max by (slo, window) (sloguard_slo_burn_rate{window=~"2h|6h|1d|3d"})',
                    "{{slo}} {{window}}",
                ),
            )
            .thresholds(BURN_STEPS)
            .thresholds_style(DASHED)
        )
        .with_panel(
            panels.series(
                "Error budget left",
                "Each SLO's budget left over its period, as sloguard evaluates it.",
                "percentunit",
                ("max by (slo) (sloguard_slo_error_budget_remaining)", "{{slo}}"),
            ).thresholds(BUDGET_STEPS)
        )
        .with_row(panels.row("Recording rules (Prometheus-backed SLOs; no sloguard needed)"))
        .with_panel(
            panels.table(
                "Budget left by the recording rules",
                "slo:period_error_budget_remaining:ratio per SLO; a row opens the SLO's detail dashboard.",
                "max by (sloth_id, sloth_service, sloth_slo) (slo:period_error_budget_remaining:ratio)",
                [],
            )
            .unit("percentunit")
            .thresholds(BUDGET_STEPS)
            .data_links([builders.DashboardLink("Open the SLO").url(detail)])
        )
        .with_panel(
            panels.series(
                "Current burn rate by the recording rules",
                "slo:current_burn_rate:ratio: the 5-minute error ratio over the error budget.",
                "none",
                ("max by (sloth_id) (slo:current_burn_rate:ratio)", "{{sloth_id}}"),
            ).thresholds(BURN_STEPS)
        )
    )


def detail() -> builders.Dashboard:
    panels = Panels()
    return (
        dashboard(
            DETAIL_UID,
            "sloguard / SLO detail",
            "One SLO from the Sloth-compatible recording rules only (`sloguard slo rules`, or Sloth's): "
            "it works without sloguard running.",
        )
        .with_variable(
            builders.QueryVariable("slo")
            .label("SLO")
            .description("The SLO's sloth_id.")
            .datasource(DATASOURCE)
            .query({"query": "label_values(sloth_slo_info, sloth_id)", "refId": "slo", "qryType": 1})
            .refresh(model.VariableRefresh.ON_TIME_RANGE_CHANGED)
            .sort(model.VariableSort.ALPHABETICAL_ASC)
        )
        .with_row(panels.row("$slo"))
        .with_panel(
            panels.stat(
                "Objective",
                "slo:objective:ratio",
                f"slo:objective:ratio{{{ONE_SLO}}}",
                "",
                "percentunit",
            ).decimals(3)
        )
        .with_panel(
            panels.stat(
                "Error budget left",
                "slo:period_error_budget_remaining:ratio: the period's budget not yet spent.",
                f"slo:period_error_budget_remaining:ratio{{{ONE_SLO}}}",
                "",
                "percentunit",
            ).thresholds(BUDGET_STEPS)
        )
        .with_panel(
            panels.stat(
                "Current burn rate",
                "slo:current_burn_rate:ratio: the 5-minute error ratio over the error budget.",
                f"slo:current_burn_rate:ratio{{{ONE_SLO}}}",
                "",
                "none",
            ).thresholds(BURN_STEPS)
        )
        .with_panel(
            panels.stat(
                "Burn rate over the period",
                "slo:period_burn_rate:ratio; the period in days: slo:time_period:days.",
                f"slo:period_burn_rate:ratio{{{ONE_SLO}}}",
                "",
                "none",
            ).thresholds(BURN_STEPS)
        )
        .with_panel(
            panels.series(
                "Error ratio by window",
                "slo:sli_error:ratio_rate<window> for each window the rules record, and the error budget "
                "(the ratio the objective allows).",
                "percentunit",
                (SLO_RATIOS, "{{sloth_window}}"),
                (f"slo:error_budget:ratio{{{ONE_SLO}}}", "error budget"),
            )
        )
        .with_panel(
            panels.series(
                "Burn rate by window",
                "Each window's error ratio over the error budget; 1 spends the budget in exactly one period.",
                "none",
                (f"{SLO_RATIOS}\n{PER_BUDGET}", "{{sloth_window}}"),
            )
            .thresholds(BURN_STEPS)
            .thresholds_style(DASHED)
        )
        .with_panel(
            panels.series(
                "Error budget left over time",
                "slo:period_error_budget_remaining:ratio",
                "percentunit",
                (f"slo:period_error_budget_remaining:ratio{{{ONE_SLO}}}", "budget left"),
            ).thresholds(BUDGET_STEPS)
        )
        .with_panel(
            panels.series(
                "Traffic",
                "sloguard:sli_total:rate5m: the SLI's events per second (event SLIs; a raw ratio has none).",
                "reqps",
                (f'sloguard:sli_total:rate5m{{{ONE_SLO}, sloth_window="5m"}}', "events/s"),
            )
        )
        .with_panel(
            panels.table(
                "Burn-rate alerts firing",
                "The SLO's multi-window multi-burn-rate alerts (sloth_severity page or ticket) firing now.",
                f'max by (alertname, sloth_severity) (ALERTS{{{ONE_SLO}, alertstate="firing"}})',
                ["Value"],
            )
        )
        .with_panel(
            panels.table(
                "About the SLO",
                "sloth_slo_info: its service, name and objective (percent).",
                f"sloth_slo_info{{{ONE_SLO}}}",
                ["Value", "instance", "job"],
            )
        )
    )


def health() -> builders.Dashboard:
    panels = Panels()
    rate = "[$__rate_interval]"
    return (
        dashboard(
            HEALTH_UID,
            "sloguard / health",
            "sloguard itself: HTTP, Alertmanager webhooks, the outbox, the scheduler and its SLO "
            "evaluation cycles (the metrics of /metrics).",
        )
        .with_row(panels.row("Replicas and scheduler"))
        .with_panel(
            panels.stat(
                "Scheduler leaders",
                "Replicas holding the scheduler's leader lock: 1 is right, 0 runs no jobs.",
                "sum(max by (replica) (sloguard_scheduler_leader))",
                "",
                "none",
            ).thresholds(steps((None, "red"), (1.0, "green"), (2.0, "red")))
        )
        .with_panel(
            panels.stat(
                "Evaluation cycles failing",
                "Share of SLO evaluation cycles whose outcome was not ok.",
                f'(sum(rate(sloguard_slo_evaluation_cycles_total{{outcome!="ok"}}{rate})) or vector(0))\n'
                f"/ sum(rate(sloguard_slo_evaluation_cycles_total{rate}))",
                "",
                "percentunit",
            ).thresholds(steps((None, "green"), (0.01, "red")))
        )
        .with_panel(
            panels.stat(
                "Dead outbox rows",
                "Effects given up on and still in the outbox (`sloguard outbox list --dead`).",
                "sum(max by (kind) (sloguard_outbox_dead_rows)) or vector(0)",
                "",
                "none",
            ).thresholds(steps((None, "green"), (1.0, "red")))
        )
        .with_panel(
            panels.table(
                "Replicas",
                "Each scraped replica's version and whether it leads the scheduler.",
                "max by (instance, version, python) (sloguard_build_info)",
                ["Value"],
                span=6,
            )
        )
        .with_panel(
            panels.series(
                "Scheduler leader by replica",
                "1 on the replica that runs the scheduled jobs.",
                "none",
                ("max by (replica) (sloguard_scheduler_leader)", "{{replica}}"),
                span=12,
            )
        )
        .with_panel(
            panels.series(
                "SLO evaluation cycles",
                "Cycles per second by outcome (ok, source_error).",
                "ops",
                (f"sum by (outcome) (rate(sloguard_slo_evaluation_cycles_total{rate}))", "{{outcome}}"),
                span=12,
            )
        )
        .with_row(panels.row("HTTP"))
        .with_panel(
            panels.series(
                "Requests by route and status",
                "sloguard_http_requests_total per second.",
                "reqps",
                (
                    f"sum by (route, status) (rate(sloguard_http_requests_total{rate}))",
                    "{{route}} {{status}}",
                ),
            )
        )
        .with_panel(
            panels.series(
                "Latency p99 and p50 by route",
                "From sloguard_http_request_duration_seconds.",
                "s",
                (
                    "histogram_quantile(0.99, sum by (le, route) "
                    f"(rate(sloguard_http_request_duration_seconds_bucket{rate})))",
                    "p99 {{route}}",
                ),
                (
                    "histogram_quantile(0.5, sum by (le, route) "
                    f"(rate(sloguard_http_request_duration_seconds_bucket{rate})))",
                    "p50 {{route}}",
                ),
            )
        )
        .with_panel(
            panels.series(
                "Server errors",
                "Share of requests answered 5xx.",
                "percentunit",
                (
                    f'(sum(rate(sloguard_http_requests_total{{status=~"5.."}}{rate})) or vector(0))\n'
                    f"/ sum(rate(sloguard_http_requests_total{rate}))",
                    "5xx",
                ),
            )
        )
        .with_panel(
            panels.series(
                "Refused credentials",
                "Bearer tokens refused per second, by door and reason, and requests throttled (429).",
                "reqps",
                (
                    f"sum by (door, reason) (rate(sloguard_auth_failures_total{rate}))",
                    "{{door}} {{reason}}",
                ),
                (f"sum by (door) (rate(sloguard_auth_throttled_total{rate}))", "throttled {{door}}"),
            )
        )
        .with_row(panels.row("Alertmanager webhook"))
        .with_panel(
            panels.series(
                "Notifications by outcome",
                "accepted, duplicate, ignored or rejected, per second.",
                "reqps",
                (
                    f"sum by (outcome) (rate(sloguard_webhook_notifications_total{rate}))",
                    "{{outcome}}",
                ),
            )
        )
        .with_panel(
            panels.series(
                "Alert to incident",
                "From an alert's startsAt to the incident it opened (p90 and p50).",
                "s",
                (
                    "histogram_quantile(0.9, sum by (le) "
                    f"(rate(sloguard_alert_to_incident_seconds_bucket{rate})))",
                    "p90",
                ),
                (
                    "histogram_quantile(0.5, sum by (le) "
                    f"(rate(sloguard_alert_to_incident_seconds_bucket{rate})))",
                    "p50",
                ),
            )
        )
        .with_row(panels.row("Outbox"))
        .with_panel(
            panels.series(
                "Pending by kind",
                "Effects waiting to be delivered (max over replicas: they all see the same table).",
                "none",
                ("max by (kind) (sloguard_outbox_pending)", "{{kind}}"),
                span=8,
            )
        )
        .with_panel(
            panels.series(
                "Oldest pending by kind",
                "How long the oldest undelivered effect has been waiting.",
                "s",
                ("max by (kind) (sloguard_outbox_oldest_age_seconds)", "{{kind}}"),
                span=8,
            )
        )
        .with_panel(
            panels.series(
                "Dead rows by kind",
                "Effects given up on, now in the outbox: `sloguard outbox retry` delivers them again.",
                "none",
                ("max by (kind) (sloguard_outbox_dead_rows)", "{{kind}}"),
                span=8,
            ).thresholds(steps((None, "green"), (1.0, "red")))
        )
        .with_panel(
            panels.series(
                "Delivered and given up",
                "Effects delivered per second by kind, and those that died (summed over replicas).",
                "ops",
                (f"sum by (kind) (rate(sloguard_outbox_delivered_total{rate}))", "delivered {{kind}}"),
                (f"sum by (kind) (rate(sloguard_outbox_dead_total{rate}))", "dead {{kind}}"),
            )
        )
    )


DASHBOARDS: dict[str, Callable[[], builders.Dashboard]] = {
    f"{OVERVIEW_UID}.json": overview,
    f"{DETAIL_UID}.json": detail,
    f"{HEALTH_UID}.json": health,
}


def encode(dashboard: builders.Dashboard) -> str:
    return encode_model(dashboard.build())


def encode_model(dashboard: model.Dashboard) -> str:
    """Grafana's JSON model, keys sorted and indented, so that a regenerated file diffs cleanly."""
    return JSONEncoder(sort_keys=True, indent=2, ensure_ascii=False).encode(dashboard) + "\n"


def render() -> dict[str, str]:
    """File name -> JSON text of every dashboard."""
    return {name: encode(build()) for name, build in DASHBOARDS.items()}


def load(text: str) -> model.Dashboard:
    """A dashboard JSON read back into the SDK's model (panels and queries decoded by their type)."""
    from grafana_foundation_sdk.cog.plugins import register_default_plugins

    register_default_plugins()
    return model.Dashboard.from_json(json.loads(text))
