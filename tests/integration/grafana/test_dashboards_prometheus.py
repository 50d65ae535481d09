"""Every query of the shipped dashboards returns series from a real Prometheus (Debian's package).

Prometheus evaluates the rules `sloguard slo rules` writes for the repository's slo/ files every second,
and scrapes every second a small exporter serving the counters those SLOs read (the fraud model failing
5 % of its requests, so its burn-rate alerts fire) and a real sloguard (create_app under uvicorn) for its
own metrics: sloguard evaluates the SLOs against that Prometheus, takes an Alertmanager notification
(and wrong tokens until it throttles the sender), gathers the incident's evidence, and tries to post it
to a Slack that refuses connections, so that its outbox holds a pending row that then dies
(`dead_after: 3`).

Recording rules and scrapes happen in real time: the test asks each query (Grafana's variables put in:
`$slo` by a real SLO id, `$__rate_interval` by 1m) until it has returned series once, within a bound.
Pending rows are there for a few seconds only, as on a live dashboard; the test remembers what it saw.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from app.main import create_app
from tests.alertmanager import group_notification
from tests.conftest import REPO, WEBHOOK_TOKEN, make_settings
from tests.dashboards import Query, files, queries, substitute
from tests.prometheus import PrometheusServer
from tests.servers import UvicornThread, free_port, wait_until

pytestmark = pytest.mark.integration
SLOGUARD = str(Path(sys.executable).parent / "sloguard")
SLO = "fraud-model-availability"  # the detail dashboard's $slo: a Prometheus-backed SLO of slo/
DEADLINE = 45.0


class FraudModelExporter:
    """/metrics of the fraud model: counters growing at fixed rates since `origin`, as the SLOs read them
    (slo/fraud-model.yaml, slo/fraud-model-quality.yaml)."""

    REQUESTS, ERRORS, SLOW, LABELLED, WRONG = 50.0, 0.05, 0.02, 5.0, 0.01

    def __init__(self) -> None:
        self.origin = time.time()
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def text(self, now: float) -> str:
        elapsed = now - self.origin
        requests, labelled = self.REQUESTS * elapsed, self.LABELLED * elapsed
        wrong = labelled * self.WRONG
        service = 'service="fraud-model"'
        return "\n".join(
            [
                "# TYPE http_requests counter",
                f'http_requests_total{{{service},code="500"}} {requests * self.ERRORS!r}',
                f'http_requests_total{{{service},code="200"}} {requests * (1 - self.ERRORS)!r}',
                "# TYPE http_request_duration_seconds histogram",
                f'http_request_duration_seconds_bucket{{{service},le="0.25"}} {requests * (1 - self.SLOW)!r}',
                f'http_request_duration_seconds_bucket{{{service},le="+Inf"}} {requests!r}',
                f"http_request_duration_seconds_sum{{{service}}} {requests * 0.1!r}",
                f"http_request_duration_seconds_count{{{service}}} {requests!r}",
                "# TYPE fraud_predictions_labelled counter",
                f'fraud_predictions_labelled_total{{{service},outcome="wrong"}} {wrong!r}',
                f'fraud_predictions_labelled_total{{{service},outcome="right"}} {labelled - wrong!r}',
                "",
            ]
        )

    def __enter__(self) -> FraudModelExporter:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                data = owner.text(time.time()).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[PrometheusServer]:
    """Prometheus with the generated rules, scraping the exporter and a running sloguard."""
    rules = tmp_path / "slo-rules.yaml"
    generated = subprocess.run(
        [SLOGUARD, "slo", "rules", str(REPO / "slo"), "-o", str(rules)], capture_output=True, text=True
    )
    assert generated.returncode == 0, generated.stderr
    (tmp_path / "data").mkdir()
    prometheus = PrometheusServer(tmp_path / "data", [rules], evaluation_interval="1s")
    config = {
        # The notification's service belongs to a model, so evidence gathering runs (and is delivered).
        "models": {"dashboards-model": {"services": ["svc-1"]}},
        "outbox": {"dead_after": 3, "chat_backoff_cap": 0.5, "poll_interval": 0.2},
    }
    (tmp_path / "sloguard.yaml").write_text(yaml.safe_dump(config))
    settings = make_settings(
        tmp_path,
        prometheus_url=prometheus.url,
        slo_dir=REPO / "slo",
        runbook_dir=REPO / "runbooks",
        scheduler_enabled=True,
        eval_interval=1,
        slack_bot_token="xoxb-dashboards-test",
        slack_signing_secret="dashboards-signing-secret-0123456789",
        slack_api_url="http://127.0.0.1:9/api/",  # the discard port: every Slack call is refused
        slack_channel="C0INCIDENTS",
    )
    with FraudModelExporter() as exporter:
        sloguard = UvicornThread(create_app(settings))
        prometheus.scrape = {"fraud-model": exporter.target, "sloguard": f"127.0.0.1:{sloguard.port}"}
        prometheus.start()
        try:
            with sloguard:
                # The notification once Prometheus scrapes sloguard, so that it sees the row pending.
                wait_until(
                    lambda: prometheus.query('up{job="sloguard"} == 1') != [],
                    timeout=30,
                    what="the first scrape of sloguard",
                )
                hook = f"{sloguard.url}/webhooks/alertmanager"
                answer = httpx.post(
                    hook,
                    json=group_notification(1, 1, "Dashboards"),
                    headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"},
                    timeout=10,
                )
                assert answer.status_code == 200, answer.text
                # Wrong tokens until the address is throttled (10 refusals a minute, then 429).
                answers = [
                    httpx.post(
                        hook, json={}, headers={"Authorization": "Bearer wrong"}, timeout=10
                    ).status_code
                    for _ in range(11)
                ]
                assert answers == [401] * 10 + [429], answers
                yield prometheus
        finally:
            prometheus.stop()


def returns_series(prometheus: PrometheusServer, query: Query) -> bool:
    result = prometheus.query(substitute(query.expr, SLO))
    if query.label is not None:  # a variable lists the values of this label
        return any(series["metric"].get(query.label) for series in result)
    return result != []


def test_every_dashboard_query_returns_series_from_prometheus(live: PrometheusServer) -> None:
    waiting = [query for name, model in files().items() for query in queries(name, model)]
    assert len(waiting) >= 30
    deadline = time.monotonic() + DEADLINE
    while waiting and time.monotonic() < deadline:
        waiting = [query for query in waiting if not returns_series(live, query)]
        if waiting:
            time.sleep(0.5)
    missing = "\n".join(
        f"{query.dashboard}: {query.where}: {substitute(query.expr, SLO)}" for query in waiting
    )
    assert not waiting, f"no series within {DEADLINE:.0f} s:\n{missing}"
    # The $slo variable lists every Prometheus-backed SLO of slo/ (not the Elasticsearch one).
    listed = {series["metric"]["sloth_id"] for series in live.query("sloth_slo_info")}
    assert listed == {"fraud-model-availability", "fraud-model-latency", "fraud-model-quality"}
