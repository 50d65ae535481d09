"""The incident record's impact window, end to end through the services: the blip SLO pages at T − 10 h
on a real Prometheus holding generated history (30 % errors of 100 requests a second in the ten minutes
before T − 10 h, 0.05 % otherwise); when the page clears the incident is mitigated, the outbox measures
the window, and the API shows the figures worked out here from the generator's counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from sqlmodel import Session

from app import outbox
from app.config import load_file_config
from app.incidents import service as incidents
from app.incidents.models import IncidentStatus, IncidentUpdate
from app.incidents.routes import read_model
from app.outbox import WORK
from app.services import Services, build_services
from app.slo.service import run_cycle
from app.slo.spec import load_specs
from tests.alertmanager import group_notification
from tests.conftest import make_settings
from tests.integration.incidents.test_burn_door import BLIP_SPEC
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.integration


def drain(services: Services) -> None:
    worker = outbox.Worker(
        services.engine, services.handlers, services.config.outbox, dispatcher=services.events
    )
    while worker.deliver_one(WORK):
        pass


def test_a_mitigated_burn_incident_records_its_impact_window_from_the_sli(
    history_prometheus: PrometheusServer, history_end: int, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "blip.yaml").write_text(BLIP_SPEC)
    settings = make_settings(tmp_path, database_url=database_url, prometheus_url=history_prometheus.url)
    services = build_services(
        settings, load_file_config(settings.config_file), load_specs([settings.slo_dir])
    )
    try:
        T = datetime.fromtimestamp(history_end, UTC)
        paging = T - timedelta(hours=10)
        (result,) = run_cycle(services.slo_engine, services.engine, services.metrics, services.events, paging)
        assert result.state == "page"
        with Session(services.engine) as session:
            (incident,) = incidents.list_incidents(session)
        assert read_model(incident).impact.method == "not_measured"  # type: ignore[union-attr]
        # The page clears seven hours later (see test_burn_door): the incident is mitigated.
        quiet = T - timedelta(hours=3)
        for moment in (quiet, quiet + timedelta(seconds=300)):
            run_cycle(services.slo_engine, services.engine, services.metrics, services.events, moment)
        drain(services)
        with Session(services.engine) as session:
            incident = incidents.get(session, incident.id)  # type: ignore[arg-type]
        shown = read_model(incident)
    finally:
        services.close()
    assert shown.status == "mitigated"
    impact = shown.impact
    assert impact is not None and impact.method == "events"
    # The two 5-minute steps at 30 % end at T-10h-5m and T-10h: impact from T-10h-10m to T-10h.
    assert impact.started_at == paging - timedelta(minutes=10)
    assert impact.ended_at == paging
    assert impact.total_events == pytest.approx(100 * 600)
    assert impact.bad_events == pytest.approx(0.3 * 100 * 600)
    assert impact.budget_events == pytest.approx(0.001 * 100 * 30 * 86_400)
    assert impact.budget_consumed == pytest.approx(18_000 / 259_200)
    # The incident started when the impact did: detected ten minutes in.
    assert shown.started_at == impact.started_at
    assert shown.time_to_detect == pytest.approx(600)


def test_an_alertmanager_incident_without_an_slo_has_an_unknown_window_and_starts_at_its_alerts(
    database_url: str, tmp_path: Path
) -> None:
    from app.alerts import service as alerts
    from app.alerts.alertmanager import WebhookPayload

    (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump({}))
    settings = make_settings(tmp_path, database_url=database_url)
    services = build_services(settings, load_file_config(settings.config_file), [])
    try:
        body = group_notification(1, 2, "NoSlo")
        payload = WebhookPayload.model_validate(body)
        now = datetime.now(UTC)
        alerts.ingest_alertmanager(services.engine, services.events, payload, services.config.incidents, now)
        with Session(services.engine) as session:
            (incident,) = incidents.list_incidents(session)
        change = IncidentUpdate(status=IncidentStatus.mitigated)
        incidents.update(
            services.engine,
            services.events,
            incident.id,  # type: ignore[arg-type]
            change,
            now,
            actor="U0ANA",
        )
        drain(services)
        with Session(services.engine) as session:
            shown = read_model(incidents.get(session, incident.id))  # type: ignore[arg-type]
    finally:
        services.close()
    earliest = min(datetime.fromisoformat(a["startsAt"].replace("Z", "+00:00")) for a in body["alerts"])
    assert shown.impact is not None and shown.impact.method == "unknown"
    assert shown.impact.started_at is None and shown.impact.measured_at is not None
    assert shown.started_at == earliest
