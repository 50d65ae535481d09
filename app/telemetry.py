"""Logging, the /metrics registry, request ids and optional OpenTelemetry tracing.

Each app owns its own Prometheus registry (no process-global metrics), so tests can build many apps in
one process and read exact counts from each.
"""

from __future__ import annotations

import contextvars
import logging
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info
from prometheus_client.core import GaugeMetricFamily
from pythonjsonlogger.json import JsonFormatter
from starlette.routing import compile_path

import app

log = logging.getLogger(__name__)

request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar("request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"
REQUEST_ID_HEADER_BYTES = REQUEST_ID_HEADER.lower().encode("latin-1")  # ASGI header names are lower-case


def current_trace_id() -> str | None:
    """The request id (it is on every log line of the request), else the OpenTelemetry trace id."""
    request_id = request_id_var.get()
    if request_id:
        return request_id
    try:
        from opentelemetry import trace

        context = trace.get_current_span().get_span_context()
        if context.is_valid:
            return format(context.trace_id, "032x")
    except ImportError:  # pragma: no cover - the package is a dependency
        pass
    return None


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        # uvicorn adds an ANSI-coloured copy of each message; in JSON it is noise.
        record.__dict__.pop("color_message", None)
        return True


def configure_logging(level: str = "INFO", fmt: str | None = "json") -> None:
    """Configure the root logger once: JSON lines (or text) on stderr, each with the request id; `fmt`
    None picks text for a terminal and JSON for anything else (a pipe, a file, a container's log)."""
    if fmt is None:
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestIdFilter())
    if fmt == "json":
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                timestamp=False,
            )
        )
    else:
        handler.setFormatter(
            logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s")
        )
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level)
    # uvicorn's access log repeats what our middleware logs, without the request id.
    logging.getLogger("uvicorn.access").disabled = True
    # urllib3 logs each retry with the full URL; our sources log one line per failure themselves.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # elastic_transport logs each retry of a node with its traceback; the SLO's status names the failure
    # (`source_error (elasticsearch at URL: connection failed)`) and the cycle logs it once.
    logging.getLogger("elastic_transport").setLevel(logging.ERROR)


class PlannedGauge:
    """sloguard_planned_window_active{slo}: 1 while a planned window is on for the SLO, 0 otherwise, for
    each SLO a planned window names (worked out at scrape time, so a window opens on the minute it is
    planned for, not at the next evaluation). The generated alert rules hold their pages on it."""

    NAME = ("sloguard_planned_window_active", "1 while a planned window (sloguard.yaml) is on for the SLO.")

    def __init__(self) -> None:
        self.source: Callable[[], Iterable[tuple[str, bool]]] | None = None

    def describe(self) -> list[GaugeMetricFamily]:
        return [GaugeMetricFamily(*self.NAME)]

    def collect(self) -> list[GaugeMetricFamily]:
        family = GaugeMetricFamily(*self.NAME, labels=["slo"])
        for slo_id, active in self.source() if self.source is not None else ():
            family.add_metric([slo_id], 1.0 if active else 0.0)
        return [family]


class SloGauges:
    """sloguard_slo_burn_rate, _error_budget_remaining and _state, made at scrape time from each SLO's last
    figures. Labelled Gauge children would keep about sixteen objects per SLO alive (80,000 for 5,000
    SLOs); this keeps one small record per SLO."""

    BURN = (
        "sloguard_slo_burn_rate",
        "Error budget burn rate of an SLO over a window (1 spends the budget in one period).",
    )
    BUDGET = (
        "sloguard_slo_error_budget_remaining",
        "Fraction of the SLO period's error budget left (negative when overspent).",
    )
    STATE = ("sloguard_slo_state", "1 for the SLO's current state, 0 for the others.")

    def __init__(self) -> None:
        self._latest: dict[str, tuple[dict[str, float | None], float | None, str]] = {}
        self._states: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def update(
        self,
        slo_id: str,
        burn_rates: dict[str, float | None],
        remaining: float | None,
        state: str,
        states: tuple[str, ...],
    ) -> None:
        with self._lock:
            self._latest[slo_id] = (burn_rates, remaining, state)
            self._states = states

    def clear(self) -> None:
        """Forget every SLO's figures (this replica no longer evaluates them)."""
        with self._lock:
            self._latest.clear()

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(*self.BURN),
            GaugeMetricFamily(*self.BUDGET),
            GaugeMetricFamily(*self.STATE),
        ]

    def collect(self) -> list[GaugeMetricFamily]:
        burn = GaugeMetricFamily(*self.BURN, labels=["slo", "window"])
        budget = GaugeMetricFamily(*self.BUDGET, labels=["slo"])
        state = GaugeMetricFamily(*self.STATE, labels=["slo", "state"])
        nan = float("nan")
        with self._lock:
            latest, states = dict(self._latest), self._states
        for slo_id, (burn_rates, remaining, current) in latest.items():
            for window, rate in burn_rates.items():
                burn.add_metric([slo_id, window], nan if rate is None else rate)
            budget.add_metric([slo_id], nan if remaining is None else remaining)
            for name in states:
                state.add_metric([slo_id, name], 1 if name == current else 0)
        return [burn, budget, state]


