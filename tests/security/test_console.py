"""The web console's doors (app/web): what a signed-out browser, a viewer below an action's scope, a forged
form, an ended session, a hostile `next` or query, and a token guesser each get, on SQLite and PostgreSQL,
served by uvicorn on loopback; redirects are never followed.

The console's pages and forms come from the app's own route table, so a page or form added later is
covered without editing this file (a new path parameter or form must be named here, or the test says so).
"Nothing stored" is checked on every row of every table, and then a later marker (a note a respond-scope
person adds through the console) shows up alone on the incident's timeline: the refused requests were
heard and dropped, not still on their way.
"""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, urlsplit

import httpx
import pytest
import sqlalchemy as sa
from fastapi import FastAPI
from fastapi.routing import iter_route_contexts
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from sqlmodel import SQLModel

from app.config import Settings
from app.identity import logic
from app.identity.logic import Scope
from app.identity.throttle import LIMIT as THROTTLE_LIMIT
from app.main import create_app
from app.web import is_console
from tests.conftest import bearer, make_settings, personal_token
from tests.security.conftest import row_counts, settle
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration

TITLE = "zebra-quartz-7781 console leak probe"  # appears nowhere but in what the seeded incidents show
OWNER = "U1"  # declares the incidents and may roll the model back (sloguard.yaml)
MODEL = "fraud-detector"
SLO_ID = "console-sec-availability"
SLO_SPEC = """
version: prometheus/v1
service: console-sec
slos:
  - name: availability
    objective: 99.9
    description: zebra-quartz-7781 console leak probe (the SLO's own page)
    sli:
      events:
        error_query: sum(rate(http_requests_total{service="console-sec",code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total{service="console-sec"}[{{.window}}]))
"""
SLOGUARD_YAML = f"""
models:
  {MODEL}:
    environments:
      prod:
        target: {{kind: command, argv: ["true"]}}
        rollback: [{OWNER}]
"""
# Paths that are not the console's pages: other doors, the docs, static files, and the sign-in pages.
NOT_PAGES = ("/api", "/slack", "/webhooks", "/healthz", "/readyz", "/metrics", "/docs", "/redoc", "/openapi")
NOT_PAGES += ("/static", "/signin")
KNOWN_PAGES = {
    "/",
    "/slos/{slo_id}",
    "/runbooks/{name}",
    "/incidents",
    "/incidents/{incident_id}",
    "/incidents/{incident_id}/timeline",
    "/incidents/{incident_id}/draft",
    "/incidents/{incident_id}/draft.md",
    "/incidents/{incident_id}/draft.zip",
}
RUNBOOK = "console-availability.md"  # in SLOGUARD_RUNBOOK_DIR: /runbooks/{name} shows it
# Each console form that acts: the scope it needs (README "Tokens and scopes") and the fields it sends.
ACTIONS: dict[str, tuple[Scope, dict[str, str]]] = {
    "/incidents/{incident_id}/acknowledge": (Scope.respond, {}),
    "/incidents/{incident_id}/resolve": (Scope.respond, {}),
    "/incidents/{incident_id}/notes": (Scope.respond, {"text": "a note through the console form"}),
    "/incidents/{incident_id}/rollback": (
        Scope.change,
        {
            "model": MODEL,
            "environment": "prod",
            "to_version": "7",
            "reason": "proposed through the console form",
        },
    ),
    "/rollbacks/{action_id}/confirm": (Scope.change, {}),
}
CSP_NEEDS = ("script-src 'self'", "frame-ancestors 'none'")
EVIL = "https://evil.example"


# ---------------------------------------------------------------- the app's own route table


def console_pages(app: FastAPI) -> set[str]:
    """Every GET route of the console (path templates), from the app's route table."""
    found = set()
    for route in iter_route_contexts(app.routes):
        path, methods = route.path, route.methods or set()
        if path is None or "GET" not in methods or path.startswith(NOT_PAGES):
            continue
        found.add(path)
    return found


def console_actions(app: FastAPI) -> set[str]:
    """Every POST route of the console but signing in and out."""
    return {
        route.path
        for route in iter_route_contexts(app.routes)
        if route.path is not None
        and "POST" in (route.methods or set())
        and is_console(route.path)
        and not route.path.startswith(("/signin", "/signout"))
    }


def test_the_route_table_lists_every_console_page_and_form(tmp_path: Path) -> None:
    """The enumeration the tests below rely on sees the included routers (FastAPI keeps them as
    `_IncludedRouter` entries of `app.routes`; iterating `app.routes` alone would find none of them)."""
    app = create_app(make_settings(tmp_path))
    assert console_pages(app) >= KNOWN_PAGES
    assert console_actions(app) == set(ACTIONS), "a new console form: name its scope and fields in ACTIONS"


# ---------------------------------------------------------------- a browser, and the console it talks to


@dataclass
class Form:
    method: str
    action: str
    fields: dict[str, str] = field(default_factory=dict)


class Page(HTMLParser):
    """The forms and buttons a browser would show."""

    def __init__(self, text: str) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self.buttons = 0
        self.feed(text)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append(Form(values.get("method", "get").lower(), values.get("action", "")))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1].fields[values["name"]] = values.get("value", "")
        elif tag == "button":
            self.buttons += 1

    def posting_to(self) -> set[str]:
        return {form.action for form in self.forms if form.method == "post"}


SAME_ORIGIN = object()  # post()'s default: the Origin a browser sends for a page of this console


