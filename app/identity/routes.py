"""Who am I (any scope), and personal tokens (admin): create, list, revoke."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException

from app.api import CallerDep, IdPath, ServicesDep, SessionDep, needs
from app.identity import service as identity
from app.identity.logic import Scope
from app.identity.models import TokenCreate, TokenCreated, TokenRead

router = APIRouter(tags=["identity"])
ADMIN = [needs(Scope.admin)]


@router.get("/whoami")
def whoami(caller: CallerDep) -> dict[str, Any]:
    """The identity this credential acts as, how it authenticated, and its scope."""
    actor = caller.actor
    return {"actor": actor.name, "via": actor.via, "token_id": actor.token_id, "scope": caller.scope}


@router.get("/tokens", response_model=list[TokenRead], dependencies=ADMIN)
def list_tokens(session: SessionDep, user: str | None = None) -> list[TokenRead]:
    now = datetime.now(UTC)
    return [identity.read(row, now) for row in identity.tokens(session, user=user)]


@router.post("/tokens", response_model=TokenCreated, status_code=201, dependencies=ADMIN)
def create_token(services: ServicesDep, caller: CallerDep, body: TokenCreate) -> TokenCreated:
    """A personal token of the caller's own, shown in this answer only (it is stored as a hash). Tokens
    for someone else are made on the server (`sloguard tokens create`): through the API an admin could
    otherwise act as anyone, and be both people of a two-person change."""
    if body.user != caller.actor.name:
        raise HTTPException(
            403,
            f"user: through the API you make tokens for yourself ({caller.actor.name}); tokens for "
            "someone else are made on the server with `sloguard tokens create --user …`",
        )
    now = datetime.now(UTC)
    row, token = identity.create(
        services.engine,
        user=body.user,
        scope=body.scope,
        name=body.name,
        expires=body.expires,
        created_by=caller.actor.name,
        now=now,
    )
    return TokenCreated.model_validate({**identity.read(row, now).model_dump(), "token": token})


@router.delete("/tokens/{token_id}", response_model=TokenRead, dependencies=ADMIN)
def revoke_token(services: ServicesDep, caller: CallerDep, token_id: IdPath) -> TokenRead:
    """Revoke at once, on every replica (each request looks its token up)."""
    now = datetime.now(UTC)
    return identity.read(identity.revoke(services.engine, token_id, caller.actor.name, now), now)
