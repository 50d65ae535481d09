"""The console in a real browser: Debian's Chromium, driven by Playwright, against a real sloguard (uvicorn
on loopback, SQLite and PostgreSQL), a real Prometheus, and a model server whose deploy webhook is the
rollback target.

The story, and so every figure the test expects, is worked out here and never read from sloguard's code:

- The demo's fraud model (`app.demo.story.FraudModel`: every counter is the exact integral of its phases)
  served version 1 for a day with 0.02 % errors; version 2 began 40 minutes ago with 0.08 %, failed 5 %
  of requests from 12 to 5 minutes ago, and is back at 0.08 %. On a one-day 99.9 % SLO, only the slowest
  ticket tier (1x over 2.4 h and 12 min) still burns: sloguard opens a ticket-level incident on its first
  evaluation, with an impact window that has already ended, and names version 2 the suspect.
- Three steady services (an exporter of exact integrals as well) fail a constant share of requests under
  objectives chosen so that the budget order is neither the order of their error ratios nor of their
  names; payments also had 50 % errors 25 hours ago, outside its one-day period.

Both histories are backfilled with promtool (26 hours, more than the period) and then scraped every second.
People act in their own browser contexts with their own personal tokens: alice (U0ALICE) acknowledges and
proposes the rollback, bob (U0BOB) confirms it (the environment needs two people).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

from app.demo import stack
from app.demo.run import SLO_FILE, sloguard_yaml
from app.demo.story import RPS, FraudModel, ModelServer, Phase
from app.main import create_app
from tests.browser import CHROMIUM, LAUNCH_ARGS
from tests.conftest import API_TOKEN, bearer, make_settings, personal_token, pg_schema_url
from tests.servers import UvicornThread, free_port, wait_until

pytestmark = pytest.mark.integration

# Read when the module is imported: the suite's autouse fixture removes SLOGUARD_* from each test's env.
SCREENSHOTS = os.environ.get("CONSOLE_SCREENSHOTS")
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
DAY = 86_400
SAMPLE = 15  # backfilled sample spacing
HISTORY = 26 * 3600
EVAL = 2.0
FRAUD_SLO = "fraud-model-availability"
FRAUD_ALLOWED = 0.001  # 1 - 99.9 %
ALICE, BOB = "U0ALICE", "U0BOB"
DEPLOY_SECRET_ENV = "BROWSER_TEST_DEPLOY_SECRET"
CALM = {"amount": 0.02, "merchant_category": 0.01, "hour_of_day": 0.01}
# The tiers of a one-day SLO: (severity, name, factor, long window, short window) in seconds, the
# Workbook's 30-day windows scaled by 1/30 (at least a minute) with the same share of the budget. The
# test's own copy of SLO-MATH.md's table, not sloguard's.
TIERS = [
    ("page", "page-fast", 14.4, 120, 60),
    ("page", "page-slow", 6.0, 720, 60),
    ("ticket", "ticket-fast", 3.0, 2880, 240),
    ("ticket", "ticket-slow", 1.0, 8640, 720),
]
SHOWN_TIME = "%Y-%m-%d %H:%M:%S UTC"


# ---------------------------------------------------------------- the story


@dataclass(frozen=True)
class Steady:
    """A service failing a constant share of its requests (and, optionally, more during a burst)."""

    service: str
    objective: float
    ratio: float
    rps: float
    burst: tuple[float, float, float] | None = None  # (start, end, share failing) in unix seconds

    @property
    def allowed(self) -> float:
        return 1 - self.objective

    def total(self, origin: float, t: float) -> float:
        return self.rps * (t - origin)

    def bad(self, origin: float, t: float) -> float:
        value = self.rps * self.ratio * (t - origin)
        if self.burst is not None:
            start, end, share = self.burst
            overlap = max(0.0, min(t, end) - max(origin, start))
            value += self.rps * (share - self.ratio) * overlap
        return value


@dataclass
class Story:
    """What happened, as functions of time: bad and total requests of any span, for each SLO."""

    origin: float
    model: FraudModel
    steady: list[Steady]
    burst: tuple[float, float]

    def counts(self, slo_id: str, start: float, end: float) -> tuple[float, float]:
        if slo_id == FRAUD_SLO:
            model = self.model

            def served(t: float, share: Callable[[Phase], float]) -> float:
                return sum(model._served(v, t, share) for v in model.versions)

            bad = served(end, lambda p: p.error_ratio) - served(start, lambda p: p.error_ratio)
            return bad, served(end, lambda p: 1.0) - served(start, lambda p: 1.0)
        (service,) = [s for s in self.steady if f"{s.service}-availability" == slo_id]
        return (
            service.bad(self.origin, end) - service.bad(self.origin, start),
            service.total(self.origin, end) - service.total(self.origin, start),
        )

    def allowed(self, slo_id: str) -> float:
        if slo_id == FRAUD_SLO:
            return FRAUD_ALLOWED
        return next(s.allowed for s in self.steady if f"{s.service}-availability" == slo_id)

    def budget_left(self, slo_id: str, t: float) -> float:
        """The SRE formula over the one-day period ending at t: 1 - (bad / total) / (1 - objective)."""
        bad, total = self.counts(slo_id, t - DAY, t)
        return 1 - (bad / total) / self.allowed(slo_id)

    def state(self, slo_id: str, t: float) -> str:
        """What the badge should say: the most severe tier whose long and short windows both burn above
        its factor, with the tier's name; `ok` when none does."""
        firing = []
        for severity, name, factor, long, short in TIERS:
            ratios = [self.counts(slo_id, t - w, t) for w in (long, short)]
            if all(bad / total > factor * self.allowed(slo_id) for bad, total in ratios):
                firing.append((severity, name))
        if not firing:
            return "ok"
        pages = [f for f in firing if f[0] == "page"]
        severity, name = (pages or firing)[0]
        return f"{severity} ({name})"


