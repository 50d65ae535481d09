"""A small, strict OpenID Connect provider for the tests, served by uvicorn on loopback.

It does what a real provider does for a confidential client using the authorization code flow, and
refuses what a real one refuses, so a client that skips a step fails here:

- `/.well-known/openid-configuration` and `/jwks` (one RS256 key);
- `/authorize`: the client and its exact redirect URI must be registered, `response_type=code`, scope
  `openid`, a nonce and a PKCE S256 challenge are required; it shows a login form (a username, Sign in or
  Deny), or with `login_hint=<known user>` signs that user in at once;
- `/token`: the client authenticates (client_secret_basic or client_secret_post, as announced); the code
  is used once (a second use also revokes the access token it gave), within 60 s, by the client and
  redirect URI it was made for, with the verifier whose S256 is the challenge; the ID token carries
  iss, sub, aud, exp, iat, auth_time, nonce, at_hash, email, email_verified, name and groups;
- `/userinfo`: the user's claims for a Bearer access token.

Knobs a test turns: `forge` makes the next ID tokens wrong in one way (signed by another key under the
same key ID, unsigned, HS256 with the client secret, another audience or issuer, expired, another nonce);
`failing` makes endpoints answer HTTP 500; a user with `lean=True` gets an ID token with `sub` alone, the
rest only from `/userinfo`. `token_requests` records how the client authenticated and what it sent
(secrets left out).
"""

from __future__ import annotations

import base64
import hashlib
import html
import json
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote, urlencode

from joserfc import jwt
from joserfc.jwk import OctKey, RSAKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from tests.servers import UvicornThread, free_port

FORGERIES = ("other-key", "unsigned", "hs256", "audience", "issuer", "expired", "nonce")
CODE_LIFETIME = 60.0
PKCE_VERIFIER = re.compile(r"[A-Za-z0-9._~-]{43,128}")
PKCE_CHALLENGE = re.compile(r"[A-Za-z0-9_-]{43}")


@dataclass
class User:
    sub: str
    email: str
    name: str
    groups: list[str] | str | None = None
    email_verified: bool = True
    lean: bool = False  # the ID token names only `sub`; everything else is at /userinfo

    def claims(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "sub": self.sub,
            "email": self.email,
            "email_verified": self.email_verified,
            "name": self.name,
        }
        if self.groups is not None:
            found["groups"] = self.groups
        return found


@dataclass
class Grant:
    """A code given out and not yet used."""

    client_id: str
    redirect_uri: str
    challenge: str
    nonce: str
    username: str
    issued: float = field(default_factory=time.monotonic)


def s256(verifier: str) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode("ascii")).digest()).rstrip(b"=").decode()


