"""Signing in to the console through a real OpenID Connect provider (tests/oidc_provider.py), over HTTP as
a browser does it: the sign-in page, the redirect to the provider, its login form, the return, and the
session cookie. On both databases: a sign-in under way lives in the database, so any replica may finish it.

The provider is strict (exact redirect URI, PKCE S256, one-time codes, client authentication), so a
sign-in that works proves sloguard's client does each step; the refusals prove sloguard checks what the
provider sends back (a replayed or foreign return, a forged ID token, an injected code, a provider down).
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest
import yaml
from playwright.sync_api import sync_playwright

from app import db
from app.main import create_app
from app.web import sessions
from app.web.oidc import FLOW_COOKIE
from app.web.sessions import COOKIE, Viewer
from tests.browser import CHROMIUM, LAUNCH_ARGS
from tests.conftest import bearer, make_settings, personal_token
from tests.oidc_provider import FORGERIES, OpenIdProvider, User, s256
from tests.servers import TcpProxy, UvicornThread, free_port

pytestmark = pytest.mark.integration

USERS = {
    "alice": User("alice-1", "alice@example.com", "Alice Adams", groups=["staff", "sre"]),
    "bob": User("bob-2", "bob@example.com", "Bob Brown", groups=["sre"]),  # in no `people`: reads only
    "carol": User("carol-3", "carol@example.com", "Carol Chen", groups="oncall"),  # one group, as a string
    "dave": User("dave-4", "dave@example.com", "Dave Diaz", groups=["staff"]),  # no group with a scope
    "erin": User("erin-5", "erin@example.com", "Erin Eze", groups=["sre"], lean=True),  # claims at /userinfo
    # Claims alice's address at a provider that lets anyone type one: it says it has not verified it.
    "mallory": User("mallory-6", "alice@example.com", "Mallory", groups=["sre"], email_verified=False),
}
PEOPLE = {
    "alice@example.com": "U0ALICE",
    "carol@example.com": "U0CAROL",
    "dave@example.com": "U0DAVE",
    "erin@example.com": "U0ERIN",
}
GROUP_SCOPES = {"sre": "change", "oncall": "respond", "staff": "read"}
# What the database does for a sign-in (keep it under way, take it once) runs on both databases in the
# tests of the whole flow and of its returns; the rest is about claims, tokens and the provider.
SQLITE_ONLY = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


# ---------------------------------------------------------------- a browser, over HTTP


class Forms(HTMLParser):
    """The forms of a page (action, and the values its inputs would send), and where a refresh goes."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[tuple[str, dict[str, str]]] = []
        self.refresh: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag == "form":
            self.forms.append((values.get("action", ""), {}))
        elif tag == "input" and self.forms and "name" in values:
            self.forms[-1][1][values["name"]] = values.get("value", "")
        elif tag == "meta" and values.get("http-equiv", "").lower() == "refresh":
            delay, _, target = values.get("content", "").partition(";")
            assert delay.strip() == "0"
            self.refresh = target.strip().removeprefix("url=")


def form(page: str, action: str) -> dict[str, str]:
    parser = Forms()
    parser.feed(page)
    for found, fields in parser.forms:
        if found == action:
            return fields
    raise AssertionError(f"no form posting to {action} on the page:\n{page[:2000]}")


def onward(page: str) -> str:
    """Where a page that moves on at once (a refresh) takes the browser."""
    parser = Forms()
    parser.feed(page)
    assert parser.refresh, page[:2000]
    return parser.refresh


def header(page: str) -> str:
    """The page's top bar, where the console names who is signed in and their scope."""
    found = re.search(r"<header.*?</header>", page, re.S)
    assert found is not None, page[:2000]
    return found.group(0)


def problem(page: str) -> str:
    found = re.search(r'<p class="problem" role="alert" id="problem">(.*?)</p>', page, re.S)
    assert found is not None, page[:2000]
    return found.group(1).replace("&#39;", "'").replace("&amp;", "&")