class Browser:
    """One browser: its own cookie jar, from its own loopback address when given one."""

    def __init__(self, url: str, address: str | None = None) -> None:
        self.url = url
        transport = httpx.HTTPTransport(local_address=address) if address else None
        self.http = httpx.Client(base_url=url, follow_redirects=False, timeout=30, transport=transport)
        self.csrf = ""  # the session's CSRF secret, once signed in

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def post(
        self, path: str, data: dict[str, str] | None = None, origin: object = SAME_ORIGIN, **kwargs: Any
    ) -> httpx.Response:
        headers = dict(kwargs.pop("headers", {}))
        if origin is SAME_ORIGIN:
            headers["Origin"] = self.url
        elif isinstance(origin, str):
            headers["Origin"] = origin
        return self.http.post(path, data=data, headers=headers, **kwargs)

    def act(self, path: str, data: dict[str, str] | None = None, **kwargs: Any) -> httpx.Response:
        """A console form as the page sends it: its fields and the session's CSRF secret."""
        return self.post(path, {"csrf": self.csrf, **(data or {})}, **kwargs)

    def signin_csrf(self, next_path: str = "/") -> str:
        page = self.get("/signin", params={"next": next_path})
        assert page.status_code == 200, page.text
        (form,) = [f for f in Page(page.text).forms if f.action == "/signin"]
        return form.fields["csrf"]

    def sign_in(self, token: str, next_path: str = "/") -> httpx.Response:
        answer = self.post("/signin", {"token": token, "csrf": self.signin_csrf(), "next": next_path})
        assert answer.status_code == 303, answer.text
        self.csrf = self.session_csrf()
        return answer

    def session_csrf(self) -> str:
        page = self.get("/")
        assert page.status_code == 200, f"not signed in: {page.status_code} {page.headers}"
        (signout,) = [f for f in Page(page.text).forms if f.action == "/signout"]
        return signout.fields["csrf"]

    @property
    def session_cookie(self) -> str:
        value = self.http.cookies.get("sloguard_session", path="/")
        assert value, "no session cookie"
        return value


def snapshot(database_url: str) -> dict[str, list[tuple[str, ...]]]:
    """Every row of every table (a token's `last_used_at` aside: the API door writes it for the reads
    these tests make to check on things)."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            found = {}
            for table in SQLModel.metadata.sorted_tables:
                columns = [c for c in table.columns if (table.name, c.name) != ("api_token", "last_used_at")]
                found[table.name] = sorted(
                    tuple(map(str, row)) for row in connection.execute(sa.select(*columns))
                )
            return found
    finally:
        engine.dispose()


def execute(database_url: str, statement: str, **values: Any) -> None:
    engine = sa.create_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(sa.text(statement), values)
    finally:
        engine.dispose()


_addresses = iter(range(1, 60_000))


def own_address() -> str:
    """A loopback address no request of this process has come from yet."""
    number = next(_addresses)
    return f"127.2.{number // 250 % 250}.{number % 250 + 1}"


class Console:
    """The app on a real database, with an open incident (model-linked, with a proposed rollback), a
    resolved one whose review draft is written (both carry TITLE), and a quiet open one (nothing
    proposed, so its page offers the rollback form)."""

    def __init__(self, app: FastAPI, url: str, settings: Settings) -> None:
        self.app, self.url, self.settings = app, url, settings
        self.database_url = settings.database_url
        self._tokens: dict[tuple[str, str], str] = {}
        self._browsers: list[Browser] = []
        # The resolved one names no SLO: its impact would be measured from Prometheus (absent here, retried).
        done = {"title": f"{TITLE} (done)", "model": MODEL}
        self.resolved_id = self.api("POST", "/api/v1/incidents", json=done)["id"]
        self.api("PATCH", f"/api/v1/incidents/{self.resolved_id}", json={"status": "resolved"})
        declared = {"title": TITLE, "model": MODEL, "slo_id": SLO_ID}
        self.open_id = self.api("POST", "/api/v1/incidents", json=declared)["id"]
        proposal = {"model": MODEL, "to_version": "2", "incident_id": self.open_id}
        self.rollback_id = self.api("POST", "/api/v1/rollbacks", json=proposal)["id"]
        self.quiet_id = self.api("POST", "/api/v1/incidents", json={"title": "quiet", "model": MODEL})["id"]
        settle(self.database_url)  # evidence gathered, the draft written: nothing moves in the background
        assert list(settings.postmortem_dir.glob(f"*-{self.resolved_id}-*.md")), "no review draft written"

    def close(self) -> None:
        for browser in self._browsers:
            browser.close()

    def token(self, user: str, scope: str) -> str:
        if (user, scope) not in self._tokens:
            self._tokens[user, scope] = personal_token(self.database_url, user, scope)
        return self._tokens[user, scope]

    def api(self, method: str, path: str, user: str = OWNER, scope: str = "admin", **kwargs: Any) -> Any:
        answer = httpx.request(method, self.url + path, headers=bearer(self.token(user, scope)), **kwargs)
        assert answer.is_success, f"{method} {path}: {answer.status_code} {answer.text}"
        return answer.json()

    def browser(self, address: str | None = None) -> Browser:
        browser = Browser(self.url, address)
        self._browsers.append(browser)
        return browser

    def signed_in(self, user: str, scope: str) -> Browser:
        browser = self.browser()
        browser.sign_in(self.token(user, scope))
        return browser

    def timeline(self, incident_id: int) -> list[tuple[int, str, str, str]]:
        shown = self.api("GET", f"/api/v1/incidents/{incident_id}", scope="read")
        return [(event["id"], event["kind"], event["actor"], event["text"]) for event in shown["timeline"]]

    def status(self, incident_id: int) -> str:
        status: str = self.api("GET", f"/api/v1/incidents/{incident_id}", scope="read")["status"]
        return status

    def concrete(self, template: str, incident_id: int | None = None) -> str:
        """A path template with this console's rows filled in."""
        values = {
            "incident_id": str(incident_id or self.open_id),
            "slo_id": SLO_ID,
            "action_id": str(self.rollback_id),
            "name": RUNBOOK,
        }
        for name in re.findall(r"\{([^}]+)\}", template):
            assert name in values, f"{template}: a new path parameter {name!r}; say here what fills it"
        return re.sub(r"\{([^}]+)\}", lambda m: values[m.group(1)], template)

    def every_page(self) -> list[str]:
        """Every console page, for each seeded incident where it names one."""
        pages = []
        for template in sorted(console_pages(self.app)):
            if "{incident_id}" in template:
                pages += [self.concrete(template, number) for number in (self.open_id, self.resolved_id)]
            else:
                pages.append(self.concrete(template))
        return pages

    def marker_appears_alone(self, before: list[tuple[int, str, str, str]]) -> None:
        """A respond-scope person's note, added through the console after the refusals, is the one new
        entry on the open incident's timeline."""
        text = f"marker {secrets.token_hex(4)}"
        marker = self.signed_in("U7", "respond")
        added = marker.act(f"/incidents/{self.open_id}/notes", {"text": text})
        assert added.status_code == 303, added.text
        settle(self.database_url)
        new = [event for event in self.timeline(self.open_id) if event not in before]
        assert [(kind, actor, said) for _, kind, actor, said in new] == [("note", "U7", text)]