def b64json(value: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


class OpenIdProvider:
    def __init__(
        self,
        users: dict[str, User],
        *,
        client_id: str = "sloguard",
        client_secret: str = "provider-secret-0123456789abcdef",
        auth_methods: tuple[str, ...] = ("client_secret_basic", "client_secret_post"),
        port: int | None = None,
        issuer: str | None = None,
    ) -> None:
        self.users = users
        self.client_id = client_id
        self.client_secret = client_secret
        self.auth_methods = auth_methods
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.issuer = issuer or self.url  # another when a proxy stands in front of it
        self.redirect_uris: set[str] = set()
        self.key = RSAKey.generate_key(2048, parameters={"kid": "signing-1", "use": "sig", "alg": "RS256"})
        self.other_key = RSAKey.generate_key(2048, parameters={"kid": "signing-1"})  # same kid, other key
        self.forge: str | None = None
        self.failing: set[str] = set()
        self.token_requests: list[dict[str, str]] = []
        self.codes: dict[str, Grant] = {}
        self.used_codes: dict[str, str | None] = {}  # code -> the access token it gave
        self.access_tokens: dict[str, str] = {}  # access token -> username
        self.app = Starlette(
            routes=[
                Route("/.well-known/openid-configuration", self.discovery),
                Route("/jwks", self.jwks),
                Route("/authorize", self.authorize, methods=["GET", "POST"]),
                Route("/token", self.token, methods=["POST"]),
                Route("/userinfo", self.userinfo, methods=["GET", "POST"]),
            ]
        )
        self._server: UvicornThread | None = None

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> OpenIdProvider:
        self._server = UvicornThread(self.app, port=self.port).__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._server is not None:
            self._server.__exit__(*exc)
            self._server = None

    # ------------------------------------------------------------ endpoints

    def _broken(self, name: str) -> Response | None:
        if name in self.failing:
            return HTMLResponse("<h1>Internal Server Error</h1>", status_code=500)
        return None

    async def discovery(self, _request: Request) -> Response:
        if broken := self._broken("discovery"):
            return broken
        return JSONResponse(
            {
                "issuer": self.issuer,
                "authorization_endpoint": f"{self.issuer}/authorize",
                "token_endpoint": f"{self.issuer}/token",
                "jwks_uri": f"{self.issuer}/jwks",
                "userinfo_endpoint": f"{self.issuer}/userinfo",
                "response_types_supported": ["code"],
                "subject_types_supported": ["public"],
                "id_token_signing_alg_values_supported": ["RS256"],
                "scopes_supported": ["openid", "email", "profile"],
                "token_endpoint_auth_methods_supported": list(self.auth_methods),
                "code_challenge_methods_supported": ["S256"],
                "claims_supported": ["sub", "email", "email_verified", "name", "groups"],
            }
        )

    async def jwks(self, _request: Request) -> Response:
        if broken := self._broken("jwks"):
            return broken
        return JSONResponse({"keys": [self.key.as_dict(private=False)]})

    async def authorize(self, request: Request) -> Response:
        params = dict(request.query_params if request.method == "GET" else await request.form())
        values = {key: str(value) for key, value in params.items()}
        if values.get("client_id") != self.client_id:
            return HTMLResponse("<h1>Unknown client</h1>", status_code=400)
        redirect_uri = values.get("redirect_uri", "")
        if redirect_uri not in self.redirect_uris:
            # Never redirect to an address the client did not register: say so here instead.
            return HTMLResponse("<h1>This redirect_uri is not registered</h1>", status_code=400)
        state = values.get("state", "")

        def back(**answer: str) -> Response:
            query = urlencode({**answer, **({"state": state} if state else {})})
            return RedirectResponse(f"{redirect_uri}?{query}", status_code=302)

        if values.get("response_type") != "code":
            return back(error="unsupported_response_type")
        if "openid" not in values.get("scope", "").split():
            return back(error="invalid_scope", error_description="openid is required")
        challenge = values.get("code_challenge", "")
        if values.get("code_challenge_method") != "S256" or not PKCE_CHALLENGE.fullmatch(challenge):
            return back(error="invalid_request", error_description="PKCE with S256 is required")
        if not values.get("nonce"):
            return back(error="invalid_request", error_description="a nonce is required")
        if request.method == "POST" and values.get("decision") == "deny":
            return back(error="access_denied", error_description="The user did not allow the sign-in.")
        username = values.get("username") if request.method == "POST" else values.get("login_hint")
        if username not in self.users:
            return self._login_form(values, problem="Unknown user." if username else None)
        code = secrets.token_urlsafe(32)
        self.codes[code] = Grant(self.client_id, redirect_uri, challenge, values["nonce"], username)
        return back(code=code)

    def _login_form(self, values: dict[str, str], problem: str | None) -> Response:
        hidden = "".join(
            f'<input type="hidden" name="{html.escape(key)}" value="{html.escape(value)}">'
            for key, value in values.items()
            if key not in ("username", "decision", "login_hint")
        )
        shown = f'<p class="problem">{html.escape(problem)}</p>' if problem else ""
        page = (
            "<!doctype html><title>Test provider: sign in</title><h1>Sign in</h1>"
            f'{shown}<form method="post" action="/authorize">{hidden}'
            '<label>Username <input name="username" autofocus></label>'
            '<button name="decision" value="allow">Sign in</button>'
            '<button name="decision" value="deny">Deny</button></form>'
        )
        return HTMLResponse(page)

    def _client(self, request: Request, form: dict[str, str]) -> tuple[str | None, str]:
        """The client that authenticated, and how (or None and why not)."""
        header = request.headers.get("authorization", "")
        in_body = "client_secret" in form
        if header and in_body:
            return None, "two client authentications"
        if header.startswith("Basic ") and "client_secret_basic" in self.auth_methods:
            try:
                raw = base64.b64decode(header[6:], validate=True).decode()
            except ValueError:
                return None, "bad basic credentials"
            client_id, _, secret = raw.partition(":")
            client_id, secret, method = unquote(client_id), unquote(secret), "client_secret_basic"
        elif in_body and "client_secret_post" in self.auth_methods:
            client_id, secret, method = form.get("client_id", ""), form["client_secret"], "client_secret_post"
        else:
            return None, "no client authentication this provider takes"
        if client_id != self.client_id or not secrets.compare_digest(secret, self.client_secret):
            return None, "wrong client id or secret"
        return client_id, method

    async def token(self, request: Request) -> Response:
        if broken := self._broken("token"):
            return broken
        form = {key: str(value) for key, value in (await request.form()).items()}
        client_id, method = self._client(request, form)
        self.token_requests.append(
            {"auth": method, **{key: value for key, value in form.items() if key != "client_secret"}}
        )
        if client_id is None:
            return self._error("invalid_client", method, status=401)
        if form.get("grant_type") != "authorization_code":
            return self._error("unsupported_grant_type")
        code = form.get("code", "")
        grant = self.codes.pop(code, None)
        if grant is None:
            if code in self.used_codes:  # RFC 6749 4.1.2: a code used twice revokes what it gave
                self.access_tokens.pop(self.used_codes[code] or "", None)
                return self._error("invalid_grant", "code already used")
            return self._error("invalid_grant", "unknown code")
        self.used_codes[code] = None
        if time.monotonic() - grant.issued > CODE_LIFETIME:
            return self._error("invalid_grant", "code expired")
        if grant.client_id != client_id or form.get("redirect_uri") != grant.redirect_uri:
            return self._error("invalid_grant", "code issued to another client or redirect_uri")
        verifier = form.get("code_verifier", "")
        if not PKCE_VERIFIER.fullmatch(verifier) or not secrets.compare_digest(
            s256(verifier), grant.challenge
        ):
            return self._error("invalid_grant", "PKCE verification failed")
        access_token = secrets.token_urlsafe(32)
        self.access_tokens[access_token] = grant.username
        self.used_codes[code] = access_token
        answer = {
            "access_token": access_token,
            "token_type": "Bearer",
            "expires_in": 300,
            "id_token": self.id_token(grant, access_token),
        }
        return JSONResponse(answer, headers={"Cache-Control": "no-store", "Pragma": "no-cache"})

    def id_token(self, grant: Grant, access_token: str) -> str:
        user = self.users[grant.username]
        now = int(time.time())
        digest = hashlib.sha256(access_token.encode("ascii")).digest()
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": user.sub,
            "aud": grant.client_id,
            "exp": now + 300,
            "iat": now,
            "auth_time": now,
            "nonce": grant.nonce,
            "at_hash": base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode(),
        }
        if not user.lean:
            claims |= user.claims()
        header = {"alg": "RS256", "kid": "signing-1", "typ": "JWT"}
        forge = self.forge
        if forge == "audience":
            claims["aud"] = "another-client"
        elif forge == "issuer":
            claims["iss"] = "http://evil.example"
        elif forge == "expired":
            claims |= {"exp": now - 600, "iat": now - 900, "auth_time": now - 900}
        elif forge == "nonce":
            claims["nonce"] = "not-the-nonce-the-client-sent"
        if forge == "unsigned":
            return f"{b64json({'alg': 'none', 'typ': 'JWT'})}.{b64json(claims)}."
        if forge == "hs256":
            secret = OctKey.import_key(self.client_secret.encode())
            return jwt.encode({"alg": "HS256", "typ": "JWT"}, claims, secret)
        key = self.other_key if forge == "other-key" else self.key
        return jwt.encode(header, claims, key)

    async def userinfo(self, request: Request) -> Response:
        if broken := self._broken("userinfo"):
            return broken
        header = request.headers.get("authorization", "")
        username = self.access_tokens.get(header[7:]) if header.startswith("Bearer ") else None
        if username is None:
            return JSONResponse(
                {"error": "invalid_token"}, status_code=401, headers={"WWW-Authenticate": "Bearer"}
            )
        return JSONResponse(self.users[username].claims())

    @staticmethod
    def _error(error: str, description: str = "", status: int = 400) -> Response:
        body = {"error": error, **({"error_description": description} if description else {})}
        return JSONResponse(body, status_code=status, headers={"Cache-Control": "no-store"})
