"""Planned windows against a real Prometheus holding 31 days of generated traffic: a 100 % outage inside
a planned window neither pages nor spends budget; the same outage outside one pages, and only the events
outside the windows count. Expected figures are worked out here from the generated counters.

Traffic is 10 requests a second on two services with the same story: every request fails for the 30
minutes [T-40m, T-10m), none otherwise. `covered` has a planned window over [T-45m, T-5m); `elsewhere`
has one over [T-3h, T-2h), which the outage is outside of. Samples are a minute apart and aligned with
T, so each window and each planned stretch starts and ends on a sample and Prometheus's rate() does not
extrapolate: the arithmetic below is exact.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from app.config import SloOptions
from app.planned.windows import PlannedWindow
from app.slo.burn import State
from app.slo.service import SloEngine, SloResult
from app.slo.spec import load_specs
from app.sources.prometheus import PrometheusSource
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics

pytestmark = pytest.mark.integration

STEP = 60
RATE = 10.0  # requests a second
PERIOD = 30 * 86400
SPEC = """version: "prometheus/v1"
service: "{service}"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(requests_total{{service="{service}",code="500"}}[{{{{.window}}}}]))
        total_query: sum(rate(requests_total{{service="{service}"}}[{{{{.window}}}}]))
    alerting:
      page_alert: {{}}
      ticket_alert: {{}}
"""

# The same story as a raw ratio (no counts): sloguard takes the window out by time.
RAW = """version: "prometheus/v1"
service: "covered"
slos:
  - name: "ratio"
    objective: 99.9
    sli:
      raw:
        error_ratio_query: >-
          sum(rate(requests_total{service="covered",code="500"}[{{.window}}]))
          / sum(rate(requests_total{service="covered"}[{{.window}}]))
    alerting:
      page_alert: {}
      ticket_alert: {}
