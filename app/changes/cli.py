"""`sloguard changes MODEL`: the model's registry changes (alias moves, new versions), newest first."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any
from urllib.parse import quote

import httpx
import typer


def _from_server(url: str, token: str | None, model: str, limit: int) -> list[dict[str, Any]]:
    from app.cli import fail

    if not token:
        raise typer.BadParameter(
            "a running sloguard needs a token: --token or SLOGUARD_API_TOKEN", param_hint="--token"
        )
    try:
        answer = httpx.get(
            f"{url.rstrip('/')}/api/v1/models/{quote(model, safe='')}/changes",
            params={"limit": limit},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.HTTPError as exc:
        fail(f"sloguard at {url} did not answer: {type(exc).__name__}", 1)
    if answer.status_code != 200:
        try:
            detail = answer.json().get("detail")
        except ValueError:
            detail = answer.text[:200]
        fail(f"sloguard at {url} answered {answer.status_code}: {detail}", 1)
    found: list[dict[str, Any]] = answer.json()
    return found


def _from_database(model: str, limit: int) -> list[dict[str, Any]]:
    from sqlmodel import Session

    from app.changes import service as changes
    from app.cli import _database

    engine = _database()
    try:
        with Session(engine) as session:
            rows = changes.history(session, model, limit=limit)
            return [changes.as_read(row).model_dump(mode="json") for row in rows]
    finally:
        engine.dispose()


def table(found: list[dict[str, Any]]) -> str:
    lines = [f"{'at':<20}  {'kind':<15}  {'alias':<12}  {'from':>6} -> {'to':<6}  {'actor':<12}  action"]
    for change in found:
        at = str(change["at"])[:19].replace("T", " ")
        action = str(change["action_id"]) if change.get("action_id") is not None else "-"
        lines.append(
            f"{at:<20}  {change['kind']:<15}  {change.get('alias') or '-':<12}  "
            f"{change.get('from_version') or '?':>6} -> {change.get('version') or '-':<6}  "
            f"{change.get('actor') or 'mlflow':<12}  {action}"
        )
    return "\n".join(lines)


def changes(
    model: Annotated[
        str, typer.Argument(help="The model: sloguard.yaml's name or MLflow's registered name.")
    ],
    url: Annotated[
        str | None,
        typer.Option("--url", help="Ask a running sloguard (else read the database in the settings)."),
    ] = None,
    token: Annotated[
        str | None,
        typer.Option("--token", help="Its token (default: $SLOGUARD_API_TOKEN).", show_default=False),
    ] = None,
    limit: Annotated[int, typer.Option(help="At most this many, newest first.", min=1, max=500)] = 50,
    as_json: Annotated[bool, typer.Option("--json", help="Print the changes as a JSON list.")] = False,
) -> None:
    """The registry changes MLflow's webhooks announced for MODEL (alias moves with the version they came
    from, removals, new versions), newest first; sloguard's own moves name their rollback and actor."""
    model = model[:200]
    if url:
        found = _from_server(url, token or os.environ.get("SLOGUARD_API_TOKEN"), model, limit)
    else:
        found = _from_database(model, limit)
    if as_json:
        typer.echo(json.dumps(found, indent=2))
    elif not found:
        typer.echo(f"no registry changes recorded for {model}")
    else:
        typer.echo(table(found))
