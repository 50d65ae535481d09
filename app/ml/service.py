"""Evidence for an incident: serving model versions and the suspect change, drift, log signatures.

Runs right after an incident opens (and again when it reopens) in a background thread, within a time
limit. A source that fails leaves a timeline note naming what is missing; it never fails the incident.
Re-running replaces the previous evidence.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, durations, outbox, promql_build
from app.config import FileConfig, ModelConfig
from app.errors import NotFound, SourceError
from app.events import Dispatcher, IncidentOpened, IncidentStatusChanged
from app.incidents import service as incidents
from app.incidents.models import Incident
from app.ml import budget as version_budget
from app.ml import changes as registry_changes
from app.ml import drift as drift_stats
from app.ml import drift_view
from app.ml.models import DriftSignal, DriftSignalRead, LogEvidence, ModelVersionLink
from app.ml.traffic import requests as _requests
from app.ml.versions import VersionSeen, find_suspect, versions_from_range
from app.slo.model import Slo

log = logging.getLogger(__name__)
STEP = 60  # resolution of "first seen" / "last seen"
EARLIER, EARLIER_STEP = timedelta(days=30), timedelta(hours=1)  # how far, how finely, back for older ones


@dataclass
class Sources:
    prometheus: Any = None
    elasticsearch: Any = None
    registry: Any = None


@dataclass
class Findings:
    versions: list[ModelVersionLink] = field(default_factory=list)
    drift: list[DriftSignal] = field(default_factory=list)
    logs: list[LogEvidence] = field(default_factory=list)
    notes: list[tuple[str, str, dict[str, Any]]] = field(default_factory=list)  # (kind, text, data)
    missing: list[str] = field(default_factory=list)


budget_of = version_budget.stored  # the incident's budget per version, as enrichment last measured it
# The version roles enrichment finds (and replaces on every run), and the ones record_change keeps.
EVIDENCE_ROLES = ("serving", "suspect", "previous_good")
CHANGE_ROLES = ("rolled_back_to", "promoted_to")


def model_for(incident: Incident, catalogue: dict[str, ModelConfig]) -> tuple[str, ModelConfig] | None:
    if incident.model and incident.model in catalogue:
        return incident.model, catalogue[incident.model]
    for name, config in catalogue.items():
        if (incident.slo_id and incident.slo_id in config.slos) or (
            incident.service and incident.service in config.services
        ):
            return name, config
    return None


def _versions(incident: Incident, name: str, config: ModelConfig, sources: Sources, found: Findings) -> None:
    prometheus = sources.prometheus
    if prometheus is None:
        found.missing.append("serving versions (no Prometheus)")
        return
    label = config.version_label
    burn_started, detected = incident.started_at, incident.detected_at
    lookback = timedelta(seconds=config.lookback)
    traffic = promql_build.total(promql_build.increase(_requests(config), f"{STEP}s"), by=(label,))
    since = burn_started - lookback - timedelta(hours=1)
    result = prometheus.query_range(traffic, since, detected, STEP)
    seen = _first_served(prometheus, config, since, versions_from_range(result, label, STEP))
    window = max(300, int((detected - burn_started).total_seconds()))
    span = durations.format_prometheus(window)
    failing = _requests(config, config.error_selector)
    errors = prometheus.query(
        promql_build.total(promql_build.increase(failing, span), by=(label,)), at=detected
    )
    totals = prometheus.query(
        promql_build.total(promql_build.increase(_requests(config), span), by=(label,)), at=detected
    )
    bad = {s["metric"].get(label): float(s["value"][1]) for s in errors}
    total = {s["metric"].get(label): float(s["value"][1]) for s in totals}
    # A version that stopped serving before the incident window (fully replaced by the suspect) is
    # judged over the same span at the end of its own service, so it can still be the previous good one.
    for version in seen:
        if total.get(version.version) or version.last_seen >= detected - timedelta(seconds=window):
            continue
        # The version is a label value read back from Prometheus: quoted, whatever it holds.
        only = promql_build.match(label, version.version)
        before = prometheus.query(
            promql_build.total(promql_build.increase(_requests(config, only), span)), at=version.last_seen
        )
        failed = prometheus.query(
            promql_build.total(promql_build.increase(_requests(config, only, config.error_selector), span)),
            at=version.last_seen,
        )
        if before:
            total[version.version] = float(before[0]["value"][1])
            bad[version.version] = float(failed[0]["value"][1]) if failed else 0.0
    with_ratios = [
        VersionSeen(
            v.version,
            v.first_seen,
            v.last_seen,
            (bad.get(v.version, 0.0) / total[v.version]) if total.get(v.version) else None,
            total.get(v.version),
        )
        for v in seen
    ]
    verdict = find_suspect(with_ratios, burn_started, lookback)
    for version in with_ratios:
        detail = {"error_ratio": version.error_ratio, "requests": version.requests, "window": span}
        found.versions.append(
            ModelVersionLink(
                incident_id=incident.id or 0,
                model=name,
                version=version.version,
                role="serving",
                source="prometheus",
                first_seen=version.first_seen,
                last_seen=version.last_seen,
                detail=detail,
            )
        )
    for role, chosen in (("suspect", verdict.suspect), ("previous_good", verdict.previous_good)):
        if chosen is not None:
            found.versions.append(
                ModelVersionLink(
                    incident_id=incident.id or 0,
                    model=name,
                    version=chosen.version,
                    role=role,
                    source="prometheus",
                    first_seen=chosen.first_seen,
                    last_seen=chosen.last_seen,
                    detail={"error_ratio": chosen.error_ratio, "reason": verdict.reason},
                )
            )
    if verdict.suspect is not None:
        # The deploy on the timeline, at the time the data says the suspect began serving.
        began = verdict.suspect.first_seen
        found.notes.append(
            (
                "deploy",
                f"version {verdict.suspect.version} of {name} began serving (the likely suspect)",
                {"at": began.isoformat(), "version": verdict.suspect.version, "model": name},
            )
        )
    ratios = {v.version: v.error_ratio for v in with_ratios}
    found.notes.append(("evidence", verdict.reason, {"error_ratio_by_version": ratios, "window": span}))


def _first_served(
    prometheus: Any, config: ModelConfig, since: datetime, seen: list[VersionSeen]
) -> list[VersionSeen]:
    """A version already serving when the range began started earlier: look further back (an hour at a
    time, up to EARLIER, then a minute at a time within the hour it began) so its first serving time is
    the data's, not the query's start."""
    older = {v.version for v in seen if v.first_seen <= since}
    if not older:
        return seen
    coarse = int(EARLIER_STEP.total_seconds())
    label = config.version_label
    hourly = promql_build.total(promql_build.increase(_requests(config), f"{coarse}s"), by=(label,))
    found = versions_from_range(prometheus.query_range(hourly, since - EARLIER, since, coarse), label, coarse)
    first = {}
    for version in found:
        if version.version not in older:
            continue
        # The hour it began in, read again a minute at a time.
        only = promql_build.match(label, version.version)
        fine = promql_build.total(promql_build.increase(_requests(config, only), f"{STEP}s"), by=(label,))
        hour = version.first_seen + EARLIER_STEP
        minutes = versions_from_range(
            prometheus.query_range(fine, version.first_seen, hour, STEP), label, STEP
        )
        first[version.version] = minutes[0].first_seen if minutes else version.first_seen
    return [replace(v, first_seen=min(v.first_seen, first.get(v.version, v.first_seen))) for v in seen]


def version_table(
    prometheus: Any,
    config: ModelConfig,
    since: datetime,
    until: datetime,
    window: tuple[datetime, datetime] | None,
) -> list[VersionSeen]:
    """Each version that served between `since` and `until`: when it first and last served (from the
    traffic itself) and its error ratio over `window` (the impact window), for the review's table."""
    label = config.version_label
    traffic = promql_build.total(promql_build.increase(_requests(config), f"{STEP}s"), by=(label,))
    served = versions_from_range(prometheus.query_range(traffic, since, until, STEP), label, STEP)
    seen = _first_served(prometheus, config, since, served)
    if window is None:
        return seen
    start, end = window
    span = durations.format_prometheus(max(STEP, round((end - start).total_seconds())))
    counts = []
    for selected in (_requests(config, config.error_selector), _requests(config)):
        query = promql_build.total(promql_build.increase(selected, span), by=(label,))
        counts.append({s["metric"].get(label): float(s["value"][1]) for s in prometheus.query(query, at=end)})
    bad, total = counts
    return [
        replace(
            v,
            error_ratio=bad.get(v.version, 0.0) / total[v.version] if total.get(v.version) else None,
            requests=total.get(v.version),
        )
        for v in seen
    ]


