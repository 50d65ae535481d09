"""Sign in through an OpenID Connect provider (sloguard.yaml `console.oidc`): the authorization code flow
of a confidential client, with PKCE (S256) and a nonce.

1. `POST /signin/oidc` (the sign-in page's second button; its CSRF is checked as the token form's is)
   reads the provider's discovery document (kept a few minutes), makes a state, a nonce and a PKCE
   verifier, keeps them in the database (`sessions.begin_login`: the return may reach another replica),
   binds the state to this browser with a cookie, and sends the browser to the authorization endpoint
   (by a page that moves on at once: see `on_to_provider`).
2. `GET /signin/oidc/callback?code=&state=` takes that sign-in back (once: a replay finds nothing; and
   only in the browser that began it, so nobody can sign someone else in as themselves), trades the code
   and the verifier for tokens, checks the ID token (signed by a key of the provider's JWKS with an
   algorithm it announces, `iss`, `aud`, `exp`, `iat`, `nonce`, `at_hash`), maps its claims to a person
   and a scope (`person_of`, pure) and starts a console session.

Whatever goes wrong gives the sign-in page with the reason, never a 500: 502 when the provider cannot be
reached or answers nonsense, 401 when it refuses or its ID token does not hold. The log names the
failure, never a code or a token.

authlib gives the protocol pieces (tokens, the S256 challenge, the authorization URL, ID token claims);
joserfc, which authlib itself uses for JOSE now, checks the signature. authlib's httpx integration is not
used: in 1.9 importing it warns that httpx is deprecated in favour of httpx2.
"""

from __future__ import annotations

import logging
import threading
import time
from base64 import b64encode
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Any
from urllib.parse import quote

import httpx
from authlib.common.security import generate_token  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.parameters import prepare_grant_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc7636 import create_s256_code_challenge  # type: ignore[import-untyped]
from authlib.oidc.core import CodeIDToken  # type: ignore[import-untyped]
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Template
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

from app.api import client_address, services_of
from app.config import OidcOptions, Settings
from app.identity.logic import PERSON, Scope
from app.web import sessions
from app.web.auth import PAGE_HEADERS, safe_next, secure_cookies, set_session_cookie
from app.web.render import environment
from app.web.signin import SIGNIN_COOKIE, signin_page

log = logging.getLogger(__name__)
router = APIRouter(include_in_schema=False)

CALLBACK = "/signin/oidc/callback"
# Holds the state of the sign-in this browser began: a return carrying another state did not start here.
FLOW_COOKIE = "sloguard_oidc"
DISCOVERY_TTL = 300.0  # seconds a provider's discovery document is kept
CLOCK_LEEWAY = 60  # seconds of clock skew allowed on exp and iat
# Signatures made with the provider's published keys only: never `none`, never a shared secret.
ASYMMETRIC = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA")
UNMAPPED_PREFIX = "oidc:"
ON_TO_PROVIDER = """{% extends "base.html" %}
{% block title %}Signing in{% endblock %}
{% block head %}<meta http-equiv="refresh" content="0; url={{ url }}">{% endblock %}
{% block main %}
<section class="card narrow">
  <h1>Signing in</h1>
  <p>On to the sign-in provider… <a id="continue" href="{{ url }}">Continue</a> if nothing happens.</p>
</section>
{% endblock %}
"""


class SignInFailed(Exception):
    """A sign-in through the provider that cannot go on: `shown` tells the person, `reason` the log.

    SignInFailed            401: the provider said no, or its answer does not prove who signed in
     └── ProviderTrouble    502: the provider cannot be reached, answers nonsense, or refuses sloguard
    """

    status = 401

    def __init__(self, shown: str, reason: str) -> None:
        super().__init__(reason)
        self.shown = shown
        self.reason = reason


class ProviderTrouble(SignInFailed):
    status = 502


@dataclass(frozen=True)
class Provider:
    """What sloguard uses of a provider's discovery document."""

    issuer: str  # exactly as the provider spells it: ID tokens must carry this `iss`
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    auth_methods: tuple[str, ...]
    algorithms: tuple[str, ...]


@dataclass(frozen=True)
class Person:
    """Who a provider's claims name in sloguard, and what they may do."""

    user: str
    display: str
    scope: Scope
    mapped: bool


