"""Every page of the console checked by axe-core, the standard WCAG engine, in Debian's Chromium.

A real sloguard (uvicorn on loopback, SQLite) over a real Prometheus that holds a day and a half of traffic
of two SLOs, one of them a model's with two versions, so the pages show what people see on a working
day: evaluated SLOs with their sparklines, the SLO page's charts and per-version table, incidents with
their evidence, a note, the rollback form, a proposed rollback awaiting its second person, and a review
draft with its charts. A person with a `change` token signs in through the form, as in
test_browser.py, and each page is run through axe's WCAG 2.0/2.1 A and AA rules as it is shown (the
incident page after its script has redrawn the live part, disclosures opened) at a desktop viewport and,
for the pages people open on call, at a phone's.

axe cannot judge everything WCAG asks (reflow at 320 px, meaningful names, focus order...): a page that
passes here has no failure axe can prove. What it could not decide is saved next to each screenshot
(`NAME.axe.json`, its `incomplete` list).

axe-core is the npm package pinned in tests/a11y/package-lock.json (`npm ci --prefix tests/a11y`); it
is evaluated into each page through the DevTools protocol, which the page's Content-Security-Policy
does not govern, so the console is tested with its real headers.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from app.main import create_app
from tests.browser import CHROMIUM, LAUNCH_ARGS
from tests.conftest import REPO, bearer, make_settings, personal_token
from tests.prometheus import PrometheusServer, Series, aligned_now, backfill, write_openmetrics
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration

AXE = REPO / "tests" / "a11y" / "node_modules" / "axe-core" / "axe.min.js"
AXE_OPTIONS = {"runOnly": {"type": "tag", "values": ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa"]}}
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
STEP = 15  # sample spacing: sloguard reads versions from increase() over 60 s steps
PERSON, RESPONDER = "U0ALICE", "U0BOB"
MODEL_SPEC = """version: "prometheus/v1"
service: "ranker"
labels: {model: "ranker"}
slos:
  - name: "availability"
    objective: 99
    description: "Ranking requests answered without a server error."
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="ranker",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="ranker"}[{{.window}}]))
    alerting:
      page_alert: {}
      ticket_alert: {}
