"""How long the review draft of a long incident takes to render, charts included.

    .venv/bin/python bench/postmortem.py [--events 500] [--runs 7] [--days 31]

Backfills a real Prometheus with a month of one service's request counters (100 req/s, 0.05 % errors,
a 10-minute 30 % blip), opens an incident on its SLO through the incident service (an eight-hour
incident, acknowledged, mitigated and resolved, with N timeline events in all), and times the app's own
`postmortems.write` (database reads, chart series from Prometheus, two matplotlib SVG
charts, the sandboxed Markdown template, the file written over the previous draft). Baselines measured
in the same process: the same incident with charts off (no Prometheus: no charts),
and an incident with a single timeline event, charts on. Prints median and max of each and the ratios.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy.engine import Engine

from app import db
from app.config import FileConfig, Settings
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate, IncidentStatus, IncidentUpdate, Severity
from app.postmortems import service as postmortems
from app.services import Services, Sources
from app.slo.service import SloEngine
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from bench.timing import show
from bench.timing import timed as timed_calls
from tests.conftest import make_settings
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics

STEP = 60
RATE = 100.0  # requests a second
BACKGROUND, BLIP = 0.0005, 0.30
SPEC = """
version: "prometheus/v1"
service: "bench-pm"
labels: {model: fraud-detector}
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="bench-pm",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="bench-pm"}[{{.window}}]))
    alerting:
      name: BenchPmAvailability
      annotations: {runbook_url: runbooks/bench-pm.md}
