"""Shared pieces of the HTTP doors: dependency aliases, bearer-token checks, error mapping."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, NoReturn

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.errors import ServiceError, SourceError, StorageError
from app.identity import service as identity
from app.identity.logic import Actor, Scope
from app.inputs import MAX_ROW_ID, fit
from app.services import Services

log = logging.getLogger(__name__)


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def services_of(request: Request) -> Services:
    """The app's services (built by its lifespan): the one typed way in from a request."""
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    # async: a plain lookup need not wait for a worker thread (async routes such as /readyz use it too)
    return services_of(request)


async def get_engine(request: Request) -> Engine:
    return services_of(request).engine


def get_session(engine: Annotated[Engine, Depends(get_engine)]) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


# Row ids are PostgreSQL `integer`s (and SQLite's are 64-bit): a larger number in a path is a 422 that says
# so, not a driver overflow turned into a 500.
MAX_ID = MAX_ROW_ID
IdPath = Annotated[int, Path(ge=1, le=MAX_ID)]
OffsetQuery = Annotated[int, Query(ge=0, le=MAX_ID)]

SettingsDep = Annotated[Settings, Depends(get_settings)]
EngineDep = Annotated[Engine, Depends(get_engine)]
ServicesDep = Annotated[Services, Depends(get_services)]
SessionDep = Annotated[Session, Depends(get_session)]


CHALLENGE = {"WWW-Authenticate": "Bearer"}
REFUSED = {
    "unknown": "invalid bearer token",
    "revoked": "this token was revoked",
    "expired": "this token has expired",
}


@dataclass(frozen=True)
class Caller:
    """Who a request acts as, and the most its credential may reach."""

    actor: Actor
    scope: Scope

    def acting(self, named: str | None) -> Actor:
        """The actor of a change: always the caller. A body `actor` naming someone else is a 403; the
        field is accepted (and hidden from the schema) only so that old clients get a clear answer."""
        if named is not None and named != self.actor.name:
            raise HTTPException(
                403, f"actor: this credential acts as {self.actor.name}; it cannot act as {fit(named, 100)!r}"
            )
        return self.actor


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def client_address(request: Request) -> str:
    """The client failed attempts are counted against: its IPv4 address, or its IPv6 /64 (one host
    holds a whole /64). A forwarded value that is not an address (a trusted proxy passed it on) counts
    as one `invalid` client, so made-up values never make fresh buckets."""
    host = request.client.host if request.client else ""
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "invalid"
    if address.version == 6:
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def _presented(request: Request, services: Services, door: str, fallback: str | None = None) -> str:
    """The bearer token (or `fallback`, a token from a body), unless it is missing (401) or the address
    has failed too often (429)."""
    presented = _bearer(request) or (fallback.strip() if fallback and fallback.strip() else None)
    if presented is None:
        raise HTTPException(401, "missing bearer token: send Authorization: Bearer <token>", CHALLENGE)
    address = client_address(request)
    wait = services.throttle.retry_after(f"{door} {address}")  # each door counts its own failures
    if wait is not None:
        services.metrics.auth_throttled.labels(door).inc()
        seconds = max(1, math.ceil(wait))
        raise HTTPException(
            429,
            f"too many failed token attempts from {address}; retry in {seconds}s",
            {"Retry-After": str(seconds), **CHALLENGE},
        )
    return presented


def _refuse(
    request: Request, services: Services, door: str, reason: str, token_id: int | None = None
) -> NoReturn:
    """401, counted against the client's address when it was a guess (a revoked or expired token is a
    real one, kept by a stale script: it is refused, not counted); the log line and the metric never hold
    the token."""
    address = client_address(request)
    if reason == "unknown":
        services.throttle.failed(f"{door} {address}")
    services.metrics.auth_failures.labels(door, reason).inc()
    extra: dict[str, Any] = {"door": door, "reason": reason, "client": address, "path": request.url.path}
    if token_id is not None:
        extra["token_id"] = token_id
    log.warning("bearer token refused", extra=extra)
    raise HTTPException(401, REFUSED[reason], CHALLENGE)


def _same(presented: str, expected: SecretStr) -> bool:
    return hmac.compare_digest(presented.encode("utf-8"), expected.get_secret_value().encode("utf-8"))


def authenticate(request: Request) -> Caller:
    """The caller of an API route: a personal token's owner, or the automation identity (the
    SLOGUARD_API_TOKEN, named and scoped in sloguard.yaml `automation:`)."""
    services = services_of(request)
    return caller_of(request, services, _presented(request, services, "api"))


def authenticate_with(request: Request, token: str | None) -> Caller:
    """As `authenticate`, for a sender that cannot set a header (Flagger's webhooks carry only a body)."""
    services = services_of(request)
    return caller_of(request, services, _presented(request, services, "api", token))


