"""SLO evaluation: measure every SLO from its source, run the burn-rate state machine, store and announce.

The engine keeps each SLO's tier memory between cycles (for the clear-after-hold rule); `run_cycle`
is what the scheduler calls: evaluate, write one SloStatus row per SLO, update /metrics, publish
breach/clear events, prune old rows.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db
from app.config import SloOptions
from app.errors import NotFound, SourceError
from app.events import Dispatcher, SloBreached, SloCleared
from app.planned.windows import PlannedWindow
from app.slo import burn, coverage, planned, queries
from app.slo.burn import Coverage, State
from app.slo.model import ElasticsearchSli, LatencySli, Slo
from app.slo.models import SPARK_BUCKET, SloSpark, SloStatus
from app.telemetry import Metrics

log = logging.getLogger(__name__)


class PrometheusLike(Protocol):
    def query(self, promql: str, at: datetime | None = None) -> list[dict[str, Any]]: ...


class ElasticsearchLike(Protocol):
    def search(self, index: str, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True)
class SloResult:
    slo: Slo
    state: State
    evaluated_at: datetime
    evaluation: burn.Evaluation | None = None
    detail: str | None = None
    previous_state: State | None = None
    coverage: Coverage | None = None  # where the period's budget came from, and how much it covers

    @property
    def firing_tier(self) -> str | None:
        return self.evaluation.memory.tier if self.evaluation and self.state in burn.SEVERITY_RANK else None

    def windows(self) -> dict[str, dict[str, float | None]]:
        if self.evaluation is None:
            return {}
        return {
            name: {
                "error_ratio": figures.error_ratio,
                "burn_rate": figures.burn_rate,
                "events": figures.events,
            }
            for name, figures in self.evaluation.windows.items()
        }

    def as_dict(self) -> dict[str, Any]:
        """The contract's JSON shape (`sloguard slo status --json`, `GET /api/v1/slos`)."""
        evaluation = self.evaluation
        return {
            "id": self.slo.id,
            "service": self.slo.service,
            "objective": self.slo.objective,
            "state": self.state.value,
            "windows": self.windows(),
            "budget_remaining": evaluation.budget_remaining if evaluation else None,
            "time_to_exhaustion_seconds": evaluation.time_to_exhaustion if evaluation else None,
            "tier": self.firing_tier,
            "detail": self.detail,
            "evaluated_at": self.evaluated_at.isoformat().replace("+00:00", "Z"),
            "budget": self.coverage.as_dict() if self.coverage else None,
        }


@dataclass
class CycleStats:
    queries: int = 0
    batch_hits: int = 0
    direct: int = 0
    searches: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def count(self, what: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)