@pytest.fixture
def console(tmp_path: Path, settings: Settings) -> Iterator[Console]:
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "console.yaml").write_text(SLO_SPEC)
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    (tmp_path / "runbooks").mkdir()
    (tmp_path / "runbooks" / RUNBOOK).write_text("# Runbook: the console's SLO\n")
    app = create_app(settings)
    with UvicornThread(app) as server:
        made = Console(app, server.url, settings)
        try:
            yield made
        finally:
            made.close()


def assert_page_headers(answer: httpx.Response, what: str) -> None:
    policy = answer.headers.get("Content-Security-Policy", "")
    for needed in CSP_NEEDS:
        assert needed in policy, f"{what}: {answer.status_code} without {needed!r} in CSP {policy!r}"
    assert answer.headers.get("Cache-Control") == "no-store", f"{what}: {answer.headers}"


def assert_sign_in_redirect(answer: httpx.Response, requested: str) -> None:
    assert answer.status_code == 303, f"{requested}: {answer.status_code} {answer.text[:300]}"
    location = urlsplit(answer.headers["Location"])
    assert (location.scheme, location.netloc, location.path) == ("", "", "/signin"), answer.headers
    assert parse_qs(location.query)["next"] == [requested]


def assert_shows_nothing(console: Console, answer: httpx.Response, what: str) -> None:
    """No incident data: an empty body, no title in any header, no incident number."""
    shown = answer.text + "".join(f"{k}: {v}\n" for k, v in answer.headers.items() if k != "location")
    assert TITLE not in shown and "zebra" not in shown, f"{what} shows the incident: {shown[:500]}"
    for number in (console.open_id, console.resolved_id):
        assert f"#{number}" not in shown
    assert answer.content == b"", f"{what}: {answer.text[:300]}"


# ---------------------------------------------------------------- signed out


def no_cookie(_console: Console) -> str | None:
    return None


def signed_out_session(console: Console) -> str:
    browser = console.signed_in(OWNER, "read")
    cookie = browser.session_cookie
    assert browser.act("/signout").status_code == 303
    return cookie


def the_csrf_secret(console: Console) -> str:
    return console.signed_in(OWNER, "read").csrf


COOKIES: dict[str, Callable[[Console], str | None]] = {
    "none": no_cookie,
    "garbage": lambda _c: secrets.token_urlsafe(32),
    "over-long": lambda _c: "A" * 5000,
    "just past the limit": lambda _c: "A" * 101,
    "a personal token as the cookie": lambda c: c.token(OWNER, "admin"),
    "a session's CSRF secret as the cookie": the_csrf_secret,
    "a signed-out session's": signed_out_session,
}


@pytest.mark.parametrize("cookie", list(COOKIES))
def test_signed_out_every_page_redirects_to_sign_in_and_shows_nothing(console: Console, cookie: str) -> None:
    value = COOKIES[cookie](console)
    browser = console.browser()
    headers = {} if value is None else {"Cookie": f"sloguard_session={value}"}
    pages = console.every_page()
    assert len(pages) >= len(KNOWN_PAGES) + 5  # both incidents' pages
    for page in pages:
        for requested in (page, f"{page}?page=1&status=triggered&done=Acknowledged."):
            answer = browser.get(requested, headers=headers)
            assert_sign_in_redirect(answer, requested)
            assert_shows_nothing(console, answer, requested)
            assert_page_headers(answer, requested)
            assert "sloguard_session" not in answer.headers.get("set-cookie", "")


def test_signed_in_the_same_pages_show_the_incidents_and_store_nothing(console: Console) -> None:
    """The control of the test above: a read-scope viewer gets each page, the title is on the ones that
    show incidents (so a page that skipped its check would have leaked it), and no page writes anything."""
    viewer = console.signed_in(OWNER, "read")
    before = snapshot(console.database_url)
    showing = set()
    for page in console.every_page():
        answer = viewer.get(page)
        has_draft = page.startswith(f"/incidents/{console.resolved_id}/")
        expected = 404 if page.endswith(("draft.md", "draft.zip")) and not has_draft else 200
        assert answer.status_code == expected, f"{page}: {answer.status_code} {answer.text[:300]}"
        assert_page_headers(answer, page)
        if TITLE.encode() in answer.content:
            showing.add(page)
    incident = f"/incidents/{console.open_id}"
    assert showing >= {
        "/",
        "/incidents",
        incident,
        f"/slos/{SLO_ID}",
        f"/incidents/{console.resolved_id}/draft.md",
    }
    assert snapshot(console.database_url) == before


# ---------------------------------------------------------------- below an action's scope


@pytest.mark.parametrize("scope", [Scope.read, Scope.respond])
def test_a_viewer_below_an_actions_scope_sees_no_form_for_it_and_its_post_is_refused(
    console: Console, scope: Scope
) -> None:
    # The open incident has a rollback awaiting confirmation (its page offers the confirmation, and no
    # second proposal); the quiet one has none (its page offers the proposal).
    pages = [
        f"/incidents/{number}{tail}"
        for number in (console.open_id, console.quiet_id)
        for tail in ("", "/timeline")
    ]

    def forms(browser: Browser) -> tuple[set[str], int]:
        shown = [Page(browser.get(page).text) for page in pages]
        posting = {re.sub(r"/\d+/", "/{id}/", action) for page in shown for action in page.posting_to()}
        return posting, sum(page.buttons for page in shown)

    def named(actions: list[str]) -> set[str]:
        return {re.sub(r"\{[^}]+\}", "{id}", action) for action in actions} | {"/signout"}

    # The control: a change-scope person is shown every form, so the parsing finds them.
    assert forms(console.signed_in(OWNER, "change"))[0] == named(list(ACTIONS))
    viewer = console.signed_in("U5", scope.value)
    posting, buttons = forms(viewer)
    assert posting == named([a for a, (needed, _) in ACTIONS.items() if scope.reaches(needed)]), posting
    if scope is Scope.read:
        assert buttons == 2  # "Sign out", on each full page
    timeline, status = console.timeline(console.open_id), console.status(console.open_id)
    before = snapshot(console.database_url)
    refused = 0
    for action, (needed, fields) in ACTIONS.items():
        if scope.reaches(needed):
            continue
        answer = viewer.act(console.concrete(action), fields)
        assert answer.status_code == 403, f"{action}: {answer.status_code} {answer.text[:300]}"
        assert f"scope: you sign in with scope {scope.value}; this needs {needed.value}" in answer.text
        assert_page_headers(answer, action)
        assert snapshot(console.database_url) == before, f"{action} stored something"
        refused += 1
    assert refused == (5 if scope is Scope.read else 2)
    console.marker_appears_alone(timeline)
    assert console.status(console.open_id) == status == "triggered"


