"""The incident record's measured figures: the impact window, read from the SLI when an incident is
mitigated and again when it is resolved (an outbox effect: it asks Prometheus, or Elasticsearch for a
log-based SLI), and stored on the incident. The review draft is written after it (the same outbox
group), from the stored figures."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from app import db, outbox
from app.config import SloOptions
from app.db import utcnow
from app.errors import SourceError, SourceUnavailable
from app.events import Dispatcher, IncidentStatusChanged
from app.incidents import service as incidents
from app.slo.impact import UNKNOWN, Impact
from app.slo.measure import measure, measure_logs, step_window
from app.slo.model import ElasticsearchSli

log = logging.getLogger(__name__)
IMPACT_KINDS = ("impact_began", "impact_ended")  # timeline rows each measurement writes anew

MEASURE = "impact.measure"
# Tries before the record says "not measured" (Prometheus down) so the review draft behind it is written;
# about half a minute at the work lane's backoff. The next mitigation or resolution measures again.
MEASURE_ATTEMPTS = 5
SCRAPE_MARGIN = 15  # seconds after a step ends before its last samples are surely scraped


@dataclass(frozen=True)
class ImpactMeasured:
    """An incident's impact window was measured and stored (its Slack message shows the figures)."""

    incident_id: int


def group(incident_id: int) -> str:
    """The incident record's outbox group: its measurement, then its review draft, in that order."""
    return f"record:incident:{incident_id}"


def subscribe(dispatcher: Dispatcher) -> None:
    def changed(session: Session, events: db.Events, event: IncidentStatusChanged) -> None:
        if event.new in ("mitigated", "resolved"):
            outbox.enqueue(session, MEASURE, group(event.incident_id), incident_id=event.incident_id)

    dispatcher.subscribe(IncidentStatusChanged, changed)


class Measurer:
    """The outbox handler of `impact.measure`."""

    def __init__(self, engine: Engine, slo_engine: Any, options: SloOptions) -> None:
        self.engine, self.slo_engine, self.options = engine, slo_engine, options

    def handlers(self) -> dict[str, outbox.Handler]:
        return {MEASURE: self.deliver}

    def deliver(self, effect: outbox.Effect) -> outbox.Completion:
        assert effect.incident_id is not None
        incident_id = effect.incident_id
        with Session(self.engine) as session:
            incident = incidents.get(session, incident_id)
        now = utcnow()
        slo = self.slo_engine.by_id.get(incident.slo_id) if incident.slo_id else None
        impact, missing = Impact(UNKNOWN), None
        logs = slo is not None and isinstance(slo.sli, ElasticsearchSli)
        source = "Elasticsearch" if logs else "Prometheus"
        if slo is not None and (slo.is_prometheus or logs):
            # After a resolution the window is read up to the step after it (the impact's end is known
            # once a step has not exceeded), however soon after recovering it came.
            settle = timedelta(
                seconds=2 * step_window(slo).seconds + (self.options.ingest_delay if logs else 0)
            )
            until = now if incident.resolved_at is None else min(now, incident.resolved_at + settle)
            least = self.options.min_events_for(slo.id)
            try:
                if logs:
                    if self.slo_engine.elasticsearch is None:
                        raise SourceUnavailable("SLOGUARD_ELASTICSEARCH_URL is not set")
                    impact = measure_logs(
                        self.slo_engine.elasticsearch,
                        slo,
                        incident.detected_at,
                        until,
                        min_events=least,
                        ingest_delay=self.options.ingest_delay,
                    )
                else:
                    impact = measure(
                        self.slo_engine.prometheus, slo, incident.detected_at, until, min_events=least
                    )
            except SourceError as exc:
                if effect.attempts < MEASURE_ATTEMPTS:
                    raise outbox.DeliveryFailed(f"{source}: {exc}", sent=False) from exc
                missing = f"impact window not measured: {source} did not answer ({exc})"
                log.warning("impact window not measured", extra={"incident_id": incident_id})

        resolved = incident.resolved_at
        if missing is None and resolved and impact.started_at and impact.ended_at is None:
            ready = resolved + timedelta(seconds=2 * step_window(slo).seconds + SCRAPE_MARGIN) if slo else now
            if logs:
                ready += timedelta(seconds=self.options.ingest_delay)
            if now < ready:
                wait = (ready - now).total_seconds()
                raise outbox.DeliveryFailed(
                    "waiting for the step after the impact", sent=False, retry_after=wait
                )

        def record(session: Session, events: db.Events) -> None:
            if missing is None:
                store(session, incident_id, impact, now)
                events.append(ImpactMeasured(incident_id))
                return
            # What an earlier measurement found stays; the record says this one could not be made.
            incident = incidents.get(session, incident_id)
            incidents.note(session, incident, "impact_missing", missing[:500], at=now)

        return record


def store(session: Session, incident_id: int, impact: Impact, at: datetime) -> None:
    """Store a measured impact window (app/slo/impact.Impact); the incident started when it did."""
    incident = incidents.lock(session, incident_id)
    incident.impact_method, incident.impact_measured_at = impact.method, at
    incident.impact_started_at, incident.impact_ended_at = impact.started_at, impact.ended_at
    incident.impact_bad_events, incident.impact_total_events = impact.bad_events, impact.total_events
    incident.impact_budget_events = impact.budget_events
    incident.impact_budget_consumed = impact.budget_consumed
    if impact.started_at is not None:
        incident.started_at = impact.started_at
    session.add(incident)
    # The timeline says when users were hurt, at those times; a new measurement replaces the old rows.
    incidents.clear_notes(session, incident_id, IMPACT_KINDS)
    figures = {"method": impact.method, "bad_events": impact.bad_events, "total_events": impact.total_events}
    if impact.started_at is not None:
        incidents.note(
            session,
            incident,
            "impact_began",
            "impact began: the error ratio rose above what the objective allows",
            actor="sloguard",
            at=impact.started_at,
            data=figures,
        )
    if impact.ended_at is not None:
        consumed = impact.budget_consumed
        spent = f" ({consumed:.1%} of the error budget)" if consumed is not None else ""
        incidents.note(
            session,
            incident,
            "impact_ended",
            f"impact ended: the error ratio back within the objective{spent}",
            actor="sloguard",
            at=impact.ended_at,
            data=figures | {"budget_consumed": consumed},
        )
