"""Review drafts: text from people and alerts is data, never template code; a team's own template runs in
Jinja2's sandbox and cannot reach Python internals or files outside its folder."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from jinja2.exceptions import SecurityError, TemplateNotFound

from app.main import create_app
from app.postmortems import service as postmortems
from tests.conftest import REPO, WEBHOOK_TOKEN, bearer, make_settings, personal_token
from tests.servers import UvicornThread

pytestmark = pytest.mark.integration


def responder(database_url: str) -> dict[str, str]:
    """A person who may declare incidents and write notes (scope `respond`), and read the drafts."""
    return bearer(personal_token(database_url, "U1", "respond"))


INJECTIONS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ cycler.__init__.__globals__.os.environ }}",
    "{% for c in ''.__class__.__mro__[1].__subclasses__() %}{{ c }}{% endfor %}",
    "{{ 7 * 191 }}",
    "<script>alert(1)</script> [click](javascript:alert(1))",
]
# What any of them would print if it were evaluated (or passed through as HTML).
EVALUATED = ["<class 'str'>", "<class 'object'>", "1337", "environ(", "<script>", 'href="javascript:']


@pytest.fixture
def http(tmp_path: Path, database_url: str) -> Iterator[httpx.Client]:
    with (
        UvicornThread(create_app(make_settings(tmp_path, database_url=database_url))) as served,
        httpx.Client(base_url=served.url, headers=responder(database_url), timeout=30) as client,
    ):
        yield client


def test_template_syntax_in_incident_fields_is_rendered_as_text(http: httpx.Client) -> None:
    incident_ids = []
    for text in INJECTIONS:
        created = http.post(
            "/api/v1/incidents",
            json={"title": text, "summary": text, "commander": text[:100], "service": text[:200]},
        )
        assert created.status_code == 201, created.text
        number = created.json()["id"]
        incident_ids.append(number)
        assert http.post(f"/api/v1/incidents/{number}/timeline", json={"text": text}).status_code == 201
        item = {"text": text, "owner": text[:100]}
        assert http.post(f"/api/v1/incidents/{number}/action-items", json=item).status_code == 201
    # ... and through Alertmanager: the alert's summary becomes the title of a new incident.
    payload = json.loads((REPO / "tests/data/alertmanager-0.25-firing.json").read_text())
    payload["commonAnnotations"]["summary"] = INJECTIONS[0]
    hooked = http.post(
        "/webhooks/alertmanager", json=payload, headers={"Authorization": f"Bearer {WEBHOOK_TOKEN}"}
    )
    incident_ids.append(hooked.json()["incident_id"])

    for number, text in zip(incident_ids, [*INJECTIONS, INJECTIONS[0]], strict=True):
        for view in ("markdown", "html"):
            response = http.get(f"/api/v1/incidents/{number}/postmortem", params={"format": view})
            assert response.status_code == 200, response.text
            for evaluated in EVALUATED:
                assert evaluated not in response.text, f"{text!r} in {view}: {evaluated!r} appeared"
        markdown = http.get(f"/api/v1/incidents/{number}/postmortem").text
        # The text is there, escaped for Markdown (braces and brackets shown as written, not as syntax).
        assert postmortems.md(text) in markdown


@pytest.mark.parametrize(
    ("template", "refusal"),
    [
        ("{{ ''.__class__.__mro__[1].__subclasses__() }}", SecurityError),
        ("{{ incident.__class__.__init__.__globals__ }}", SecurityError),
        ("{{ '{0.__class__.__mro__}'.format(incident) }}", SecurityError),
        ("{{ lipsum.__globals__['os'].popen('id').read() }}", SecurityError),
        ("{% include '../../../../../../etc/passwd' %}", TemplateNotFound),
    ],
)
def test_a_team_template_cannot_reach_python_internals_or_other_files(
    tmp_path: Path, template: str, refusal: type[Exception]
) -> None:
    (tmp_path / "postmortem.md.j2").write_text(template)
    with pytest.raises(refusal):
        postmortems.render({"incident": {"title": "t", "id": 1}}, tmp_path)


def test_a_refused_team_template_is_reported_without_internals(tmp_path: Path, database_url: str) -> None:
    templates = tmp_path / "postmortems" / "templates"
    templates.mkdir(parents=True)
    (templates / "postmortem.md.j2").write_text("{{ ''.__class__.__mro__[1].__subclasses__() }}")
    settings = make_settings(tmp_path, database_url=database_url)
    with (
        UvicornThread(create_app(settings)) as served,
        httpx.Client(base_url=served.url, headers=responder(database_url), timeout=30) as http,
    ):
        number = http.post("/api/v1/incidents", json={"title": "t"}).json()["id"]
        response = http.get(f"/api/v1/incidents/{number}/postmortem")
    assert response.status_code == 422
    assert "review template" in response.json()["detail"]
    assert "<class" not in response.text and "__subclasses__" not in response.text
    assert not list((tmp_path / "postmortems").glob("*.md"))
