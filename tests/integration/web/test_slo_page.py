"""The SLO page against a real Prometheus holding a day of version-labelled traffic whose error ratios
the test chose: the per-version table shows them, and the two charts are drawn from the same data.

Each version's error and success counters are sampled at the same instants and start from 0 when the
version starts serving (as a new version's pods do), so whatever Prometheus' `increase()` extrapolates at
the window's edges applies to both alike and their ratio is exact. (Counters that started from different
values would be extrapolated differently toward zero: 4.995 % for 5 % on Debian's Prometheus.)"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import make_settings, personal_token
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics
from tests.servers import UvicornThread

STEP = 60
SPEC = """version: "prometheus/v1"
service: "ranker"
labels: {model: "ranker"}
slos:
  - name: "availability"
    objective: 99
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="ranker",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="ranker"}[{{.window}}]))
    alerting:
      page_alert: {}
      ticket_alert: {}
"""
CONFIG = """models:
  ranker:
    slos: [ranker-availability]
    version_label: model_version
    selector: 'service="ranker"'
"""
# version -> (requests a second, error share, serving from this many seconds before T)
TRAFFIC = {"3": (60.0, 0.002, 30 * 3600), "4": (20.0, 0.05, 6 * 3600)}


def counter(T: int, rate: float, since: int) -> callable[[int], float | None]:  # type: ignore[valid-type]
    def value(t: int) -> float | None:
        return None if t < T - since else rate * (t - (T - since))

    return value


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrometheusServer]:
    folder = tmp_path_factory.mktemp("ranker-history")
    T = aligned_now(STEP, margin=120)
    series = []
    for version, (rate, share, since) in TRAFFIC.items():
        for code, part in (("500", share), ("200", 1 - share)):
            labels = {"service": "ranker", "code": code, "model_version": version}
            series.append(Series("http_requests_total", labels, counter(T, rate * part, since)))
    write_openmetrics(folder / "h.om", series, T - 31 * 3600, T, STEP)
    backfill(folder / "h.om", folder / "data")
    server = PrometheusServer(folder / "data").start()
    yield server
    server.stop()


def signed_in(base: str, token: str) -> httpx.Client:
    browser = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
    browser.get("/signin")
    answer = browser.post(
        "/signin", data={"token": token, "csrf": browser.cookies["sloguard_signin"], "next": "/"}
    )
    assert answer.status_code == 303, answer.text
    return browser


def test_the_slo_page_shows_each_versions_error_ratio_and_both_charts(
    tmp_path: Path, prometheus: PrometheusServer
) -> None:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "ranker.yaml").write_text(SPEC, encoding="utf-8")
    (tmp_path / "sloguard.yaml").write_text(CONFIG, encoding="utf-8")
    settings = make_settings(tmp_path, prometheus_url=prometheus.url, source_timeout=20)
    token = personal_token(settings.database_url, "U0VIEW", "read")
    with UvicornThread(create_app(settings)) as server:
        browser = signed_in(server.url, token)
        try:
            page = browser.get("/slos/ranker-availability")
        finally:
            browser.close()
    assert page.status_code == 200, page.text
    html = page.text
    rows = dict(re.findall(r'<tr><th scope="row">(\d+)</th>.*?<td class="num">([\d.]+) %</td></tr>', html))
    # The share of failed requests of each version over the last day, from the traffic written above.
    assert set(rows) == set(TRAFFIC)
    for version, (_, share, _) in TRAFFIC.items():
        assert float(rows[version]) == pytest.approx(share * 100, abs=0.0005), (version, rows)
    # Version 3 carried three times version 4's rate for four times as long: listed first (busiest).
    assert html.index('<th scope="row">3</th>') < html.index('<th scope="row">4</th>')

    images = re.findall(r'<img src="data:image/svg\+xml;base64,([^"]+)" alt="([^"]+)"', html)
    assert [alt for _, alt in images] == ["Error ratio, last 24 h", "Error budget remaining, over 30d"]
    for data, _ in images:
        svg = base64.b64decode(data).decode("utf-8")
        assert svg.lstrip().startswith(("<?xml", "<svg")) and "<text" in svg
        assert "http://" not in svg.replace("http://www.w3.org/", "")  # nothing fetched
    assert "error ratio over" in base64.b64decode(images[0][0]).decode()
    # The spec as written and the rules sloguard generates for it
    assert "sum(rate(http_requests_total{service=&#34;ranker&#34;" in html or "service=&quot;ranker" in html
    assert "slo:sli_error:ratio_rate5m" in html