@dataclass
class Return:
    """The provider's redirect back to sloguard, and what sloguard answered it."""

    callback: str
    answer: httpx.Response


class Browser:
    """Keeps cookies as a browser does (by host and path) and follows redirects one at a time.

    `behind_tls`: the console is https for the browser (a TLS proxy in front), so Secure cookies are still
    sent over this test's plain HTTP."""

    def __init__(self, console: str, behind_tls: bool = False) -> None:
        self.console = console
        self.behind_tls = behind_tls
        self.http = httpx.Client(timeout=15, follow_redirects=False)

    def close(self) -> None:
        self.http.close()

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self._kept(self.http.get(urljoin(self.console, url), **kwargs))

    def post(self, url: str, data: dict[str, str]) -> httpx.Response:
        return self._kept(self.http.post(urljoin(self.console, url), data=data))

    def _kept(self, response: httpx.Response) -> httpx.Response:
        if self.behind_tls:
            for cookie in self.http.cookies.jar:
                cookie.secure = False
        return response

    def begin(self, next_path: str = "/") -> httpx.Response:
        """The sign-in page's single sign-on button: sloguard's answer (a page moving on to the provider)."""
        page = self.get("/signin", params={"next": next_path})
        assert page.status_code == 200, page.text
        return self.post("/signin/oidc", form(page.text, "/signin/oidc"))

    def to_provider(self, next_path: str = "/") -> str:
        started = self.begin(next_path)
        assert started.status_code == 200, started.text
        return onward(started.text)

    def log_in(self, authorize_url: str, username: str, decision: str = "allow") -> str:
        """At the provider: its login form, filled in; returns where it sends the browser back."""
        login = self.get(authorize_url)
        assert login.status_code == 200, login.text
        fields = form(login.text, "/authorize") | {"username": username, "decision": decision}
        back = self.post(urljoin(authorize_url, "/authorize"), fields)
        assert back.status_code == 302, back.text
        return back.headers["location"]

    def sign_in(self, username: str, next_path: str = "/") -> Return:
        callback = self.log_in(self.to_provider(next_path), username)
        return Return(callback, self.get(callback))

    @property
    def session_cookie(self) -> str | None:
        return self.http.cookies.get(COOKIE)


def set_cookies(response: httpx.Response) -> dict[str, str]:
    """Each cookie the answer sets, with its attributes as sent (`name=value; HttpOnly; ...`)."""
    return {header.split("=", 1)[0]: header for header in response.headers.get_list("set-cookie")}


def attributes(header: str) -> set[str]:
    return {part.strip().lower() for part in header.split(";")[1:]}


# ---------------------------------------------------------------- servers


@pytest.fixture(scope="module")
def provider() -> Iterator[OpenIdProvider]:
    with OpenIdProvider(USERS) as running:
        yield running


@pytest.fixture(autouse=True)
def _provider_as_started(request: pytest.FixtureRequest) -> Iterator[None]:
    yield
    if "provider" in request.fixturenames:
        running: OpenIdProvider = request.getfixturevalue("provider")
        running.forge = None
        running.failing.clear()


@dataclass
class Console:
    url: str
    database_url: str

    def viewer(self, cookie: str | None) -> Viewer | None:
        engine = db.make_engine(self.database_url)
        try:
            return sessions.find(engine, cookie, datetime.now(UTC))
        finally:
            engine.dispose()

    def browser(self, **options: Any) -> Browser:
        return Browser(self.url, **options)


Serve = Callable[..., Console]