# ---------------------------------------------------------------- forged forms


def test_a_form_without_its_sessions_csrf_or_from_another_origin_is_refused_and_stores_nothing(
    console: Console,
) -> None:
    """Each console form, sent by a change-scope person (so scope is never the reason): without the
    field, with a wrong one, with another session's (another person's, and the same person's other
    session), with the right one but another Origin or Referer, or the secret outside the form body:
    all 403, nothing stored. Then each of them with the right secret and this origin does act."""
    person = console.signed_in(OWNER, "change")
    other_person = console.signed_in("U3", "change")
    same_person_elsewhere = console.signed_in(OWNER, "change")
    assert len({person.csrf, other_person.csrf, same_person_elsewhere.csrf}) == 3
    forged: dict[str, Callable[[str, dict[str, str]], httpx.Response]] = {
        "no csrf field": lambda path, data: person.post(path, data),
        "an empty csrf": lambda path, data: person.post(path, {**data, "csrf": ""}),
        "a wrong csrf": lambda path, data: person.post(path, {**data, "csrf": secrets.token_urlsafe(32)}),
        "the csrf cut short": lambda path, data: person.post(path, {**data, "csrf": person.csrf[:-1]}),
        "another person's session's csrf": lambda path, data: person.post(
            path, {**data, "csrf": other_person.csrf}
        ),
        "the same person's other session's csrf": lambda path, data: person.post(
            path, {**data, "csrf": same_person_elsewhere.csrf}
        ),
        "the right csrf from an evil Origin": lambda path, data: person.act(path, data, origin=EVIL),
        "the right csrf from Origin null": lambda path, data: person.act(path, data, origin="null"),
        "the right csrf from this host on another port": lambda path, data: person.act(
            path, data, origin="http://127.0.0.1:1"
        ),
        "the right csrf with an evil Referer": lambda path, data: person.act(
            path, data, origin=None, headers={"Referer": f"{EVIL}/page"}
        ),
        "the right csrf in the query only": lambda path, data: person.post(
            f"{path}?csrf={person.csrf}", data
        ),
    }
    timeline = console.timeline(console.open_id)
    before = snapshot(console.database_url)
    for action, (_, fields) in ACTIONS.items():
        path = console.concrete(action)
        for name, send in forged.items():
            answer = send(path, fields)
            assert answer.status_code == 403, f"{action}, {name}: {answer.status_code} {answer.text[:300]}"
            assert "csrf: this form is not from this console session" in answer.text, answer.text
            assert snapshot(console.database_url) == before, f"{action}, {name}: stored something"
    console.marker_appears_alone(timeline)

    # The same forms with the session's secret and this origin act (the resolve last: it closes).
    marked = snapshot(console.database_url)
    order = sorted(ACTIONS, key=lambda a: (a.endswith("/resolve"), a.endswith("/rollback")))
    for action in order:
        answer = person.act(console.concrete(action), ACTIONS[action][1])
        assert answer.status_code == 303, f"{action}: {answer.status_code} {answer.text[:500]}"
        assert urlsplit(answer.headers["Location"]).path == f"/incidents/{console.open_id}"
        now = snapshot(console.database_url)
        assert now != marked, f"{action} with the right csrf changed nothing"
        marked = now
    # A Referer of this console's instead of an Origin passes too; with neither (not a browser's
    # cross-site form, which always names its Origin) the secret alone decides.
    notes = console.concrete("/incidents/{incident_id}/notes")
    referred = person.act(notes, {"text": "referred"}, origin=None, headers={"Referer": f"{console.url}/"})
    bare = person.act(notes, {"text": "bare"}, origin=None)
    assert (referred.status_code, bare.status_code) == (303, 303), (referred.text, bare.text)
    assert console.status(console.open_id) == "resolved"
    texts = [said for _, _, _, said in console.timeline(console.open_id)]
    assert {"a note through the console form", "referred", "bare"} <= set(texts)


def test_a_form_without_a_session_is_sent_to_sign_in_and_stores_nothing(console: Console) -> None:
    stranger = console.browser()
    csrf = console.signed_in(OWNER, "change").csrf  # a real secret, without its cookie
    before = snapshot(console.database_url)
    page = f"/incidents/{console.open_id}"
    for action, (_, fields) in ACTIONS.items():
        path = console.concrete(action)
        # After signing in, back to the page the form was on (its Referer), never to the form's URL
        answer = stranger.post(path, {**fields, "csrf": csrf}, headers={"Referer": f"{console.url}{page}"})
        assert_sign_in_redirect(answer, page)
        assert_shows_nothing(console, answer, path)
        bare = stranger.post(path, {**fields, "csrf": csrf})
        assert_sign_in_redirect(bare, "/")
    assert snapshot(console.database_url) == before