def caller_of(request: Request, services: Services, presented: str) -> Caller:
    """Who `presented` (a token, from a header or a body that cannot carry one: Flagger's) acts as."""
    automation = services.settings.api_token
    if automation is not None and _same(presented, automation):
        named = services.config.automation
        return Caller(Actor(named.name, via="automation"), named.scope)
    found = identity.recognise(services.engine, presented, datetime.now(UTC))
    if found.refusal is not None or found.token is None:
        _refuse(request, services, "api", found.refusal or "unknown", found.token.id if found.token else None)
    token = found.token
    return Caller(Actor(token.user, via="token", token_id=token.id), Scope(token.scope))


CallerDep = Annotated[Caller, Depends(authenticate)]


class _Needs:
    def __init__(self, scope: Scope) -> None:
        self.scope = scope

    def __call__(self, request: Request, caller: CallerDep) -> None:
        if not caller.scope.reaches(self.scope):
            raise HTTPException(
                403,
                f"scope: this credential's scope is {caller.scope}; {request.method} {request.url.path} "
                f"needs {self.scope} (README: Tokens and scopes)",
            )


def needs(scope: Scope) -> Any:
    """A route dependency: 403 unless the caller's scope reaches `scope` (the scope is a ceiling; the
    model's permission lists still decide who may change it)."""
    return Depends(_Needs(scope))


def require_webhook_token(request: Request) -> None:
    """401 unless the request carries `Authorization: Bearer $SLOGUARD_WEBHOOK_TOKEN`."""
    services = services_of(request)
    expected = services.settings.webhook_token
    if expected is None:
        raise HTTPException(401, "disabled: SLOGUARD_WEBHOOK_TOKEN is not set on the server", CHALLENGE)
    if not _same(_presented(request, services, "webhook"), expected):
        _refuse(request, services, "webhook", "unknown")


def install_error_handlers(app: FastAPI) -> None:
    async def service_error(_request: Request, exc: Exception) -> JSONResponse:
        status = exc.status_code if isinstance(exc, ServiceError) else 400
        return JSONResponse({"detail": str(exc)}, status_code=status)

    async def source_error(_request: Request, exc: Exception) -> JSONResponse:
        return JSONResponse({"detail": f"source unavailable: {exc}"}, status_code=503)

    async def database_unavailable(_request: Request, exc: Exception) -> JSONResponse:
        # The database went away (restart, failover, network): nothing was stored, and the caller's
        # retry (Alertmanager retries every notification) succeeds once it is back.
        log.warning("database unavailable", extra={"error": type(exc).__name__})
        return JSONResponse(
            {"detail": "database unavailable; nothing was stored, retry shortly"},
            status_code=503,
            headers={"Retry-After": "5"},
        )

    async def storage_replaced(_request: Request, exc: Exception) -> JSONResponse:
        # Not the database this process started on (removed, or re-created empty): nothing was read or
        # stored, and a retry will not help until someone restores it or restarts sloguard.
        log.error("database replaced or removed", extra={"reason": str(exc)})
        return JSONResponse({"detail": str(exc)}, status_code=503)

    app.add_exception_handler(ServiceError, service_error)
    app.add_exception_handler(SourceError, source_error)
    app.add_exception_handler(sa_exc.OperationalError, database_unavailable)
    app.add_exception_handler(sa_exc.InterfaceError, database_unavailable)
    app.add_exception_handler(StorageError, storage_replaced)


# ---------------------------------------------------------------- error answers, as documented


class Problem(BaseModel):
    """Every refusal: a reason (FastAPI's own validation errors list theirs, one per field)."""

    detail: str | list[dict[str, Any]]


def problems(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for the refusals a route can answer, so clients (and the fuzz tests' status
    and schema checks) know every answer: 400 NUL or bad JSON, 401 token, 404 no such row, 409 conflict,
    413 body too large, 422 invalid field, 503 database unavailable (retry)."""
    reasons = {
        400: "Malformed request (NUL characters, not JSON)",
        401: "Missing, wrong, revoked or expired bearer token",
        403: "Not allowed: the credential's scope, the model's permissions, or an actor not the caller",
        404: "No such resource",
        409: "Conflict with the resource's state",
        413: "Body too large",
        422: "A field is invalid (named in detail)",
        429: "Too many failed token attempts from this address (Retry-After says when to try again)",
        503: "Database unavailable: nothing was stored, retry",
    }
    return {status: {"model": Problem, "description": reasons[status]} for status in statuses}


API_PROBLEMS = problems(400, 401, 403, 404, 409, 413, 422, 429, 503)
WEBHOOK_PROBLEMS = problems(400, 401, 413, 422, 429, 503)