"""
SERVICE_SPEC = MODEL_SPEC.replace("ranker", "search").replace("objective: 99", "objective: 99.5")
SERVICE_SPEC = SERVICE_SPEC.replace('labels: {model: "search"}\n', "")
CONFIG = {
    "models": {
        "ranker": {
            "services": ["ranker"],
            "slos": ["ranker-availability"],
            "version_label": "model_version",
            "selector": 'service="ranker"',
            "environments": {
                "prod": {
                    "target": {"kind": "command", "argv": ["true"]},
                    "rollback": [PERSON, RESPONDER],
                    "two_person": True,
                }
            },
        }
    }
}
# (service, version or None) -> (requests a second, error share, serving from this many seconds before T):
# nothing burns its budget fast enough to page or open an incident by itself.
TRAFFIC = {
    ("ranker", "3"): (60.0, 0.002, 30 * 3600),
    ("ranker", "4"): (20.0, 0.004, 5 * 3600),
    ("search", None): (30.0, 0.001, 30 * 3600),
}


@dataclass(frozen=True)
class Console:
    url: str
    token: str
    paths: dict[str, str]
    shots: Path


def counter(T: int, rate: float, since: int) -> Callable[[int], float | None]:
    def value(t: int) -> float | None:
        return None if t < T - since else rate * (t - (T - since))

    return value


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("a11y")
    T = aligned_now(STEP, margin=120)
    series = []
    for (service, version), (rate, share, since) in TRAFFIC.items():
        for code, part in (("500", share), ("200", 1 - share)):
            labels = {"service": service, "code": code} | ({"model_version": version} if version else {})
            series.append(Series("http_requests_total", labels, counter(T, rate * part, since)))
    write_openmetrics(folder / "h.om", series, T - 31 * 3600, T, STEP)
    backfill(folder / "h.om", folder / "data")
    (folder / "slo").mkdir()
    (folder / "slo" / "ranker.yaml").write_text(MODEL_SPEC, encoding="utf-8")
    (folder / "slo" / "search.yaml").write_text(SERVICE_SPEC, encoding="utf-8")
    (folder / "sloguard.yaml").write_text(json.dumps(CONFIG), encoding="utf-8")
    prometheus = PrometheusServer(folder / "data").start()
    try:
        settings = make_settings(
            folder,
            prometheus_url=prometheus.url,
            source_timeout=20,
            scheduler_enabled=True,
            eval_interval=2.0,
        )
        change = personal_token(settings.database_url, PERSON, "change")
        respond = bearer(personal_token(settings.database_url, RESPONDER, "respond"))
        with (
            UvicornThread(create_app(settings)) as server,
            httpx.Client(base_url=server.url, timeout=60) as api,
        ):
            paths = story(api, respond, bearer(change), settings.postmortem_dir)
            yield Console(server.url, change, paths, folder / "screenshots")
    finally:
        prometheus.stop()


def story(api: httpx.Client, respond: dict[str, str], change: dict[str, str], drafts: Path) -> dict[str, str]:
    """Incidents declared through the API and the pages that show them, once every SLO is evaluated."""

    def created(answer: httpx.Response) -> dict[str, Any]:
        assert answer.status_code == 201, answer.text
        found: dict[str, Any] = answer.json()
        return found

    # Impact from two hours ago: version 4, out three hours earlier and failing more, is the suspect.
    began = datetime.fromtimestamp(time.time() - 2 * 3600, UTC).isoformat()
    model = {
        "service": "ranker",
        "model": "ranker",
        "environment": "prod",
        "slo_id": "ranker-availability",
        "started_at": began,
    }
    # Open, with a note and the rollback form; its review draft written now (as `sloguard postmortem`).
    first = created(
        api.post(
            "/api/v1/incidents",
            json={"title": "Ranker errors after version 4", "severity": "SEV2"} | model,
            headers=respond,
        )
    )["id"]
    created(
        api.post(
            f"/api/v1/incidents/{first}/timeline",
            json={"text": "Version 4 went out at 07:00; errors doubled."},
            headers=respond,
        )
    )
    # Acknowledged, with a rollback proposed and awaiting its second person.
    second = created(
        api.post(
            "/api/v1/incidents", json={"title": "Ranker latency", "severity": "SEV1"} | model, headers=respond
        )
    )["id"]
    answer = api.patch(f"/api/v1/incidents/{second}", json={"status": "acknowledged"}, headers=respond)
    assert answer.status_code == 200, answer.text
    created(
        api.post(
            "/api/v1/rollbacks",
            json={
                "model": "ranker",
                "environment": "prod",
                "to_version": "3",
                "incident_id": second,
                "reason": "version 4 is the suspect",
            },
            headers=change,
        )
    )
    # Resolved: the outbox writes its review draft.
    third = created(
        api.post(
            "/api/v1/incidents",
            json={"title": "Search 5xx blip", "severity": "SEV4", "service": "search"},
            headers=respond,
        )
    )["id"]
    answer = api.patch(f"/api/v1/incidents/{third}", json={"status": "resolved"}, headers=respond)
    assert answer.status_code == 200, answer.text

    draft = api.get(f"/api/v1/incidents/{first}/postmortem", headers=respond)
    assert draft.status_code == 200, draft.text

    def evaluated() -> bool:
        listed = api.get("/api/v1/slos", headers=respond).json()
        return len(listed) == 2 and all(slo.get("evaluated_at") for slo in listed)

    wait_until(evaluated, timeout=60, interval=0.25, what="every SLO evaluated")
    wait_until(
        lambda: any(drafts.glob(f"*-{third}-*.md")), timeout=60, interval=0.25, what="the resolved draft"
    )
    return {
        "overview": "/",
        "slo": "/slos/ranker-availability",
        "service-slo": "/slos/search-availability",
        "incidents": "/incidents",
        "incident": f"/incidents/{first}",
        "incident-rollback": f"/incidents/{second}",
        "incident-resolved": f"/incidents/{third}",
        "draft": f"/incidents/{first}/draft",
        "no-draft": f"/incidents/{second}/draft",
        "not-found": "/incidents/999999",
    }


@pytest.fixture(scope="module")
def axe_source() -> str:
    # Not skipped when missing: `make test` installs it, and a missing check must not pass quietly.
    assert AXE.is_file(), f"{AXE} is missing: run `npm ci --prefix tests/a11y --no-audit --no-fund`"
    return AXE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


def sign_in(page: Page, console: Console, check_on_the_way: Callable[[str], None] | None = None) -> None:
    """Sign in through the form as the `change` person, after one refused token."""
    page.goto("/")
    expect(page).to_have_url(re.compile(r"/signin\?next=/$"))
    if check_on_the_way:
        check_on_the_way("signin")
    page.locator("#token").fill("sloguard_pat_not-a-token")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#problem")).to_be_visible()
    if check_on_the_way:
        check_on_the_way("signin-refused")
    page.locator("#token").fill(console.token)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(console.url + "/")
    expect(page.locator("header form.who")).to_contain_text(PERSON)


@pytest.fixture(scope="module")
def signed_in(browser: Browser, console: Console) -> dict[str, Any]:
    """The cookies of the `change` person, signed in through the form."""
    with browser.new_context(base_url=console.url, viewport=DESKTOP) as context:  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        sign_in(context.new_page(), console)
        state: dict[str, Any] = context.storage_state()  # type: ignore[assignment]
    return state


def check(page: Page, axe_source: str, console: Console, name: str) -> None:
    """Run axe's WCAG A/AA rules over the page as shown, after a screenshot of it."""
    console.shots.mkdir(exist_ok=True)
    shot = console.shots / f"{name}.png"
    page.screenshot(path=str(shot), full_page=True)
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(axe_source)
    results = page.evaluate("(options) => axe.run(document, options)", AXE_OPTIONS)
    assert (
        results["testEngine"]["version"] == json.loads((AXE.parent / "package.json").read_text())["version"]
    )
    assert results["passes"], f"{page.url}: axe ran no rule that passed; is the page empty?"
    violations = results["violations"]
    # What axe could not decide by itself (people review these), next to the screenshot.
    kept = {key: results[key] for key in ("url", "violations", "incomplete")}
    shot.with_suffix(".axe.json").write_text(json.dumps(kept, indent=1), encoding="utf-8")
    assert not violations, f"{page.url} ({name}, {page.viewport_size}, screenshot {shot}):\n" + "\n".join(
        describe(violation) for violation in violations
    )


