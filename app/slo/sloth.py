"""Sloth's `prometheus/v1` spec, and the same spec inside its Kubernetes resource
(`sloth.slok.dev/v1` `PrometheusServiceLevel`), read into the SLO model.

Each document is validated against a strict schema (unknown fields are refused, so a typo never
silently turns a page off). Every Sloth SLO has a 30-day period and the four default tiers.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator

from app.durations import DAY
from app.slo import burn, schema
from app.slo.model import Alerting, EventsSli, RawSli, Sli, Slo
from app.slo.problems import Location, Problems
from app.slo.schema import Labels, Strict

PERIOD = 30 * DAY


class SlothEvents(Strict):
    error_query: str
    total_query: str

    _check = field_validator("error_query", "total_query")(schema.window_query)


class SlothRaw(Strict):
    error_ratio_query: str

    _check = field_validator("error_ratio_query")(schema.window_query)


class SlothSli(Strict):
    events: SlothEvents | None = None
    raw: SlothRaw | None = None
    plugin: dict[str, Any] | None = None


class SlothAlert(Strict):
    disable: bool = False
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)


class SlothAlerting(Strict):
    name: str | None = None
    labels: Labels = Field(default_factory=dict)
    annotations: Labels = Field(default_factory=dict)
    page_alert: SlothAlert = Field(default_factory=SlothAlert)
    ticket_alert: SlothAlert = Field(default_factory=SlothAlert)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str | None) -> str | None:
        return None if value is None else schema.alert_name(value)


class SlothSlo(Strict):
    name: str
    objective: float
    description: str = ""
    labels: Labels = Field(default_factory=dict)
    sli: SlothSli
    alerting: SlothAlerting = Field(default_factory=SlothAlerting)

    _name = field_validator("name")(schema.name)

    @field_validator("objective")
    @classmethod
    def _objective(cls, value: float) -> float:
        if not 0 < value < 100:
            raise ValueError(f"must be between 0 and 100 (got {value:g})")
        return value


class SlothSpec(Strict):
    version: Literal["prometheus/v1"]
    service: str
    labels: Labels = Field(default_factory=dict)
    slos: list[SlothSlo] = Field(min_length=1)

    _name = field_validator("service")(schema.name)


class SlothKubernetesSpec(Strict):
    service: str
    labels: Labels = Field(default_factory=dict)
    slos: list[SlothSlo] = Field(min_length=1)

    _name = field_validator("service")(schema.name)


class SlothKubernetes(Strict):
    apiVersion: Literal["sloth.slok.dev/v1"]
    kind: Literal["PrometheusServiceLevel"]
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: SlothKubernetesSpec


def read(document: dict[str, Any], where: Location, problems: Problems) -> list[Slo]:
    """The SLOs of one `version: prometheus/v1` document."""
    try:
        spec = SlothSpec.model_validate(document)
    except ValidationError as exc:
        schema.report(exc, where, problems)
        return []
    return _slos(spec.service, spec.labels, spec.slos, where, problems)


def read_kubernetes(document: dict[str, Any], where: Location, problems: Problems) -> list[Slo]:
    """The SLOs of one `PrometheusServiceLevel` resource."""
    try:
        resource = SlothKubernetes.model_validate(document)
    except ValidationError as exc:
        schema.report(exc, where, problems)
        return []
    spec = resource.spec
    return _slos(spec.service, spec.labels, spec.slos, where.at("spec"), problems)


def _sli(item: SlothSlo, where: Location, problems: Problems) -> Sli | None:
    chosen = [kind for kind in ("events", "raw", "plugin") if getattr(item.sli, kind) is not None]
    if chosen == ["events"] and item.sli.events is not None:
        return EventsSli(item.sli.events.error_query, item.sli.events.total_query)
    if chosen == ["raw"] and item.sli.raw is not None:
        return RawSli(item.sli.raw.error_ratio_query)
    if chosen == ["plugin"]:
        problems.add(where.at("sli", "plugin"), "SLI plugins are not supported; use events or raw")
        return None
    problems.add(where.at("sli"), "needs exactly one of events or raw")
    return None


def _alerting(alerting: SlothAlerting) -> Alerting:
    return Alerting(
        name=alerting.name,
        labels=alerting.labels,
        annotations=alerting.annotations,
        page_labels=alerting.page_alert.labels,
        page_annotations=alerting.page_alert.annotations,
        ticket_labels=alerting.ticket_alert.labels,
        ticket_annotations=alerting.ticket_alert.annotations,
        page_disabled=alerting.page_alert.disable,
        ticket_disabled=alerting.ticket_alert.disable,
    )


def _slos(
    service: str, labels: dict[str, str], items: list[SlothSlo], where: Location, problems: Problems
) -> list[Slo]:
    result = []
    for index, item in enumerate(items):
        at = where.at("slos", index)
        sli = _sli(item, at, problems)
        if sli is None:
            continue
        slo = Slo(
            id=f"{service}-{item.name}",
            service=service,
            name=item.name,
            objective=schema.percent_to_ratio(item.objective),
            sli=sli,
            source=where.file,
            description=item.description,
            labels={**labels, **item.labels},
            alerting=_alerting(item.alerting),
            period_seconds=PERIOD,
            tiers=burn.tiers_for_period(PERIOD),
        )
        schema.check_tiers(slo, at.at("objective"), problems)
        result.append(slo)
    return result