def test_sign_out_needs_its_csrf_and_ends_the_session_on_the_server(console: Console) -> None:
    browser = console.signed_in(OWNER, "respond")
    cookie = browser.session_cookie
    replay = console.browser()
    replay_headers = {"Cookie": f"sloguard_session={cookie}"}
    # A sign-out without the session's secret, or with it from another origin (a cross-site form),
    # leaves the session alone and the browser's cookie too: no other site can sign a person out.
    forged = [
        {},
        {"csrf": ""},
        {"csrf": "wrong"},
        {"csrf": secrets.token_urlsafe(32)},
        {"csrf": browser.csrf},
    ]
    for data in forged:
        refused = replay.post("/signout", data, origin=EVIL, headers=replay_headers)
        assert (refused.status_code, refused.headers["Location"]) == (303, "/"), data
        assert "set-cookie" not in refused.headers, data
        assert replay.get("/", headers=replay_headers).status_code == 200, data
    sessions_before = row_counts(console.database_url)["web_session"]
    signed_out = browser.post("/signout", {"csrf": browser.csrf})
    assert (signed_out.status_code, signed_out.headers["Location"]) == (303, "/signin")
    assert 'sloguard_session=""' in signed_out.headers["set-cookie"]
    assert row_counts(console.database_url)["web_session"] == sessions_before - 1
    for page in ("/", f"/incidents/{console.open_id}"):
        answer = replay.get(page, headers=replay_headers)
        assert_sign_in_redirect(answer, page)
    note = replay.post(
        f"/incidents/{console.open_id}/notes",
        {"text": "replayed", "csrf": browser.csrf},
        headers=replay_headers,
    )
    assert note.status_code == 303 and urlsplit(note.headers["Location"]).path == "/signin"
    assert "replayed" not in [said for _, _, _, said in console.timeline(console.open_id)]


# ---------------------------------------------------------------- the sign-in form


def test_the_sign_in_form_needs_its_own_cookie_and_field_to_match(console: Console) -> None:
    """Nobody signs a browser in as someone else: a sign-in POST whose `csrf` does not match the
    `sloguard_signin` cookie is a 403 that starts no session."""
    token = console.token(OWNER, "respond")
    first, second = console.browser(), console.browser()
    own, others = first.signin_csrf(), second.signin_csrf()
    assert own != others
    cases: dict[str, tuple[dict[str, str], str | None]] = {  # (form fields but the token, cookie)
        "neither": ({}, None),
        "a field and no cookie": ({"csrf": own}, None),
        "a cookie and no field": ({}, own),
        "a cookie and an empty field": ({"csrf": ""}, own),
        "another browser's field": ({"csrf": others}, own),
        "a made-up pair's field": ({"csrf": "x" * 32}, "y" * 32),
    }
    before = row_counts(console.database_url)["web_session"]
    for name, (fields, cookie) in cases.items():
        stranger = console.browser()
        headers = {"Cookie": f"sloguard_signin={cookie}"} if cookie is not None else {}
        answer = stranger.post("/signin", {"token": token, "next": "/", **fields}, headers=headers)
        assert answer.status_code == 403, f"{name}: {answer.status_code} {answer.text[:300]}"
        assert "This sign-in form has expired" in answer.text
        assert "sloguard_session" not in answer.headers.get("set-cookie", ""), name
        assert token not in answer.text
        assert_page_headers(answer, name)
        assert row_counts(console.database_url)["web_session"] == before, name
        assert stranger.get("/").status_code == 303
    # The control: the browser's own cookie and field.
    answer = first.post("/signin", {"token": token, "csrf": own, "next": "/"})
    assert answer.status_code == 303 and "sloguard_session=" in answer.headers["set-cookie"], answer.text
    assert row_counts(console.database_url)["web_session"] == before + 1
    assert first.get("/").status_code == 200


def test_a_planted_session_cookie_is_never_adopted(console: Console) -> None:
    """Session fixation: signing in makes a new secret; a value the browser held before means nothing."""
    planted = secrets.token_urlsafe(32)
    browser = console.browser()
    browser.http.cookies.set("sloguard_session", planted, domain="127.0.0.1", path="/")
    browser.sign_in(console.token(OWNER, "respond"))
    assert browser.session_cookie != planted
    again = console.browser().get("/", headers={"Cookie": f"sloguard_session={planted}"})
    assert_sign_in_redirect(again, "/")


# ---------------------------------------------------------------- the session's end


def token_id(console: Console, user: str, scope: str) -> int:
    listed = console.api("GET", f"/api/v1/tokens?user={user}")
    hint = logic.hint(console.token(user, scope))
    (row,) = [t for t in listed if t["hint"] == hint and t["scope"] == scope]
    number: int = row["id"]
    return number


def assert_session_over(console: Console, browser: Browser) -> None:
    """Every page sends the browser to sign in, showing nothing; its forms store nothing."""
    for page in console.every_page():
        answer = browser.get(page)
        assert_sign_in_redirect(answer, page)
        assert_shows_nothing(console, answer, page)
    before = snapshot(console.database_url)
    answer = browser.act(f"/incidents/{console.open_id}/notes", {"text": "after the end"})
    assert_sign_in_redirect(answer, "/")  # a form's URL is no page to come back to
    assert snapshot(console.database_url) == before
    # The sign-in page is offered again (not a redirect to a page that redirects back).
    assert browser.get("/signin").status_code == 200


def test_revoking_the_token_ends_its_sessions_at_once(console: Console) -> None:
    browser = console.signed_in("U4", "respond")
    other = console.signed_in("U4", "respond")  # a second browser on the same token
    assert browser.get(f"/incidents/{console.open_id}").status_code == 200
    number = token_id(console, "U4", "respond")
    revoked = httpx.delete(
        f"{console.url}/api/v1/tokens/{number}", headers=bearer(console.token("U4", "admin"))
    )
    assert revoked.status_code == 200 and revoked.json()["state"] == "revoked", revoked.text
    assert_session_over(console, browser)
    assert_session_over(console, other)
    # And the revoked token signs nobody in again.
    again = console.browser()
    answer = again.post(
        "/signin", {"token": console.token("U4", "respond"), "csrf": again.signin_csrf(), "next": "/"}
    )
    assert answer.status_code == 401 and "That token was revoked." in answer.text
    assert "sloguard_session" not in answer.headers.get("set-cookie", "")


def test_the_tokens_expiry_ends_its_session(console: Console) -> None:
    """The token expires while its session (12 h by default) would not: the session is over anyway."""
    browser = console.signed_in("U4", "respond")
    number = token_id(console, "U4", "respond")
    execute(
        console.database_url,
        "UPDATE api_token SET expires_at = :at WHERE id = :id",
        at=datetime.now(UTC) - timedelta(seconds=1),
        id=number,
    )
    assert row_counts(console.database_url)["web_session"] >= 1  # the row is there; it no longer counts
    assert_session_over(console, browser)