class ProviderCache:
    """Discovery documents by issuer, each kept `ttl` seconds (one per app, on `app.state`)."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, tuple[float, Provider]] = {}
        self._lock = threading.Lock()

    def get(self, issuer: str, now: float) -> Provider | None:
        with self._lock:
            found = self._entries.get(issuer)
        return found[1] if found is not None and now - found[0] < self.ttl else None

    def put(self, issuer: str, provider: Provider, now: float) -> None:
        with self._lock:
            self._entries[issuer] = (now, provider)


# ---------------------------------------------------------------- routes


@router.post("/signin/oidc")
def begin_oidc_signin(
    request: Request,
    csrf: Annotated[str, Form(max_length=100)] = "",
    next: Annotated[str, Form(max_length=500)] = "/",
) -> Response:
    services = services_of(request)
    options = services.config.console.oidc
    if options is None:
        return not_set_up(request, next)
    if not sessions.same_secret(csrf, request.cookies.get(SIGNIN_COOKIE) or "\x00"):
        return signin_page(request, next, "This sign-in form has expired; try again.", status=403)
    try:
        with provider_client(services.settings) as client:
            provider = discover(request, client, options)
    except SignInFailed as failure:
        return refused(request, next, failure)
    state, nonce, verifier = generate_token(43), generate_token(43), generate_token(64)
    sessions.begin_login(
        services.engine, state=state, nonce=nonce, verifier=verifier, next_path=safe_next(next), now=now_utc()
    )
    url = prepare_grant_uri(
        provider.authorization_endpoint,
        client_id=options.client_id,
        response_type="code",
        redirect_uri=redirect_uri(request, services.settings),
        scope=" ".join(options.scopes),
        state=state,
        nonce=nonce,
        code_challenge=create_s256_code_challenge(verifier),
        code_challenge_method="S256",
    )
    response = on_to_provider(request, str(url))
    response.set_cookie(
        FLOW_COOKIE,
        state,
        max_age=int(sessions.OIDC_LOGIN_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",  # sent on the provider's top-level redirect back, not on a cross-site subrequest
        secure=secure_cookies(services.settings),
        path="/signin/oidc",
    )
    return response


@router.get(CALLBACK, name="oidc_callback")
def finish_oidc_signin(
    request: Request, code: str = "", state: str = "", error: str = "", error_description: str = ""
) -> Response:
    services = services_of(request)
    options = services.config.console.oidc
    if options is None:
        return not_set_up(request, "/")
    now = now_utc()
    if (
        not state
        or len(state) > 64
        or not sessions.same_secret(state, request.cookies.get(FLOW_COOKIE) or "\x00")
    ):
        # Not begun here: a return someone else's sign-in produced, or this browser's cookie has gone.
        failure = SignInFailed(
            "This sign-in did not start in this browser, or took too long; start again.", "state"
        )
        return refused(request, "/", failure, status=400)
    login = sessions.take_login(services.engine, state, now)
    if login is None:
        failure = SignInFailed(
            "This sign-in expired or was already used; start again.", "state used or expired"
        )
        return refused(request, "/", failure, status=400)
    nonce, verifier, next_path = login
    if error:
        return refused(request, next_path, provider_said_no(error, error_description))
    if not code or len(code) > 4096:
        failure = ProviderTrouble("The provider came back without a sign-in code; start again.", "no code")
        return refused(request, next_path, failure)
    secret = services.settings.oidc_client_secret
    try:
        with provider_client(services.settings) as client:
            provider = discover(request, client, options)
            tokens = exchange_code(
                client,
                provider,
                options,
                secret.get_secret_value() if secret is not None else None,
                code=code,
                verifier=verifier,
                redirect_uri=redirect_uri(request, services.settings),
            )
            claims = id_token_claims(client, provider, options, tokens, nonce=nonce, now=now)
            if options.claim not in claims and provider.userinfo_endpoint is not None:
                claims = userinfo(client, provider, tokens["access_token"], claims) | claims
        person = person_of(claims, options)
    except SignInFailed as failure:
        return refused(request, next_path, failure)
    ends = now + timedelta(hours=services.config.console.session_hours)
    cookie = sessions.start(
        services.engine,
        user=person.user,
        display=person.display,
        scope=person.scope,
        via="oidc",
        token_id=None,
        expires_at=ends,
        now=now,
    )
    response = RedirectResponse(safe_next(next_path), status_code=303, headers=PAGE_HEADERS)
    set_session_cookie(response, cookie, services.settings, ends)
    response.delete_cookie(SIGNIN_COOKIE, path="/signin")
    # The flow cookie stays until it expires: its state is spent, and a replay is then told exactly that.
    return response


def on_to_provider(request: Request, url: str) -> Response:
    """A page that moves on to the provider at once, rather than a redirect: the sign-in page's CSP
    (`form-action 'self'`) covers the redirects after its form is sent too, so browsers would stop a 303
    to the provider; a refresh of a page of our own is a new navigation, which that policy leaves alone."""
    page = _on_to_provider_template().render({"request": request, "url": url})
    return HTMLResponse(page, headers=PAGE_HEADERS)


@lru_cache(maxsize=1)
def _on_to_provider_template() -> Template:
    return environment().from_string(ON_TO_PROVIDER)


def not_set_up(request: Request, next_path: str) -> Response:
    shown = "Single sign-on is not set up on this sloguard; sign in with a personal token."
    return signin_page(request, next_path, shown, status=404)


def refused(request: Request, next_path: str, failure: SignInFailed, status: int | None = None) -> Response:
    services = services_of(request)
    log.warning(
        "console sign-in through the OpenID provider failed",
        extra={"door": "console", "reason": failure.reason, "client": client_address(request)},
    )
    if not isinstance(failure, ProviderTrouble):
        services.metrics.auth_failures.labels("console", "oidc").inc()
    return signin_page(request, next_path, failure.shown, status=status or failure.status)


def provider_said_no(error: str, description: str) -> SignInFailed:
    # Only after the state proved this browser began the sign-in: nobody else's words reach the page.
    code = error[:60] if error.replace("_", "").isalnum() else "error"
    said = " ".join(description.split())[:200]
    shown = f"The provider did not sign you in ({code}{': ' + said if said else ''})."
    return SignInFailed(shown, f"provider error {code}")


def now_utc() -> datetime:
    return datetime.now(UTC)


def redirect_uri(request: Request, settings: Settings) -> str:
    """Where the provider sends the browser back: under SLOGUARD_PUBLIC_URL when people reach sloguard
    through a proxy, else this request's own base URL (the same for both legs of one sign-in)."""
    if settings.public_url is not None:
        return f"{str(settings.public_url).rstrip('/')}{CALLBACK}"
    return str(request.url_for("oidc_callback"))


