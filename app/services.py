"""The services every door uses, built once from Settings and sloguard.yaml, and typed.

`serve` (the app's lifespan), the CLI and the tests build the same `Services`: the database engine
(migrated, pinned to its installation), the sources, the SLO engine, the domain event dispatcher and the
metrics. A door names the services it uses (`ServicesDep` in routes, a `Services` argument for Slack
listeners and jobs); nothing reaches for an untyped bag of attributes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from slack_sdk import WebClient
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import db, outbox
from app.config import FileConfig, Settings
from app.events import Dispatcher
from app.identity.throttle import Throttle
from app.ml import budget
from app.ml import service as ml
from app.slo import service as slos
from app.slo.model import Slo
from app.slo.service import SloEngine
from app.sources.elasticsearch import ElasticsearchSource
from app.sources.mlflow import MlflowRegistry
from app.sources.prometheus import PrometheusSource
from app.telemetry import Metrics

if TYPE_CHECKING:
    from app.outbox.process import ChildWorker

log = logging.getLogger(__name__)


@dataclass
class Sources:
    """The backends sloguard reads, each built with its URL and timeout (tests hand in local servers)."""

    prometheus: PrometheusSource
    elasticsearch: ElasticsearchSource | None = None
    mlflow: MlflowRegistry | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> Sources:
        elasticsearch = None
        if settings.elasticsearch_url is not None:
            api_key = settings.elasticsearch_api_key
            elasticsearch = ElasticsearchSource(
                str(settings.elasticsearch_url),
                timeout=settings.source_timeout,
                api_key=api_key.get_secret_value() if api_key else None,
            )
        return cls(
            prometheus=PrometheusSource(
                str(settings.prometheus_url),
                timeout=settings.source_timeout,
                tenant=settings.prometheus_tenant,
            ),
            elasticsearch=elasticsearch,
            mlflow=(
                MlflowRegistry(str(settings.mlflow_url), timeout=settings.source_timeout)
                if settings.mlflow_url is not None
                else None
            ),
        )

    def named(self) -> dict[str, Any]:
        """Each configured source by name (readiness reports them; close closes them)."""
        found: dict[str, Any] = {"prometheus": self.prometheus}
        if self.mlflow is not None:
            found["mlflow"] = self.mlflow
        if self.elasticsearch is not None:
            found["elasticsearch"] = self.elasticsearch
        return found

    def for_evidence(self) -> ml.Sources:
        return ml.Sources(self.prometheus, self.elasticsearch, self.mlflow)

    def close(self) -> None:
        for source in self.named().values():
            source.close()


@dataclass
class Services:
    settings: Settings
    config: FileConfig
    engine: Engine
    sources: Sources
    slo_engine: SloEngine
    events: Dispatcher = field(default_factory=Dispatcher)
    metrics: Metrics = field(default_factory=Metrics)
    throttle: Throttle = field(default_factory=Throttle)  # failed token attempts per client address
    # What the latest evaluation cycle saw, for /readyz (set by the evaluation job).
    last_evaluation: dict[str, Any] | None = None
    # The outbox's handlers by kind (what `serve`'s delivery worker runs), built with the services.
    handlers: dict[str, outbox.Handler] = field(default_factory=dict)
    # Budget per version as the API and the console last read it (a minute at most).
    budgets: budget.Recent = field(default_factory=budget.Recent)
    worker: outbox.Worker | None = None  # started by `serve`
    child_worker: ChildWorker | None = None  # `serve` on PostgreSQL: the process that delivers

    def start_worker(
        self,
        replica: str = "",
        *,
        in_child: bool = False,
        counted: Callable[[str, str], None] | None = None,
        measure: bool = True,
    ) -> outbox.Worker:
        """Deliver the outbox (every replica does), after recording the effects that predate the outbox
        (an upgrade from a version without it): in this process's threads, or with `in_child` in a
        child process (PostgreSQL; see app/outbox/process.py) while this one measures the backlog."""
        from app.chat import notify
        from app.outbox.process import ChildWorker
        from app.rollback import service as rollbacks

        slack = notify.POST in self.handlers

        def backfill(session: Session, events: db.Events) -> tuple[int, int]:
            posts = notify.backfill(session) if slack else 0
            return posts, rollbacks.backfill(session, self.config)

        posts, verifications = db.unit_of_work(self.engine, None, backfill)
        if posts or verifications:
            log.info(
                "effects recorded for work from before the outbox",
                extra={"posts": posts, "verifications": verifications},
            )
        self.worker = outbox.Worker(
            self.engine,
            self.handlers,
            self.config.outbox,
            dispatcher=self.events,
            metrics=self.metrics,
            replica=replica,
            counted=counted,
        )
        if in_child:
            self.child_worker = ChildWorker(self.engine, replica, self.metrics)
            self.child_worker.start()
        self.worker.start(deliver=not in_child, measure=measure)
        return self.worker

    def delivery(self) -> dict[str, Any]:
        """Where this replica's deliveries run, for /readyz."""
        if self.child_worker is not None:
            return self.child_worker.describe()
        return {"in": "this process"}

    def close(self) -> None:
        if self.child_worker is not None:
            self.child_worker.stop()
        if self.worker is not None:
            self.worker.stop()
        self.sources.close()
        self.engine.dispose()