def test_the_sessions_own_expiry_ends_it_though_its_token_is_good(console: Console) -> None:
    browser = console.signed_in("U4", "respond")
    execute(
        console.database_url,
        'UPDATE web_session SET expires_at = :at WHERE "user" = :user',
        at=datetime.now(UTC) - timedelta(seconds=1),
        user="U4",
    )
    assert console.api("GET", "/api/v1/whoami", user="U4", scope="respond")["actor"] == "U4"
    assert_session_over(console, browser)


def test_a_session_ends_no_later_than_its_token(console: Console) -> None:
    """A token that expires in an hour makes a session (and a cookie) of at most that hour."""
    token = personal_token(console.database_url, "U6", "respond", expires="1h")
    browser = console.browser()
    answer = browser.post("/signin", {"token": token, "csrf": browser.signin_csrf(), "next": "/"})
    assert answer.status_code == 303, answer.text
    attributes = cookie_attributes(answer, "sloguard_session")
    assert 3500 <= int(attributes["max-age"]) <= 3600, attributes
    engine = sa.create_engine(console.database_url)
    try:
        with engine.connect() as connection:
            session_ends, token_ends = connection.execute(
                sa.text(
                    "SELECT s.expires_at, t.expires_at FROM web_session s JOIN api_token t "
                    "ON t.id = s.token_id WHERE s.\"user\" = 'U6'"
                )
            ).one()
    finally:
        engine.dispose()
    assert str(session_ends)[:19] == str(token_ends)[:19]


# ---------------------------------------------------------------- cookie attributes


def cookie_attributes(answer: httpx.Response, name: str) -> dict[str, str]:
    """The attributes of the Set-Cookie that sets `name` (flags map to "")."""
    for header in answer.headers.get_list("set-cookie"):
        first, *rest = [part.strip() for part in header.split(";")]
        if first.split("=", 1)[0] == name:
            attributes = {"value": first.split("=", 1)[1]}
            for part in rest:
                key, _, value = part.partition("=")
                attributes[key.lower()] = value
            return attributes
    raise AssertionError(f"no Set-Cookie for {name}: {answer.headers.get_list('set-cookie')}")


@pytest.mark.parametrize(
    ("overrides", "secure"),
    [
        ({}, False),
        ({"public_url": "http://sloguard.internal:8080"}, False),
        ({"public_url": "https://sloguard.example"}, True),
        ({"env": "production"}, True),
    ],
    ids=["plain-http-dev", "public-url-http", "public-url-https", "env-production"],
)
def test_the_session_cookie_is_httponly_lax_and_secure_when_served_over_https(
    tmp_path: Path, overrides: dict[str, Any], secure: bool
) -> None:
    """The cookies do not depend on the database: SQLite only. A Secure cookie is not sent back over the
    loopback's plain http, so this browser sends it by hand, as one reaching sloguard over https would."""
    settings = make_settings(tmp_path, **overrides)
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url) as http:
        form = http.get("/signin")
        signin = cookie_attributes(form, "sloguard_signin")
        csrf = signin["value"]
        token = personal_token(settings.database_url, OWNER, "respond")
        answer = http.post(
            "/signin",
            data={"token": token, "csrf": csrf, "next": "/"},
            headers={"Cookie": f"sloguard_signin={csrf}"},
        )
        assert answer.status_code == 303, answer.text
        session = cookie_attributes(answer, "sloguard_session")
        for attributes in (session, signin):
            assert "httponly" in attributes and attributes["samesite"].lower() == "lax", attributes
            assert ("secure" in attributes) is secure, attributes
        assert session["path"] == "/" and signin["path"] == "/signin"
        assert 0 < int(session["max-age"]) <= 12 * 3600
        assert "domain" not in session  # this host only
        page = http.get("/", headers={"Cookie": f"sloguard_session={session['value']}"})
        assert page.status_code == 200, page.text


# ---------------------------------------------------------------- where sign-in returns to


BAD_NEXT = [
    "//evil.example",
    "//evil.example/incidents/1",
    "https://evil.example",
    "https:evil.example",
    "javascript:alert(1)",
    "/\\evil.example",
    "\\\\evil.example",
    "\t//evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    " //evil.example",
    "evil.example",
    "/" + "x" * 499 + "/",  # past 500 characters
    "/incidents/" + "1" * 5000,
    "/ünïcode",
    "/\uff0fevil.example",  # a fullwidth solidus
    "/\u2028/evil.example",
    "/\x7f/evil.example",
]


def where_sign_in_lands(console: Console, next_path: str) -> dict[str, str]:
    """Where each way of signing in sends the browser for this `next`: the form's hidden field, the
    POST's redirect, and the sign-in page's redirect once signed in."""
    browser = console.browser()
    form = browser.get("/signin", params={"next": next_path})
    assert form.status_code == 200, form.text
    (signin,) = [f for f in Page(form.text).forms if f.action == "/signin"]
    token = console.token(OWNER, "respond")
    # A POST naming it anyway (a hand-made form): it lands somewhere, or is refused without signing in.
    answer = browser.post("/signin", {"token": token, "csrf": signin.fields["csrf"], "next": next_path})
    if "sloguard_session=" in answer.headers.get("set-cookie", ""):
        posted = answer.headers["Location"]
    else:
        assert_sign_in_redirect(answer, "/signin")  # a `next` past the field's limit: nothing happened
        posted = "/"
        browser.sign_in(token)
    again = browser.get("/signin", params={"next": next_path})
    assert again.status_code == 303, again.text
    return {"form": signin.fields["next"], "post": posted, "signed in": again.headers["Location"]}


def test_a_next_that_leaves_the_console_or_is_odd_lands_on_the_overview(console: Console) -> None:
    wrong = {}
    for bad in BAD_NEXT:
        landed = where_sign_in_lands(console, bad)
        if set(landed.values()) != {"/"}:
            wrong[bad[:40]] = landed
    assert wrong == {}, "sign-in kept these `next` values"


