"""`sloguard gate MODEL VERSION --to ENV`: the release gate's decision for a pipeline.

Exit 0 when the move is allowed, 1 when it is blocked, 2 when it could not be decided (a source down,
no version label, a running sloguard that did not answer): missing data is never "allowed".
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer

GITHUB_LEVEL = {"blocked": "error", "undecided": "warning", "allowed": "notice"}
MARK = {"blocked": "✗", "undecided": "?", "allowed": "✓"}


def _ask_server(url: str, token: str | None, body: dict[str, str]) -> dict[str, Any]:
    if not token:
        raise typer.BadParameter(
            "a running sloguard needs a token: --token or SLOGUARD_API_TOKEN", param_hint="--token"
        )
    try:
        answer = httpx.post(
            f"{url.rstrip('/')}/api/v1/gates/check",
            json=body,
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        return _undecided(body, f"sloguard at {url} did not answer: {type(exc).__name__}")
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail")
        except ValueError:
            detail = answer.text[:200]
        if answer.status_code in (404, 422):
            typer.echo(f"sloguard: {detail}", err=True)
            raise typer.Exit(2)
        return _undecided(body, f"sloguard at {url} answered {answer.status_code}: {detail}")
    found: dict[str, Any] = answer.json()
    return found


def _github(value: str, *, prop: bool = False) -> str:
    """GitHub's workflow-command escaping: a message's %, CR and LF (an exception's reason may span lines),
    and a property's `:` and `,` too; the runner turns them back."""
    value = value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return value.replace(":", "%3A").replace(",", "%2C") if prop else value


def _undecided(body: dict[str, str], why: str) -> dict[str, Any]:
    reason = {"check": "data", "verdict": "undecided", "text": why, "figures": {}}
    return {**body, "decision": "undecided", "exit_code": 2, "reasons": [reason]}


def _decide_here(body: dict[str, str]) -> dict[str, Any]:
    from app.cli import fail, load_slos, settings_or_exit
    from app.config import load_file_config
    from app.errors import ConfigError, NotFound
    from app.gates import service as gates
    from app.services import build_services
    from app.telemetry import configure_logging

    settings = settings_or_exit()
    configure_logging("WARNING", "text")
    try:
        file_config = load_file_config(settings.config_file)
    except ConfigError as exc:
        fail(str(exc))
    services = build_services(settings, file_config, load_slos(None, settings))
    try:
        decision = gates.decide_now(
            services,
            model=body["model"],
            version=body["version"],
            environment=body["to"],
            now=datetime.now(UTC),
            fresh=True,
        )
    except NotFound as exc:
        fail(str(exc))
    finally:
        services.close()
    return {**body, **decision.as_dict()}


def gate(
    model: Annotated[str, typer.Argument(help="The model, as sloguard.yaml `models:` names it.")],
    version: Annotated[str, typer.Argument(help="The version to release.")],
    to: Annotated[str, typer.Option("--to", help="The environment it would move into.")],
    url: Annotated[
        str | None,
        typer.Option("--url", help="Ask a running sloguard (else decide here, from the settings)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Its token (default: $SLOGUARD_API_TOKEN).", show_default=False),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the decision as JSON.")] = False,
    output: Annotated[str, typer.Option("--format", help="text, or github (Actions annotations).")] = "text",
) -> None:
    """Whether MODEL VERSION may move into an environment: exit 0 allowed, 1 blocked, 2 undecided."""
    if output not in ("text", "github"):
        raise typer.BadParameter("text or github", param_hint="--format")
    body = {"model": model[:200], "version": version[:100], "to": to[:50]}
    if url:
        answer = _ask_server(url, token or os.environ.get("SLOGUARD_API_TOKEN"), body)
    else:
        answer = _decide_here(body)
    decision = str(answer.get("decision", "undecided"))
    if as_json:
        typer.echo(json.dumps(answer, indent=2, default=str))
    elif output == "github":
        for reason in answer.get("reasons", []):
            level = GITHUB_LEVEL.get(reason["verdict"], "warning")
            title = _github(f"sloguard gate {model} {version} → {to}", prop=True)
            typer.echo(f"::{level} title={title}::{_github(reason['text'])}")
        typer.echo(f"{decision}: {model} {version} → {to}")
    else:
        typer.echo(f"{decision}: {model} {version} → {to}")
        for reason in answer.get("reasons", []):
            typer.echo(f"  {MARK.get(reason['verdict'], '?')} {reason['text']}")
    raise typer.Exit({"allowed": 0, "blocked": 1}.get(decision, 2))
