"""Stored XSS: every text field of an incident holds script and event-handler payloads, filled in through
the real doors (API, Alertmanager webhook, rollback proposal, the evidence writer); the review draft's
HTML view carries none of them as markup, shows each as the text it was, and runs under a strict CSP.
The Markdown draft itself is inert too: rendered by two Markdown libraries without any sanitiser."""

from __future__ import annotations

import base64
import copy
import itertools
import json
import sys
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import httpx
import markdown
import pytest
import sqlalchemy as sa
from markdown_it import MarkdownIt

from app import db
from app.incidents import service as incidents
from app.main import create_app
from app.ml import service as ml
from app.ml.models import DriftSignal, LogEvidence, ModelVersionLink
from app.postmortems import service as postmortems
from tests.conftest import REPO, WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.security.conftest import row_counts, settle
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
HOOK = {"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
SLO_ID = "xss-availability"

# Each payload is whole in at least one field; long fields get all of them.
PAYLOADS = [
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    '"><svg onload=alert(1)>',
    "javascript:alert(1)",
    "[x](javascript:alert(1))",
    "![x](javascript:alert(1))",
    "<javascript:alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    "<iframe src=javascript:alert(1)>",
    "\\<script>alert(1)\\</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "`</code><script>alert(1)</script>`",
    "<!-- --><script>alert(1)</script>",
    "[x]: javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "{{7*7}}",
    "{% raw %}",
    "<x onclick=alert(1)>",
    "'\"><b onmouseover=alert(1)>",
]
EVERYTHING = " ".join(PAYLOADS)
_turn = itertools.count()


def hostile(limit: int) -> str:
    """As many whole payloads as fit in `limit` characters, a different first one for each field."""
    start = next(_turn)
    chosen: list[str] = []
    for offset in range(len(PAYLOADS)):
        payload = PAYLOADS[(start + offset) % len(PAYLOADS)]
        if len(" ".join([*chosen, payload])) <= limit:
            chosen.append(payload)
    assert chosen, f"no payload fits in {limit} characters"
    return " ".join(chosen)


SPEC = f"""
version: prometheus/v1
service: xss
slos:
  - name: availability
    objective: 99.9
    description: {json.dumps(EVERYTHING)}
    sli:
      events:
        error_query: sum(rate(http_requests_total{{service="xss",code=~"5.."}}[{{{{.window}}}}]))
        total_query: sum(rate(http_requests_total{{service="xss"}}[{{{{.window}}}}]))
    alerting:
      annotations:
        runbook_url: "javascript:alert(1)"
"""


@dataclass
class Page(HTMLParser):
    """What a browser would build from the page: elements with their attributes, and the visible text."""

    elements: list[tuple[str, dict[str, str | None]]] = field(default_factory=list)
    text: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        super().__init__(convert_charrefs=True)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.elements.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    @property
    def visible(self) -> str:
        return " ".join("".join(self.text).split())


def parsed(html: str) -> Page:
    page = Page()
    page.feed(html)
    page.close()
    return page


def assert_inert(html: str, what: str, own_style: bool = False) -> Page:
    """No script, no event handler, no active content, and no link or image that is not http(s) or
    relative. `own_style`: the page's own <style> in <head> (nothing else may add one)."""
    page = parsed(html)
    tags = [tag for tag, _ in page.elements]
    for forbidden in ("script", "svg", "iframe", "object", "embed", "base", "form", "math", "link", "x"):
        assert forbidden not in tags, f"{what}: <{forbidden}> element"
    assert tags.count("style") == (1 if own_style else 0), f"{what}: injected <style>"
    for tag, attrs in page.elements:
        handlers = [name for name in attrs if name.startswith("on")]
        assert not handlers, f"{what}: <{tag}> has event handler attributes {handlers}"
        for name in ("href", "src", "action", "formaction", "xlink:href", "srcset"):
            value = (attrs.get(name) or "").strip()
            parts = urllib.parse.urlsplit(value)
            assert parts.scheme in ("", "http", "https"), f"{what}: <{tag} {name}={value!r}>"
            assert parts.scheme or not parts.netloc, f"{what}: protocol-relative <{tag} {name}={value!r}>"
    return page


@pytest.fixture
def world(tmp_path: Path, database_url: str) -> Iterator[tuple[httpx.Client, str]]:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "xss.yaml").write_text(SPEC)
    (tmp_path / "sloguard.yaml").write_text(
        "models:\n  fraud-detector:\n    services: [fraud-model]\n"
        "    environments:\n      prod:\n        target: {kind: command, argv: ['"
        + sys.executable
        + "', '-c', 'print(1)']}\n        rollback: [U1]\n"
    )
    settings = make_settings(tmp_path, database_url=database_url)
    with UvicornThread(create_app(settings)) as server:
        # U1 declares, writes and rolls back (a `change` token reaches all of it), and reads the drafts.
        u1 = bearer(personal_token(database_url, "U1", "change"))
        with httpx.Client(base_url=server.url, headers=u1, timeout=30) as http:
            yield http, database_url