@pytest.fixture
def serve(tmp_path: Path, database_url: str) -> Iterator[Serve]:
    """sloguard whose console signs in through `provider` (or an `issuer` with no provider behind it;
    neither: no single sign-on)."""
    with contextlib.ExitStack() as stack:

        def start(
            provider: OpenIdProvider | None,
            secret: str | None = None,
            issuer: str | None = None,
            **settings: Any,
        ) -> Console:
            folder = tmp_path / f"sloguard-{free_port()}"
            folder.mkdir()
            console: dict[str, Any] = {}
            if provider is not None:
                issuer, secret = issuer or provider.issuer, secret or provider.client_secret
            if issuer is not None:
                console["oidc"] = {
                    "issuer": issuer,
                    "client_id": "sloguard",
                    "people": PEOPLE,
                    "group_scopes": GROUP_SCOPES,
                }
                settings.setdefault("oidc_client_secret", secret)
            (folder / "sloguard.yaml").write_text(yaml.safe_dump({"console": console}))
            port = free_port()
            url = f"http://127.0.0.1:{port}"
            if provider is not None:
                public = str(settings.get("public_url") or url).rstrip("/")
                provider.redirect_uris.add(f"{public}/signin/oidc/callback")
            app = create_app(make_settings(folder, database_url=database_url, **settings))
            stack.enter_context(UvicornThread(app, port=port))
            return Console(url, database_url)

        yield start


@pytest.fixture
def console(serve: Serve, provider: OpenIdProvider) -> Console:
    return serve(provider)


@pytest.fixture
def browser(console: Console) -> Iterator[Browser]:
    opened = console.browser()
    yield opened
    opened.close()


# ---------------------------------------------------------------- signing in


def test_alice_signs_in_with_the_scope_of_her_group(
    console: Console, browser: Browser, provider: OpenIdProvider
) -> None:
    started = browser.begin("/incidents?status=open")
    assert started.status_code == 200, started.text
    assert "form-action 'self'" in started.headers["content-security-policy"]
    flow = set_cookies(started)[FLOW_COOKIE]
    assert {"httponly", "samesite=lax", "path=/signin/oidc"} <= attributes(flow)
    authorize = onward(started.text)
    sent = urlsplit(authorize)
    assert f"{sent.scheme}://{sent.netloc}{sent.path}" == f"{provider.url}/authorize"
    query = {key: values[0] for key, values in parse_qs(sent.query).items()}
    assert query["response_type"] == "code"
    assert query["client_id"] == "sloguard"
    assert query["redirect_uri"] == f"{console.url}/signin/oidc/callback"
    assert query["scope"].split() == ["openid", "email", "profile"]
    assert query["code_challenge_method"] == "S256"
    assert len(query["state"]) >= 32 and len(query["nonce"]) >= 32

    back = browser.get(browser.log_in(authorize, "alice"))

    assert back.status_code == 303, back.text
    assert back.headers["location"] == "/incidents?status=open"
    cookie = set_cookies(back)[COOKIE]
    assert {"httponly", "samesite=lax", "path=/"} <= attributes(cookie)
    assert "secure" not in attributes(cookie)  # plain http in development: a Secure cookie would never return
    who = console.viewer(browser.session_cookie)
    assert who is not None
    assert (who.user, who.display, who.scope, who.via, who.token_id) == (
        "U0ALICE",
        "Alice Adams",
        "change",
        "oidc",
        None,
    )
    exchange = provider.token_requests[-1]
    assert exchange["auth"] == "client_secret_basic"  # the first the provider announces
    assert s256(exchange["code_verifier"]) == query["code_challenge"]
    assert exchange["redirect_uri"] == query["redirect_uri"]

    overview = browser.get("/")
    assert overview.status_code == 200, overview.text
    assert "Alice Adams" in header(overview.text) and re.search(r"\bchange\b", header(overview.text))
    # Signed in, the sign-in page sends the browser on to where it was going.
    again = browser.get("/signin", params={"next": "/incidents"})
    assert (again.status_code, again.headers["location"]) == (303, "/incidents")


