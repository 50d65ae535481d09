"""The `command` rollback target runs argv without a shell: shell syntax in the template stays literal,
and a version (from a request, or from metric labels via the incident's evidence) that is not a plain
identifier is refused before anything runs. Proven with a real program that writes the argv it got."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa

from app.main import create_app
from tests.conftest import API_TOKEN, bearer, make_settings, personal_token
from tests.servers import UvicornThread, wait_until

pytestmark = pytest.mark.integration
API = bearer(API_TOKEN)  # the automation identity: scope `read`, for the GETs
RECORDER = """
import json, sys
with open(sys.argv[1], "w", encoding="utf-8") as out:
    json.dump(sys.argv[2:], out)
"""


class Deploy:
    def __init__(self, url: str, folder: Path, database_url: str) -> None:
        self.url, self.folder, self.database_url = url, folder, database_url
        self.argv_file = folder / "argv.json"
        # U1 may roll the model back (sloguard.yaml below): the proposer and confirmer of every rollback.
        self.u1 = bearer(personal_token(database_url, "U1", "change"))

    def rollback(self, **fields: Any) -> dict[str, Any]:
        body = {"model": "fraud-detector", "confirm": True, **fields}
        response = httpx.post(f"{self.url}/api/v1/rollbacks", json=body, headers=self.u1, timeout=30)
        assert response.status_code == 201, response.text
        result: dict[str, Any] = response.json()
        assert result["actor"] == "U1", result
        return result

    def incident_serving(self, version: str) -> int:
        """An incident whose evidence says `version` serves (as gathered from the version metric label)."""
        created = httpx.post(
            f"{self.url}/api/v1/incidents",
            json={"title": "bad model", "model": "fraud-detector"},
            headers=self.u1,
            timeout=10,
        )
        number: int = created.json()["id"]
        # The evidence gathered in the background replaces the incident's version rows when it is stored:
        # wait for it (Prometheus is unreachable here, so it stores "missing" notes), then add ours.
        wait_until(
            lambda: any(
                event["kind"] == "evidence_missing"
                for event in httpx.get(f"{self.url}/api/v1/incidents/{number}", headers=API).json()[
                    "timeline"
                ]
            ),
            timeout=30,
            what="the background evidence",
        )
        engine = sa.create_engine(self.database_url)
        with engine.begin() as connection:
            connection.execute(
                sa.text(
                    "INSERT INTO model_version_link (incident_id, model, version, role, source, detail,"
                    " created_at) VALUES (:incident, 'fraud-detector', :version, 'suspect', 'prometheus',"
                    " '{}', :now)"
                ),
                {"incident": number, "version": version, "now": datetime.now(UTC)},
            )
        engine.dispose()
        return number

    def argv(self) -> list[str] | None:
        if not self.argv_file.exists():
            return None
        recorded: list[str] = json.loads(self.argv_file.read_text(encoding="utf-8"))
        return recorded

    def planted(self) -> list[str]:
        """Files a shell would have created had it interpreted any of the payloads."""
        return sorted(p.name for p in self.folder.glob("pwned*"))


def literal_arguments(folder: Path) -> list[str]:
    return [
        f"; touch {folder}/pwned-semicolon",
        f"$(touch {folder}/pwned-dollar)",
        f"`touch {folder}/pwned-backtick`",
        f"x\ntouch {folder}/pwned-newline",
        f"|| touch {folder}/pwned-or",
        "$HOME",
        "*",
    ]


@pytest.fixture
def deploy(tmp_path: Path, database_url: str) -> Iterator[Deploy]:
    recorder = tmp_path / "recorder.py"
    recorder.write_text(RECORDER)
    argv = [
        sys.executable,
        str(recorder),
        str(tmp_path / "argv.json"),
        "{model}",
        "{environment}",
        "from={from}",
        "to={to}",
        *literal_arguments(tmp_path),
    ]
    config = {
        "models": {
            "fraud-detector": {
                "environments": {"prod": {"target": {"kind": "command", "argv": argv}, "rollback": ["U1"]}}
            }
        }
    }
    (tmp_path / "sloguard.yaml").write_text(json.dumps(config))  # JSON is YAML, and escapes the newline
    settings = make_settings(tmp_path, database_url=database_url)
    with UvicornThread(create_app(settings)) as server:
        yield Deploy(server.url, tmp_path, database_url)


def test_shell_syntax_in_the_argv_template_reaches_the_program_literally(deploy: Deploy) -> None:
    action = deploy.rollback(to_version="3", incident_id=deploy.incident_serving("4"))
    assert action["state"] == "succeeded", action
    assert deploy.argv() == [
        "fraud-detector",
        "prod",
        "from=4",
        "to=3",
        *literal_arguments(deploy.folder),
    ]
    assert deploy.planted() == []


@pytest.mark.parametrize(
    "version",
    [
        "3; touch {folder}/pwned-semicolon",
        "$(touch {folder}/pwned-dollar)",
        "`touch {folder}/pwned-backtick`",
        "3\ntouch {folder}/pwned-newline",
        "3\n",
        "3 && touch {folder}/pwned-and",
        "--output={folder}/pwned-option",
        "-rf",
        "../../etc/passwd",
        "3|id",
        "",
    ],
)
def test_a_version_that_is_not_a_plain_identifier_is_refused_before_anything_runs(
    deploy: Deploy, version: str
) -> None:
    wanted = version.format(folder=deploy.folder)
    action = deploy.rollback(to_version=wanted, incident_id=deploy.incident_serving("4"), reason="$(id)")
    assert action["state"] == "failed", action
    assert f"refused: to {wanted!r} is not a plain identifier" in action["audit"][-1]["result"]
    assert deploy.argv() is None  # the program never started
    assert deploy.planted() == []


def test_a_version_label_from_the_evidence_is_checked_too(deploy: Deploy) -> None:
    """The serving version can come from metric labels (stored as the incident's suspect version)."""
    label = f"4$(touch {deploy.folder}/pwned-label)"
    number = deploy.incident_serving(label)
    action = deploy.rollback(to_version="3", incident_id=number)
    assert action["from_version"] == label
    assert action["state"] == "failed"
    assert f"refused: from {label!r} is not a plain identifier" in action["audit"][-1]["result"]
    assert deploy.argv() is None
    assert deploy.planted() == []