def refused_as_someone_else(
    http: httpx.Client, database_url: str, method: str, path: str, body: dict[str, Any]
) -> None:
    """A body `actor` is no way in any more: naming anyone but the token's owner (here, payloads) is a 403
    that stores nothing."""
    settle(database_url)  # the evidence the incident gathers in the background is stored by now
    before = row_counts(database_url)
    shown = http.get(path).json() if method == "PATCH" else None
    response = http.request(method, path, json={**body, "actor": hostile(100)})
    assert response.status_code == 403, response.text
    assert response.json()["detail"].startswith("actor: this credential acts as U1;"), response.text
    assert row_counts(database_url) == before
    if shown is not None:
        assert http.get(path).json() == shown


def relabel(database_url: str, number: int, model: str, environment: str) -> tuple[str, str]:
    """Set the incident's model and environment in the database; the values they had."""
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            before = connection.execute(
                sa.text("SELECT model, environment FROM incident WHERE id = :id"), {"id": number}
            ).one()
            connection.execute(
                sa.text("UPDATE incident SET model = :m, environment = :e WHERE id = :id"),
                {"m": model, "e": environment, "id": number},
            )
    finally:
        engine.dispose()
    return before[0], before[1]


def fill_incident_through_the_doors(http: httpx.Client, database_url: str) -> int:
    declaration = {
        "title": hostile(300),
        "summary": EVERYTHING,
        "commander": hostile(100),
        "service": hostile(200),
        "model": hostile(200),
        "environment": hostile(50),
        "slo_id": SLO_ID,  # links the SLO, whose runbook link is `javascript:`
    }
    refused_as_someone_else(http, database_url, "POST", "/api/v1/incidents", declaration)
    created = http.post("/api/v1/incidents", json=declaration)
    assert created.status_code == 201, created.text
    number: int = created.json()["id"]
    update = {"status": "acknowledged", "title": hostile(300)}
    refused_as_someone_else(http, database_url, "PATCH", f"/api/v1/incidents/{number}", update)
    patched = http.patch(f"/api/v1/incidents/{number}", json=update)
    assert patched.status_code == 200, patched.text
    timeline = f"/api/v1/incidents/{number}/timeline"
    refused_as_someone_else(http, database_url, "POST", timeline, {"text": EVERYTHING, "kind": hostile(40)})
    for payload in [EVERYTHING, *PAYLOADS]:
        note = {"text": payload, "kind": hostile(40)}
        assert http.post(timeline, json=note).status_code == 201
    for _ in range(3):
        item = {"text": EVERYTHING, "owner": hostile(100)}
        assert http.post(f"/api/v1/incidents/{number}/action-items", json=item).status_code == 201

    # Evidence, through the writer that enrichment uses (no Prometheus or Elasticsearch here).
    engine = db.make_engine(database_url)
    try:
        findings = ml.Findings(
            versions=[
                ModelVersionLink(
                    incident_id=number,
                    model=hostile(200),
                    version=hostile(100),
                    role="suspect",
                    source=hostile(20),
                    detail={"reason": EVERYTHING, "error_ratio": 0.5},
                ),
                ModelVersionLink(
                    incident_id=number,
                    model=hostile(200),
                    version=hostile(100),
                    role=hostile(20),
                    source=hostile(20),
                    first_seen=datetime.now(UTC),
                ),
            ],
            drift=[
                DriftSignal(
                    incident_id=number,
                    model=hostile(200),
                    feature=hostile(200),
                    method=hostile(20),
                    score=0.9,
                    threshold=0.2,
                    drifted=True,
                )
            ],
            logs=[LogEvidence(incident_id=number, signature=EVERYTHING, count=3)],
        )
        now = datetime.now(UTC)
        db.unit_of_work(
            engine, None, lambda session, events: ml.store(session, events, number, findings, now)
        )
        # The actor column holds only people's IDs and sloguard's own names now; the draft must still
        # treat whatever it holds as text, so a part of sloguard that names the actor itself writes one.
        for payload in PAYLOADS:
            incidents.add_note(engine, number, hostile(200), payload[:100], now)
    finally:
        engine.dispose()

    # A rollback whose versions are hostile: `from` is the suspect version above.
    proposal = {
        "model": "fraud-detector",
        "environment": "prod",
        "to_version": hostile(100),
        "incident_id": number,
        "reason": EVERYTHING,
    }
    # A change may name only an incident of its own model: this one's model and environment are payloads.
    elsewhere = http.post("/api/v1/rollbacks", json=proposal)
    assert elsewhere.status_code == 409, elsewhere.text
    assert elsewhere.json()["detail"].startswith(f"incident {number} is about "), elsewhere.text
    # So the incident is about fraud-detector in prod while the change is proposed, and holds its payloads
    # again afterwards: the draft renders the change beside them.
    restore = relabel(database_url, number, "fraud-detector", "prod")
    proposed = http.post("/api/v1/rollbacks", json=proposal)
    if proposed.status_code != 201:  # refused at the door is fine too, as long as it says why
        assert proposed.status_code == 422 and "to_version" in proposed.text, proposed.text
        proposed = http.post("/api/v1/rollbacks", json={**proposal, "to_version": "3"})
    assert proposed.status_code == 201, proposed.text
    relabel(database_url, number, *restore)

    # Alertmanager: an alert of the same SLO joins the incident, with hostile labels, annotations and
    # generator URLs (one `javascript:`, one http URL that tries to break out of the link).
    payload = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
    for index, url in enumerate(["javascript:alert(1)", 'http://x/"><script>alert(1)</script>']):
        joined = copy.deepcopy(payload)
        alert = joined["alerts"][0]
        alert["fingerprint"] = f"{index:016x}"
        alert["generatorURL"] = url
        alert["labels"] = {**alert["labels"], "alertname": hostile(150), "sloth_id": SLO_ID}
        alert["annotations"] = {"summary": EVERYTHING, "description": EVERYTHING}
        joined["commonLabels"] = {"sloth_id": SLO_ID, "alertname": alert["labels"]["alertname"]}
        joined["commonAnnotations"] = alert["annotations"]
        joined["groupKey"] = f"{{}}:{{alertname={hostile(100)!r}}}"
        hooked = http.post("/webhooks/alertmanager", json=joined, headers=HOOK)
        assert hooked.status_code < 300 and hooked.json()["incident_id"] == number, hooked.text
    return number