def slo_engine_for(settings: Settings, config: FileConfig, specs: list[Slo], sources: Sources) -> SloEngine:
    return SloEngine(specs, sources.prometheus, sources.elasticsearch, config.slo, config.planned_windows)


def build_services(
    settings: Settings,
    config: FileConfig,
    specs: list[Slo],
    *,
    events: Dispatcher | None = None,
    metrics: Metrics | None = None,
) -> Services:
    """Open the database (migrating it and pinning its installation), the sources and the SLO engine,
    which continues from the SLO states stored by the last cycle."""
    engine = db.make_engine(settings.database_url)
    try:
        db.upgrade(engine)
        db.remember_installation(engine)  # from here on, a replaced or removed database is refused
        sources = Sources.from_settings(settings)
        slo_engine = slo_engine_for(settings, config, specs, sources)
        with Session(engine) as session:
            slo_engine.restore(slos.latest_states(session, list(slo_engine.by_id)))
    except BaseException:
        engine.dispose()
        raise
    services = Services(
        settings=settings,
        config=config,
        engine=engine,
        sources=sources,
        slo_engine=slo_engine,
        events=events or Dispatcher(),
        metrics=metrics or Metrics(),
    )
    wire_effects(services)
    services.metrics.planned.source = lambda: slo_engine.planned_states(datetime.now(UTC))
    return services


def slack_client(settings: Settings) -> WebClient | None:
    """The Web API client the outbox's Slack handlers use: no retry handlers of its own (the outbox
    retries, and knows which calls may have gone out)."""
    if settings.slack_bot_token is None:
        return None
    return WebClient(
        token=settings.slack_bot_token.get_secret_value(),
        base_url=str(settings.slack_api_url),
        timeout=int(settings.source_timeout),
        retry_handlers=[],
    )


def wire_effects(services: Services) -> None:
    """What reacts to domain events inside their unit of work, and the outbox handlers that deliver what
    those reactions record. The same in `serve`, the CLI and tests, so a change made anywhere has the same
    consequences (delivered by `serve`'s worker)."""
    from app.chat import notify
    from app.incidents import record
    from app.incidents import service as incidents
    from app.postmortems import service as postmortems
    from app.rollback import service as rollbacks

    config, events = services.config, services.events
    incidents.subscribe(events, config.incidents)
    ml.subscribe(events, config)
    record.subscribe(events)  # before the draft: measured first, in the same group
    postmortems.subscribe(events)
    rollbacks.subscribe(events, config)
    handlers: dict[str, outbox.Handler] = {}
    handlers |= ml.Enricher(
        services.engine, config, services.sources.for_evidence(), services.slo_engine
    ).handlers()
    handlers |= record.Measurer(services.engine, services.slo_engine, config.slo).handlers()
    handlers |= postmortems.Writer(services).handlers()
    handlers |= rollbacks.Verifier(services.engine, services.slo_engine).handlers()
    if services.settings.alertmanager_url is not None:
        from app.planned.silences import Silencer

        silencer = Silencer(services.engine, str(services.settings.alertmanager_url))
        handlers |= silencer.handlers()
    client = slack_client(services.settings)
    if client is not None:
        notify.subscribe(events, config)
        settings = services.settings
        public = str(settings.public_url).rstrip("/") if settings.public_url else None
        effects = notify.SlackEffects(
            client, services.engine, config, settings.slack_channel, public, services.slo_engine
        )
        handlers |= effects.handlers()
    services.handlers = handlers


class ServicesRef:
    """The app's services, there once its lifespan has built them: the doors (Slack listeners among them)
    are wired when the app is created, before the database is opened, and look the services up per call."""

    def __init__(self) -> None:
        self._services: Services | None = None

    def set(self, services: Services | None) -> None:
        self._services = services

    def get(self) -> Services:
        if self._services is None:
            raise RuntimeError("sloguard's services are not started (outside the app's lifespan)")
        return self._services