"""


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> tuple[PrometheusServer, Path, int]:
    end = aligned_now(STEP, margin=3600)
    outage = (end - 40 * 60, end - 10 * 60)
    start = end - 31 * 86400

    def failed(t: int) -> float:  # requests failed up to t (inclusive of the second ending at t)
        return RATE * max(0, min(t, outage[1]) - outage[0])

    def ok(t: int) -> float:
        return RATE * (t - start) - failed(t)

    series = []
    for service in ("covered", "elsewhere"):
        series.append(Series("requests_total", {"service": service, "code": "200"}, ok))
        series.append(Series("requests_total", {"service": service, "code": "500"}, failed))
    folder = tmp_path_factory.mktemp("planned")
    write_openmetrics(folder / "history.om", series, start, end, STEP)
    backfill(folder / "history.om", folder / "data")
    slo_dir = folder / "slo"
    slo_dir.mkdir()
    for service in ("covered", "elsewhere"):
        (slo_dir / f"{service}.yaml").write_text(SPEC.format(service=service))
    (slo_dir / "covered-raw.yaml").write_text(RAW)
    server = PrometheusServer(folder / "data").start()
    yield server, slo_dir, end
    server.stop()


def windows(end: int) -> list[PlannedWindow]:
    def at(seconds_before: int) -> str:
        return datetime.fromtimestamp(end - seconds_before, UTC).isoformat()

    return [
        PlannedWindow.model_validate(
            {"name": "db-migration", "start": at(45 * 60), "duration": "40m", "services": ["covered"]}
        ),
        PlannedWindow.model_validate(
            {"name": "earlier", "start": at(3 * 3600), "duration": "1h", "slos": ["elsewhere-availability"]}
        ),
    ]


def evaluate(world: tuple[PrometheusServer, Path, int], at: int) -> dict[str, SloResult]:
    server, slo_dir, end = world
    engine = SloEngine(
        load_specs([slo_dir]),
        PrometheusSource(server.url, timeout=30),
        None,
        SloOptions(batch=False),
        windows(end),
    )
    return {r.slo.id: r for r in engine.evaluate(datetime.fromtimestamp(at, UTC))}


def ratio(result: SloResult, window: str) -> float | None:
    assert result.evaluation is not None, result.detail
    return result.evaluation.windows[window].error_ratio


def test_an_outage_inside_a_planned_window_neither_pages_nor_spends_budget(
    world: tuple[PrometheusServer, Path, int],
) -> None:
    end = world[2]
    results = evaluate(world, end)
    covered, elsewhere = results["covered-availability"], results["elsewhere-availability"]

    # Inside the window: every failed request was in it, so what is left has no errors at all.
    assert covered.state == State.ok
    assert covered.evaluation is not None and covered.evaluation.budget_remaining == pytest.approx(
        1.0, abs=1e-9
    )
    for window in ("5m", "30m", "1h", "6h", "1d", "3d"):
        assert ratio(covered, window) == pytest.approx(0.0, abs=1e-12), window

    # The raw ratio, the window taken out by time (traffic is even, so by time is by events here).
    raw = results["covered-ratio"]
    assert raw.state == State.ok and raw.evaluation is not None
    assert raw.evaluation.budget_remaining == pytest.approx(1.0, abs=1e-9)
    for window in ("5m", "30m", "1h", "6h", "1d", "3d"):
        assert ratio(raw, window) == pytest.approx(0.0, abs=1e-12), window

    # Outside its window the same outage pages, and spends budget: 18,000 failures out of the period's
    # requests less the hour its window took out.
    failures = RATE * 30 * 60
    total = RATE * PERIOD - RATE * 3600
    assert elsewhere.state == State.page
    assert elsewhere.evaluation is not None
    assert elsewhere.evaluation.budget_remaining == pytest.approx(1 - failures / total / 0.001, rel=1e-6)
    # 30m: [T-30m, T) holds 20 failed minutes of 30; 6h: 30 of the 300 minutes outside [T-3h, T-2h).
    assert ratio(elsewhere, "30m") == pytest.approx(20 / 30, rel=1e-9)
    assert ratio(elsewhere, "1h") == pytest.approx(30 / 60, rel=1e-9)
    assert ratio(elsewhere, "6h") == pytest.approx(30 / 300, rel=1e-9)
    assert ratio(elsewhere, "5m") == pytest.approx(0.0, abs=1e-12)


def test_while_the_window_is_on_its_slo_does_not_page(world: tuple[PrometheusServer, Path, int]) -> None:
    end = world[2]
    at = end - 20 * 60  # the outage has run 20 minutes, inside the window
    results = evaluate(world, at)
    covered, elsewhere = results["covered-availability"], results["elsewhere-availability"]
    assert elsewhere.state == State.page  # the marker: the same data pages where nothing is planned
    assert ratio(elsewhere, "5m") == pytest.approx(1.0, rel=1e-9)
    assert covered.state not in (State.page, State.ticket), covered.detail
    assert results["covered-ratio"].state not in (State.page, State.ticket)
    # 5m lies inside the window: no events are left in it, so it has no data. 30m reaches 5 minutes back
    # before the window began, all served well; 1h the 15 minutes before it.
    assert ratio(covered, "5m") is None
    assert ratio(covered, "30m") == pytest.approx(0.0, abs=1e-12)
    assert ratio(covered, "1h") == pytest.approx(0.0, abs=1e-12)
    assert covered.evaluation is not None and covered.evaluation.windows["30m"].events == pytest.approx(
        RATE * 5 * 60, rel=1e-9
    )
    assert covered.evaluation is not None and covered.evaluation.budget_remaining == pytest.approx(
        1.0, abs=1e-9
    )


def test_the_windows_that_are_on_are_exported(world: tuple[PrometheusServer, Path, int]) -> None:
    server, slo_dir, end = world
    engine = SloEngine(load_specs([slo_dir]), None, None, SloOptions(), windows(end))
    during = datetime.fromtimestamp(end - 20 * 60, UTC)
    assert sorted(engine.planned_states(during)) == [
        ("covered-availability", True),
        ("covered-ratio", True),
        ("elsewhere-availability", False),
    ]
    assert not any(on for _, on in engine.planned_states(during + timedelta(minutes=20)))


def test_the_generated_alert_rules_hold_their_pages_until_the_planned_time_has_left_each_tier(
    tmp_path: Path,
) -> None:
    """Prometheus's own rule engine (promtool test rules) over the generated rules, a sample a minute.
    Every request fails from minute 30: for `stops` until minute 60, when its planned window (sloguard's
    gauge at 1 from minute 26) ends; for `goes-on` until minute 120; for `unplanned`, with no window, until
    minute 60. A tier is held until its short window has slid past the planned time, so `stops` never
    pages or tickets for its planned outage, while `goes-on` pages once its 5m window holds only what
    came after the window."""
    import yaml

    from app.slo import rules
    from tests.prometheus import promtool

    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    for service in ("stops", "goes-on", "unplanned"):
        (slo_dir / f"{service}.yaml").write_text(SPEC.format(service=service))
    (tmp_path / "rules.yaml").write_text(rules.render(load_specs([slo_dir])))
    minutes = range(0, 241)
    outage = {"stops": (30, 60), "goes-on": (30, 120), "unplanned": (30, 60)}

    def counter(service: str, failing: bool) -> str:
        begin, end = outage[service]
        failed = [600 * max(0, min(m, end) - begin) for m in minutes]  # 10 a second, all failing
        values = failed if failing else [600 * m - f for m, f in zip(minutes, failed, strict=True)]
        return " ".join(str(v) for v in values)

    series = [
        {"series": f'requests_total{{service="{s}",code="{code}"}}', "values": counter(s, code == "500")}
        for s in outage
        for code in ("200", "500")
    ]
    on = " ".join("1" if 26 <= m <= 60 else "0" for m in minutes)
    for service in ("stops", "goes-on"):
        series.append(
            {"series": f'sloguard_planned_window_active{{slo="{service}-availability"}}', "values": on}
        )

    def alerts(service: str, *severities: str) -> dict[str, object]:
        name = "".join(part.capitalize() for part in service.split("-")) + "Availability"
        return {
            "alertname": name,
            "exp_alerts": [
                {
                    "exp_labels": {
                        "sloth_id": f"{service}-availability",
                        "sloth_service": service,
                        "sloth_slo": "availability",
                        "sloth_severity": severity,
                    },
                    "exp_annotations": {
                        "title": f"({severity}) {service} availability SLO error budget burn rate"
                        " is too fast.",
                        "summary": f"{service}-availability: error budget burning",
                    },
                }
                for severity in severities
            ],
        }

    checks = [
        ("20m", alerts("unplanned")),  # before any outage: nothing
        ("50m", alerts("unplanned", "page", "ticket")),  # the marker: the rules see the outage
        ("50m", alerts("stops")),
        ("50m", alerts("goes-on")),
        ("65m", alerts("unplanned", "page", "ticket")),
        ("65m", alerts("stops")),  # its 30m window is still full of the planned outage: held
        ("65m", alerts("goes-on")),  # its 5m window still reaches back to the window's last minute
        ("67m", alerts("goes-on", "page")),  # 5m and 1h both failing, the 5m clear of the window
        ("100m", alerts("unplanned", "ticket")),  # the recorded 2h/1d ratios still hold the outage
        ("100m", alerts("stops")),  # ... and stops' too, but its ticket tiers' short windows hold it
    ]
    tests = {
        "rule_files": [str(tmp_path / "rules.yaml")],
        "evaluation_interval": "1m",
        "tests": [
            {
                "interval": "1m",
                "input_series": series,
                "alert_rule_test": [{"eval_time": at, **check} for at, check in checks],
            }
        ],
    }
    (tmp_path / "test.yaml").write_text(yaml.safe_dump(tests))
    result = promtool("test", "rules", str(tmp_path / "test.yaml"))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_live_prometheus_holds_the_page_of_an_slo_whose_planned_window_is_on(tmp_path: Path) -> None:
    """A real Prometheus evaluating the generated rules every second, scraping an exporter where both
    services fail every request, and a running sloguard whose sloguard.yaml plans a window for `covered`
    now. `elsewhere` pages (the marker that the rules ran over the outage); `covered` never does."""
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
    from typing import Any

    from app.main import create_app
    from app.slo import rules
    from tests.conftest import make_settings
    from tests.servers import UvicornThread, free_port, wait_until

    slo_dir = tmp_path / "slo"
    slo_dir.mkdir()
    for service in ("covered", "elsewhere"):
        (slo_dir / f"{service}.yaml").write_text(SPEC.format(service=service))
    (tmp_path / "rules.yaml").write_text(rules.render(load_specs([slo_dir])))
    now = datetime.now(UTC)
    (tmp_path / "sloguard.yaml").write_text(
        f'planned_windows:\n  - {{name: migration, start: "{(now - timedelta(minutes=5)).isoformat()}", '
        "duration: 1h, services: [covered]}\n"
    )
    # The outage begins once Prometheus holds the gauge (as where sloguard has been scraped for a while
    # before anything fails): under load a first scrape of sloguard can miss its one-second timeout.
    origin: list[float] = []

    class Exporter(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            failed = 10.0 * (time.time() - origin[0]) if origin else 0.0  # 10 a second, all failing
            body = "# TYPE requests counter\n" + "".join(
                f'requests_total{{service="{s}",code="500"}} {failed!r}\n' for s in ("covered", "elsewhere")
            )
            data = body.encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: Any) -> None:
            pass

    port = free_port()
    exporter = ThreadingHTTPServer(("127.0.0.1", port), Exporter)
    threading.Thread(target=exporter.serve_forever, daemon=True).start()
    (tmp_path / "data").mkdir()
    prometheus = PrometheusServer(tmp_path / "data", [tmp_path / "rules.yaml"], evaluation_interval="1s")
    settings = make_settings(tmp_path, slo_dir=slo_dir)
    sloguard = UvicornThread(create_app(settings))
    prometheus.scrape = {"model": f"127.0.0.1:{port}", "sloguard": f"127.0.0.1:{sloguard.port}"}
    try:
        with sloguard:
            prometheus.start()

            def firing(name: str) -> list[dict[str, Any]]:
                return prometheus.query(f'ALERTS{{alertname="{name}", alertstate="firing"}}')

            def held() -> list[str]:
                found = prometheus.query('sloguard_planned_window_active{slo="covered-availability"}')
                return [s["value"][1] for s in found]

            wait_until(lambda: held() == ["1"], timeout=60, what="the planned window's gauge scraped")
            origin.append(time.time())
            wait_until(lambda: firing("ElsewhereAvailability") != [], timeout=60, what="elsewhere pages")
            assert held() == ["1"]
            # covered's own rule group has recorded the outage too (its alert runs right after, in the
            # same group): from then on its page would be firing, were it not held.
            wait_until(
                lambda: (
                    [
                        float(s["value"][1])
                        for s in prometheus.query(
                            'slo:sli_error:ratio_rate1h{sloth_id="covered-availability"}'
                        )
                    ]
                    == [1.0]
                ),
                timeout=30,
                what="covered's ratios recorded",
            )
            assert firing("CoveredAvailability") == []
            assert prometheus.query('ALERTS{alertname="CoveredAvailability"}') == []  # not even pending
    finally:
        prometheus.stop()
        exporter.shutdown()
        exporter.server_close()
