"""A review draft whose SLO's source does not answer says which one, and an open incident reads as open."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import load_file_config
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate
from app.postmortems import service as postmortems
from app.services import build_services
from app.slo.spec import load_specs
from tests.conftest import REPO, make_settings

pytestmark = pytest.mark.integration


def test_an_unreachable_prometheus_is_named_and_an_open_incident_is_unresolved(
    tmp_path: Path, database_url: str
) -> None:
    (tmp_path / "slo").mkdir()
    shutil.copy(REPO / "slo" / "fraud-model.yaml", tmp_path / "slo")
    # make_settings points Prometheus at the discard port: nothing answers there.
    settings = make_settings(tmp_path, database_url=database_url, source_timeout=2.0)
    services = build_services(
        settings, load_file_config(settings.config_file), load_specs([settings.slo_dir])
    )
    try:
        now = datetime.now(UTC)
        incident = incidents.declare(
            services.engine,
            services.events,
            IncidentCreate(title="scores wrong", slo_id="fraud-model-availability"),
            now - timedelta(minutes=30),
        )
        assert incident.id is not None
        draft = postmortems.write(services, incident.id, now).markdown
    finally:
        services.close()
    assert "_No chart: Prometheus did not answer \\(prometheus at http://127.0.0.1:9" in draft, draft
    assert "no Prometheus-backed SLO is linked" not in draft
    assert "UTC to now: unresolved)" in draft and "unresolved UTC" not in draft