def openslo(service: str, objective: float) -> str:
    return f"""apiVersion: openslo/v1
kind: SLO
metadata:
  name: availability
spec:
  service: {service}
  budgetingMethod: Occurrences
  timeWindow:
    - duration: 1d
      isRolling: true
  objectives:
    - target: {objective}
  indicator:
    metadata:
      name: {service}-5xx
    spec:
      ratioMetric:
        counter: true
        bad:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{{service="{service}",code=~"5.."}}
        total:
          metricSource:
            type: Prometheus
            spec:
              query: http_requests_total{{service="{service}"}}
"""


class SteadyExporter:
    """`/metrics` of the steady services: their counters at the moment of the scrape."""

    def __init__(self, services: list[Steady], origin: float) -> None:
        self.services, self.origin = services, origin
        self.port = free_port()
        self.instance = f"127.0.0.1:{self.port}"
        self._server: ThreadingHTTPServer | None = None

    def samples(self, t: float) -> list[tuple[dict[str, str], float]]:
        found = []
        for service in self.services:
            bad, total = service.bad(self.origin, t), service.total(self.origin, t)
            found.append(({"service": service.service, "code": "500"}, bad))
            found.append(({"service": service.service, "code": "200"}, total - bad))
        return found

    def history(self) -> list[stack.Series]:
        labels = {"job": "steady", "instance": self.instance}

        def reader(index: int) -> Callable[[int], float]:
            return lambda t: self.samples(t)[index][1]

        return [
            stack.Series("http_requests_total", labels | extra, reader(i))
            for i, (extra, _) in enumerate(self.samples(self.origin))
        ]

    def start(self) -> SteadyExporter:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                lines = ["# TYPE http_requests_total counter"]
                for labels, value in owner.samples(time.time()):
                    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
                    lines.append(f"http_requests_total{{{shown}}} {value!r}")
                data = ("\n".join(lines) + "\n").encode()
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

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()


# ---------------------------------------------------------------- the world