class SloEngine:
    """Evaluates a fixed set of SLOs against its sources; remembers tier state between cycles."""

    def __init__(
        self,
        slos: Sequence[Slo],
        prometheus: PrometheusLike | None,
        elasticsearch: ElasticsearchLike | None,
        options: SloOptions | None = None,
        planned: Sequence[PlannedWindow] = (),
    ) -> None:
        self.slos = list(slos)
        # Maintenance announced ahead (app/planned): the events inside it are left out of each window.
        self.planned = list(planned)
        self.by_id = {slo.id: slo for slo in self.slos}
        self.prometheus = prometheus
        self.elasticsearch = elasticsearch
        self.options = options or SloOptions()
        self.memory: dict[str, burn.TierMemory] = {}
        self.last_stats = CycleStats()
        self._buckets: dict[tuple[str, str], list[str]] = {}
        self._lock = threading.Lock()
        # How far back data reaches (app/slo/coverage.py): the rules' first sample per SLO, the raw SLI's,
        # when each was last asked, and the raw period ratio read while the rules fall short.
        self._rules_first: dict[str, float] = {}
        self._raw_first: dict[str, float] = {}
        self._asked: dict[tuple[str, str], datetime] = {}
        self._raw_period: dict[str, tuple[datetime, float | None]] = {}

    # ------------------------------------------------------------ measuring

    def _query(self, stats: CycleStats, promql: str, at: datetime) -> list[dict[str, Any]]:
        if self.prometheus is None:
            raise SourceError("no Prometheus configured")
        stats.count("queries")
        return self.prometheus.query(promql, at=at)

    def _check_buckets(self, stats: CycleStats, slo: Slo, at: datetime) -> str | None:
        """For histogram SLIs: None when the threshold is a bucket, else the reason it is not."""
        sli = slo.sli
        if not isinstance(sli, LatencySli):
            return None
        key = (sli.metric, sli.selector)
        if key not in self._buckets:
            result = self._query(stats, sli.buckets_query(), at)
            self._buckets[key] = sorted(
                (sample["metric"].get("le", "") for sample in result), key=lambda le: float(le)
            )
        buckets = self._buckets[key]
        if not buckets or any(float(le) == sli.threshold for le in buckets):
            return None
        return f"threshold {sli.le}s is not a bucket of {sli.metric}; its le buckets are {', '.join(buckets)}"

    def _direct(
        self, stats: CycleStats, slo: Slo, at: datetime, spans: planned.Spans
    ) -> burn.Measurement | str:
        try:
            problem = self._check_buckets(stats, slo, at)
            if problem is not None:
                return problem
            stats.count("direct")
            if spans:
                return self._direct_excluding(stats, slo, at, spans)
            return queries.parse_direct(slo, at, self._query(stats, queries.direct_query(slo, at), at))
        except (SourceError, queries.MeasurementError) as exc:
            return str(exc)

    def planned_spans(self, slo: Slo, at: datetime) -> planned.Spans:
        return planned.spans(self.planned, slo, at)

    def planned_states(self, at: datetime) -> list[tuple[str, bool]]:
        return planned.states(self.planned, self.slos, at)

    def _direct_excluding(
        self, stats: CycleStats, slo: Slo, at: datetime, spans: planned.Spans
    ) -> burn.Measurement:
        """Measured directly, less what the planned spans held (app/slo/planned.py)."""
        parts = queries.parse_parts(slo, self._query(stats, queries.direct_query(slo, at), at))
        inside = planned.excluded(slo, at, spans, lambda promql, moment: self._query(stats, promql, moment))
        return queries.measurement_excluding(slo, at, parts, inside)

    def _search(
        self, stats: CycleStats, slo: Slo, at: datetime, spans: planned.Spans
    ) -> burn.Measurement | str:
        if self.elasticsearch is None:
            return "SLOGUARD_ELASTICSEARCH_URL is not set"
        index, body = queries.es_search(slo, at, self.options.ingest_delay, spans)
        try:
            stats.count("searches")
            return queries.parse_es(slo, at, self.elasticsearch.search(index, body))
        except (SourceError, queries.MeasurementError) as exc:
            return str(exc)

    def _batch(
        self, stats: CycleStats, slos: list[Slo], at: datetime, pool: ThreadPoolExecutor
    ) -> dict[str, burn.Measurement | str]:
        windows = queries.batch_window_names(slos)
        answers = list(pool.map(lambda w: (w, self._query(stats, queries.batch_query(w), at)), windows))
        parts = queries.new_batch()
        for window, result in answers:
            queries.parse_batch(window, result, parts)
        found: dict[str, burn.Measurement | str] = {}
        for slo in slos:
            if slo.id in parts and parts[slo.id].ratio:
                problem = self._check_buckets(stats, slo, at)
                found[slo.id] = problem or queries.measurement_from_batch(slo, at, parts[slo.id])
                stats.count("batch_hits")
        return found

    def measure(self, at: datetime) -> dict[str, burn.Measurement | str]:
        """Each SLO's measurement, or the reason it could not be measured."""
        stats = CycleStats()
        results: dict[str, burn.Measurement | str] = {}
        prometheus_slos = [slo for slo in self.slos if slo.is_prometheus]
        log_slos = [slo for slo in self.slos if isinstance(slo.sli, ElasticsearchSli)]
        with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
            # The planned time inside each SLO's windows, worked out once a cycle. The recording rules
            # cannot leave a planned window's events out: those SLOs are asked directly.
            spans = {slo.id: self.planned_spans(slo, at) for slo in self.slos}
            batched = [slo for slo in prometheus_slos if not spans[slo.id]]
            if batched and self.options.batch:
                try:
                    results.update(self._batch(stats, batched, at, pool))
                except SourceError as exc:
                    # Prometheus is down: asking it again per SLO would only multiply the timeouts.
                    results.update({slo.id: str(exc) for slo in batched})
            rest = [slo for slo in prometheus_slos if slo.id not in results]
            for slo, outcome in zip(
                rest, pool.map(lambda s: self._direct(stats, s, at, spans[s.id]), rest), strict=True
            ):
                results[slo.id] = outcome
            for slo, outcome in zip(
                log_slos, pool.map(lambda s: self._search(stats, s, at, spans[s.id]), log_slos), strict=True
            ):
                results[slo.id] = outcome
            from_rules = {slo.id for slo in prometheus_slos if slo.id not in {s.id for s in rest}}
            measured = [s for s in prometheus_slos if isinstance(results[s.id], burn.Measurement)]
            if measured:
                self._cover(stats, measured, from_rules, results, at, pool)
        self.last_stats = stats
        return results

    # ------------------------------------------------------------ the period's coverage

    def _due(self, kind: str, slo: Slo, at: datetime) -> bool:
        asked = self._asked.get((kind, slo.id))
        return asked is None or (at - asked).total_seconds() >= coverage.RECHECK or at < asked

    def _ask_reach(
        self, stats: CycleStats, kind: str, slos: list[Slo], at: datetime, pool: ThreadPoolExecutor
    ) -> None:
        """Ask how far back the rules (kind "rules") or the raw SLIs ("raw") of `slos` reach. A failure is
        remembered as an ask too: a slow subquery is not retried every cycle."""
        for slo in slos:
            self._asked[(kind, slo.id)] = at
        if kind == coverage.RULES:
            periods = sorted({queries.period_window_seconds(slo, at) for slo in slos})
            texts = [coverage.rules_reach_query(period) for period in periods]
            label, known = "sloth_id", self._rules_first
        else:
            texts = [coverage.raw_reach_query(chunk, at) for chunk in coverage.chunks(slos)]
            label, known = coverage.SLO_LABEL, self._raw_first
        try:
            answers = list(pool.map(lambda text: self._query(stats, text, at), texts))
        except SourceError as exc:
            log.warning("could not ask how far back the data reaches", extra={"error": str(exc)})
            return
        wanted = {slo.id for slo in slos}
        found: dict[str, float] = {}
        for answer in answers:
            for slo_id, first in coverage.parse_reach(answer, label).items():
                if slo_id in wanted:
                    found[slo_id] = first
        for slo in slos:  # the rules were wiped or replaced: what they hold now counts
            if slo.id in found:
                known[slo.id] = found[slo.id]
            else:
                known.pop(slo.id, None)

    def _reach(self, kind: str, slo: Slo, at: datetime) -> float | None:
        known = self._rules_first if kind == coverage.RULES else self._raw_first
        return coverage.reach(known.get(slo.id), at, queries.period_window_seconds(slo, at))

    def _covers(self, kind: str, slo: Slo, at: datetime) -> bool:
        seconds, period = self._reach(kind, slo, at), queries.period_window_seconds(slo, at)
        return seconds is not None and not Coverage(kind, seconds, period).partial

    def _raw_reaches_further(self, slo: Slo, at: datetime) -> bool:
        """The raw data covers more of the period than the rules (or how far it reaches is not known)."""
        raw, ruled = self._reach(coverage.RAW, slo, at), self._reach(coverage.RULES, slo, at)
        step = burn.resolution(queries.period_window_seconds(slo, at))
        return raw is None or raw > (ruled or 0.0) + step

    def _cover(
        self,
        stats: CycleStats,
        slos: list[Slo],
        from_rules: set[str],
        results: dict[str, burn.Measurement | str],
        at: datetime,
        pool: ThreadPoolExecutor,
    ) -> None:
        """Each measurement's period budget basis and coverage; in batch mode, the raw period ratio in
        place of the rules' until they have recorded for a whole period (app/slo/coverage.py).

        No rule records a calendar period's ratio: those SLOs always read it from the raw SLI. Where the
        raw data reaches no further back than the rules (Prometheus keeps less than the period), the
        rules' ratio is as good, and cheaper."""
        ruled = [slo for slo in slos if slo.id in from_rules and slo.calendar_start is None]
        asking = [slo for slo in ruled if self._due(coverage.RULES, slo, at)]
        if asking:  # again every RECHECK even once covered: the rules may have been wiped or replaced
            self._ask_reach(stats, coverage.RULES, asking, at, pool)
        short = [slo for slo in ruled if not self._covers(coverage.RULES, slo, at)]
        calendar = [slo for slo in slos if slo.id in from_rules and slo.calendar_start is not None]
        raw = [slo for slo in slos if slo.id not in from_rules] + short + calendar
        asking = [s for s in raw if not self._covers(coverage.RAW, s, at) and self._due(coverage.RAW, s, at)]
        if asking:
            self._ask_reach(stats, coverage.RAW, asking, at, pool)
        short = [slo for slo in short if self._raw_reaches_further(slo, at)]
        ratios = self._raw_period_ratios(stats, short + calendar, at, pool)
        for slo in slos:
            outcome = results[slo.id]
            assert isinstance(outcome, burn.Measurement)
            period = queries.period_window_seconds(slo, at)
            if slo.id in from_rules and slo.id not in ratios:
                found = Coverage(coverage.RULES, self._reach(coverage.RULES, slo, at), period)
                results[slo.id] = replace(outcome, coverage=found)
                continue
            found = Coverage(coverage.RAW, self._reach(coverage.RAW, slo, at), period)
            ratio = ratios[slo.id] if slo.id in ratios else outcome.period_ratio
            results[slo.id] = replace(outcome, period_ratio=ratio, coverage=found)

    def _raw_period_ratios(
        self, stats: CycleStats, slos: list[Slo], at: datetime, pool: ThreadPoolExecutor
    ) -> dict[str, float | None]:
        """The period's error ratio from the raw SLI for `slos`, read again every refresh interval (a
        period's ratio moves slowly); None for an SLO whose query failed: unknown, not the rules'."""
        found: dict[str, float | None] = {}
        stale = []
        for slo in slos:
            cached = self._raw_period.get(slo.id)
            refresh = coverage.refresh_seconds(queries.period_window_seconds(slo, at))
            if cached is not None and 0 <= (at - cached[0]).total_seconds() < refresh:
                found[slo.id] = cached[1]
            else:
                stale.append(slo)
        groups = coverage.chunks(stale)

        def read(group: list[Slo]) -> dict[str, float | None]:
            try:
                return coverage.parse_raw_period(
                    group, self._query(stats, coverage.raw_period_query(group, at), at)
                )
            except SourceError as exc:
                log.warning("raw period ratio unavailable", extra={"error": str(exc)})
                return {slo.id: None for slo in group}

        for group, answer in zip(groups, pool.map(read, groups), strict=True):
            for slo in group:
                # A failure (None) is kept for the refresh interval too: the budget is unknown meanwhile,
                # and a slow query does not add its timeout to every cycle.
                found[slo.id] = answer.get(slo.id)
                self._raw_period[slo.id] = (at, found[slo.id])
        return found

    # ------------------------------------------------------------ evaluating

    def evaluate(self, at: datetime, *, remember: bool = True) -> list[SloResult]:
        measurements = self.measure(at)
        results = []
        with self._lock:
            for slo in self.slos:
                previous = self.memory.get(slo.id, burn.TierMemory())
                outcome = measurements.get(slo.id, "not measured")
                if isinstance(outcome, str):
                    # A source outage never reads as healthy, and never clears a firing tier either.
                    results.append(SloResult(slo, State.source_error, at, None, outcome, previous.state))
                    continue
                evaluation = burn.evaluate(
                    outcome,
                    objective=slo.objective,
                    period_seconds=slo.period_seconds,
                    tiers=slo.tiers,
                    now=at,
                    previous=previous,
                    min_events=self.options.min_events_for(slo.id),
                )
                if remember and evaluation.state not in (State.no_data, State.insufficient_data):
                    self.memory[slo.id] = evaluation.memory
                results.append(
                    SloResult(
                        slo,
                        evaluation.state,
                        at,
                        evaluation,
                        evaluation.detail,
                        previous.state,
                        outcome.coverage,
                    )
                )
        return results

    def reload(self, states: dict[str, tuple[str, str | None]]) -> None:
        """Forget this process's tier memory and take the stored states: a replica that becomes the
        scheduler leader continues from what the previous leader stored, not from its own start-up."""
        with self._lock:
            self.memory.clear()
        self.restore(states)

    def restore(self, states: dict[str, tuple[str, str | None]]) -> None:
        """Seed tier memory from the last stored states, so a restart neither re-pages nor clears."""
        with self._lock:
            for slo_id, (state, tier) in states.items():
                if state in (State.page, State.ticket) and slo_id in self.by_id:
                    self.memory[slo_id] = burn.TierMemory(State(state), tier, None)


