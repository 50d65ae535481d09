"""POST /api/v1/rollbacks (propose, and confirm when asked), GET one, POST its confirmation."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from sqlmodel import Session

from app.api import EngineDep, IdPath
from app.rollback import service as rollbacks
from app.rollback.models import ConfirmRequest, RollbackAction, RollbackRead, RollbackRequest

router = APIRouter(prefix="/rollbacks", tags=["rollbacks"])


def read(engine: Any, action: RollbackAction) -> dict[str, Any]:
    assert action.id is not None
    with Session(engine) as session:
        trail = rollbacks.audit_trail(session, action.id)
    return {
        **RollbackRead.model_validate(action).model_dump(),
        "audit": [
            {"at": a.at, "step": a.step, "actor": a.actor, "result": a.result, "trace_id": a.trace_id}
            for a in trail
        ],
    }


def _confirm(request: Request, engine: Any, action_id: int, actor: str) -> RollbackAction:
    """The action after confirming; its burn is watched only by the confirm that executed it (confirming
    an action that is no longer proposed answers it as it is, 200, and starts nothing)."""
    state = request.app.state
    confirmation = rollbacks.confirm_change(
        engine, state.file_config, state.sources.get("mlflow"), state.events, action_id, actor
    )
    action = confirmation.action
    if confirmation.executed:
        _, env = rollbacks.environment_of(state.file_config, action.model, action.environment)
        rollbacks.schedule_verify(state, action, env)
    return action


@router.post("", status_code=201)
def propose(request: Request, engine: EngineDep, body: RollbackRequest) -> dict[str, Any]:
    state = request.app.state
    action = rollbacks.propose(engine, state.file_config, state.sources.get("mlflow"), body)
    if body.confirm and not body.dry_run and action.id is not None:
        action = _confirm(request, engine, action.id, body.actor)
    return read(engine, action)


@router.get("/{action_id}")
def get_rollback(engine: EngineDep, action_id: IdPath) -> dict[str, Any]:
    with Session(engine) as session:
        action = rollbacks.get(session, action_id)
    return read(engine, action)


@router.post("/{action_id}/confirm")
def confirm(request: Request, engine: EngineDep, action_id: IdPath, body: ConfirmRequest) -> dict[str, Any]:
    return read(engine, _confirm(request, engine, action_id, body.actor))