"""
SLO_ID = "bench-pm-availability"
KINDS = ("note", "alert_firing", "slack_pin", "burn", "note", "update", "alert_resolved", "note")


def history(end: int, days: int, blip_end: int) -> list[Series]:
    start = end - days * 86400
    blip_start = blip_end - 600

    def bad(t: int) -> float:
        # Cumulative bad requests: the background share everywhere, the blip's share inside it.
        before = min(max(t, start), blip_start) - start
        inside = min(max(t, blip_start), blip_end) - blip_start
        after = max(t, blip_end) - blip_end
        return RATE * (BACKGROUND * (before + after) + BLIP * inside)

    def good(t: int) -> float:
        return RATE * (t - start) - bad(t)

    return [
        Series("http_requests_total", {"service": "bench-pm", "code": "500"}, bad),
        Series("http_requests_total", {"service": "bench-pm", "code": "200"}, good),
    ]


def make_incident(engine: Engine, events: int, started: datetime, title: str) -> int:
    """An incident on the SLO with exactly `events` timeline events, built through the service."""
    incident = incidents.declare(
        engine,
        None,
        IncidentCreate(
            title=title,
            service="bench-pm",
            slo_id=SLO_ID,
            model="fraud-detector",
            severity=Severity.SEV2,
            summary="Fraud scoring answered 30 % of requests with 5xx for ten minutes.",
            commander="U0COMMANDER",
            started_at=started,
            actor="U0COMMANDER",
        ),
        started + timedelta(minutes=5),
    )
    assert incident.id is not None
    if events <= 1:
        return incident.id
    # Opened (1) + acknowledged, mitigated, resolved (3): the rest are notes spread over the incident.
    notes = events - 4
    span = timedelta(hours=8)
    for index in range(notes):
        at = started + timedelta(minutes=5) + span * (index + 1) / (notes + 2)
        text = (
            f"U{index % 9:02d}: checked shard {index % 17} of the scoring fleet — p99 {120 + index % 80} ms, "
            f"5xx {(index % 30) / 10:.1f} %, queue depth {index % 250}; see dashboard panel #{index % 12}"
        )
        incidents.add_note(engine, incident.id, text, f"U{index % 9:02d}RESPONDER", at, KINDS[index % 8])
    for status, minutes in (("acknowledged", 8), ("mitigated", 60), ("resolved", 8 * 60 + 10)):
        incidents.update(
            engine,
            None,
            incident.id,
            IncidentUpdate(status=IncidentStatus(status), actor="U0COMMANDER"),
            started + timedelta(minutes=minutes),
        )
    with db.session_scope(engine) as session:
        count = len(incidents.timeline(session, incident.id))
    if count != events:
        raise RuntimeError(f"incident {incident.id} has {count} timeline events, not {events}")
    return incident.id


def timed(render: Callable[[], object], runs: int) -> list[float]:
    render()  # warm: template compiled, matplotlib imported, connections open
    return timed_calls(render, runs)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=500)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--days", type=int, default=31, help="days of history (the SLO period is 30d)")
    args = parser.parse_args()
    if args.events < 5:
        parser.error("--events must be at least 5 (opened, acknowledged, mitigated, resolved and a note)")

    with tempfile.TemporaryDirectory(prefix="sloguard-bench-") as tmp:
        folder = Path(tmp)
        (folder / "slo").mkdir()
        (folder / "slo" / "bench-pm.yaml").write_text(SPEC)
        end = aligned_now(STEP)
        T = datetime.fromtimestamp(end, UTC)
        started = T - timedelta(hours=10)
        blip_end = int((started + timedelta(minutes=5)).timestamp())

        clock = time.perf_counter()
        write_openmetrics(
            folder / "history.om", history(end, args.days, blip_end), end - args.days * 86400, end, STEP
        )
        backfill(folder / "history.om", folder / "data")
        print(f"history: 2 series x {args.days} days backfilled in {time.perf_counter() - clock:.1f} s")

        server = PrometheusServer(folder / "data").start()
        settings: Settings = make_settings(folder, slo_dir=folder / "slo", prometheus_url=server.url)
        engine = db.make_engine(settings.database_url)
        prometheus = PrometheusSource(server.url, timeout=30)
        try:
            db.upgrade(engine)
            slos = load_specs([settings.slo_dir])
            sources = Sources(prometheus)
            with_charts = Services(
                settings, FileConfig(), engine, sources, slo_engine=SloEngine(slos, prometheus, None)
            )
            without = Services(
                settings, FileConfig(), engine, sources, slo_engine=SloEngine(slos, None, None)
            )

            clock = time.perf_counter()
            long_id = make_incident(engine, args.events, started, "bench-pm error budget burning (page)")
            short_id = make_incident(engine, 1, started, "bench-pm latency blip")
            print(
                f"incidents: #{long_id} with {args.events} timeline events, #{short_id} with 1, "
                f"built in {time.perf_counter() - clock:.1f} s "
                f"({datetime.now(UTC):%Y-%m-%d %H:%M} UTC)"
            )

            def render(services: Services, incident_id: int, name: str) -> Callable[[], object]:
                output = folder / "drafts" / f"{name}.md"
                return lambda: postmortems.write(services, incident_id, T, output)

            full = show(
                f"{args.events} events, charts ({args.runs} runs)",
                timed(render(with_charts, long_id, "full"), args.runs),
            )
            draft = postmortems.write(with_charts, long_id, T, folder / "drafts" / "full.md")
            charts = len(draft.context["charts"])
            if charts != 2:  # (the budget figures are the stored impact measurement's: none here)
                raise RuntimeError(f"expected 2 charts, got {charts}")
            no_charts = show(
                f"{args.events} events, charts off ({args.runs} runs)",
                timed(render(without, long_id, "no-charts"), args.runs),
            )
            one_event = show(
                f"1 event, charts ({args.runs} runs)",
                timed(render(with_charts, short_id, "one-event"), args.runs),
            )
            print(
                f"ratios: charts on / off = {full / no_charts:.1f}x (the charts cost "
                f"{(full - no_charts) * 1000:.0f} ms); "
                f"{args.events} events / 1 event = {full / one_event:.1f}x "
                f"(the timeline costs {(full - one_event) * 1000:.0f} ms)"
            )
            print(f"draft: {len(draft.markdown):,} characters, {charts} SVG charts")
        finally:
            prometheus.close()
            engine.dispose()
            server.stop()


if __name__ == "__main__":
    main()