@SQLITE_ONLY
@pytest.mark.parametrize(
    ("username", "user", "scope", "display"),
    [
        pytest.param("carol", "U0CAROL", "respond", "Carol Chen", id="one-group-as-a-string"),
        pytest.param("dave", "U0DAVE", "read", "Dave Diaz", id="mapped-without-a-scoped-group"),
        pytest.param("erin", "U0ERIN", "change", "Erin Eze", id="claims-only-at-userinfo"),
        pytest.param("bob", "oidc:bob@example.com", "read", "Bob Brown", id="unmapped-groups-do-not-count"),
        pytest.param(
            "mallory", "oidc:alice@example.com", "read", "Mallory", id="unverified-email-maps-nobody"
        ),
    ],
)
def test_claims_name_the_person_and_scope(
    console: Console, browser: Browser, username: str, user: str, scope: str, display: str
) -> None:
    back = browser.sign_in(username).answer
    assert back.status_code == 303, back.text
    who = console.viewer(browser.session_cookie)
    assert who is not None
    assert (who.user, who.scope, who.display) == (user, scope, display)


def test_an_unmapped_person_reads_but_cannot_act(console: Console) -> None:
    ops = bearer(personal_token(console.database_url, "U0OPS", "respond"))
    declared = httpx.post(
        f"{console.url}/api/v1/incidents", json={"title": "ranker scores wrong"}, headers=ops
    )
    assert declared.status_code == 201, declared.text
    incident = declared.json()["id"]
    bob, alice = console.browser(), console.browser()
    try:
        assert bob.sign_in("bob").answer.status_code == 303
        overview = bob.get("/")
        assert overview.status_code == 200, overview.text
        assert "Bob Brown" in header(overview.text) and re.search(r"\bread\b", header(overview.text))
        bob_view = console.viewer(bob.session_cookie)
        assert bob_view is not None
        refused = bob.post(f"/incidents/{incident}/acknowledge", {"csrf": bob_view.csrf})
        assert refused.status_code == 403, refused.text
        assert "scope" in refused.text

        # The same form from a person who may act goes through: the 403 was bob's scope, not the form.
        assert alice.sign_in("alice").answer.status_code == 303
        alice_view = console.viewer(alice.session_cookie)
        assert alice_view is not None
        done = alice.post(f"/incidents/{incident}/acknowledge", {"csrf": alice_view.csrf})
        assert done.status_code == 303, done.text
    finally:
        bob.close()
        alice.close()
    now = httpx.get(f"{console.url}/api/v1/incidents/{incident}", headers=ops).json()
    assert now["status"] == "acknowledged"
    acknowledged = [event for event in now["timeline"] if "acknowledged" in str(event).lower()]
    assert acknowledged and all("oidc:" not in str(event) for event in acknowledged)
    assert any("U0ALICE" in str(event) for event in acknowledged)


# ---------------------------------------------------------------- returns that must not sign anyone in


def test_a_replayed_return_is_refused(console: Console, browser: Browser, provider: OpenIdProvider) -> None:
    signed_in = browser.sign_in("alice")
    assert signed_in.answer.status_code == 303
    asked = len(provider.token_requests)

    replay = browser.get(signed_in.callback)

    assert replay.status_code == 400
    assert problem(replay.text) == "This sign-in expired or was already used; start again."
    assert COOKIE not in set_cookies(replay)
    assert len(provider.token_requests) == asked  # refused before the code went anywhere


def test_a_return_is_finished_only_by_the_browser_that_began_it(console: Console) -> None:
    """Login CSRF: someone sends a victim's browser to the return of their own sign-in, to have the victim
    work in a console signed in as them. The return's state belongs to the attacker's browser."""
    attacker, victim = console.browser(), console.browser()
    try:
        callback = attacker.log_in(attacker.to_provider(), "bob")
        planted = victim.get(callback)
        assert planted.status_code == 400
        assert problem(planted.text) == (
            "This sign-in did not start in this browser, or took too long; start again."
        )
        assert COOKIE not in set_cookies(planted) and victim.session_cookie is None
        # The refusal spent nothing: the browser that began the sign-in finishes it.
        assert attacker.get(callback).status_code == 303
    finally:
        attacker.close()
        victim.close()