def _registry(incident: Incident, name: str, config: ModelConfig, sources: Sources, found: Findings) -> None:
    if config.registry is None:
        return
    if sources.registry is None:
        found.missing.append("registry versions (SLOGUARD_MLFLOW_URL is not set)")
        return
    environment = incident.environment or "prod"
    alias = config.registry.aliases.get(environment)
    if alias is None:
        found.notes.append(("evidence", f"no registry alias configured for {environment}", {}))
        return
    try:
        version = sources.registry.alias_version(config.registry.name, alias)
    except NotFound as exc:
        found.notes.append(
            ("evidence", f"MLflow has no alias {alias!r} on model {config.registry.name!r}: {exc}", {})
        )
        return
    found.versions.append(
        ModelVersionLink(
            incident_id=incident.id or 0,
            model=name,
            version=version,
            role="serving",
            source="registry",
            detail={"alias": alias, "environment": environment, "registered_model": config.registry.name},
        )
    )


def _feature_values(
    sources: Sources, index: str, query: dict[str, Any] | None, features: list[str], size: int
) -> dict[str, list[float | str]]:
    """Each feature's values in up to `size` documents of `index`: numbers, or text (a category; a
    boolean counts as one). Objects and lists are not features."""
    body: dict[str, Any] = {"size": size, "_source": features} if features else {"size": size}
    if query is not None:
        body["query"] = query
    response = sources.elasticsearch.search(index, body)
    values: dict[str, list[float | str]] = {feature: [] for feature in features}
    for hit in response.get("hits", {}).get("hits", []):
        for feature, value in hit["_source"].items():
            if (not features or feature in features) and isinstance(value, str | int | float | bool):
                values.setdefault(feature, []).append(drift_stats.as_value(value))
    return values