# ---------------------------------------------------------------- the scheduled cycle


def _burn_start(result: SloResult) -> datetime:
    """When the impact began at the latest: the firing tier's short window was above threshold."""
    tier = next((t for t in result.slo.tiers if t.name == result.firing_tier), None)
    return result.evaluated_at - timedelta(seconds=tier.short.seconds if tier else 0)


def transitions(results: Sequence[SloResult]) -> list[SloBreached | SloCleared]:
    """Breach when a firing state is entered or escalates; clear only when it returns to ok."""
    events: list[SloBreached | SloCleared] = []
    for result in results:
        before, now = result.previous_state or State.ok, result.state
        if now in burn.SEVERITY_RANK and (
            before not in burn.SEVERITY_RANK or burn.SEVERITY_RANK[now] > burn.SEVERITY_RANK[before]
        ):
            events.append(
                SloBreached(
                    slo_id=result.slo.id,
                    severity=now.value,
                    tier=result.firing_tier,
                    at=result.evaluated_at,
                    service=result.slo.service,
                    model=result.slo.model,
                    burn_rates={k: v["burn_rate"] for k, v in result.windows().items()},
                    budget_remaining=result.evaluation.budget_remaining if result.evaluation else None,
                    runbook=result.slo.runbook,
                    burn_started_at=_burn_start(result),
                )
            )
        elif before in burn.SEVERITY_RANK and now == State.ok:
            events.append(SloCleared(result.slo.id, before.value, result.evaluated_at))
    return events


