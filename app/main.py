"""The FastAPI application: `create_app(settings)` builds one, with everything it needs in its lifespan."""

from __future__ import annotations

import gc
import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

from fastapi import APIRouter, Depends, FastAPI
from sqlmodel import Session

import app as package
from app import features
from app.alerts.routes import ALERTMANAGER_PATH
from app.alerts.routes import router as webhook_router
from app.api import API_PROBLEMS, authenticate, install_error_handlers
from app.changes.routes import router as changes_router
from app.changes.routes import webhook_router as mlflow_webhook_router
from app.chat.door import mount_slack
from app.config import FileConfig, Settings, load_file_config
from app.errors import ConfigError
from app.events import Dispatcher
from app.gates import jobs as gate_jobs
from app.gates.routes import flagger_router
from app.gates.routes import router as gates_router
from app.health import Readiness
from app.health import router as health_router
from app.identity.routes import router as identity_router
from app.incidents import jobs as incident_jobs
from app.incidents.routes import router as incidents_router
from app.leader import Leadership, leadership_for
from app.planned import silences as planned_silences
from app.request_guard import REQUEST_MAX_BYTES, RequestGuard
from app.rollback.routes import router as rollback_router
from app.scheduler import Job, build_scheduler
from app.services import Services, ServicesRef, build_services
from app.slo import service as slos
from app.slo.jobs import evaluate_slos
from app.slo.routes import router as slo_router
from app.slo.spec import load_specs
from app.telemetry import Metrics, MetricsMiddleware, RouteTemplates, setup_tracing
from app.web import mount_console

log = logging.getLogger(__name__)


def build_jobs(services: Services, leadership: Leadership) -> list[Job]:
    """The whole background workload, run only by the scheduler leader (every replica ticks)."""
    options = services.config.incidents
    lead = leadership.guard
    interval = services.settings.eval_interval
    return [
        Job("slo-evaluation", lead(lambda: evaluate_slos(services)), interval, run_at_start=True),
        Job("incident-escalation", lead(lambda: incident_jobs.escalate(services, options)), 60),
        Job("release-freeze-watch", lead(lambda: gate_jobs.watch_freezes(services)), interval),
        Job("planned-window-silences", lead(lambda: planned_silences.watch(services)), interval),
        Job("incident-auto-resolve", lead(lambda: incident_jobs.auto_resolve(services, options)), 300),
    ]


def follow_leadership(services: Services, leadership: Leadership) -> None:
    """On becoming the leader, continue from the stored SLO states; show who leads on /metrics."""
    gauge = services.metrics.scheduler_leader.labels(leadership.replica)
    gauge.set(0)

    def changed(leading: bool) -> None:
        if leading:
            with Session(services.engine) as session:
                services.slo_engine.reload(slos.latest_states(session, list(services.slo_engine.by_id)))
        else:
            # The SLO gauges are the leader's: a replica that stopped leading stops reporting its last
            # figures, or a dashboard's max() across replicas would read a stale state or budget.
            services.metrics.slos.clear()
        gauge.set(1 if leading else 0)

    leadership.on_change(changed)


def delivers_in_child(settings: Settings, config: FileConfig) -> bool:
    """Whether `serve` runs the outbox worker in a child process (sloguard.yaml `outbox.worker`)."""
    postgresql = not settings.database_url.startswith("sqlite")
    if config.outbox.worker == "process" and not postgresql:
        raise ConfigError(
            f"{settings.config_file}: outbox.worker: 'process' needs PostgreSQL (a SQLite database is "
            "written by one process); use 'thread' or 'auto'"
        )
    return config.outbox.worker == "process" or (config.outbox.worker == "auto" and postgresql)


