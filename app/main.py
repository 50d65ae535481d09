"""The FastAPI application: `create_app(settings)` builds one, with everything it needs in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from slack_sdk import WebClient
from sqlmodel import Session

import app as package
from app import db
from app.alerts.routes import ALERTMANAGER_PATH
from app.alerts.routes import router as webhook_router
from app.api import API_PROBLEMS, install_error_handlers, require_api_token
from app.chat.door import mount_slack
from app.chat.notify import SlackNotifier
from app.config import Settings, load_file_config
from app.events import Dispatcher, IncidentStatusChanged
from app.health import Readiness
from app.health import router as health_router
from app.incidents import jobs as incident_jobs
from app.incidents import service as incidents
from app.incidents.routes import router as incidents_router
from app.leader import Leadership, leadership_for
from app.ml import service as ml
from app.ml.service import Enricher
from app.postmortems import service as postmortems
from app.request_guard import REQUEST_MAX_BYTES, RequestGuard
from app.rollback import service as rollbacks
from app.rollback.routes import router as rollback_router
from app.scheduler import Job, build_scheduler
from app.slo import service as slos
from app.slo.jobs import evaluate_slos
from app.slo.routes import router as slo_router
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.elasticsearch import ElasticsearchSource
from app.sources.mlflow import MlflowRegistry
from app.sources.prometheus import PrometheusSource
from app.telemetry import Metrics, MetricsMiddleware, RouteTemplates, setup_tracing

log = logging.getLogger(__name__)


def build_sources(settings: Settings) -> dict[str, Any]:
    sources: dict[str, Any] = {
        "prometheus": PrometheusSource(
            str(settings.prometheus_url),
            timeout=settings.source_timeout,
            tenant=settings.prometheus_tenant,
        )
    }
    if settings.mlflow_url is not None:
        sources["mlflow"] = MlflowRegistry(str(settings.mlflow_url), timeout=settings.source_timeout)
    if settings.elasticsearch_url is not None:
        api_key = settings.elasticsearch_api_key
        sources["elasticsearch"] = ElasticsearchSource(
            str(settings.elasticsearch_url),
            timeout=settings.source_timeout,
            api_key=api_key.get_secret_value() if api_key else None,
        )
    return sources


def build_jobs(fastapi_app: FastAPI, settings: Settings, leadership: Leadership) -> list[Job]:
    """The whole background workload, run only by the scheduler leader (every replica ticks)."""
    state = fastapi_app.state
    options = state.file_config.incidents
    lead = leadership.guard
    return [
        Job("slo-evaluation", lead(lambda: evaluate_slos(state)), settings.eval_interval, run_at_start=True),
        Job("incident-escalation", lead(lambda: incident_jobs.escalate(state, options)), 60),
        Job("incident-auto-resolve", lead(lambda: incident_jobs.auto_resolve(state, options)), 300),
        Job("rollback-verify", lead(lambda: verify_rollbacks(state)), 15),
    ]


def verify_rollbacks(state: Any) -> None:
    try:
        rollbacks.verify_due(state.engine, state.file_config, state.slo_engine, state.events)
    except Exception:
        log.exception("rollback verification sweep failed")


def follow_leadership(fastapi_app: FastAPI, leadership: Leadership) -> None:
    """On becoming the leader, continue from the stored SLO states; show who leads on /metrics."""
    state = fastapi_app.state
    gauge = state.metrics.scheduler_leader.labels(leadership.replica)
    gauge.set(0)

    def changed(leading: bool) -> None:
        if leading:
            with Session(state.engine) as session:
                state.slo_engine.reload(slos.latest_states(session))
        gauge.set(1 if leading else 0)

    leadership.on_change(changed)


def create_app(settings: Settings) -> FastAPI:
    """Build the app; bad settings, sloguard.yaml or SLO specs raise here, before anything starts."""
    file_config = load_file_config(settings.config_file)
    slo_specs = load_specs([settings.slo_dir]) if settings.slo_dir.exists() else []

    @asynccontextmanager
    async def lifespan(fastapi_app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        db.upgrade(engine)
        db.remember_installation(engine)  # from here on, a replaced or removed database is refused
        fastapi_app.state.engine = engine
        sources = build_sources(settings)
        fastapi_app.state.sources = sources
        slo_engine = SloEngine(
            slo_specs, sources["prometheus"], sources.get("elasticsearch"), file_config.slo
        )
        with Session(engine) as session:
            slo_engine.restore(slos.latest_states(session))
        fastapi_app.state.slo_engine = slo_engine
        incidents.subscribe(fastapi_app.state.events, engine, file_config.incidents)
        enricher = Enricher(
            engine,
            file_config,
            ml.Sources(sources["prometheus"], sources.get("elasticsearch"), sources.get("mlflow")),
        )
        enricher.subscribe(fastapi_app.state.events)
        drafts = postmortems.Writer(engine, fastapi_app.state)
        fastapi_app.state.events.subscribe(IncidentStatusChanged, drafts.on_status)
        fastapi_app.state.enricher = enricher
        notifier = None
        if settings.slack_enabled:
            assert settings.slack_bot_token is not None
            web = WebClient(
                token=settings.slack_bot_token.get_secret_value(),
                base_url=str(settings.slack_api_url),
                timeout=int(settings.source_timeout),
            )
            public = str(settings.public_url).rstrip("/") if settings.public_url else None
            notifier = SlackNotifier(web, engine, file_config, settings.slack_channel, public)
            notifier.subscribe(fastapi_app.state.events)
        socket_mode = None
        if settings.slack_app_token is not None:
            from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

            # Socket Mode: Slack delivers over a websocket this process opens; no public URL needed.
            socket_mode = AsyncSocketModeHandler(
                fastapi_app.state.bolt, settings.slack_app_token.get_secret_value()
            )
            await socket_mode.connect_async()  # type: ignore[no-untyped-call]
        setup_tracing(fastapi_app, engine)
        leadership = leadership_for(settings.database_url, settings.leader_takeover)
        follow_leadership(fastapi_app, leadership)
        fastapi_app.state.leadership = leadership
        scheduler = build_scheduler(build_jobs(fastapi_app, settings, leadership))
        if settings.scheduler_enabled:
            leadership.start()
            scheduler.start()
        fastapi_app.state.scheduler = scheduler
        readiness = Readiness(engine, sources)  # /readyz answers from it, never waiting on a source
        await readiness.start()
        fastapi_app.state.readiness = readiness
        log.info("sloguard started", extra={"version": package.__version__})
        try:
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
            leadership.stop()
            enricher.close()
            drafts.close()
            if notifier is not None:
                notifier.close()
            if socket_mode is not None:
                await socket_mode.close_async()  # type: ignore[no-untyped-call]
            readiness.stop()
            for source in fastapi_app.state.sources.values():
                source.close()
            engine.dispose()

    fastapi_app = FastAPI(
        title="sloguard",
        version=package.__version__,
        lifespan=lifespan,
        description="SLOs, incidents and guarded model rollback for ML services.",
    )
    fastapi_app.state.settings = settings
    fastapi_app.state.file_config = file_config
    metrics = Metrics()
    fastapi_app.state.metrics = metrics
    fastapi_app.state.events = Dispatcher()
    fastapi_app.state.last_evaluation = None
    # Added before the metrics middleware, so it runs inside it: its refusals are counted and logged too.
    fastapi_app.add_middleware(
        RequestGuard, max_bytes=REQUEST_MAX_BYTES, own_body_paths=frozenset({ALERTMANAGER_PATH})
    )
    fastapi_app.add_middleware(MetricsMiddleware, metrics=metrics, templates=RouteTemplates())
    install_error_handlers(fastapi_app)

    fastapi_app.include_router(health_router)
    fastapi_app.include_router(webhook_router)
    if settings.slack_enabled:
        mount_slack(fastapi_app, settings)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_token)], responses=API_PROBLEMS)
    api.include_router(incidents_router)
    api.include_router(slo_router)
    api.include_router(rollback_router)
    fastapi_app.include_router(api)
    return fastapi_app
