"""The README's route table is the truth about scopes: every /api/v1 route the app serves is in it, and
each answers a token of every scope as the table says (a token below the route's scope is refused for its
scope; one at or above it is not)."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from app.main import create_app
from tests.conftest import REPO, bearer, make_settings, personal_token
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration
SCOPES = ["read", "respond", "change", "admin"]  # each reaches what the ones before it reach (README)
ROW = re.compile(r"^\| `(GET|POST|PUT|PATCH|DELETE) (/api/v1[^`?\[ ]*)[^`]*` \| `(\w+)` \|", re.M)


def template(path: str) -> str:
    return re.sub(r"\{[^}]*\}", "{}", path)


def documented() -> dict[tuple[str, str], str]:
    readme = (REPO / "README.md").read_text()
    table = readme.split("| route | scope | what |", 1)[1].split("\n\n", 1)[0]
    rows = ROW.findall(table)
    assert len(rows) == len(table.strip().splitlines()) - 1, "every row of the table names one route"
    return {(method, template(path)): scope for method, path, scope in rows}


def test_every_api_route_is_in_the_readme_table_with_a_scope(tmp_path: Path) -> None:
    # The OpenAPI document lists every route the app serves (FastAPI builds it from the routers).
    paths = create_app(make_settings(tmp_path)).openapi()["paths"]
    served = {
        (method.upper(), template(path))
        for path, operations in paths.items()
        if path.startswith("/api/v1")
        for method in operations
    }
    table = documented()
    assert served == set(table), {"not in the README": served - set(table), "not served": set(table) - served}
    assert set(table.values()) <= set(SCOPES)


def test_each_route_refuses_the_scopes_below_its_own_and_only_those(tmp_path: Path) -> None:
    settings = make_settings(tmp_path)
    tokens = {scope: bearer(personal_token(settings.database_url, "U0ANA", scope)) for scope in SCOPES}
    with UvicornThread(create_app(settings)) as server, httpx.Client(base_url=server.url, timeout=20) as http:
        for (method, path), needed in documented().items():
            url = path.replace("{}", "999999")  # no such row: a route that admits the caller answers 404/422
            body = {} if method in ("POST", "PATCH", "PUT") else None
            anonymous = http.request(method, url, json=body)
            assert anonymous.status_code == 401, (method, path, anonymous.text)
            for scope, headers in tokens.items():
                answer = http.request(method, url, json=body, headers=headers)
                refused_for_scope = answer.status_code == 403 and answer.json()["detail"].startswith("scope:")
                below = SCOPES.index(scope) < SCOPES.index(needed)
                assert refused_for_scope == below, (method, path, scope, answer.status_code, answer.text)
                assert answer.status_code not in (401, 429, 500), (method, path, scope, answer.text)
                if below:
                    assert f"needs {needed}" in answer.json()["detail"], answer.text