def describe(violation: dict[str, Any]) -> str:
    nodes = "\n".join(
        f"      {' '.join(node['target'])}: {node.get('failureSummary', '').strip()}".replace("\n", " ")
        for node in violation["nodes"]
    )
    return (
        f"  {violation['id']} ({violation['impact']}): {violation['help']} [{violation['helpUrl']}]\n{nodes}"
    )


def test_the_signin_page_meets_wcag_2_1_aa(browser: Browser, console: Console, axe_source: str) -> None:
    """Signed out, as it opens and after a refused token (its message tied to the field)."""
    with browser.new_context(base_url=console.url, viewport=DESKTOP) as context:  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        page = context.new_page()
        sign_in(page, console, lambda name: check(page, axe_source, console, name))


PAGES = [
    ("desktop", "overview"),
    ("desktop", "slo"),
    ("desktop", "service-slo"),
    ("desktop", "incidents"),
    ("desktop", "incident"),
    ("desktop", "incident-rollback"),
    ("desktop", "incident-resolved"),
    ("desktop", "draft"),
    ("desktop", "no-draft"),
    ("desktop", "not-found"),
    ("phone", "overview"),
    ("phone", "slo"),
    ("phone", "incidents"),
    ("phone", "incident"),
    ("phone", "draft"),
]


@pytest.mark.parametrize(("device", "name"), PAGES, ids=[f"{d}-{n}" for d, n in PAGES])
def test_the_page_meets_wcag_2_1_aa(
    device: str, name: str, browser: Browser, console: Console, signed_in: dict[str, Any], axe_source: str
) -> None:
    options: dict[str, Any] = {"viewport": DESKTOP}
    if device == "phone":
        options = {"viewport": PHONE, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    with browser.new_context(base_url=console.url, storage_state=signed_in, **options) as context:  # type: ignore[arg-type]
        context.set_default_timeout(15_000)
        page = context.new_page()
        answer = page.goto(console.paths[name])
        assert answer is not None
        assert answer.status == (404 if name == "not-found" else 200), (name, answer.status)
        expect(page.locator("header form.who")).to_contain_text(PERSON)  # signed in, not sent to /signin
        if page.locator("[data-poll]").count():
            # The live part as the page's own script redraws it, which is what people then read.
            expect(page.locator("[data-poll][data-refreshed]")).to_have_count(1, timeout=15_000)
            # ... and left as it is while axe reads it (the script tries again at its next tick).
            page.route("**/timeline", lambda route: route.abort())
        # Every disclosure open (the SLO's spec and rules), as someone reading them has it.
        page.locator("details").evaluate_all("(all) => all.forEach((d) => { d.open = true; })")
        check(page, axe_source, console, f"{device}-{name}")
