"""`sloguard grafana dashboards -o DIR`: write the dashboards as Grafana JSON files."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

grafana = typer.Typer(help="Grafana dashboards as code.", no_args_is_help=True)


@grafana.command("dashboards")
def dashboards(
    output: Annotated[
        Path, typer.Option("-o", "--output", help="Folder to write the JSON files to (made if missing).")
    ],
) -> None:
    """Write the SLO overview, SLO detail and health dashboards as Grafana JSON (import or provision)."""
    from app.grafana.dashboards import render

    output.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (output / name).write_text(text, encoding="utf-8")
        typer.echo(f"wrote {output / name}", err=True)