def create_app(settings: Settings, *, own_processes: bool = False) -> FastAPI:
    """Build the app; bad settings, sloguard.yaml or SLO specs raise here, before anything starts.
    `own_processes`: the app may start processes of its own (`serve`'s outbox worker on PostgreSQL);
    an app built inside a test's process delivers from its own threads."""
    file_config = load_file_config(settings.config_file)
    in_child = delivers_in_child(settings, file_config) and own_processes
    slo_specs = load_specs([settings.slo_dir]) if settings.slo_dir.exists() else []
    metrics, events, ref = Metrics(), Dispatcher(), ServicesRef()

    @asynccontextmanager
    async def lifespan(fastapi_app: FastAPI) -> AsyncIterator[None]:
        # Each piece is closed (last opened, first closed) however far start-up got.
        async with AsyncExitStack() as opened:
            services = build_services(settings, file_config, slo_specs, events=events, metrics=metrics)
            opened.callback(services.close)
            ref.set(services)
            opened.callback(ref.set, None)
            fastapi_app.state.services = services
            if settings.slack_app_token is not None:
                from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

                # Socket Mode: Slack delivers over a websocket this process opens; no public URL needed.
                assert bolt is not None  # an app token needs a bot token (Settings checks it)
                socket_mode = AsyncSocketModeHandler(bolt, settings.slack_app_token.get_secret_value())
                await socket_mode.connect_async()  # type: ignore[no-untyped-call]
                opened.push_async_callback(socket_mode.close_async)
            setup_tracing(fastapi_app, services.engine)
            leadership = leadership_for(settings.database_url, settings.leader_takeover)
            # Every replica delivers the outbox (services.close stops it, letting deliveries finish).
            services.start_worker(leadership.replica, in_child=in_child)
            follow_leadership(services, leadership)
            fastapi_app.state.leadership = leadership
            opened.callback(leadership.stop)
            scheduler = build_scheduler(build_jobs(services, leadership))
            opened.callback(lambda: scheduler.shutdown(wait=True) if scheduler.running else None)
            if settings.scheduler_enabled:
                leadership.start()
                scheduler.start()
            # /readyz answers from it, never waiting on a source
            readiness = Readiness(services.engine, services.sources.named())
            opened.callback(readiness.stop)
            await readiness.start()
            fastapi_app.state.readiness = readiness
            # What start-up loaded (the SLO specs, config, templates) lives as long as the service: kept
            # out of the cyclic collector's full passes, which otherwise walk it on every page view that
            # allocates much (bench/ui.py measured this on the console's overview at 5,000 SLOs).
            gc.collect()
            gc.freeze()
            opened.callback(gc.unfreeze)
            found = features.features(settings, file_config)
            log.info(
                f"sloguard started: {features.line(found)}",
                extra={"version": package.__version__} | features.record(found),
            )
            yield

    fastapi_app = FastAPI(
        title="sloguard",
        version=package.__version__,
        lifespan=lifespan,
        description="SLOs, incidents and guarded model rollback for ML services.",
    )
    fastapi_app.state.settings = settings
    # Added before the metrics middleware, so it runs inside it: its refusals are counted and logged too.
    fastapi_app.add_middleware(
        RequestGuard, max_bytes=REQUEST_MAX_BYTES, own_body_paths=frozenset({ALERTMANAGER_PATH})
    )
    fastapi_app.add_middleware(MetricsMiddleware, metrics=metrics, templates=RouteTemplates())
    install_error_handlers(fastapi_app)

    fastapi_app.include_router(health_router)
    fastapi_app.include_router(webhook_router)
    fastapi_app.include_router(mlflow_webhook_router)
    bolt = mount_slack(fastapi_app, settings, ref) if settings.slack_enabled else None
    # Every /api/v1 route authenticates its caller; each mutating one names the scope it needs.
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(authenticate)], responses=API_PROBLEMS)
    api.include_router(incidents_router)
    api.include_router(slo_router)
    api.include_router(rollback_router)
    api.include_router(identity_router)
    api.include_router(gates_router)
    api.include_router(changes_router)
    fastapi_app.include_router(api)
    fastapi_app.include_router(flagger_router)
    mount_console(fastapi_app)  # the web console at / (after the API: its error pages wrap their answers)
    return fastapi_app