@dataclass
class World:
    backend: str
    url: str
    api: httpx.Client
    tokens: dict[str, str]
    story: Story
    model_server: ModelServer
    shots: Path
    taken: list[Path] = field(default_factory=list)

    def shot(self, page: Page, name: str) -> Path:
        """A full-page screenshot of what the person sees, numbered in the order taken."""
        path = self.shots / f"{self.backend}-{len(self.taken) + 1:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        self.taken.append(path)
        return path


def announce(config: pytest.Config, text: str) -> None:
    """Write to the terminal past pytest's capture, so the folder is named in the test's output."""
    capture = config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        sys.stderr.write(text)
        sys.stderr.flush()


@pytest.fixture(scope="module")
def screenshots(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    folder = Path(SCREENSHOTS) if SCREENSHOTS else tmp_path_factory.mktemp("console-screenshots")
    folder.mkdir(parents=True, exist_ok=True)
    announce(request.config, f"\nconsole screenshots: {folder}\n")
    yield folder
    taken = len(list(folder.glob("*.png")))
    announce(request.config, f"\n{taken} console screenshots in {folder}\n")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def database(request: pytest.FixtureRequest, folder: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{folder / 'sloguard.db'}"
    else:
        yield from pg_schema_url(request.getfixturevalue("pg_database"))


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, screenshots: Path
) -> Iterator[World]:
    folder = tmp_path_factory.mktemp(f"console-{request.param}")
    now = time.time()
    origin = now - HISTORY
    burst = (now - 12 * 60, now - 5 * 60)
    phases = [
        Phase(origin, "1", 0.0002, 0.004, CALM),
        Phase(now - 40 * 60, "2", 0.0008, 0.006, CALM),
        Phase(burst[0], "2", 0.05, 0.09, CALM),
        Phase(burst[1], "2", 0.0008, 0.006, CALM),
    ]
    port = free_port()
    model = FraudModel(phases, instance=f"127.0.0.1:{port}", recovered={"1": (0.0002, 0.004)})
    steady = [
        # budget left 1 - 0.085 % / 0.1 % = 15 %; the burst 25 h ago is outside the one-day period
        Steady("payments", 0.999, 0.00085, 30.0, (now - 25.5 * 3600, now - 25 * 3600, 0.5)),
        Steady("search", 0.99, 0.0055, 20.0),  # 1 - 0.55 % / 1 % = 45 %
        Steady("ledger", 0.995, 0.00075, 10.0),  # 1 - 0.075 % / 0.5 % = 85 %
    ]
    exporter = SteadyExporter(steady, origin)
    history = folder / "history.om"
    start, end = int(origin) // SAMPLE * SAMPLE + SAMPLE, int(now) // SAMPLE * SAMPLE
    stack.write_openmetrics(history, [*model.history(), *exporter.history()], start, end, SAMPLE)
    stack.backfill(history, folder / "prometheus-data")
    secret = secrets.token_hex(16)
    (folder / "slo").mkdir()
    (folder / "slo" / "fraud-model.yaml").write_text(SLO_FILE)
    for service in steady:
        (folder / "slo" / f"{service.service}.yaml").write_text(openslo(service.service, service.objective))
    target = {
        "kind": "http_webhook",
        "url": f"http://{model.instance}/deploy",
        "secret_env": DEPLOY_SECRET_ENV,
    }
    config = json.loads(sloguard_yaml(target, registry=False))
    prod = config["models"]["fraud-model"]["environments"]["prod"]
    prod |= {"rollback": [ALICE, BOB], "two_person": True, "verify_for": 5}
    (folder / "sloguard.yaml").write_text(json.dumps(config))
    with contextlib.ExitStack() as started, pytest.MonkeyPatch.context() as patch:
        model_server = ModelServer(model, port, secret).start()
        started.callback(model_server.stop)
        started.callback(exporter.start().stop)
        scrape = {"fraud-model": model.instance, "steady": exporter.instance}
        prometheus = stack.PrometheusServer(folder / "prometheus-data", scrape=scrape)
        started.callback(prometheus.stop)
        prometheus.start()
        # The suite's guard against a developer's SLOGUARD_* is per test; this sloguard starts before it.
        for key in [
            k for k in os.environ if k.startswith("SLOGUARD_") and not k.startswith("SLOGUARD_TEST_")
        ]:
            patch.delenv(key)
        patch.setenv(DEPLOY_SECRET_ENV, secret)
        url = started.enter_context(contextlib.contextmanager(database)(request, folder))
        settings = make_settings(
            folder,
            database_url=url,
            prometheus_url=prometheus.url,
            scheduler_enabled=True,
            eval_interval=EVAL,
        )
        tokens = {who: personal_token(url, who, "change") for who in (ALICE, BOB)}
        sloguard = started.enter_context(UvicornThread(create_app(settings)))
        api = started.enter_context(
            httpx.Client(base_url=sloguard.url, headers=bearer(API_TOKEN), timeout=30)
        )
        story = Story(origin, model, steady, burst)
        yield World(request.param, sloguard.url, api, tokens, story, model_server, screenshots)


# ---------------------------------------------------------------- people in browsers


def person(
    browser: Browser, world: World, viewport: dict[str, int] = DESKTOP, **options: Any
) -> BrowserContext:
    context = browser.new_context(base_url=world.url, viewport=viewport, **options)  # type: ignore[arg-type]
    context.set_default_timeout(15_000)
    return context


def sign_in(context: BrowserContext, world: World, who: str, path: str = "/") -> Page:
    """Open a page signed out, land on the sign-in form, type the token, click Sign in."""
    page = context.new_page()
    page.goto(path)
    expect(page).to_have_url(re.compile(r"/signin\?next="))
    page.locator("#token").press_sequentially(world.tokens[who])
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(world.url + path)
    expect(page.locator("header form.who")).to_contain_text(who)
    return page


def shown_time(text: str) -> float:
    return datetime.strptime(text.strip(), SHOWN_TIME).replace(tzinfo=UTC).timestamp()


def percent(text: str) -> float:
    match = re.fullmatch(r"(-?\d+(?:\.\d+)?) %", text.strip())
    assert match, text
    return float(match.group(1)) / 100


def wait_for(what: str, check: Callable[[], Any], timeout: float) -> Any:
    found: list[Any] = []

    def probe() -> bool:
        value = check()
        if value:
            found.append(value)
        return bool(value)

    wait_until(probe, timeout=timeout, interval=0.25, what=what)
    return found[-1]


def the_incident(world: World) -> dict[str, Any]:
    """The incident sloguard opened, once its evidence names a suspect (the rollback form needs it)."""

    def ready() -> dict[str, Any] | None:
        listed = world.api.get("/api/v1/incidents").json()
        if not listed:
            return None
        found: dict[str, Any] = world.api.get(f"/api/v1/incidents/{listed[0]['id']}").json()
        return found if any(v["role"] == "suspect" for v in found["model_versions"]) else None

    found: dict[str, Any] = wait_for("the incident and its evidence", ready, 60)
    return found


def no_page_overflow(page: Page) -> None:
    width, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert width <= inner, f"{page.url}: the page is {width}px wide in a {inner}px viewport"


# ---------------------------------------------------------------- the tests


def test_the_overview_lists_the_slos_by_the_budget_left_the_story_gives(
    world: World, browser: Browser
) -> None:
    the_incident(world)  # sloguard has evaluated every SLO at least once
    story = world.story
    with person(browser, world) as context:
        page = sign_in(context, world, ALICE)
        rows = page.locator("#slo-table tbody tr[data-slo]")
        expect(rows).to_have_count(4)
        shown = []
        for row in rows.all():
            slo_id = row.get_attribute("data-slo")
            assert slo_id is not None
            evaluated = shown_time(row.locator("td").last.inner_text())
            shown.append(
                (
                    slo_id,
                    percent(row.locator(".budget").inner_text()),
                    row.locator("td .badge").first.inner_text(),
                    evaluated,
                )
            )
        world.shot(page, "overview")

        # Each figure is the period's budget left as the story gives it at that evaluation's time.
        expected = {slo_id: story.budget_left(slo_id, at) for slo_id, _, _, at in shown}
        for slo_id, left, state, at in shown:
            assert left == pytest.approx(expected[slo_id], abs=0.004), (slo_id, left, expected[slo_id])
            assert state == story.state(slo_id, at), (slo_id, state)
        # Least budget left first: payments 15 %, search 45 %, the fraud model about 54 %, ledger 85 %.
        order = [slo_id for slo_id, _, _, _ in shown]
        assert order == sorted(expected, key=expected.__getitem__), (order, expected)
        assert order == ["payments-availability", "search-availability", FRAUD_SLO, "ledger-availability"]
        assert expected["payments-availability"] == pytest.approx(0.15)
        assert expected["search-availability"] == pytest.approx(0.45)
        assert expected["ledger-availability"] == pytest.approx(0.85)
        assert 0.5 < expected[FRAUD_SLO] < 0.6

        # The fraud model's own page: the same budget, and both of its charts drawn.
        page.get_by_role("link", name=FRAUD_SLO, exact=True).click()
        expect(page).to_have_url(f"{world.url}/slos/{FRAUD_SLO}")
        fraud = next(item for item in shown if item[0] == FRAUD_SLO)
        assert percent(page.locator("#budget-left").inner_text()) == pytest.approx(fraud[1], abs=0.002)
        charts = page.locator("figure.chart img")
        expect(charts).to_have_count(2)
        widths = charts.evaluate_all("(images) => images.map((i) => i.complete && i.naturalWidth)")
        assert all(width and width > 0 for width in widths), widths
        world.shot(page, "slo")


def test_a_phone_shows_the_overview_without_sideways_scrolling_and_the_keyboard_signs_in(
    world: World, browser: Browser
) -> None:
    number = the_incident(world)["id"]
    with person(browser, world, PHONE, is_mobile=True, has_touch=True, device_scale_factor=2) as context:
        page = context.new_page()
        page.goto("/")
        expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
        world.shot(page, "phone-signin")
        no_page_overflow(page)
        # The keyboard alone: the token field has the focus when the page opens; Enter submits.
        expect(page.locator("#token")).to_be_focused()
        page.keyboard.type(world.tokens[BOB])
        page.keyboard.press("Enter")
        expect(page).to_have_url(world.url + "/")
        expect(page.locator("#slo-table tbody tr[data-slo]")).to_have_count(4)
        no_page_overflow(page)
        world.shot(page, "phone-overview")
        # From the top of the overview, the first Tab reaches the skip link (shown when focused); Enter
        # follows it into the page, whose first stop is the open incident, and Enter opens that.
        page.keyboard.press("Tab")
        skip = page.get_by_role("link", name="Skip to content")
        expect(skip).to_be_focused()
        box = skip.bounding_box()
        assert box is not None and box["x"] >= 0 and box["y"] >= 0, box
        page.keyboard.press("Enter")
        expect(page.locator("#main")).to_be_focused()
        page.keyboard.press("Tab")
        expect(page.locator(".open-list a").first).to_be_focused()
        page.keyboard.press("Enter")
        expect(page).to_have_url(f"{world.url}/incidents/{number}")
        for path in ("/incidents", f"/incidents/{number}"):
            page.goto(path)
            no_page_overflow(page)
            world.shot(page, "phone-" + ("incidents" if path == "/incidents" else "incident"))


def test_an_incident_is_acknowledged_rolled_back_by_two_people_and_resolved_into_a_draft(
    world: World, browser: Browser
) -> None:
    incident = the_incident(world)
    number, title = incident["id"], incident["title"]
    model = world.story.model
    deploys_before = len(world.model_server.deploys)
    with person(browser, world) as alice_context, person(browser, world) as bob_context:
        alice = sign_in(alice_context, world, ALICE, "/incidents")
        bob = sign_in(bob_context, world, BOB, f"/incidents/{number}")
        bob.evaluate("window.__stayed = 'bob never left this page'")
        expect(bob.locator("#incident-status")).to_have_text("triggered")

        # Alice opens it from the list and acknowledges: she is the commander.
        table = alice.locator("#incident-table")
        expect(table.locator("tbody tr")).to_have_count(1)
        expect(table).to_contain_text("triggered")
        world.shot(alice, "incidents")
        table.get_by_role("link", name=title).click()
        expect(alice).to_have_url(f"{world.url}/incidents/{number}")
        world.shot(alice, "incident-triggered")
        alice.get_by_role("button", name="Acknowledge").click()
        expect(alice.locator(".flash")).to_have_text("Acknowledged.")
        expect(alice.locator("#incident-status")).to_have_text("acknowledged")
        expect(alice.locator("#commander")).to_have_text(ALICE)
        expect(alice.get_by_role("button", name="Acknowledge")).to_have_count(0)

        # Bob's page, open all along, shows it without a reload.
        expect(bob.locator("#incident-status")).to_have_text("acknowledged", timeout=15_000)
        expect(bob.locator("#commander")).to_have_text(ALICE)
        expect(bob.locator("#timeline")).to_contain_text(f"triggered -> acknowledged (commander: {ALICE})")
        assert bob.evaluate("window.__stayed") == "bob never left this page"

        # A change through another door (the API, with Bob's own token) reaches Alice's open page.
        alice.evaluate("window.__stayed = 'alice never left this page'")
        note = f"checked the feature pipeline: unchanged since yesterday ({secrets.token_hex(3)})"
        answer = world.api.post(
            f"/api/v1/incidents/{number}/timeline", json={"text": note}, headers=bearer(world.tokens[BOB])
        )
        assert answer.status_code == 201, answer.text
        expect(alice.locator("#timeline")).to_contain_text(note, timeout=15_000)
        expect(alice.locator("#timeline li", has_text=note)).to_contain_text(BOB)
        assert alice.evaluate("window.__stayed") == "alice never left this page"
        assert alice.url.endswith(f"/incidents/{number}?done=acknowledged")

        # Alice proposes the rollback: the form offers the version before the suspect, the story's "1".
        assert model.serving.version == "2"
        expect(alice.locator("#rb-version")).to_have_value("1")
        alice.get_by_role("button", name="Propose rollback").click()
        expect(alice.locator(".flash")).to_contain_text("Rollback proposed.")
        card = alice.locator("article.rollback")
        expect(card).to_have_count(1)
        action_id = int((card.get_attribute("id") or "").removeprefix("rollback-"))
        expect(card.locator(".badge")).to_have_text("proposed")
        expect(card).to_contain_text("fraud-model in prod, 2 → 1")
        world.shot(alice, "incident-proposed")

        # She may not confirm her own proposal: the environment needs a second person.
        alice.get_by_role("button", name=f"Confirm rollback {action_id}").click()
        expect(alice.locator(".problem")).to_contain_text("needs a second person")
        world.shot(alice, "confirm-refused")
        assert len(world.model_server.deploys) == deploys_before  # refused before the target was built

        # Bob's page grows the confirm button by itself; he confirms and the deploy hook is called once.
        confirm = bob.get_by_role("button", name=f"Confirm rollback {action_id}")
        expect(confirm).to_be_visible(timeout=15_000)
        assert bob.evaluate("window.__stayed") == "bob never left this page"
        confirm.click()
        expect(bob.locator(".flash")).to_contain_text("Rollback confirmed.")
        calls = world.model_server.deploys[deploys_before:]
        assert len(calls) == 1, calls
        (call,) = calls
        assert (call["model"], call["environment"], call["incident"]) == ("fraud-model", "prod", number)
        assert (call["from"], call["to"], call["actor"]) == ("2", "1", ALICE)
        assert model.serving.version == "1"

        # The audit trail on the page names both people; the rollback is verified (the page's short
        # windows are clean) and the incident mitigated, shown on Alice's page as it happens.
        alice.goto(f"/incidents/{number}")
        alice.evaluate("window.__stayed = 'alice stayed after the rollback'")
        card = alice.locator(f"#rollback-{action_id}")
        expect(card.locator(".badge")).to_have_text("verified", timeout=30_000)
        expect(alice.locator("#incident-status")).to_have_text("mitigated", timeout=15_000)
        expect(card.locator("p.meta")).to_contain_text(f"proposed by {ALICE}")
        expect(card.locator("p.meta")).to_contain_text(f"confirmed by {BOB}")
        audit = card.locator("ol.audit li")
        expect(audit.filter(has_text="proposed by")).to_contain_text(f"proposed by {ALICE}")
        expect(audit.filter(has_text="executing by")).to_contain_text(f"executing by {BOB}")
        expect(audit.filter(has_text="succeeded by")).to_contain_text(f"succeeded by {BOB}")
        assert alice.evaluate("window.__stayed") == "alice stayed after the rollback"
        world.shot(alice, "incident-rolled-back")

        # Resolve; the page shows the draft's link once the outbox has written it, without a reload.
        alice.get_by_role("button", name="Resolve").click()
        expect(alice.locator("#incident-status")).to_have_text("resolved")
        alice.evaluate("window.__stayed = 'alice stayed after resolving'")
        link = alice.locator("#live").get_by_role("link", name="Review draft")
        expect(link).to_be_visible(timeout=90_000)
        assert alice.evaluate("window.__stayed") == "alice stayed after resolving"
        check_impact(alice, world)
        world.shot(alice, "incident-resolved")
        bob.close()

        link.click()
        expect(alice).to_have_url(f"{world.url}/incidents/{number}/draft")
        images = alice.locator("article.draft img")
        expect(images).to_have_count(2)
        expect(alice.locator('article.draft img[src^="data:image/svg+xml"]')).to_have_count(2)
        drawn = images.evaluate_all(
            "(all) => Promise.all(all.map((i) => i.decode().then(() => [i.naturalWidth, i.naturalHeight])))"
        )
        assert all(width > 0 and height > 0 for width, height in drawn), drawn
        expect(alice.locator("article.draft")).to_contain_text(title)
        world.shot(alice, "draft")
    assert len(world.model_server.deploys) == deploys_before + 1  # still one, after all the above


def check_impact(page: Page, world: World) -> None:
    """The impact card against the story: the window holds the 5 % burst to within a step (and a sample
    either side), and the budget it spent is the story's bad requests in the window sloguard reports over
    0.1 % of the day's requests ending there."""
    story = world.story
    impact = page.locator("#live .card", has=page.locator("h2", has_text="Impact"))
    text = impact.inner_text()
    match = re.search(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC) to (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC)", text)
    spent = re.search(r"Budget consumed: (-?\d+\.\d %)", text)
    assert match and spent, text
    start, end = shown_time(match.group(1)), shown_time(match.group(2))
    began, ended = story.burst
    assert began - 60 - SAMPLE <= start <= began + SAMPLE, (start - began, text)
    assert ended - SAMPLE <= end <= ended + 60 + SAMPLE, (end - ended, text)
    bad, _ = story.counts(FRAUD_SLO, start, end)
    _, day = story.counts(FRAUD_SLO, end - DAY, end)
    expected = bad / (FRAUD_ALLOWED * day)
    assert percent(spent.group(1)) == pytest.approx(expected, rel=0.06, abs=0.001), (spent.group(1), expected)
    assert 0.2 < expected < 0.3  # seven minutes at 5 % of a day's 0.1 %: about a quarter of the budget
    assert RPS * 7 * 60 * 0.05 / (FRAUD_ALLOWED * RPS * DAY) == pytest.approx(expected, rel=0.06)
