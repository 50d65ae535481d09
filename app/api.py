"""Shared pieces of the HTTP doors: dependency aliases, bearer-token checks, error mapping."""

from __future__ import annotations

import hmac
import logging
from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, SecretStr
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.config import Settings
from app.errors import ServiceError, SourceError, StorageError
from app.inputs import MAX_ROW_ID
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


def _bearer(request: Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def check_bearer(request: Request, expected: SecretStr | None, variable: str) -> None:
    """401 unless the request carries `Authorization: Bearer <expected>` (constant-time compare)."""
    challenge = {"WWW-Authenticate": "Bearer"}
    if expected is None:
        raise HTTPException(401, f"disabled: {variable} is not set on the server", challenge)
    presented = _bearer(request)
    if presented is None:
        raise HTTPException(401, "missing bearer token", challenge)
    if not hmac.compare_digest(presented.encode("utf-8"), expected.get_secret_value().encode("utf-8")):
        raise HTTPException(401, "invalid bearer token", challenge)


def require_api_token(request: Request, settings: SettingsDep) -> None:
    check_bearer(request, settings.api_token, "SLOGUARD_API_TOKEN")


def require_webhook_token(request: Request, settings: SettingsDep) -> None:
    check_bearer(request, settings.webhook_token, "SLOGUARD_WEBHOOK_TOKEN")


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
        401: "Missing or wrong bearer token",
        403: "Not allowed",
        404: "No such resource",
        409: "Conflict with the resource's state",
        413: "Body too large",
        422: "A field is invalid (named in detail)",
        503: "Database unavailable: nothing was stored, retry",
    }
    return {status: {"model": Problem, "description": reasons[status]} for status in statuses}


API_PROBLEMS = problems(400, 401, 403, 404, 409, 413, 422, 503)
WEBHOOK_PROBLEMS = problems(400, 401, 413, 422, 503)
