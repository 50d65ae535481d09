"""Which alias an MLflow alias target moves, and sloguard's own changes that moved one (so that MLflow's
webhook for a move sloguard made is recognised as that change, app/changes)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Session, col, select

from app.config import FileConfig
from app.rollback.models import RollbackAction


def alias_of(config: FileConfig, model: str, environment: str) -> tuple[str, str] | None:
    """The MLflow registered model and alias an `mlflow_alias` target of `model` in `environment` moves
    (as build_target resolves them), or None for another kind of target."""
    model_config = config.models.get(model)
    env = model_config.environments.get(environment) if model_config else None
    if model_config is None or env is None or env.target is None or env.target.kind != "mlflow_alias":
        return None
    registry = model_config.registry
    alias = env.target.alias or (registry.aliases.get(environment) if registry else None)
    return (registry.name if registry else model), alias or ""


def own_alias_moves(
    session: Session,
    config: FileConfig,
    registered_model: str,
    alias: str,
    version: str,
    since: datetime,
) -> list[RollbackAction]:
    """sloguard's changes through an MLflow alias target that moved `alias` of `registered_model` to
    `version`, confirmed since `since`, newest first: executing ones too (MLflow's webhook for the move
    can arrive before sloguard has recorded that the target answered)."""
    found = session.exec(
        select(RollbackAction)
        .where(RollbackAction.target == "mlflow_alias", RollbackAction.to_version == version)
        .where(col(RollbackAction.state).in_(("executing", "succeeded", "verified", "not_recovered")))
        .where(col(RollbackAction.confirmed_at) >= since)
        .order_by(col(RollbackAction.confirmed_at).desc(), col(RollbackAction.id).desc())
    ).all()
    return [a for a in found if alias_of(config, a.model, a.environment) == (registered_model, alias)]