def test_a_next_within_the_console_is_kept(console: Console) -> None:
    for good in ["/incidents/1", "/incidents?status=triggered&page=2", "/slos/a-b.c", "/incidents/1%2F"]:
        assert where_sign_in_lands(console, good) == {"form": good, "post": good, "signed in": good}


def test_the_page_a_signed_out_browser_asked_for_is_where_it_returns(console: Console) -> None:
    browser = console.browser()
    asked = f"/incidents/{console.open_id}?done=x"
    bounced = browser.get(asked)
    assert_sign_in_redirect(bounced, asked)
    (form,) = [f for f in Page(browser.get(bounced.headers["Location"]).text).forms if f.action == "/signin"]
    assert form.fields["next"] == asked
    answer = browser.post("/signin", {**form.fields, "token": console.token(OWNER, "read")})
    assert (answer.status_code, answer.headers["Location"]) == (303, asked)


# ---------------------------------------------------------------- hostile input


HOSTILE_GETS = [
    "/?page=abc",
    "/?page=-1",
    "/?page=0",
    f"/?page={2**31}",
    "/?page=" + "9" * 5000,
    "/?page=1.5",
    "/?service=" + "x" * 5000,
    "/?model=" + "x" * 201,
    "/?state=%00",
    "/incidents?page=abc",
    "/incidents?page=-5",
    f"/incidents?page={2**63}",
    "/incidents?status=bogus",
    "/incidents?severity=%ED%A0%80",
    "/incidents?service=a%00b",
    "/incidents?model=" + "m" * 10_000,
    "/incidents/-1",
    "/incidents/0",
    f"/incidents/{2**31}",
    f"/incidents/{2**63}",
    "/incidents/abc",
    "/incidents/1e3",
    "/incidents/999999",
    f"/incidents/{2**31}/timeline",
    "/incidents/-1/draft",
    "/incidents/999999/draft.md",
    "/incidents/abc/draft.zip",
    "/slos/" + "x" * 5000,
    "/slos/nope",
    "/slos/a%00b",
]


def hostile_posts(console: Console) -> list[tuple[str, dict[str, str] | bytes]]:
    notes = f"/incidents/{console.open_id}/notes"
    rollback = f"/incidents/{console.open_id}/rollback"
    return [
        (notes, {"text": ""}),
        (notes, {"text": "x" * 10_001}),
        (notes, {"text": "a\x00b"}),
        (notes, {"text": "x" * (2 * 1024 * 1024)}),
        (notes, {"text": "fine", "csrf": "c" * 5000}),
        (notes, b"text=a%00b&csrf=CSRF"),
        ("/incidents/-1/notes", {"text": "t"}),
        (f"/incidents/{2**31}/notes", {"text": "t"}),
        ("/incidents/abc/acknowledge", {}),
        ("/incidents/999999/resolve", {}),
        (f"/rollbacks/{2**63}/confirm", {}),
        ("/rollbacks/999999/confirm", {}),
        (rollback, {"model": "m" * 5000}),
        (rollback, {"model": "not-configured"}),
        (rollback, {"model": MODEL, "environment": "nowhere"}),
        (rollback, {"model": MODEL, "to_version": "v" * 201}),
        (rollback, {"model": MODEL, "reason": "r" * 2001}),
        ("/signin", {"token": "t" * 5000, "csrf": "CSRF"}),
        ("/signin", {"token": "a\x00b", "csrf": "CSRF"}),
        ("/signin", {"next": "/" + "n" * 5000, "csrf": "CSRF"}),
    ]


def send_hostile(browser: Browser, path: str, body: dict[str, str] | bytes) -> httpx.Response:
    if isinstance(body, bytes):
        raw = body.replace(b"CSRF", browser.csrf.encode())
        headers = {"Content-Type": "application/x-www-form-urlencoded", "Origin": browser.url}
        return browser.http.post(path, content=raw, headers=headers)
    return browser.act(path, body)


@pytest.mark.parametrize("signed_in", [True, False], ids=["signed-in", "signed-out"])
def test_hostile_queries_paths_and_form_fields_are_a_4xx_never_a_500(
    console: Console, signed_in: bool
) -> None:
    """Signed in (as a change-scope person, so scope is never the reason), each is refused with a 4xx;
    signed out, a 4xx or the redirect to sign in. Nothing is stored either way."""
    browser = console.signed_in(OWNER, "change") if signed_in else console.browser()
    before = snapshot(console.database_url)
    for path in HOSTILE_GETS:
        answer = browser.get(path)
        allowed = (400, 404, 422) if signed_in else (303, 400)
        assert answer.status_code in allowed, f"GET {path[:80]}: {answer.status_code} {answer.text[:300]}"
        assert "Traceback" not in answer.text
    for path, body in hostile_posts(console):
        if path == "/signin":
            answer = send_hostile(browser, path, body)
            assert answer.status_code in (303, 400, 403, 422), f"{answer.status_code} {answer.text[:300]}"
            continue
        answer = send_hostile(browser, path, body)
        what = f"POST {path[:60]} {str(body)[:80]}"
        allowed = (400, 404, 409, 413, 422) if signed_in else (303, 400, 413)
        assert answer.status_code in allowed, f"{what}: {answer.status_code} {answer.text[:300]}"
        if answer.status_code == 303:
            assert urlsplit(answer.headers["Location"]).path == "/signin"
    assert snapshot(console.database_url) == before


def test_invalid_utf_8_in_a_note_is_stored_repaired(console: Console) -> None:
    """Bytes that are no UTF-8 (a lone surrogate's encoding, `%ED%A0%80`) arrive as U+FFFD: stored, and
    every page still reads."""
    person = console.signed_in(OWNER, "respond")
    raw = b"text=lone+%ED%A0%80+surrogate&csrf=" + person.csrf.encode()
    answer = person.http.post(
        f"/incidents/{console.open_id}/notes",
        content=raw,
        headers={"Content-Type": "application/x-www-form-urlencoded", "Origin": person.url},
    )
    assert answer.status_code == 303, answer.text
    texts = [said for _, _, _, said in console.timeline(console.open_id)]
    assert any(said.startswith("lone \ufffd") for said in texts), texts
    for page in console.every_page():
        assert person.get(page).status_code in (200, 404), page


