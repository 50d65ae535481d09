"""Liveness, readiness and metrics: the routes an orchestrator and a Prometheus scrape use.

`/readyz` never waits on a source. A background probe pings each source every PROBE_INTERVAL seconds,
each ping cut off after PROBE_TIMEOUT; `/readyz` reports the newer of the probe's answer and the
source's own latest call (an evaluation cycle's queries, say), and when it came. The database is the
one thing `/readyz` asks while it answers (it is what readiness means: without it nothing can be
stored), on a thread of its own, one check at a time however many probes arrive, and never waited on
for longer than DATABASE_CHECK_TIMEOUT. Both routes are `async` and take no sync dependency, so they
never queue for the threadpool that the API and the webhook use.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session

from app import db
from app.api import EngineDep, services_of
from app.errors import SourceError, StorageError
from app.incidents import service as incidents
from app.incidents.models import Severity
from app.sources import SourceCheck

log = logging.getLogger(__name__)
router = APIRouter(tags=["health"])

PROBE_INTERVAL = 10.0  # seconds between two rounds of source pings
PROBE_TIMEOUT = 2.0  # one ping's limit; a source slower than this is reported as timing out
PROBE_GRACE = 0.5  # how much longer than its timeout a round waits for a ping that ignores it (DNS)
DATABASE_CHECK_TIMEOUT = 2.0  # the k8s readiness probe allows 5 s


class Pingable(Protocol):
    """A source as the probe sees it: a ping with a timeout of its own, and how its latest call ended."""

    last_call: SourceCheck | None

    def ping(self, timeout: float | None = None) -> None: ...


NOT_CHECKED: dict[str, Any] = {"state": "unknown", "detail": "not checked yet", "checked_at": None}


class SourceProbe:
    """Pings every source in the background; `results()` is the newest news of each.

    Each source has its own worker, so one that hangs delays no other. A ping that outlives its
    timeout is reported as a timeout and its source is not pinged again until it returns: a stuck
    source holds one thread, never a growing number of them.
    """

    def __init__(
        self,
        sources: Mapping[str, Pingable],
        *,
        interval: float = PROBE_INTERVAL,
        timeout: float = PROBE_TIMEOUT,
    ) -> None:
        self.sources = dict(sources)
        self.interval = interval
        self.timeout = timeout
        self._results: dict[str, SourceCheck] = {}
        self._running: dict[str, Future[None]] = {}
        self._started: dict[str, float] = {}  # monotonic start of each source's latest ping
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._stopped: Future[None] = Future()  # the same news, for concurrent.futures.wait
        self._first_round = threading.Event()
        self._pool = ThreadPoolExecutor(
            max_workers=max(1, len(self.sources)), thread_name_prefix="source-probe"
        )
        self._thread = threading.Thread(target=self._loop, name="source-probe", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wait_first_round(self, timeout: float) -> bool:
        return self._first_round.wait(timeout)

    def stop(self) -> None:
        """Stop at once; a ping under way ends on its own timeout, on a thread nobody waits for."""
        self._stop.set()
        if not self._stopped.done():
            self._stopped.set_result(None)
        if self._thread.is_alive():
            self._thread.join(timeout=self.timeout + PROBE_GRACE + 1)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def results(self) -> dict[str, SourceCheck | None]:
        """Each source's newest news: this probe's, or its own latest call's, whichever came later."""
        with self._lock:
            probed = dict(self._results)
        found: dict[str, SourceCheck | None] = {}
        for name, source in self.sources.items():
            seen = [check for check in (probed.get(name), source.last_call) if check is not None]
            found[name] = max(seen, key=lambda check: check.checked_at) if seen else None
        return found

    def probe_once(self) -> None:
        """One round: every source pinged at once; waits at most the timeout (and a little grace)."""
        pending: dict[str, Future[None]] = {}
        for name, source in self.sources.items():
            running = self._running.get(name)
            if running is not None and not running.done():
                stuck = time.monotonic() - self._started[name]
                detail = f"{name}: no answer for {stuck:.0f}s (the previous check has not returned)"
                self._record(name, SourceCheck("timeout", datetime.now(UTC), stuck, detail))
                continue
            self._started[name] = time.monotonic()
            pending[name] = self._running[name] = self._pool.submit(self._ping, name, source)
        self._wait(set(pending.values()), deadline=time.monotonic() + self.timeout + PROBE_GRACE)
        for name, future in pending.items():
            if not future.done():
                waited = time.monotonic() - self._started[name]
                detail = f"{name}: no answer within {self.timeout:g}s"
                self._record(name, SourceCheck("timeout", datetime.now(UTC), waited, detail))

    def _wait(self, pending: set[Future[Any]], deadline: float) -> None:
        """Until every ping has returned, the deadline has passed or `stop()` was called."""
        while pending and not self._stop.is_set() and (left := deadline - time.monotonic()) > 0:
            _, pending = wait(pending | {self._stopped}, timeout=left, return_when=FIRST_COMPLETED)
            pending.discard(self._stopped)

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.probe_once()
            self._first_round.set()
            self._stop.wait(self.interval)

    def _ping(self, name: str, source: Pingable) -> None:
        started = time.monotonic()
        failure: SourceError | None = None
        try:
            source.ping(timeout=self.timeout)
        except SourceError as exc:
            failure = exc
        except Exception as exc:  # a bug in one source must not stop the probe
            log.exception("source probe failed", extra={"source": name})
            failure = SourceError(f"{name}: {type(exc).__name__}")
        self._record(name, SourceCheck.ended(started, failure))

    def _record(self, name: str, check: SourceCheck) -> None:
        with self._lock:
            before = self._results.get(name)
            self._results[name] = check
        if (before.state if before else "ok") != check.state:
            # Once when it starts failing and once when it is back: both are worth an operator's eye.
            log.warning(
                f"source {name} recovered"
                if check.state == "ok"
                else f"source {name} failing: {check.detail}",
                extra={"source": name, "to": check.state, "detail": check.detail},
            )