class OutboxGauges:
    """sloguard_outbox_pending, _oldest_age_seconds and _dead_rows by effect kind, from the worker's last
    measurement of the outbox (every replica measures the same table: aggregate with max, not sum)."""

    PENDING = ("sloguard_outbox_pending", "Outbox rows waiting to be delivered, by effect kind.")
    OLDEST = (
        "sloguard_outbox_oldest_age_seconds",
        "Age of the oldest undelivered outbox row (since its delivery began), by effect kind.",
    )
    DEAD = ("sloguard_outbox_dead_rows", "Outbox rows that are dead (given up on) now, by effect kind.")

    def __init__(self) -> None:
        self._latest: Any = None

    def show(self, backlog: Any) -> None:
        self._latest = backlog

    def describe(self) -> list[GaugeMetricFamily]:
        return [
            GaugeMetricFamily(*self.PENDING),
            GaugeMetricFamily(*self.OLDEST),
            GaugeMetricFamily(*self.DEAD),
        ]

    def collect(self) -> list[GaugeMetricFamily]:
        pending = GaugeMetricFamily(*self.PENDING, labels=["kind"])
        oldest = GaugeMetricFamily(*self.OLDEST, labels=["kind"])
        dead = GaugeMetricFamily(*self.DEAD, labels=["kind"])
        latest = self._latest
        if latest is not None:
            for kind, count in sorted(latest.pending.items()):
                pending.add_metric([kind], count)
                oldest.add_metric([kind], latest.oldest_age_seconds.get(kind, 0.0))
            for kind, count in sorted(latest.dead.items()):
                dead.add_metric([kind], count)
        return [pending, oldest, dead]