def page_tier(slo: Slo) -> burn.Tier | None:
    """The fastest page tier (the console's sparkline follows it), or the first tier when none pages."""
    pages = [tier for tier in slo.tiers if tier.severity == burn.State.page] or list(slo.tiers[:1])
    return min(pages, key=lambda tier: tier.long.seconds) if pages else None


def page_burn(slo: Slo, windows: dict[str, dict[str, float | None]]) -> float | None:
    """The page tier's burn: the lower of its two windows' burn rates, so that it is above the tier's
    factor exactly when the tier fires (both windows must be); None while either window has no data."""
    tier = page_tier(slo)
    if tier is None:
        return None
    rates = [(windows.get(w.name) or {}).get("burn_rate") for w in (tier.short, tier.long)]
    known = [rate for rate in rates if rate is not None and math.isfinite(rate)]
    return min(known) if len(known) == 2 else None


def store(session: Session, results: Sequence[SloResult], retention_seconds: float) -> None:
    sparks: dict[tuple[str, int], float] = {}
    for result in results:
        evaluation = result.evaluation
        burn_now = page_burn(result.slo, result.windows())
        if burn_now is not None:
            key = (result.slo.id, int(result.evaluated_at.timestamp()) // SPARK_BUCKET)
            sparks[key] = max(burn_now, sparks.get(key, burn_now))
        session.add(
            SloStatus(
                slo_id=result.slo.id,
                evaluated_at=result.evaluated_at,
                windows=result.windows(),
                budget_remaining=evaluation.budget_remaining if evaluation else None,
                time_to_exhaustion=evaluation.time_to_exhaustion if evaluation else None,
                state=result.state.value,
                tier=result.firing_tier,
                detail=result.detail,
                budget_basis=result.coverage.basis if result.coverage else None,
                budget_coverage=result.coverage.seconds if result.coverage else None,
                page_burn=burn_now,
            )
        )
    _store_sparks(session, sparks)
    if results:
        cutoff = results[0].evaluated_at - timedelta(seconds=retention_seconds)
        session.execute(sa.delete(SloStatus).where(col(SloStatus.evaluated_at) < cutoff))
        first_kept = int(cutoff.timestamp()) // SPARK_BUCKET
        session.execute(sa.delete(SloSpark).where(col(SloSpark.bucket) < first_kept))


def _store_sparks(session: Session, sparks: dict[tuple[str, int], float]) -> None:
    """Raise each SLO's quarter-hour rollup to this cycle's page burn where it is higher (one upsert)."""
    if not sparks:
        return
    dialect = session.get_bind().dialect.name
    insert = (postgresql.insert if dialect == "postgresql" else sqlite.insert)(SloSpark)
    higher = sa.func.greatest if dialect == "postgresql" else sa.func.max
    rows = [{"slo_id": slo_id, "bucket": bucket, "burn": value} for (slo_id, bucket), value in sparks.items()]
    session.execute(
        insert.on_conflict_do_update(
            index_elements=["slo_id", "bucket"],
            set_={"burn": higher(SloSpark.__table__.c.burn, insert.excluded.burn)},  # type: ignore[attr-defined]
        ),
        rows,
    )


def update_gauges(metrics: Metrics, results: Sequence[SloResult]) -> None:
    states = tuple(state.value for state in State)
    for result in results:
        burn_rates = {window: figures["burn_rate"] for window, figures in result.windows().items()}
        remaining = result.evaluation.budget_remaining if result.evaluation else None
        metrics.slos.update(result.slo.id, burn_rates, remaining, result.state.value, states)


def run_cycle(
    slo_engine: SloEngine,
    db_engine: Engine,
    metrics: Metrics,
    dispatcher: Dispatcher,
    now: datetime,
) -> list[SloResult]:
    remembered = dict(slo_engine.memory)
    results = slo_engine.evaluate(now)

    def command(session: Session, events: db.Events) -> None:
        # The states and what they change (incidents opened or mitigated, and what those cause) commit
        # together: a breach is stored exactly when its incident is.
        store(session, results, slo_engine.options.status_retention)
        events.extend(transitions(results))

    try:
        db.unit_of_work(db_engine, dispatcher, command)
    except Exception:
        # Not stored means not announced: forget this cycle, so the next one sees the breach as new.
        slo_engine.memory = remembered
        raise
    update_gauges(metrics, results)
    errors = sum(1 for result in results if result.state == State.source_error)
    metrics.slo_evaluations.labels("source_error" if errors else "ok").inc()
    log.info(
        "slo cycle",
        extra={"slos": len(results), "source_errors": errors, "queries": slo_engine.last_stats.queries},
    )
    return results


def newest_per_slo(
    session: Session,
    slo_ids: Sequence[str],
    columns: Sequence[Any],
    states: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The newest row of each SLO in `slo_ids` (optionally among rows in `states`), as `columns` (the
    first must be `slo_id`; with the whole entity, SloStatus rows), in a time independent of the history:
    a cycle stores every SLO at one evaluation time, so the newest cycle's rows are one index equality
    read; each SLO it does not answer for (added since, or its newest row not in `states`) is then one
    probe of the (slo_id, evaluated_at) index, newest first."""
    wanted = set(slo_ids)
    if not wanted:
        return {}
    newest = session.exec(select(sa.func.max(SloStatus.evaluated_at))).one()
    if newest is None:
        return {}
    entity = len(columns) == 1 and columns[0] is SloStatus

    def chosen(query: Any) -> Any:
        return query.where(col(SloStatus.state).in_(states)) if states is not None else query

    query = chosen(sa.select(*columns).where(col(SloStatus.evaluated_at) == newest))
    found: dict[str, Any] = {}
    for row in session.execute(query).all():
        value = row[0] if entity else row
        slo_id = value.slo_id
        kept = found.get(slo_id)
        if slo_id in wanted and (kept is None or value.id > kept.id):
            found[slo_id] = value
    for slo_id in sorted(wanted - found.keys()):
        probe = chosen(
            sa.select(*columns)
            .where(col(SloStatus.slo_id) == slo_id)
            .order_by(col(SloStatus.evaluated_at).desc(), col(SloStatus.id).desc())
            .limit(1)
        )
        last = session.execute(probe).first()
        if last is not None:
            found[slo_id] = last[0] if entity else last
    return found


def _latest_rows(
    session: Session, slo_ids: Sequence[str], states: Sequence[str] | None = None
) -> dict[str, SloStatus]:
    """The newest SloStatus row of each SLO, optionally among rows in `states`."""
    return newest_per_slo(session, slo_ids, [SloStatus], states)


def latest_states(session: Session, slo_ids: Sequence[str]) -> dict[str, tuple[str, str | None]]:
    """The last judged state of each SLO: rows that only say a source failed or data was missing are
    looked past, since they never changed what was firing."""
    judged = (State.ok.value, State.ticket.value, State.page.value)
    rows = _latest_rows(session, slo_ids, states=judged)
    return {slo_id: (row.state, row.tier) for slo_id, row in rows.items()}


def latest_status(session: Session, slos: Sequence[Slo], slo_id: str | None = None) -> list[dict[str, Any]]:
    """The stored state of each SLO (or one), in the contract's JSON shape."""
    wanted = [slo for slo in slos if slo_id is None or slo.id == slo_id]
    if slo_id is not None and not wanted:
        raise NotFound(f"no SLO {slo_id!r}")
    rows = _latest_rows(session, [slo.id for slo in wanted])
    items = []
    for slo in wanted:
        row = rows.get(slo.id)
        items.append(
            {
                "id": slo.id,
                "service": slo.service,
                "objective": slo.objective,
                "state": row.state if row else State.no_data.value,
                "windows": row.windows if row else {},
                "budget_remaining": row.budget_remaining if row else None,
                "time_to_exhaustion_seconds": row.time_to_exhaustion if row else None,
                "tier": row.tier if row else None,
                "detail": row.detail if row else "not evaluated yet",
                "evaluated_at": row.evaluated_at.isoformat().replace("+00:00", "Z") if row else None,
                "budget": _stored_coverage(slo, row),
            }
        )
    return items


def _stored_coverage(slo: Slo, row: SloStatus | None) -> dict[str, Any] | None:
    if row is None or row.budget_basis is None:
        return None
    period = queries.period_window_seconds(slo, row.evaluated_at)
    return Coverage(row.budget_basis, row.budget_coverage, period).as_dict()