@dataclass(frozen=True)
class DatabaseState:
    ready: bool
    status: str  # "ok", or why not
    installation: str | None = None


class DatabaseCheck:
    """The database as /readyz sees it: one check at a time on a thread of its own, shared by every
    /readyz that arrives while it runs, and never waited on for more than `timeout` seconds.

    A cache would also be quick, but would keep saying "ok" for up to its age after the database went
    away or was replaced; sharing one in-flight check is quick enough (one SELECT) and always current.
    """

    def __init__(self, engine: Engine, timeout: float = DATABASE_CHECK_TIMEOUT) -> None:
        self.engine = engine
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="readyz-database")
        self._running: asyncio.Future[DatabaseState] | None = None

    async def check(self) -> DatabaseState:
        if self._running is None or self._running.done():
            self._running = asyncio.get_running_loop().run_in_executor(self._pool, self._check_now)
        try:
            return await asyncio.wait_for(asyncio.shield(self._running), self.timeout)
        except TimeoutError:
            return DatabaseState(False, f"unreachable: no answer within {self.timeout:g}s")

    def _check_now(self) -> DatabaseState:
        try:
            installation = db.check(self.engine)
        except StorageError as exc:
            log.error("database replaced or removed", extra={"reason": str(exc)})
            return DatabaseState(False, str(exc))
        except SQLAlchemyError as exc:
            log.warning("database not reachable", extra={"error": type(exc).__name__})
            return DatabaseState(False, f"unreachable: {type(exc).__name__}")
        except Exception as exc:  # the driver's own surprises: still an answer, never a 500 from /readyz
            log.exception("database check failed")
            return DatabaseState(False, f"unreachable: {type(exc).__name__}")
        return DatabaseState(True, "ok", installation)

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


class Readiness:
    """What /readyz reports from: the database check and the source probe, started in the lifespan."""

    def __init__(self, engine: Engine, sources: Mapping[str, Pingable]) -> None:
        self.database = DatabaseCheck(engine)
        self.sources = SourceProbe(sources)

    async def start(self) -> None:
        self.sources.start()
        # So that the first /readyz already knows each source: start-up waits for the first round,
        # which a hanging source can stretch to PROBE_TIMEOUT (plus grace), never longer.
        await asyncio.to_thread(self.sources.wait_first_round, self.sources.timeout + PROBE_GRACE + 1)

    def stop(self) -> None:
        self.sources.stop()
        self.database.close()


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up and serving requests."""
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Not ready: the database is unavailable or replaced"}})
async def readyz(request: Request) -> JSONResponse:
    """Ready when the database answers and is still the one this process started on; sources and the
    outbox's backlog are reported (from background measurements) but never fail readiness.

    A Prometheus outage must not take sloguard out of the load balancer: it is exactly when people
    need the incident tooling to keep working.
    """
    state = request.app.state
    readiness: Readiness = state.readiness
    services = services_of(request)
    database = await readiness.database.check()
    checks = readiness.sources.results()
    body: dict[str, Any] = {
        "status": "ready" if database.ready else "not ready",
        "database": database.status,
        "sources": {name: check.summary() if check else "not checked yet" for name, check in checks.items()},
        "source_checks": {name: check.as_dict() if check else NOT_CHECKED for name, check in checks.items()},
    }
    if database.installation is not None:
        body["installation"] = database.installation
    leadership = getattr(state, "leadership", None)
    if leadership is not None:
        body["scheduler"] = leadership.describe() | {"enabled": services.settings.scheduler_enabled}
    last_cycle = services.last_evaluation
    if last_cycle is not None:
        body["slo_evaluation"] = last_cycle
    if services.worker is not None:  # the backlog of effects still to deliver: reported, never failing
        body["outbox"] = services.worker.latest.summary() | {"delivery": services.delivery()}
    return JSONResponse(body, status_code=200 if database.ready else 503)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition"}},
)
def metrics(request: Request, engine: EngineDep) -> Response:
    registry = services_of(request).metrics
    try:
        with Session(engine) as session:
            counts = incidents.open_counts_by_severity(session)
        for severity in Severity:
            registry.incidents_open.labels(severity.value).set(counts.get(severity.value, 0))
    except (SQLAlchemyError, StorageError):
        log.warning("incident counts unavailable for /metrics")
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