def test_a_code_injected_into_another_sign_in_fails_pkce(
    console: Console, provider: OpenIdProvider, caplog: pytest.LogCaptureFixture
) -> None:
    """A code stolen from alice's return, put into the attacker's own sign-in: sloguard sends the
    attacker's verifier with it, and the provider refuses, as the code was made for alice's challenge."""
    alice, attacker = console.browser(), console.browser()
    try:
        stolen = parse_qs(urlsplit(alice.log_in(alice.to_provider(), "alice")).query)["code"][0]
        own = urlsplit(attacker.log_in(attacker.to_provider(), "bob"))
        state = parse_qs(own.query)["state"][0]

        answer = attacker.get(f"{own.path}?code={stolen}&state={state}")

        assert answer.status_code == 401, answer.text
        assert problem(answer.text) == "The provider refused this sign-in (invalid_grant); start again."
        assert attacker.session_cookie is None
        assert provider.token_requests[-1]["code"] == stolen
        warned = [record for record in caplog.records if record.name == "app.web.oidc"]
        assert [getattr(record, "reason", None) for record in warned] == ["token: invalid_grant"]
        assert stolen not in caplog.text and state not in caplog.text
    finally:
        alice.close()
        attacker.close()


@SQLITE_ONLY
@pytest.mark.parametrize("forgery", FORGERIES)
def test_a_forged_id_token_signs_nobody_in(
    console: Console, browser: Browser, provider: OpenIdProvider, forgery: str
) -> None:
    provider.forge = forgery
    back = browser.sign_in("alice").answer
    assert back.status_code == 401, back.text
    assert problem(back.text) == (
        "The provider's answer does not prove who signed in (its ID token is not valid); start again."
    )
    assert COOKIE not in set_cookies(back) and browser.session_cookie is None


@SQLITE_ONLY
def test_the_provider_saying_no_is_shown(console: Console, browser: Browser) -> None:
    callback = browser.log_in(browser.to_provider(), "alice", decision="deny")
    back = browser.get(callback)
    assert back.status_code == 401
    assert problem(back.text) == (
        "The provider did not sign you in (access_denied: The user did not allow the sign-in.)."
    )
    assert browser.session_cookie is None


@SQLITE_ONLY
def test_the_sign_in_form_is_checked(console: Console, browser: Browser) -> None:
    page = browser.get("/signin")
    fields = form(page.text, "/signin/oidc")
    assert fields["csrf"]
    forged = browser.post("/signin/oidc", fields | {"csrf": "from-another-site"})
    assert forged.status_code == 403
    assert problem(forged.text) == "This sign-in form has expired; try again."
    bare = httpx.post(f"{console.url}/signin/oidc", data=fields)  # the field without its cookie
    assert bare.status_code == 403


# ---------------------------------------------------------------- the provider in trouble


@SQLITE_ONLY
def test_a_provider_that_cannot_be_reached_gets_a_clear_502(serve: Serve) -> None:
    port = free_port()
    proxy = TcpProxy("127.0.0.1", port)
    try:
        with OpenIdProvider(USERS, port=port, issuer=f"http://127.0.0.1:{proxy.port}") as behind:
            console = serve(behind)
            browser = console.browser()
            try:
                # Down before the sign-in: the discovery document cannot be read.
                proxy.cut()
                down = browser.begin()
                assert down.status_code == 502
                assert problem(down.text) == (
                    "The sign-in provider cannot be reached; try again later, or sign in with a personal "
                    "token."
                )
                # Down between the login and the return: the code cannot be traded.
                proxy.restore()
                callback = browser.log_in(browser.to_provider(), "alice")
                proxy.cut()
                lost = browser.get(callback)
                assert lost.status_code == 502
                assert "cannot be reached" in problem(lost.text)
                assert browser.session_cookie is None
                # Back again: signing in works.
                proxy.restore()
                assert browser.sign_in("alice").answer.status_code == 303
            finally:
                browser.close()
    finally:
        proxy.close()