# ---------------------------------------------------------------- talking to the provider


def provider_client(settings: Settings) -> httpx.Client:
    return httpx.Client(
        timeout=settings.source_timeout, follow_redirects=False, headers={"User-Agent": "sloguard"}
    )


def discover(request: Request, client: httpx.Client, options: OidcOptions) -> Provider:
    """The provider's discovery document, read again after DISCOVERY_TTL (keys are read at each sign-in)."""
    cache = getattr(request.app.state, "oidc_providers", None)
    if not isinstance(cache, ProviderCache):
        cache = ProviderCache(DISCOVERY_TTL)
        request.app.state.oidc_providers = cache
    issuer = str(options.issuer).rstrip("/")
    found = cache.get(issuer, time.monotonic())
    if found is not None:
        return found
    document = fetch_json(client, "GET", f"{issuer}/.well-known/openid-configuration", "discovery document")
    provider = provider_of(document, issuer)
    cache.put(issuer, provider, time.monotonic())
    return provider


def provider_of(document: Mapping[str, object], issuer: str) -> Provider:
    def endpoint(name: str, required: bool = True) -> str | None:
        value = document.get(name)
        if isinstance(value, str) and value.startswith(("https://", "http://")):
            return value
        if value is None and not required:
            return None
        raise ProviderTrouble(
            "The provider's discovery document is incomplete; an administrator must check "
            "console.oidc.issuer.",
            f"discovery: no usable {name}",
        )

    named = document.get("issuer")
    if not isinstance(named, str) or named.rstrip("/") != issuer:
        # OpenID Connect Discovery 4.3: a document naming another issuer must not be used.
        raise ProviderTrouble(
            "The provider's discovery document names another issuer; an administrator must check "
            "console.oidc.issuer.",
            "discovery: issuer mismatch",
        )
    methods = strings(document.get("token_endpoint_auth_methods_supported")) or ("client_secret_basic",)
    announced = strings(document.get("id_token_signing_alg_values_supported")) or ("RS256",)
    algorithms = tuple(alg for alg in announced if alg in ASYMMETRIC)
    if not algorithms:
        raise ProviderTrouble(
            "The provider signs ID tokens with no algorithm sloguard accepts (it needs RS256, ES256 or "
            "the like).",
            "discovery: no asymmetric id_token algorithm",
        )
    authorization, token, jwks = (
        endpoint("authorization_endpoint"),
        endpoint("token_endpoint"),
        endpoint("jwks_uri"),
    )
    assert authorization is not None and token is not None and jwks is not None
    return Provider(
        issuer=named,
        authorization_endpoint=authorization,
        token_endpoint=token,
        jwks_uri=jwks,
        userinfo_endpoint=endpoint("userinfo_endpoint", required=False),
        auth_methods=methods,
        algorithms=algorithms,
    )


