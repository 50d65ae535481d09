"""The FastAPI application: `create_app(settings)` builds one, with everything it needs in its lifespan."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, Depends, FastAPI

import app as package
from app import db
from app.api import install_error_handlers, require_api_token
from app.config import Settings, load_file_config
from app.health import router as health_router
from app.incidents.routes import router as incidents_router
from app.scheduler import Job, build_scheduler
from app.sources.elasticsearch import ElasticsearchSource
from app.sources.prometheus import PrometheusSource
from app.telemetry import Metrics, RouteTemplates, metrics_middleware, setup_tracing

log = logging.getLogger(__name__)


def build_sources(settings: Settings) -> dict[str, Any]:
    sources: dict[str, Any] = {
        "prometheus": PrometheusSource(
            str(settings.prometheus_url),
            timeout=settings.source_timeout,
            tenant=settings.prometheus_tenant,
        )
    }
    if settings.elasticsearch_url is not None:
        api_key = settings.elasticsearch_api_key
        sources["elasticsearch"] = ElasticsearchSource(
            str(settings.elasticsearch_url),
            timeout=settings.source_timeout,
            api_key=api_key.get_secret_value() if api_key else None,
        )
    return sources


def build_jobs(fastapi_app: FastAPI) -> list[Job]:
    """Later capabilities add their jobs here; the list is the whole background workload."""
    return []


def create_app(settings: Settings) -> FastAPI:
    file_config = load_file_config(settings.config_file)

    @asynccontextmanager
    async def lifespan(fastapi_app: FastAPI) -> AsyncIterator[None]:
        engine = db.make_engine(settings.database_url)
        db.upgrade(engine)
        fastapi_app.state.engine = engine
        fastapi_app.state.sources = build_sources(settings)
        setup_tracing(fastapi_app, engine)
        scheduler = build_scheduler(build_jobs(fastapi_app))
        if settings.scheduler_enabled:
            scheduler.start()
        fastapi_app.state.scheduler = scheduler
        log.info("sloguard started", extra={"version": package.__version__})
        try:
            yield
        finally:
            if scheduler.running:
                scheduler.shutdown(wait=True)
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
    fastapi_app.middleware("http")(metrics_middleware(metrics, RouteTemplates()))
    install_error_handlers(fastapi_app)

    fastapi_app.include_router(health_router)
    api = APIRouter(prefix="/api/v1", dependencies=[Depends(require_api_token)])
    api.include_router(incidents_router)
    fastapi_app.include_router(api)
    return fastapi_app