def _range_filter(field_name: str, start: datetime, end: datetime) -> dict[str, Any]:
    return {
        "range": {
            field_name: {
                "gte": start.isoformat(),
                "lt": end.isoformat(),
                "format": "strict_date_optional_time",
            }
        }
    }


def _finite(value: float | None) -> float | None:
    """NaN (not judged) and infinities (a constant reference) have no JSON form: stored as unknown."""
    return value if value is not None and math.isfinite(value) else None


def _drift(
    incident: Incident, name: str, config: ModelConfig, sources: Sources, found: Findings, now: datetime
) -> None:
    settings = config.drift
    if settings is None:
        return
    if settings.gauge_metric and sources.prometheus is not None:
        result = sources.prometheus.query(
            promql_build.selector(settings.gauge_metric, promql_build.match("model", name)),
            at=incident.detected_at,
        )
        for sample in result:
            score = float(sample["value"][1])
            found.drift.append(
                DriftSignal(
                    incident_id=incident.id or 0,
                    model=name,
                    feature=sample["metric"].get("feature", "?"),
                    method="gauge",  # the model server's own judgement, against the configured threshold
                    score=_finite(score),
                    threshold=settings.gauge_threshold,
                    drifted=score >= settings.gauge_threshold,
                    state="drifted" if score >= settings.gauge_threshold else "ok",
                )
            )
    if (settings.reference_file is None and settings.reference_index is None) or settings.index is None:
        return
    if sources.elasticsearch is None:
        found.missing.append("computed drift (SLOGUARD_ELASTICSEARCH_URL is not set)")
        return
    if settings.reference_file is not None:
        reference = drift_stats.load_reference(settings.reference_file)
    else:
        assert settings.reference_index is not None
        query = {"query_string": {"query": settings.reference_query}} if settings.reference_query else None
        reference = _feature_values(
            sources, settings.reference_index, query, settings.features, settings.sample_size
        )
    features = settings.features or sorted(reference)
    filters: list[dict[str, Any]] = [
        _range_filter(settings.timestamp_field, incident.started_at, max(now, incident.detected_at))
    ]
    if settings.query:
        filters.append({"query_string": {"query": settings.query}})
    current = _feature_values(
        sources, settings.index, {"bool": {"filter": filters}}, features, settings.sample_size
    )
    # A feature of the reference that the window did not log at all is judged too: insufficient_data, n 0.
    samples = {f: (reference.get(f, []), current.get(f, [])) for f in features if reference.get(f)}
    signals = drift_stats.compare(
        samples,
        alpha=settings.alpha,
        min_sample=settings.min_sample,
        min_effect=settings.min_effect,
        categorical_features=settings.categorical,
    )
    for signal in signals:
        found.drift.append(
            DriftSignal(
                incident_id=incident.id or 0,
                model=name,
                feature=signal.feature,
                method=signal.method,
                score=_finite(signal.score),
                p_value=_finite(signal.p_value),
                threshold=_finite(signal.threshold),
                drifted=signal.drifted,
                state=signal.state,
                n=signal.n,
                effect=_finite(signal.effect),
                kind=signal.kind,
                detail={
                    "unseen": [list(pair) for pair in signal.unseen],
                    "unseen_share": signal.unseen_share,
                }
                if signal.unseen
                else None,
            )
        )
    top = drift_view.ranked(signals)
    text = f"drifted features: {', '.join(top)}" if top else "no feature drifted"
    found.notes.append(
        ("evidence", text, {"drifted": top, "dataset_drifted": drift_view.dataset_drifted(signals)})
    )