@SQLITE_ONLY
def test_a_provider_that_does_not_answer_gets_a_clear_502(serve: Serve) -> None:
    # Connections are taken (the kernel's backlog) and never answered.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        issuer = f"http://127.0.0.1:{silent.getsockname()[1]}"
        console = serve(None, secret="client-secret-0123456789abcdef", issuer=issuer, source_timeout=0.5)
        browser = console.browser()
        try:
            started = time.monotonic()
            answer = browser.begin()
            waited = time.monotonic() - started
        finally:
            browser.close()
    assert answer.status_code == 502
    assert problem(answer.text) == "The sign-in provider did not answer in time (0.5 s); try again later."
    assert 0.5 <= waited < 5


@SQLITE_ONLY
@pytest.mark.parametrize("endpoint", ["token", "jwks"])
def test_a_provider_answering_errors_gets_a_clear_502(
    console: Console, browser: Browser, provider: OpenIdProvider, endpoint: str
) -> None:
    callback = browser.log_in(browser.to_provider(), "alice")
    provider.failing.add(endpoint)
    back = browser.get(callback)
    assert back.status_code == 502
    assert problem(back.text) == "The sign-in provider gave an answer sloguard cannot use; try again later."


@SQLITE_ONLY
def test_a_wrong_client_secret_is_the_administrators_to_fix(serve: Serve, provider: OpenIdProvider) -> None:
    console = serve(provider, secret="not-the-secret-the-provider-holds")
    browser = console.browser()
    try:
        back = browser.sign_in("alice").answer
    finally:
        browser.close()
    assert back.status_code == 502
    assert "SLOGUARD_OIDC_CLIENT_SECRET" in problem(back.text)


@SQLITE_ONLY
def test_a_provider_taking_client_secret_post(serve: Serve) -> None:
    with OpenIdProvider(USERS, auth_methods=("client_secret_post",)) as post_only:
        console = serve(post_only)
        browser = console.browser()
        try:
            assert browser.sign_in("alice").answer.status_code == 303
        finally:
            browser.close()
        assert post_only.token_requests[-1]["auth"] == "client_secret_post"
        assert "code_verifier" in post_only.token_requests[-1]


@SQLITE_ONLY
def test_without_single_sign_on_the_routes_say_so(serve: Serve) -> None:
    console = serve(None)
    browser = console.browser()
    try:
        page = browser.get("/signin")
        assert "/signin/oidc" not in page.text  # no button for it
        answer = browser.post("/signin/oidc", {"csrf": "x", "next": "/"})
        assert answer.status_code == 404
        assert "not set up" in problem(answer.text)
        assert browser.get("/signin/oidc/callback", params={"code": "c", "state": "s"}).status_code == 404
    finally:
        browser.close()


# ---------------------------------------------------------------- cookies over https


@SQLITE_ONLY
@pytest.mark.parametrize(
    "settings",
    [
        pytest.param({"env": "production"}, id="production"),
        pytest.param({"public_url": "https://sloguard.example"}, id="https-public-url"),
    ],
)
def test_cookies_are_secure_when_people_come_over_https(
    serve: Serve, provider: OpenIdProvider, settings: dict[str, Any]
) -> None:
    console = serve(provider, **settings)
    public = settings.get("public_url", console.url)
    browser = console.browser(behind_tls=True)
    try:
        started = browser.begin()
        assert started.status_code == 200, started.text
        assert "secure" in attributes(set_cookies(started)[FLOW_COOKIE])
        redirect_uri = parse_qs(urlsplit(onward(started.text)).query)["redirect_uri"][0]
        assert redirect_uri == f"{public}/signin/oidc/callback"
        callback = urlsplit(browser.log_in(onward(started.text), "alice"))
        # The TLS proxy in front of sloguard hands the return on to it.
        back = browser.get(f"{callback.path}?{callback.query}")
    finally:
        browser.close()
    assert back.status_code == 303, back.text
    assert {"secure", "httponly", "samesite=lax"} <= attributes(set_cookies(back)[COOKIE])


# ---------------------------------------------------------------- the provider itself is strict


