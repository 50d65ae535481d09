"""Guarded rollback against a real MLflow registry."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from app import db
from app.config import FileConfig, ModelConfig, ModelEnvironment, RegistryConfig, TargetConfig
from app.errors import Conflict, Forbidden
from app.incidents import service as incidents
from app.incidents.models import IncidentCreate
from app.ml.models import ModelVersionLink
from app.rollback import service as rollbacks
from app.rollback.models import RollbackRequest
from app.sources.mlflow import MlflowRegistry
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.integration


def config(**env: Any) -> FileConfig:
    return FileConfig(
        models={
            "fraud-detector": ModelConfig(
                registry=RegistryConfig(name="fraud-detector", aliases={"prod": "champion"}),
                environments={
                    "prod": ModelEnvironment(
                        target=TargetConfig(kind="mlflow_alias"), rollback=["U1", "S0ONCALL"], **env
                    )
                },
            )
        },
        groups={"S0ONCALL": ["U2", "U3"]},
    )


@pytest.fixture
def engine(database_url: str, mlflow: MlflowServer) -> Iterator[Engine]:
    mlflow.api(
        "POST",
        "registered-models/alias",
        json={"name": "fraud-detector", "alias": "champion", "version": "4"},
    )
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def registry(mlflow: MlflowServer) -> Iterator[MlflowRegistry]:
    client = MlflowRegistry(mlflow.url)
    yield client
    client.close()


def incident_with_previous_good(engine: Engine, version: str = "3") -> int:
    incident = incidents.declare(
        engine, None, IncidentCreate(title="fraud model failing", model="fraud-detector"), datetime.now(UTC)
    )
    assert incident.id is not None
    with Session(engine) as session:
        session.add(
            ModelVersionLink(
                incident_id=incident.id,
                model="fraud-detector",
                version=version,
                role="previous_good",
                source="prometheus",
            )
        )
        session.commit()
    return incident.id


def alias(mlflow: MlflowServer) -> str:
    body = mlflow.api(
        "GET", "registered-models/alias", params={"name": "fraud-detector", "alias": "champion"}
    )
    return str(body["model_version"]["version"])  # type: ignore[index]


def test_a_confirmed_rollback_moves_the_alias_once_with_a_record(
    engine: Engine, registry: MlflowRegistry, mlflow: MlflowServer
) -> None:
    incident_id = incident_with_previous_good(engine)
    request = RollbackRequest(
        model="fraud-detector", environment="prod", incident_id=incident_id, actor="U1", reason="v4 fails 10%"
    )
    action = rollbacks.propose(engine, config(), registry, request, "U1")
    assert (action.from_version, action.to_version, action.state) == ("4", "3", "proposed")
    assert (
        rollbacks.propose(engine, config(), registry, request, "U1").id == action.id
    )  # a double click proposes once

    done = rollbacks.confirm(engine, config(), registry, None, action.id, "U2")  # type: ignore[arg-type]
    assert done.state == "succeeded"
    assert alias(mlflow) == "3"
    tags = mlflow.api("GET", "model-versions/get", params={"name": "fraud-detector", "version": "3"})
    tag = {t["key"]: t["value"] for t in tags["model_version"]["tags"]}  # type: ignore[index]
    assert tag["sloguard.change"] == f"v4 fails 10% (by U1, incident {incident_id})"

    again = rollbacks.confirm(engine, config(), registry, None, action.id, "U2")  # type: ignore[arg-type]
    assert again.state == "succeeded" and again.finished_at == done.finished_at
    with Session(engine) as session:
        steps = [a.step for a in rollbacks.audit_trail(session, action.id)]  # type: ignore[arg-type]
        notes = [e.text for e in incidents.timeline(session, incident_id) if e.kind == "rollback"]
        links = [(link.role, link.version) for link in session.exec(select(ModelVersionLink)).all()]
    assert steps == ["proposed", "executing", "succeeded"]
    assert notes[-1] == "fraud-detector in prod now serves version 3 (was 4)"
    assert ("rolled_back_to", "3") in links


def test_a_stale_expected_version_is_refused_and_changes_nothing(
    engine: Engine, registry: MlflowRegistry, mlflow: MlflowServer
) -> None:
    incident_id = incident_with_previous_good(engine)
    action = rollbacks.propose(
        engine,
        config(),
        registry,
        RollbackRequest(model="fraud-detector", incident_id=incident_id, actor="U1"),
        "U1",
    )
    mlflow.api(
        "POST",
        "registered-models/alias",
        json={"name": "fraud-detector", "alias": "champion", "version": "1"},
    )
    failed = rollbacks.confirm(engine, config(), registry, None, action.id, "U1")  # type: ignore[arg-type]
    assert failed.state == "failed"
    assert alias(mlflow) == "1"
    with Session(engine) as session:
        last = rollbacks.audit_trail(session, action.id)[-1]  # type: ignore[arg-type]
    assert last.result.startswith("refused: alias champion of fraud-detector now points at 1, not 4")


def test_concurrent_confirms_change_the_alias_once(
    engine: Engine, registry: MlflowRegistry, mlflow: MlflowServer
) -> None:
    incident_id = incident_with_previous_good(engine, "2")
    action = rollbacks.propose(
        engine,
        config(),
        registry,
        RollbackRequest(model="fraud-detector", incident_id=incident_id, actor="U1"),
        "U1",
    )
    with ThreadPoolExecutor(max_workers=5) as pool:
        results = list(
            pool.map(
                lambda user: rollbacks.confirm(engine, config(), registry, None, action.id, user),
                ["U1", "U2", "U3", "U1", "U2"],
            )
        )  # type: ignore[arg-type]
    assert alias(mlflow) == "2"
    with Session(engine) as session:
        steps = [a.step for a in rollbacks.audit_trail(session, action.id)]  # type: ignore[arg-type]
    assert steps.count("executing") == 1 and steps.count("succeeded") == 1
    assert {r.id for r in results} == {action.id}


def test_permissions_name_who_may_and_prod_can_need_two_people(
    engine: Engine, registry: MlflowRegistry, mlflow: MlflowServer
) -> None:
    incident_id = incident_with_previous_good(engine)
    with pytest.raises(Forbidden) as caught:
        rollbacks.propose(
            engine,
            config(),
            registry,
            RollbackRequest(model="fraud-detector", incident_id=incident_id, actor="U9"),
            "U9",
        )
    assert str(caught.value) == "you may not rollback fraud-detector in prod; ask <@U1>, <!subteam^S0ONCALL>"

    strict = config(two_person=True)
    action = rollbacks.propose(
        engine,
        strict,
        registry,
        RollbackRequest(model="fraud-detector", incident_id=incident_id, actor="U2"),
        "U2",
    )
    with pytest.raises(Forbidden, match="needs a second person"):
        rollbacks.confirm(engine, strict, registry, None, action.id, "U2")  # type: ignore[arg-type]
    assert alias(mlflow) == "4"
    assert rollbacks.confirm(engine, strict, registry, None, action.id, "U3").state == "succeeded"  # type: ignore[arg-type]
    assert alias(mlflow) == "3"


def test_dry_run_changes_nothing(engine: Engine, registry: MlflowRegistry, mlflow: MlflowServer) -> None:
    incident_id = incident_with_previous_good(engine)
    action = rollbacks.propose(
        engine,
        config(),
        registry,
        RollbackRequest(model="fraud-detector", incident_id=incident_id, actor="U1", dry_run=True),
        "U1",
    )
    assert (action.from_version, action.to_version, action.dry_run) == ("4", "3", True)
    with pytest.raises(Exception, match="dry run"):
        rollbacks.confirm(engine, config(), registry, None, action.id, "U2")  # type: ignore[arg-type]
    assert alias(mlflow) == "4"


def test_without_a_known_previous_version_the_registry_versions_are_listed(
    engine: Engine, registry: MlflowRegistry
) -> None:
    incident = incidents.declare(
        engine, None, IncidentCreate(title="no evidence", model="fraud-detector"), datetime.now(UTC)
    )
    request = RollbackRequest(model="fraud-detector", incident_id=incident.id, actor="U1")
    with pytest.raises(Conflict) as caught:
        rollbacks.propose(engine, config(), registry, request, "U1")
    assert str(caught.value) == (
        "no previous good version of fraud-detector is known: name one (`to VERSION`; 4, 3, 2, 1)"
    )