@dataclass
class Drafts:
    http: httpx.Client
    declared: int  # declared through the API, filled through every door
    alerted: int  # opened by an Alertmanager notification alone

    def html(self, incident_id: int) -> httpx.Response:
        response = self.http.get(f"/api/v1/incidents/{incident_id}/postmortem", params={"format": "html"})
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith("text/html")
        return response

    def markdown(self, incident_id: int) -> httpx.Response:
        response = self.http.get(f"/api/v1/incidents/{incident_id}/postmortem")
        assert response.status_code == 200, response.text
        return response


@pytest.fixture
def drafts(world: tuple[httpx.Client, str]) -> Drafts:
    http, database_url = world
    declared = fill_incident_through_the_doors(http, database_url)
    # An incident opened by Alertmanager alone: its title, service, SLO and model come from the alert.
    payload = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
    payload["commonLabels"] = {
        "alertname": hostile(150),
        "service": hostile(200),
        "model": hostile(200),
        "sloth_id": hostile(200),
    }
    payload["alerts"][0]["labels"] = {**payload["commonLabels"], "severity": "page"}
    payload["commonAnnotations"] = payload["alerts"][0]["annotations"] = {"summary": hostile(300)}
    payload["alerts"][0]["generatorURL"] = "data:text/html,<script>alert(1)</script>"
    opened = http.post("/webhooks/alertmanager", json=payload, headers=HOOK)
    assert opened.status_code < 300 and opened.json()["created"], opened.text
    return Drafts(http, declared, opened.json()["incident_id"])