def test_the_test_provider_refuses_what_a_real_one_refuses(provider: OpenIdProvider) -> None:
    """So that signing in through it proves something: a wrong verifier, a reused code, a wrong secret,
    a missing challenge and an unregistered redirect URI all fail."""
    redirect = "http://127.0.0.1:9/signin/oidc/callback"
    provider.redirect_uris.add(redirect)
    verifier = "v" * 43
    base = {
        "response_type": "code",
        "client_id": "sloguard",
        "redirect_uri": redirect,
        "scope": "openid email",
        "state": "s1",
        "nonce": "n1",
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        "login_hint": "alice",
    }

    def code(**changes: str) -> httpx.Response:
        return httpx.get(f"{provider.url}/authorize", params=base | changes)

    def trade(found: str, **changes: str) -> httpx.Response:
        body = {"grant_type": "authorization_code", "code": found, "redirect_uri": redirect} | changes
        return httpx.post(f"{provider.url}/token", data=body, auth=("sloguard", provider.client_secret))

    def code_of(answer: httpx.Response) -> str:
        assert answer.status_code == 302, answer.text
        return parse_qs(urlsplit(answer.headers["location"]).query)["code"][0]

    wrong = trade(code_of(code()), code_verifier="w" * 43)
    assert (wrong.status_code, wrong.json()["error"]) == (400, "invalid_grant")
    assert trade(code_of(code()), code_verifier="").json()["error"] == "invalid_grant"

    once = code_of(code())
    first = trade(once, code_verifier=verifier)
    assert first.status_code == 200, first.text
    access = {"Authorization": f"Bearer {first.json()['access_token']}"}
    assert httpx.get(f"{provider.url}/userinfo", headers=access).json()["email"] == "alice@example.com"
    assert trade(once, code_verifier=verifier).json()["error"] == "invalid_grant"
    assert httpx.get(f"{provider.url}/userinfo", headers=access).status_code == 401  # revoked with the code

    secretless = httpx.post(
        f"{provider.url}/token",
        data={"grant_type": "authorization_code", "code": code_of(code()), "code_verifier": verifier},
        auth=("sloguard", "guessed-secret"),
    )
    assert (secretless.status_code, secretless.json()["error"]) == (401, "invalid_client")

    no_pkce = code(code_challenge="", code_challenge_method="")
    assert parse_qs(urlsplit(no_pkce.headers["location"]).query)["error"] == ["invalid_request"]
    plain = code(code_challenge_method="plain")
    assert parse_qs(urlsplit(plain.headers["location"]).query)["error"] == ["invalid_request"]
    elsewhere = code(redirect_uri="http://127.0.0.1:9/elsewhere")
    assert elsewhere.status_code == 400 and "location" not in elsewhere.headers


# ---------------------------------------------------------------- in a real browser


@SQLITE_ONLY
def test_in_a_browser_the_button_goes_to_the_provider_and_back(
    console: Console, provider: OpenIdProvider, tmp_path: Path
) -> None:
    """Chromium enforces the sign-in page's `form-action 'self'` on every redirect after the form is
    sent: a 303 to the provider would be stopped there. The page that moves on must get through."""
    assert Path(CHROMIUM).exists(), "chromium is installed by `make test` (Debian's chromium)"
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=LAUNCH_ARGS)
        try:
            page = chromium.new_page()
            blocked: list[str] = []
            page.on(
                "console", lambda message: blocked.append(message.text) if "Policy" in message.text else None
            )
            page.goto(f"{console.url}/signin?next=/incidents")
            page.screenshot(path=tmp_path / "1-signin.png")
            page.click("form[action='/signin/oidc'] button")
            page.wait_for_url(f"{provider.url}/authorize?*")
            page.screenshot(path=tmp_path / "2-provider.png")
            page.fill("input[name=username]", "alice")
            page.click("button[value=allow]")
            page.wait_for_url(f"{console.url}/incidents")
            page.screenshot(path=tmp_path / "3-signed-in.png")
            assert page.locator("header .who span").inner_text() == "Alice Adams · change"
            assert blocked == []
        finally:
            chromium.close()
