"""The burn-rate door: SLO breaches open incidents keyed on the SLO; clears mitigate them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session

from app import db
from app.config import IncidentOptions
from app.events import Dispatcher
from app.incidents import service as incidents
from app.incidents.models import IncidentStatus
from app.slo.service import SloEngine, run_cycle
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from app.telemetry import Metrics
from tests.prometheus import PrometheusServer

pytestmark = pytest.mark.integration

BLIP_SPEC = """
version: "prometheus/v1"
service: "fraud-blip"
labels: {model: fraud-detector}
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="fraud-blip",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="fraud-blip"}[{{.window}}]))
    alerting:
      name: FraudBlip
      annotations: {runbook_url: runbooks/fraud-model-availability.md}
"""


def test_a_page_opens_a_sev2_incident_and_the_clear_mitigates_it(
    history_prometheus: PrometheusServer, history_end: int, database_url: str, tmp_path: Path
) -> None:
    (tmp_path / "blip.yaml").write_text(BLIP_SPEC)
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    dispatcher = Dispatcher()
    incidents.subscribe(dispatcher, IncidentOptions())
    slo_engine = SloEngine(load_specs([tmp_path]), PrometheusSource(history_prometheus.url), None)
    T = datetime.fromtimestamp(history_end, UTC)

    # Ten hours before T the blip is at its end: 5m at 30 %, 1h at (600·0.3 + 3000·0.0005)/3600 = 5 %.
    paging = T - timedelta(hours=10)
    (result,) = run_cycle(slo_engine, engine, Metrics(), dispatcher, paging)
    assert result.state == "page"
    with Session(engine) as session:
        (incident,) = incidents.list_incidents(session)
    assert incident.key == "slo:fraud-blip-availability"
    assert (incident.severity, incident.source, incident.status) == ("SEV2", "slo", "triggered")
    assert (incident.slo_id, incident.model, incident.service) == (
        "fraud-blip-availability",
        "fraud-detector",
        "fraud-blip",
    )
    assert incident.detected_at == paging
    assert incident.started_at == paging - timedelta(minutes=5)  # the fast page's short window

    # Seven hours later every window the tiers read is back in the background (the 1d window holds
    # (180 + 42.9) / 86400 = 0.26 % < 0.3 %): the page is held for half its 5m short window, then clears.
    quiet = T - timedelta(hours=3)
    (held,) = run_cycle(slo_engine, engine, Metrics(), dispatcher, quiet)
    assert held.state == "page"
    # Five minutes on (past the 150 s hold, and on a sample boundary: the history has a sample every 5 min,
    # and a 5m window holding one sample has no rate, which would rightly keep the page).
    (cleared,) = run_cycle(slo_engine, engine, Metrics(), dispatcher, quiet + timedelta(seconds=300))
    assert cleared.state == "ok"

    with Session(engine) as session:
        incident = incidents.get(session, incident.id)  # type: ignore[arg-type]
        events = incidents.timeline(session, incident.id)  # type: ignore[arg-type]
    assert incident.status == IncidentStatus.mitigated
    assert incident.mitigated_at == quiet + timedelta(seconds=300)
    assert [event.kind for event in events] == ["status", "burn", "burn_cleared", "status"]
    assert events[1].data["tier"] == "page-fast"
    engine.dispose()
