"""Schemathesis against the served /openapi.json with every check: no generated input gets a 5xx, token or
not, and every answer is one the document describes (status, content type, headers, body schema); valid
input is accepted and invalid input refused.

NUL characters are left out of generated strings: the service refuses them at the door (400, documented),
which the positive-data check would otherwise count as "valid data rejected".
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis.errors import FlakyFailure, Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.core.failures import FailureGroup

from app.main import create_app
from tests.conftest import WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
MAX_EXAMPLES = 30  # per operation and mode: ~20 operations x 2 modes x 2 auths stays within a minute or so
SLOGUARD_YAML = f"""
models:
  fraud-detector:
    services: [fraud-model]
    environments:
      prod:
        target: {{kind: command, argv: ["{sys.executable}", "-c", "pass", "{{to}}"]}}
        rollback: [U1]
        promote: [U1]
"""


SLO_SPEC = """
version: "prometheus/v1"
service: "fraud-model"
slos:
  - name: "availability"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(http_requests_total{code=~"5.."}[{{.window}}]))
        total_query: sum(rate(http_requests_total[{{.window}}]))
"""
# Ids the seed creates: generated ids seldom hit a real row, so each operation is also fuzzed with its
# path pinned to these (the body and query still generated) to reach past the 404.
# Token 1 is someone else's, made first, for DELETE /api/v1/tokens/{token_id} to revoke (pinned below).
SEEDED_PATH = {
    "incident_id": 1,
    "item_id": 1,
    "action_id": 1,
    "slo_id": "fraud-model-availability",
    "token_id": 1,
}


@dataclass(frozen=True)
class Served:
    url: str
    api: dict[str, str]  # an admin's (U1's) token: every API route, rollbacks included, is within reach


@pytest.fixture
def served(tmp_path: Path, database_url: str) -> Iterator[Served]:
    """The app on loopback with an incident, an action item, a proposed rollback, an SLO and a token."""
    (tmp_path / "sloguard.yaml").write_text(SLOGUARD_YAML)
    (tmp_path / "slo").mkdir()
    (tmp_path / "slo" / "fraud.yaml").write_text(SLO_SPEC)
    app_settings = make_settings(tmp_path, database_url=database_url)
    with UvicornThread(create_app(app_settings)) as server:
        personal_token(database_url, "U9", "read", name="the fuzzed DELETE revokes this one")
        api = bearer(personal_token(database_url, "U1", "admin", name="fuzz"))
        with httpx.Client(base_url=server.url, headers=api, timeout=10) as http:
            seeds = [
                ("/api/v1/incidents", {"title": "seed", "model": "fraud-detector"}),
                ("/api/v1/incidents/1/action-items", {"text": "seed"}),
                ("/api/v1/rollbacks", {"model": "fraud-detector", "to_version": "3"}),
            ]
            for path, body in seeds:
                response = http.post(path, json=body)
                assert response.status_code == 201, response.text
        yield Served(server.url, api)


def credentials(path: str, api: dict[str, str] | None) -> dict[str, str]:
    if api is None:
        return {}
    return bearer(WEBHOOK_TOKEN) if path.startswith("/webhooks/") else api


def server_errors(
    operation: schemathesis.APIOperation,
    mode: GenerationMode,
    url: str,
    auth: dict[str, str] | None,
    path_parameters: dict[str, Any] | None = None,
) -> str:
    """'' when every generated case passed every check, else the first failure (shrunk) and its curl."""

    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,  # the same cases every run: a failure here is reproducible, not a flake
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, path_parameters=path_parameters))
    def run(case: schemathesis.Case) -> None:
        case.call_and_validate(base_url=url, headers=credentials(operation.path, auth), timeout=15)

    try:
        run()
    except FailureGroup as group:
        return f"{operation.label} ({mode.value}):\n" + "\n".join(str(inner) for inner in group.exceptions)
    except AssertionError as exc:
        return f"{operation.label} ({mode.value}): {exc}"
    except FlakyFailure as exc:  # a 5xx that a retry did not repeat (the first call stored something)
        return "\n".join(str(inner) for inner in exc.exceptions)
    except Unsatisfiable:
        # Nothing can be made invalid (an operation without parameters or body): only in negative mode.
        assert mode is GenerationMode.NEGATIVE, f"no positive case for {operation.label}"
    return ""


@pytest.mark.parametrize("authorized", [True, False], ids=["token", "no-token"])
def test_no_generated_request_gets_a_server_error(served: Served, authorized: bool) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    schema.config.generation.update(allow_x00=False)
    operations = [result.ok() for result in schema.get_all_operations()]
    labels = {f"{op.method.upper()} {op.path}" for op in operations}
    # Enumerated from the app, so a new route is fuzzed without editing this test; these prove the
    # document is the whole app (a schema that silently lost its routers would pass vacuously).
    assert {"POST /api/v1/incidents", "POST /webhooks/alertmanager", "GET /healthz"} <= labels
    failures = []
    for operation in operations:
        names = {parameter.name for parameter in operation.path_parameters}
        pinned = {name: value for name, value in SEEDED_PATH.items() if name in names}
        for path_parameters in [None, pinned] if pinned else [None]:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                auth = served.api if authorized else None
                if found := server_errors(operation, mode, served.url, auth, path_parameters):
                    failures.append(found)
    assert not failures, "\n\n".join(failures)