def test_a_console_path_no_route_answers_is_a_page_of_the_console_too(console: Console) -> None:
    """A path under the console's prefixes that no route serves (a typo, a GET of a form's URL) answers
    as the console's pages do: signed out, the way to sign in; signed in, a page with the status, under
    the same headers."""
    missing = [
        ("GET", f"/incidents/{console.open_id}/nothing-here", 404),
        ("GET", f"/incidents/{console.open_id}/notes", 405),
        ("POST", "/incidents", 405),
        ("GET", "/rollbacks/1", 404),
    ]
    viewer = console.signed_in(OWNER, "read")
    stranger = console.browser()
    for method, path, status in missing:
        signed_out = stranger.http.request(method, path, headers={"Origin": stranger.url})
        assert_sign_in_redirect(signed_out, path)
        assert_page_headers(signed_out, f"{method} {path}, signed out")
        signed_in = viewer.http.request(method, path, headers={"Origin": viewer.url})
        assert signed_in.status_code == status, f"{method} {path}: {signed_in.status_code}"
        assert signed_in.headers["content-type"].startswith("text/html"), signed_in.text
        assert_page_headers(signed_in, f"{method} {path}, signed in")


def test_a_link_cannot_put_words_on_a_console_page(console: Console) -> None:
    """`?done=` names one of the forms' fixed announcements; any other value shows nothing."""
    viewer = console.signed_in(OWNER, "read")
    forged = viewer.get(
        f"/incidents/{console.open_id}", params={"done": "Your token expired: paste it at evil"}
    )
    assert forged.status_code == 200
    assert "paste it at evil" not in forged.text and 'class="flash"' not in forged.text
    hostile = viewer.get(f"/incidents/{console.open_id}", params={"done": '<script>alert(1)</script>"'})
    assert "<script>alert(1)" not in hostile.text and "alert(1)" not in hostile.text
    known = viewer.get(f"/incidents/{console.open_id}", params={"done": "noted"})
    assert '<p class="flash" role="status">Note added.</p>' in known.text


QUERY_NAMES = ["page", "service", "model", "state", "status", "severity", "done", "next"]


def test_any_query_value_on_the_list_pages_is_never_a_500(console: Console) -> None:
    """A property: any text (lone surrogates and NUL included, as a client's raw bytes) in any query
    parameter of the overview and the incident list answers a page or a 4xx."""
    viewer = console.signed_in(OWNER, "read")

    @hypothesis_settings(
        max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
    )
    @given(
        page=st.sampled_from(["/", "/incidents", "/signin"]),
        name=st.sampled_from(QUERY_NAMES),
        value=st.one_of(
            st.text(st.characters(exclude_categories=()), max_size=300),
            st.integers().map(str),
        ),
    )
    def check(page: str, name: str, value: str) -> None:
        query = f"{name}={quote(value, safe='', errors='surrogatepass')}"
        answer = viewer.get(f"{page}?{query}")
        assert answer.status_code in (200, 303, 400, 422), f"{page}?{query[:200]}: {answer.status_code}"
        if answer.status_code == 303:
            assert not urlsplit(answer.headers["Location"]).netloc, answer.headers

    check()


# ---------------------------------------------------------------- guessing tokens


def test_failed_token_sign_ins_are_throttled_per_address_and_no_token_is_logged(
    console: Console, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    good = console.token(OWNER, "respond")
    revoked_token = console.token("U8", "respond")
    httpx.delete(
        f"{console.url}/api/v1/tokens/{token_id(console, 'U8', 'respond')}",
        headers=bearer(console.token("U8", "admin")),
    ).raise_for_status()
    guesses = [logic.new_token() for _ in range(THROTTLE_LIMIT - 3)]
    guesses += [good[:-1] + ("A" if good[-1] != "A" else "B"), good + "x", "sloguard_pat_guess"]
    presented = [good, revoked_token, *guesses]
    answers: list[httpx.Response] = []

    def sign_in(browser: Browser, token: str) -> httpx.Response:
        answer = browser.post("/signin", {"token": token, "csrf": browser.signin_csrf(), "next": "/"})
        answers.append(answer)
        return answer

    # A revoked token is a real one, kept by someone: refused, never counted.
    keeper = console.browser(own_address())
    for _ in range(THROTTLE_LIMIT + 2):
        answer = sign_in(keeper, revoked_token)
        assert answer.status_code == 401 and "That token was revoked." in answer.text
    assert sign_in(keeper, good).status_code == 303

    guesser_address = own_address()
    guesser = console.browser(guesser_address)
    for token in guesses:
        answer = sign_in(guesser, token)
        assert answer.status_code == 401, answer.text
        assert "That is not a personal token sloguard knows." in answer.text
        assert_page_headers(answer, "a refused sign-in")
    for token in (good, logic.new_token()):
        held = sign_in(guesser, token)
        assert held.status_code == 429, held.text
        assert re.search(r"Too many failed attempts; try again in \d+s\.", held.text), held.text
        assert "sloguard_session" not in held.headers.get("set-cookie", "")
        assert_page_headers(held, "a held-back sign-in")
    assert guesser.get("/").status_code == 303  # not signed in
    # Another address is not held back; nor is the API door (each door counts its own failures).
    elsewhere = console.browser(own_address())
    assert sign_in(elsewhere, good).status_code == 303
    with httpx.Client(transport=httpx.HTTPTransport(local_address=guesser_address)) as api:
        me = api.get(f"{console.url}/api/v1/whoami", headers=bearer(good))
        assert me.status_code == 200, me.text

    metrics = httpx.get(f"{console.url}/metrics").text
    assert re.search(r'sloguard_auth_throttled_total\{door="console"\} [1-9]', metrics), metrics
    logged = [record for record in caplog.records if record.getMessage() == "console sign-in refused"]
    assert len(logged) >= len(guesses) + THROTTLE_LIMIT, "the refusals were not logged where caplog sees"
    for record in caplog.records:
        text = f"{record.getMessage()} {record.__dict__!r}"
        for token in presented:
            assert token not in text, f"a token in the log: {text[:300]}"
    for answer in answers:
        shown = answer.text + repr(answer.headers.multi_items())
        for token in presented:
            assert token not in shown, f"a token in an answer: {answer.status_code}"