def _logs(incident: Incident, config: ModelConfig, sources: Sources, found: Findings, now: datetime) -> None:
    settings = config.logs
    if settings is None:
        return
    if sources.elasticsearch is None:
        found.missing.append("log evidence (SLOGUARD_ELASTICSEARCH_URL is not set)")
        return
    start = incident.started_at - timedelta(minutes=5)
    body = {
        "size": 0,
        "query": {
            "bool": {
                "filter": [
                    _range_filter(settings.timestamp_field, start, max(now, incident.detected_at)),
                    {"query_string": {"query": settings.query}},
                ]
            }
        },
        "aggs": {
            "signatures": {
                "terms": {"field": settings.signature_field, "size": settings.size},
                "aggs": {
                    "sample": {
                        "top_hits": {"size": 1, "sort": [{settings.timestamp_field: {"order": "desc"}}]}
                    },
                    "first": {"min": {"field": settings.timestamp_field}},
                    "last": {"max": {"field": settings.timestamp_field}},
                },
            }
        },
    }
    response = sources.elasticsearch.search(settings.index, body)
    for bucket in response["aggregations"]["signatures"]["buckets"]:
        hits = bucket["sample"]["hits"]["hits"]
        found.logs.append(
            LogEvidence(
                incident_id=incident.id or 0,
                signature=str(bucket["key"]),
                count=int(bucket["doc_count"]),
                sample=hits[0]["_source"] if hits else {},
                first_seen=_millis(bucket["first"].get("value")),
                last_seen=_millis(bucket["last"].get("value")),
            )
        )