class Metrics:
    """The metrics one app exposes on /metrics."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "sloguard_http_requests",
            "HTTP requests handled, by method, route template and status code.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.http_latency = Histogram(
            "sloguard_http_request_duration_seconds",
            "Time to handle an HTTP request, by method and route template.",
            ["method", "route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=self.registry,
        )
        self.build_info = Info("sloguard_build", "sloguard build information.", registry=self.registry)
        self.build_info.info({"version": app.__version__, "python": sys.version.split()[0]})
        self.slos = SloGauges()
        self.registry.register(self.slos)
        self.planned = PlannedGauge()
        self.registry.register(self.planned)
        self.webhook_notifications = Counter(
            "sloguard_webhook_notifications",
            "Alertmanager notifications, by outcome (accepted, duplicate, ignored, rejected).",
            ["outcome"],
            registry=self.registry,
        )
        self.alert_to_incident = Histogram(
            "sloguard_alert_to_incident_seconds",
            "From an alert's startsAt to the incident it opened.",
            buckets=(1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600),
            registry=self.registry,
        )
        self.incidents_open = Gauge(
            "sloguard_incidents_open",
            "Open incidents (triggered, acknowledged or mitigated), by severity.",
            ["severity"],
            registry=self.registry,
        )
        self.scheduler_leader = Gauge(
            "sloguard_scheduler_leader",
            "1 when this replica runs the scheduled jobs (holds the leader lock), else 0.",
            ["replica"],
            registry=self.registry,
        )
        self.slo_evaluations = Counter(
            "sloguard_slo_evaluation_cycles",
            "SLO evaluation cycles run, by outcome.",
            ["outcome"],
            registry=self.registry,
        )
        self.outbox = OutboxGauges()
        self.registry.register(self.outbox)
        self.outbox_delivered = Counter(
            "sloguard_outbox_delivered",
            "Outbox rows this replica delivered, by effect kind.",
            ["kind"],
            registry=self.registry,
        )
        self.outbox_dead = Counter(
            "sloguard_outbox_dead",
            "Outbox rows this replica gave up on (dead after outbox.dead_after), by effect kind.",
            ["kind"],
            registry=self.registry,
        )

        self.auth_failures = Counter(
            "sloguard_auth_failures",
            "Refused credentials by door (api, webhook, console) and reason (unknown, revoked, oidc, …).",
            ["door", "reason"],
            registry=self.registry,
        )
        self.auth_throttled = Counter(
            "sloguard_auth_throttled",
            "Requests answered 429 because their address failed too many token attempts, by door.",
            ["door"],
            registry=self.registry,
        )

    def show_outbox(self, backlog: Any) -> None:
        self.outbox.show(backlog)


class RouteTemplates:
    """Maps a request path to its route template (`/api/v1/incidents/{incident_id}`), to bound labels.

    Built from the OpenAPI paths, which are the full templates whatever the router nesting, so it relies
    on FastAPI's public schema rather than on how a version of it stores nested routers.
    """

    def __init__(self) -> None:
        self._compiled: list[tuple[re.Pattern[str], str]] | None = None

    def _build(self, fastapi_app: Any) -> list[tuple[re.Pattern[str], str]]:
        templates = sorted(fastapi_app.openapi().get("paths", {}), key=lambda path: path.count("{"))
        return [(compile_path(template)[0], template) for template in templates]

    def lookup(self, fastapi_app: Any, path: str) -> str:
        if self._compiled is None:
            self._compiled = self._build(fastapi_app)
        for pattern, template in self._compiled:
            if pattern.match(path):
                return template
        return "unmatched"


class MetricsMiddleware:
    """Pure ASGI (no per-request task group, unlike `@app.middleware("http")`): sets the request id,
    counts and times each request by route template, logs one line, and echoes X-Request-ID."""

    def __init__(self, app: Any, metrics: Metrics, templates: RouteTemplates) -> None:
        self.app, self.metrics, self.templates = app, metrics, templates

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = ""
        for key, value in scope["headers"]:
            if key == REQUEST_ID_HEADER_BYTES:
                incoming = value.decode("latin-1")
                break
        request_id = incoming if 0 < len(incoming) <= 64 and incoming.isprintable() else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = [(k, v) for k, v in message.get("headers", []) if k != REQUEST_ID_HEADER_BYTES]
                message["headers"] = [*headers, (REQUEST_ID_HEADER_BYTES, request_id.encode("latin-1"))]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            elapsed = time.perf_counter() - started
            method = scope["method"]
            route = self.templates.lookup(scope["app"], scope["path"])
            self.metrics.http_requests.labels(method, route, str(status)).inc()
            self.metrics.http_latency.labels(method, route).observe(elapsed)
            log.info(
                "request",
                extra={
                    "method": method,
                    "route": route,
                    "status": status,
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)


def setup_tracing(fastapi_app: Any, engine: Any) -> bool:
    """OpenTelemetry for FastAPI, httpx and SQLAlchemy when OTEL_EXPORTER_OTLP_ENDPOINT is set."""
    if not os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"):
        return False
    from opentelemetry import trace
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.instrumentation.httpx import HTTPXClientInstrumentor
    from opentelemetry.instrumentation.sqlalchemy import SQLAlchemyInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    resource = Resource.create({"service.name": os.environ.get("OTEL_SERVICE_NAME", "sloguard")})
    provider = TracerProvider(resource=resource)
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    trace.set_tracer_provider(provider)
    FastAPIInstrumentor.instrument_app(fastapi_app, tracer_provider=provider)
    HTTPXClientInstrumentor().instrument(tracer_provider=provider)
    SQLAlchemyInstrumentor().instrument(engine=engine, tracer_provider=provider)
    log.info("tracing enabled")
    return True
