"""POST /api/v1/rollbacks (propose, and confirm when asked), GET one, POST its confirmation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from sqlalchemy.engine import Engine
from sqlmodel import Session

from app.api import CallerDep, EngineDep, IdPath, ServicesDep, needs
from app.gates import service as gates
from app.identity.logic import Actor, Scope
from app.rollback import service as rollbacks
from app.rollback.models import ConfirmRequest, RollbackAction, RollbackRead, RollbackRequest
from app.services import Services

router = APIRouter(prefix="/rollbacks", tags=["rollbacks"])
CHANGE = [needs(Scope.change)]


def read(engine: Engine, action: RollbackAction) -> dict[str, Any]:
    assert action.id is not None
    with Session(engine) as session:
        trail = rollbacks.audit_trail(session, action.id)
    return {
        **RollbackRead.model_validate(action).model_dump(),
        "audit": [
            {
                "at": a.at,
                "step": a.step,
                "actor": a.actor,
                "token_id": a.token_id,
                "result": a.result,
                "trace_id": a.trace_id,
            }
            for a in trail
        ],
    }


def _confirm(services: Services, action_id: int, actor: Actor) -> RollbackAction:
    """The action after confirming. Its verification was recorded (an outbox row) with its success;
    confirming an action that is no longer proposed answers it as it is, 200, and starts nothing."""
    confirmation = gates.confirm(services, action_id, actor)
    return confirmation.action


@router.post("", status_code=201, dependencies=CHANGE)
def propose(services: ServicesDep, caller: CallerDep, body: RollbackRequest) -> dict[str, Any]:
    """Propose a rollback or promotion as the caller (and confirm it at once with `confirm`)."""
    actor = caller.acting(body.actor)
    action = gates.propose(services, body, actor)
    if body.confirm and not body.dry_run and action.id is not None:
        action = _confirm(services, action.id, actor)
    return read(services.engine, action)


@router.get("/{action_id}")
def get_rollback(engine: EngineDep, action_id: IdPath) -> dict[str, Any]:
    with Session(engine) as session:
        action = rollbacks.get(session, action_id)
    return read(engine, action)


@router.post("/{action_id}/confirm", dependencies=CHANGE)
def confirm(
    services: ServicesDep, caller: CallerDep, action_id: IdPath, body: ConfirmRequest | None = None
) -> dict[str, Any]:
    """Confirm as the caller: with `two_person`, someone other than the proposer."""
    actor = caller.acting(body.actor if body else None)
    return read(services.engine, _confirm(services, action_id, actor))