def strings(value: object) -> tuple[str, ...]:
    return tuple(item for item in value if isinstance(item, str)) if isinstance(value, list) else ()


def fetch_json(client: httpx.Client, method: str, url: str, what: str, **kwargs: Any) -> dict[str, Any]:
    """A JSON object from the provider, or ProviderTrouble saying what failed (never what was sent)."""
    try:
        response = client.request(method, url, **kwargs)
    except httpx.TimeoutException as exc:
        raise ProviderTrouble(
            f"The sign-in provider did not answer in time ({client.timeout.read:g} s); try again later.",
            f"{what}: timeout ({type(exc).__name__})",
        ) from exc
    except httpx.HTTPError as exc:
        raise ProviderTrouble(
            "The sign-in provider cannot be reached; try again later, or sign in with a personal token.",
            f"{what}: unreachable ({type(exc).__name__})",
        ) from exc
    body = json_object(response)
    if response.status_code in (400, 401) and isinstance(body.get("error"), str):
        raise oauth_error(str(body["error"]), what)
    if response.status_code != 200 or not body:
        raise ProviderTrouble(
            "The sign-in provider gave an answer sloguard cannot use; try again later.",
            f"{what}: HTTP {response.status_code}{'' if body else ', not a JSON object'}",
        )
    return body


def json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def oauth_error(error: str, what: str) -> SignInFailed:
    code = error[:60] if error.replace("_", "").isalnum() else "error"
    if code == "invalid_client":
        return ProviderTrouble(
            "The provider does not accept sloguard's client ID and secret; an administrator must check "
            "console.oidc.client_id and SLOGUARD_OIDC_CLIENT_SECRET.",
            f"{what}: invalid_client",
        )
    return SignInFailed(f"The provider refused this sign-in ({code}); start again.", f"{what}: {code}")


def exchange_code(
    client: httpx.Client,
    provider: Provider,
    options: OidcOptions,
    secret: str | None,
    *,
    code: str,
    verifier: str,
    redirect_uri: str,
) -> dict[str, str]:
    """The token endpoint's answer to the code and its PKCE verifier: an ID token and an access token."""
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "code_verifier": verifier,
    }
    headers = {"Accept": "application/json"}
    if secret is None:  # a public client: PKCE alone proves this is the client that asked
        form["client_id"] = options.client_id
    elif "client_secret_basic" in provider.auth_methods:
        # RFC 6749 2.3.1: both parts are form-encoded before they are joined and base64-encoded.
        pair = f"{quote(options.client_id, safe='')}:{quote(secret, safe='')}"
        headers["Authorization"] = "Basic " + b64encode(pair.encode()).decode("ascii")
    elif "client_secret_post" in provider.auth_methods:
        form |= {"client_id": options.client_id, "client_secret": secret}
    else:
        raise ProviderTrouble(
            "The provider takes neither client_secret_basic nor client_secret_post; sloguard cannot "
            "sign in there.",
            "token: no usable token_endpoint_auth_method",
        )
    answer = fetch_json(client, "POST", provider.token_endpoint, "token", data=form, headers=headers)
    id_token, access_token = answer.get("id_token"), answer.get("access_token")
    if not isinstance(id_token, str) or not isinstance(access_token, str):
        raise ProviderTrouble(
            "The sign-in provider gave an answer sloguard cannot use; try again later.",
            "token: no id_token or access_token",
        )
    return {"id_token": id_token, "access_token": access_token}