def test_the_html_draft_of_an_incident_full_of_payloads_runs_nothing(drafts: Drafts) -> None:
    for incident_id in (drafts.declared, drafts.alerted):
        response = drafts.html(incident_id)
        page = assert_inert(response.text, f"incident {incident_id} HTML", own_style=True)
        for raw in ("<script", "<svg", "<iframe", "<img src=x", "<x ", '<a href="javascript'):
            assert raw not in response.text.lower(), f"{raw!r} unescaped in the HTML of {incident_id}"
        if incident_id == drafts.declared:
            # Each payload is shown to the reader as the text it was, not dropped and not evaluated.
            for payload_text in PAYLOADS:
                assert " ".join(payload_text.split()) in page.visible, payload_text
            # The `javascript:` runbook and alert source are shown as text, not as links.
            assert "javascript:alert(1) (not an http(s) or repository link, so shown as text)" in page.visible
            assert "javascript:alert(1) (not an http(s) link, so shown as text)" in page.visible
            hrefs = [attrs.get("href") for tag, attrs in page.elements if tag == "a"]
            assert "http://x/%22%3E%3Cscript%3Ealert%281%29%3C/script%3E" in hrefs
        else:
            assert "data:text/html" in page.visible  # the generator URL, as text
            assert not [attrs for tag, attrs in page.elements if tag == "a" and "data:" in str(attrs)]


def test_the_markdown_draft_is_inert_in_any_markdown_viewer(drafts: Drafts) -> None:
    # No sanitiser here: Python-Markdown, and CommonMark (markdown-it) with raw HTML allowed, as many
    # viewers render it.
    for incident_id in (drafts.declared, drafts.alerted):
        draft = drafts.markdown(incident_id).text
        assert_inert(markdown.markdown(draft, extensions=["tables"]), f"{incident_id} via Python-Markdown")
        assert_inert(MarkdownIt("commonmark").enable("table").render(draft), f"{incident_id} via CommonMark")


def test_html_written_by_hand_in_a_kept_section_is_sanitised(drafts: Drafts, tmp_path: Path) -> None:
    # The draft on disk is people's to edit, and kept sections survive regeneration as written: the
    # HTML view must not trust them either.
    drafts.markdown(drafts.declared)
    (path,) = (tmp_path / "postmortems").glob(f"*-{drafts.declared}-*.md")
    by_hand = "\n\n".join(
        [
            # First: an unclosed raw HTML block below swallows what follows it (and the sanitiser drops it).
            "<https://example.org/ok> [fine](https://example.org/fine) ![chart](assets/chart.svg)",
            *PAYLOADS,
            '<a href="javascript&#58;alert(1)">entity</a> <a href="  JaVaScRiPt:alert(1)">spaced</a>',
            '<p style="background:url(javascript:alert(1))" onclick="alert(1)">styled</p>',
            '<form action="https://evil.example"><input name=q></form> <base href="https://evil.example/">',
            '<math><mi xlink:href="javascript:alert(1)">m</mi></math> <object data="x.swf"></object>',
            "[ref]\n\n[ref]: javascript:alert(1)",
        ]
    )
    text = path.read_text()
    path.write_text(text.replace("- **What went well:** _…_", by_hand))
    response = drafts.html(drafts.declared)
    page = assert_inert(response.text, "kept section written by hand", own_style=True)
    assert not [attrs for _, attrs in page.elements if "style" in attrs]
    links = {attrs.get("href") for tag, attrs in page.elements if tag == "a"}
    assert {"https://example.org/ok", "https://example.org/fine"} <= links  # web links still work
    assert ("img", {"alt": "chart", "src": "assets/chart.svg"}) in page.elements  # no such file: as written


