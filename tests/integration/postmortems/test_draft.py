"""A review draft from an incident built through the real paths, checked against hand-computed figures."""

from __future__ import annotations

import base64
import copy
import csv
import json
import re
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from app import durations
from app.incidents import service as incidents
from app.incidents.models import IncidentUpdate
from app.main import create_app
from app.rollback import service as rollbacks
from app.rollback.models import RollbackRequest
from app.slo.service import run_cycle
from tests.conftest import API_TOKEN, REPO, WEBHOOK_TOKEN, make_settings
from tests.integration import scenarios
from tests.integration.incidents.test_burn_door import BLIP_SPEC
from tests.prometheus import PrometheusServer
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration


def plotted(chart: Path, until: datetime | None = None) -> list[float]:
    """The values a chart plotted (up to `until`), from the CSV written beside its SVG (empty cells: no
    data)."""
    with chart.with_suffix(".csv").open(newline="") as file:
        rows = [row for row in csv.reader(file) if row[0] != "time_utc" and row[1]]
    return [
        float(value)
        for at, value, _ in rows
        if until is None or datetime.fromisoformat(at.replace("Z", "+00:00")) <= until
    ]


def test_draft_from_alerts_burn_enrichment_and_rollback(
    tmp_path: Path, history_prometheus: PrometheusServer, history_end: int
) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "blip.yaml").write_text(BLIP_SPEC)
    (tmp_path / "sloguard.yaml").write_text(
        "models:\n  fraud-detector:\n    services: [fraud-blip]\n    selector: 'service=\"fraud-blip\"'\n"
        "    environments:\n      prod:\n        target: {kind: command, argv: ['"
        + sys.executable
        + "', '-c', 'print(1)']}\n"
        "        rollback: [U1]\n"
    )
    settings = make_settings(tmp_path, prometheus_url=history_prometheus.url, slo_dir=tmp_path / "slo")
    T = datetime.fromtimestamp(history_end, UTC)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        state = server.server.config.app.state.services
        # The burn door: ten hours before T the blip pages (5m at 30 %, 1h at 5 %).
        detected = T - timedelta(hours=10)
        run_cycle(state.slo_engine, state.engine, state.metrics, state.events, detected)
        (incident,) = incidents.list_incidents(__import__("sqlmodel").Session(state.engine))
        # Alertmanager's page for the same SLO joins it.
        payload = json.loads((REPO / "tests" / "data" / "alertmanager-0.25-firing.json").read_text())
        payload = copy.deepcopy(payload)
        payload["commonLabels"]["sloth_id"] = "fraud-blip-availability"
        payload["alerts"][0]["generatorURL"] = "http://prometheus:9090/graph?g0.expr=blip"
        hook = http.post(
            "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
        )
        assert hook.json()["incident_id"] == incident.id
        incidents.update(
            state.engine,
            state.events,
            incident.id,
            IncidentUpdate(status="acknowledged"),
            detected + timedelta(minutes=3),
            actor="U1",
        )
        action = rollbacks.propose(
            state.engine,
            state.config,
            None,
            RollbackRequest(model="fraud-detector", to_version="3", incident_id=incident.id, reason="blip"),
            "U1",
        )
        rollbacks.confirm(state.engine, state.config, None, state.events, action.id, "U1")
        # Seven hours later the burn has cleared (held for half the 5m short window), then a person resolves.
        run_cycle(state.slo_engine, state.engine, state.metrics, state.events, T - timedelta(hours=3))
        run_cycle(
            state.slo_engine, state.engine, state.metrics, state.events, T - timedelta(hours=3, seconds=-300)
        )
        resolved = T - timedelta(hours=2, minutes=50)
        incidents.update(
            state.engine, state.events, incident.id, IncidentUpdate(status="resolved"), resolved, actor="U1"
        )

        drafts = settings.postmortem_dir
        wait_until(lambda: list(drafts.glob("*.md")), timeout=30, what="draft written on resolve")
        (path,) = drafts.glob("*.md")
        assert (
            path.name
            == f"{detected:%Y-%m-%d}-{incident.id}-fraud-blip-availability-error-budget-burning-page.md"
        )
        text = path.read_text()

        # Hand-computed from the generated history: the two 5-minute steps before `detected` run at 30 %
        # (over the 0.1 % allowed), the ones either side at 0.05 %: the impact window is the ten minutes
        # before detection. Its events: 600 s x 100/s = 60,000, 30 % of them (18,000) bad. The period's
        # budget at its end: 0.1 % of 30 days at 100/s = 259,200 bad events; 18,000 of them is 6.9 %.
        bad, budget_events = 600 * 100 * 0.3, 0.001 * 30 * 86400 * 100
        assert f"{bad / budget_events * 100:.1f} %" == "6.9 %"
        start = detected - timedelta(minutes=10)
        assert (
            f"- **Impact window:** 10 min, from {start:%Y-%m-%d %H:%M:%S} to {detected:%Y-%m-%d %H:%M:%S} UTC"
            in text
        ), text
        # Open from the impact's start to the resolution: 10 min + 7 h 10 min.
        assert "- **Open:** 7 h 20 min" in text
        assert "- **Error budget consumed:** 6.9 % of the 30d budget (18,000 bad events of 60,000" in text
        assert "the period's budget is 259,200 bad events" in text
        assert "- **Time to detect (MTTD):** 10 min" in text
        assert "- **Time to acknowledge (MTTA):** 3 min" in text
        assert "- **Time to resolve (MTTR):** 7 h 20 min" in text
        assert "under the 20 % that makes a P0 action item mandatory" in text
        assert "rollback of fraud-detector in prod from unknown to 3 by U1: **succeeded**" in text
        assert "| alert\\_firing | alertmanager |" in text  # Markdown-escaped, shown as alert_firing
        assert (
            "[http://prometheus:9090/graph?g0.expr=blip](http://prometheus:9090/graph?g0.expr=blip)" in text
        )
        assert "[runbooks/fraud-model-availability.md](../runbooks/fraud-model-availability.md)" in text

        # Every point of the error ratio, worked out from the generator: the history has a sample every
        # 5 minutes (each step's counters grow at its mid-age's share), and a point over window w reads
        # the samples in [t - w, t] (both ends: Prometheus 2). The chart runs to the rollback, made now:
        # hours of points, each window as long as the step (15 minutes or more), so that no part of the
        # span falls between points.
        with (drafts / f"{path.stem}-assets" / "error-ratio.csv").open(newline="") as file:
            rows = list(csv.reader(file))
        window = durations.parse_prometheus(rows[0][1].removeprefix("error_ratio_"))
        assert window >= 900 and window % 300 == 0
        checked = 0
        for at, value, _ in rows[1:]:
            t = int(datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp())
            samples = [s for s in range(t - window, t + 1) if (history_end - s) % scenarios.STEP == 0]
            if not value or t > history_end or len(samples) < 2:
                continue
            shares = [
                scenarios.fraction_at_age(scenarios.BLIP, history_end - s + scenarios.STEP / 2)
                for s in samples[1:]
            ]
            assert float(value) == pytest.approx(sum(shares) / len(shares), rel=1e-6), at
            checked += 1
        assert checked >= 20
        ratio = plotted(drafts / f"{path.stem}-assets" / "error-ratio.svg")
        assert max(ratio) > 0.1 and min(ratio) == pytest.approx(0.0005)  # the blip shows; the background
        # (The chart goes on to the rollback, which this test makes now, hours after the history ends.)
        remaining = plotted(drafts / f"{path.stem}-assets" / "budget.svg", resolved + timedelta(minutes=15))
        # Before the blip the 30 days hold only the 0.05 % background: half the 0.1 % budget is left.
        assert remaining[0] == pytest.approx(0.5)
        # The whole ten-minute blip (600 s x 100/s x 30 % = 18,000 bad, 30 of them background anyway) is in
        # the 30 days of the point after the resolution: 17,970 of 259,200 budget events more.
        assert remaining[-1] == pytest.approx(0.5 - 17_970 / 259_200, abs=1e-6)

        # A person edits a kept section; regenerating keeps it and refreshes the rest.
        edited = text.replace(
            "- **What went well:** _…_", "- **What went well:** the page fired in 52 seconds"
        )
        path.write_text(edited.replace("- **Open:** 7 h 20 min", "- **Open:** garbage"))
        again = http.get(
            f"/api/v1/incidents/{incident.id}/postmortem", headers={"Authorization": f"Bearer {API_TOKEN}"}
        )
        assert again.status_code == 200
        assert "the page fired in 52 seconds" in again.text and "- **Open:** 7 h 20 min" in again.text
        assert "the page fired in 52 seconds" in path.read_text()
        html = http.get(
            f"/api/v1/incidents/{incident.id}/postmortem",
            params={"format": "html"},
            headers={"Authorization": f"Bearer {API_TOKEN}"},
        )
        assert html.headers["content-type"].startswith("text/html") and "<table>" in html.text
        # The charts are in the page itself (its CSP allows `img-src data:`): the API has no address
        # for the draft's folder.
        sources = re.findall(r'<img [^>]*src="([^"]+)"', html.text)
        assert len(sources) == 2, sources
        for source, name in zip(sources, ("error-ratio.svg", "budget.svg"), strict=True):
            kind, data = source.split(",", 1)
            assert kind == "data:image/svg+xml;base64"
            assert base64.b64decode(data) == (drafts / f"{path.stem}-assets" / name).read_bytes()
        assert "img-src 'self' data:" in html.headers["content-security-policy"]