def id_token_claims(
    client: httpx.Client,
    provider: Provider,
    options: OidcOptions,
    tokens: Mapping[str, str],
    *,
    nonce: str,
    now: datetime,
) -> dict[str, Any]:
    """The ID token's claims, once its signature, issuer, audience, times and nonce hold."""
    document = fetch_json(client, "GET", provider.jwks_uri, "jwks")
    try:
        keys = KeySet.import_key_set(document)  # type: ignore[arg-type]  # any JSON object: joserfc checks it
    except (JoseError, ValueError, TypeError, KeyError) as exc:
        raise ProviderTrouble(
            "The provider's signing keys cannot be read; try again later.", f"jwks: {type(exc).__name__}"
        ) from exc
    try:
        token = jwt.decode(
            tokens["id_token"],
            keys,
            algorithms=list(provider.algorithms),
            registry=JWSRegistry(algorithms=list(provider.algorithms), strict_check_header=False),
        )
        claims = CodeIDToken(
            token.claims,
            token.header,
            {
                "iss": {"essential": True, "value": provider.issuer},
                "aud": {"essential": True, "value": options.client_id},
            },
            {"nonce": nonce, "client_id": options.client_id, "access_token": tokens["access_token"]},
        )
        claims.validate(now=int(now.timestamp()), leeway=CLOCK_LEEWAY)
    except (JoseError, ValueError, TypeError) as exc:
        error = getattr(exc, "error", type(exc).__name__)
        description = getattr(exc, "description", "") or ""
        raise SignInFailed(
            "The provider's answer does not prove who signed in (its ID token is not valid); start again.",
            f"id_token: {error} {description}".strip()[:200],
        ) from exc
    return dict(claims)


def userinfo(
    client: httpx.Client, provider: Provider, access_token: str, claims: Mapping[str, Any]
) -> dict[str, Any]:
    """The userinfo endpoint's claims, when the ID token lacks the one that names the person."""
    assert provider.userinfo_endpoint is not None
    headers = {"Authorization": f"Bearer {access_token}", "Accept": "application/json"}
    found = fetch_json(client, "GET", provider.userinfo_endpoint, "userinfo", headers=headers)
    if found.get("sub") != claims.get("sub"):
        # OpenID Connect Core 5.3.2: a userinfo answer about someone else must not be used.
        raise SignInFailed(
            "The provider's answer does not prove who signed in; start again.", "userinfo: sub mismatch"
        )
    return found


# ---------------------------------------------------------------- who the claims name


def person_of(claims: Mapping[str, Any], options: OidcOptions) -> Person:
    """The person and scope of a signed-in provider user.

    The claim `options.claim` names them: mapped through `people` to a Slack user ID, or, with `people`
    empty, taken as one when it is one. A mapped person's scope is the highest of their groups'
    (`group_scopes`), else `default_scope`. An unmapped user can read but cannot act: they are
    `oidc:<claim value>`, with scope read whatever their groups. An email the provider says it has not
    verified maps nobody: anyone could have typed it.
    """
    value = claims.get(options.claim)
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    if not isinstance(value, str) or not value.strip() or not value.isprintable():
        raise SignInFailed(
            f"The provider's answer does not say who you are (no usable {options.claim!r} claim).",
            f"claims: no usable {options.claim}",
        )
    unverified = options.claim == "email" and claims.get("email_verified") in (False, "false")
    if unverified:
        user = None
    elif options.people:
        user = options.people.get(value)
    else:
        user = value if PERSON.fullmatch(value) else None
    display = next(
        (
            shown.strip()
            for shown in (claims.get("name"), claims.get("email"), value)
            if isinstance(shown, str) and shown.strip() and shown.isprintable()
        ),
        value,
    )[:200]
    if user is None:
        return Person(user=f"{UNMAPPED_PREFIX}{value[:90]}", display=display, scope=Scope.read, mapped=False)
    groups = claims.get(options.groups_claim)
    # A list of groups, or one group as a plain string (some providers do that for a single member).
    named = [groups] if isinstance(groups, str) else list(strings(groups))
    granted = [options.group_scopes[group] for group in named if group in options.group_scopes]
    scope = max(granted, key=lambda each: each.rank) if granted else options.default_scope
    return Person(user=user, display=display, scope=scope, mapped=True)