def test_only_images_inside_the_drafts_folder_are_put_into_the_page(drafts: Drafts, tmp_path: Path) -> None:
    # The HTML view inlines the charts as data: URIs; a path written by hand must not pull in a file
    # from elsewhere on the server, by `..`, by an encoded `..`, an absolute path or a symbolic link.
    drafts.markdown(drafts.declared)
    (path,) = (tmp_path / "postmortems").glob(f"*-{drafts.declared}-*.md")
    secret = tmp_path / "secret.svg"
    secret.write_text("<svg xmlns='http://www.w3.org/2000/svg'><text>the server's own file</text></svg>")
    (path.parent / "link.svg").symlink_to(secret)
    (path.parent / "own.svg").write_text("<svg xmlns='http://www.w3.org/2000/svg'><script>1</script></svg>")
    by_hand = " ".join(
        f"![{alt}]({src})"
        for alt, src in [
            ("up", "../secret.svg"),
            ("encoded", "%2E%2E/secret.svg"),
            ("absolute", str(secret)),
            ("link", "link.svg"),
            ("own", "own.svg"),
            ("text", "../../etc/hostname"),
            ("nul", "a%00.svg"),
            ("long", "x" * 300 + ".svg"),
        ]
    )
    path.write_text(path.read_text().replace("- **What went well:** _…_", by_hand))
    page = parsed(drafts.html(drafts.declared).text)
    sources = {attrs["alt"]: attrs["src"] for tag, attrs in page.elements if tag == "img" and "alt" in attrs}
    assert sources["up"] == "../secret.svg" and sources["encoded"] == "%2E%2E/secret.svg"
    assert sources["absolute"] == str(secret) and sources["link"] == "link.svg"
    assert sources["text"] == "../../etc/hostname"
    assert sources["nul"] == "a%00.svg" and sources["long"] == "x" * 300 + ".svg"  # left, not a 500
    # A picture in the draft's own folder is shown; inside <img> its script cannot run.
    assert (
        sources["own"]
        == "data:image/svg+xml;base64," + base64.b64encode((path.parent / "own.svg").read_bytes()).decode()
    )


def test_draft_answers_carry_a_strict_csp_and_nosniff(drafts: Drafts) -> None:
    response = drafts.html(drafts.declared)
    policy = {
        part.strip().split(" ", 1)[0]: part.strip()
        for part in response.headers.get("content-security-policy", "").split(";")
    }
    assert policy.get("default-src") == "default-src 'none'"  # and no script-src: no script at all
    assert "script-src" not in policy and "unsafe-inline" not in policy.get("style-src", "")
    for directive in ("base-uri", "form-action", "frame-ancestors"):
        assert policy.get(directive) == f"{directive} 'none'"
    assert response.headers.get("x-content-type-options") == "nosniff"
    assert drafts.markdown(drafts.declared).headers.get("x-content-type-options") == "nosniff"
    unknown = drafts.http.get(f"/api/v1/incidents/{drafts.declared}/postmortem", params={"format": "htm"})
    assert unknown.status_code == 422 and "format" in unknown.text


@pytest.mark.parametrize(
    "url",
    [
        "javascript:alert(1)",
        "JAVASCRIPT:alert(1)",
        " javascript:alert(1)",
        "java\tscript:alert(1)",
        "java\nscript:alert(1)",
        "javascript&#58;alert(1)",
        "javascript&colon;alert(1)",
        "javascript%3Aalert(1)",
        "&#106;avascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "vbscript:msgbox(1)",
        "file:///etc/passwd",
        "//evil.example/x",
        "\\\\evil.example/x",
        "http:evil.example",
        "https:/evil.example",
    ],
)
def test_safe_url_refuses_anything_but_http_https_and_relative(url: str) -> None:
    assert postmortems.safe_url(url) is None


@pytest.mark.parametrize(
    ("url", "link"),
    [
        ("https://prometheus.example/graph?g0.expr=x", "https://prometheus.example/graph?g0.expr=x"),
        (
            "http://p:9090/graph?g0.expr=rate(x[5m])&a=b",
            "http://p:9090/graph?g0.expr=rate%28x%5B5m%5D%29&a=b",
        ),
        ("../runbooks/fraud model.md", "../runbooks/fraud%20model.md"),
        ("2026-11-25-7-x-assets/error-ratio.svg", "2026-11-25-7-x-assets/error-ratio.svg"),
    ],
)
def test_safe_url_keeps_web_and_repository_links_usable(url: str, link: str) -> None:
    assert postmortems.safe_url(url) == link