def _millis(value: Any) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(float(value) / 1000, UTC)


def _budget(slo: Slo, config: FileConfig, sources: Sources, found: Findings, now: datetime) -> None:
    found.notes.append(version_budget.note(sources.prometheus, slo, config, now))


@dataclass(frozen=True)
class EvidenceStored:
    """An incident's evidence was gathered and stored (its Slack message shows it)."""

    incident_id: int


def enrich(
    engine: Engine,
    config: FileConfig,
    sources: Sources,
    incident_id: int,
    now: datetime,
    reactor: db.Reactor | None = None,
    slos: Mapping[str, Slo] | None = None,
) -> Findings:
    """Gather and store every piece of evidence that can be had within the time limit (by hand: the API's
    re-enrich); `reactor` redraws the incident's Slack message from the stored evidence."""
    found = gather(engine, config, sources, incident_id, now, slos)
    if found is not None:
        db.unit_of_work(
            engine, reactor, lambda session, events: store(session, events, incident_id, found, now)
        )
    return found or Findings()


def gather(
    engine: Engine,
    config: FileConfig,
    sources: Sources,
    incident_id: int,
    now: datetime,
    slos: Mapping[str, Slo] | None = None,
) -> Findings | None:
    """Every piece of evidence that can be had within the time limit, read from the sources (nothing is
    stored); None when no ML catalogue is configured (nothing to look for, nothing to say)."""
    with Session(engine) as session:
        incident = incidents.get(session, incident_id)
    found = Findings()
    match = model_for(incident, config.models)
    if match is None:
        if not config.models:
            return None
        found.notes.append(("evidence", "no model in the catalogue matches this incident", {}))
        return found
    name, model = match
    deadline = time.monotonic() + config.enrich_timeout
    steps: list[tuple[str, Callable[[], None]]] = [
        ("serving versions", lambda: _versions(incident, name, model, sources, found)),
        ("registry versions", lambda: _registry(incident, name, model, sources, found)),
        ("registry changes", lambda: registry_changes.registry_suspect(engine, incident, name, model, found)),
        ("drift", lambda: _drift(incident, name, model, sources, found, now)),
        ("log evidence", lambda: _logs(incident, model, sources, found, now)),
    ]
    spec = slos.get(incident.slo_id) if slos is not None and incident.slo_id else None
    if spec is not None:
        steps.insert(1, ("budget per version", lambda: _budget(spec, config, sources, found, now)))
    for what, step in steps:
        if time.monotonic() > deadline:
            found.missing.append(f"{what} (time limit of {config.enrich_timeout:g}s reached)")
            continue
        try:
            step()
        except (SourceError, NotFound, OSError, ValueError, KeyError) as exc:
            found.missing.append(f"{what} ({exc})")
    return found


def record_change(
    session: Session,
    incident_id: int,
    *,
    model: str,
    version: str,
    role: str,
    source: str,
    at: datetime | None,
    detail: dict[str, Any],
) -> None:
    """A version sloguard itself moved the model to (`rolled_back_to`, `promoted_to`), inside the caller's
    unit of work. Enrichment never replaces these rows: they are history, not evidence."""
    assert role in CHANGE_ROLES, role
    session.add(
        ModelVersionLink(
            incident_id=incident_id,
            model=model,
            version=version,
            role=role,
            source=source,
            first_seen=at,
            detail=detail,
        )
    )


