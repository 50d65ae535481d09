"""The shipped examples of the gate's doors say what the service serves: the Argo AnalysisTemplate, the
Flagger Canary and the GitHub Actions workflow name routes, fields and options that exist."""

from __future__ import annotations

import shlex
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import yaml
from fastapi.routing import iter_route_contexts

from app.gates.logic import Verdict
from app.main import create_app
from tests.conftest import REPO, make_settings


def routes(tmp_path: Path) -> set[tuple[str, str]]:
    app = create_app(make_settings(tmp_path))
    return {(m, r.path) for r in iter_route_contexts(app.routes) for m in r.methods or set()}


def test_the_argo_template_reads_the_decision_the_gate_answers(tmp_path: Path) -> None:
    template = yaml.safe_load((REPO / "deploy/gates/argo-analysistemplate.yaml").read_text())
    (metric,) = template["spec"]["metrics"]
    web = metric["provider"]["web"]
    url = urlsplit(web["url"])
    assert ("GET", url.path) in routes(tmp_path)
    assert set(parse_qs(url.query)) == {"model", "version", "to"}
    assert metric["successCondition"] == f'result.decision == "{Verdict.allowed}"'
    assert metric["failureCondition"] == f'result.decision == "{Verdict.blocked}"'  # undecided: neither
    assert web["jsonPath"] == "{$}" and web["headers"][0]["value"].startswith("Bearer ")


def test_the_flagger_canary_calls_the_confirm_promotion_webhook(tmp_path: Path) -> None:
    canary = yaml.safe_load((REPO / "deploy/gates/flagger-canary.yaml").read_text())
    (hook,) = canary["spec"]["analysis"]["webhooks"]
    assert hook["type"] == "confirm-promotion"
    assert ("POST", urlsplit(hook["url"]).path) in routes(tmp_path)
    assert set(hook["metadata"]) == {"model", "version", "to", "token"}


def test_the_workflow_runs_the_gate_with_options_it_has() -> None:
    import typer

    from app.cli import cli

    workflow = yaml.safe_load((REPO / "docs/release-gate.github-workflow.yml").read_text())
    step = next(s for s in workflow["jobs"]["gate"]["steps"] if "sloguard gate" in s.get("run", ""))
    words = shlex.split(step["run"].replace("${{ inputs.version }}", "5"))
    assert words[:4] == ["sloguard", "gate", "ranker", "5"]
    command = typer.main.get_command(cli).commands["gate"]  # type: ignore[attr-defined]
    known = {option for param in command.params for option in param.opts if option.startswith("--")}
    assert {w for w in words if w.startswith("--")} <= known, known
    assert words[words.index("--format") + 1] == "github"
    assert step["env"]["SLOGUARD_API_TOKEN"].startswith("${{ secrets.")