def store(session: Session, events: db.Events, incident_id: int, found: Findings, now: datetime) -> None:
    """What enrichment found, replacing what it found before (its own roles; the changes sloguard made
    stay), in the caller's unit of work."""
    incident = incidents.get(session, incident_id)
    session.execute(
        sa.delete(ModelVersionLink).where(
            col(ModelVersionLink.incident_id) == incident_id,
            col(ModelVersionLink.role).in_(EVIDENCE_ROLES),
        )
    )
    for table in (DriftSignal, LogEvidence):
        session.execute(sa.delete(table).where(col(table.incident_id) == incident_id))
    for row in [*found.versions, *found.drift, *found.logs]:
        row.incident_id = incident_id
        session.add(row)
    incidents.clear_notes(session, incident_id, ("deploy", version_budget.NOTE))
    for kind, text, data in found.notes:
        at = datetime.fromisoformat(data["at"]) if kind == "deploy" else now
        incidents.note(session, incident, kind, text, actor="sloguard", at=at, data=data)
    for missing in found.missing:
        incidents.note(session, incident, "evidence_missing", f"missing: {missing}", actor="sloguard", at=now)
    events.append(EvidenceStored(incident_id))


def evidence(session: Session, incident_id: int) -> dict[str, list[Any]]:
    return {
        "model_versions": list(
            session.exec(
                select(ModelVersionLink)
                .where(ModelVersionLink.incident_id == incident_id)
                .order_by(col(ModelVersionLink.id))
            )
        ),
        "drift_signals": drift_view.ordered(
            list(
                session.exec(
                    select(DriftSignal)
                    .where(DriftSignal.incident_id == incident_id)
                    .order_by(col(DriftSignal.id))
                )
            ),
            lambda row: row.model_dump(),
        ),
        "log_evidence": list(
            session.exec(
                select(LogEvidence)
                .where(LogEvidence.incident_id == incident_id)
                .order_by(col(LogEvidence.count).desc())
            )
        ),
    }


def evidence_dicts(session: Session, incident_id: int) -> dict[str, list[dict[str, Any]]]:
    """`evidence` as the API shows it: each drift signal says whose judgement it is (`judged_by`)."""
    found = evidence(session, incident_id)
    dumped = {key: [item.model_dump() for item in rows] for key, rows in found.items()}
    dumped["drift_signals"] = [
        row | {"judged_by": DriftSignalRead.model_validate(row).judged_by} for row in dumped["drift_signals"]
    ]
    return dumped


ENRICH = "evidence.enrich"


def subscribe(dispatcher: Dispatcher, config: FileConfig) -> None:
    """Gather evidence when an incident opens or reopens: an outbox row in the unit of work that did it
    (none without an ML catalogue in sloguard.yaml: there would be nothing to look for)."""

    def put(session: Session, incident_id: int) -> None:
        if not config.models:
            return
        outbox.enqueue(session, ENRICH, f"evidence:incident:{incident_id}", incident_id=incident_id)

    registry_changes.subscribe(dispatcher, config)  # a registry change on the model's open incidents
    dispatcher.subscribe(IncidentOpened, lambda session, events, event: put(session, event.incident_id))
    dispatcher.subscribe(
        IncidentStatusChanged,
        lambda session, events, event: (
            put(session, event.incident_id) if (event.old, event.new) == ("mitigated", "triggered") else None
        ),
    )


class Enricher:
    """The outbox handler of `evidence.enrich`: reads the sources, then stores the findings in the
    transaction that marks the row delivered (so they are stored once however often it was tried)."""

    def __init__(self, engine: Engine, config: FileConfig, sources: Sources, slo_engine: Any = None) -> None:
        self.engine, self.config, self.sources = engine, config, sources
        self.slo_engine = slo_engine  # its SLOs, looked up at each delivery (they may be reloaded)

    def handlers(self) -> dict[str, outbox.Handler]:
        return {ENRICH: self.deliver}

    def deliver(self, effect: outbox.Effect) -> outbox.Completion | None:
        assert effect.incident_id is not None
        incident_id = effect.incident_id
        now = effect.created_at  # when the incident opened (or reopened), however late this runs
        slos = self.slo_engine.by_id if self.slo_engine is not None else None
        found = gather(self.engine, self.config, self.sources, incident_id, now, slos)
        if found is None:
            return None

        def record(session: Session, events: db.Events) -> None:
            store(session, events, incident_id, found, now)

        return record
