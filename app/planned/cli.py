"""`sloguard planned`: the planned windows of sloguard.yaml, their occurrences and the SLOs each holds."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer

from app.planned.windows import PlannedWindow
from app.slo.model import Slo


def occurrences(
    windows: list[PlannedWindow], slos: list[Slo], now: datetime, days: float
) -> list[dict[str, Any]]:
    """Each occurrence on now or starting within `days`, in time order, with the SLOs it covers."""
    found = []
    for window in windows:
        covered = sorted(slo.id for slo in slos if window.covers(slo.id, slo.service, slo.model))
        for item in window.occurrences(now, now + timedelta(days=days)):
            found.append(
                {
                    "window": window.name,
                    "start": item.start.isoformat().replace("+00:00", "Z"),
                    "end": item.end.isoformat().replace("+00:00", "Z"),
                    "on": item.start <= now < item.end,
                    "slos": covered,
                    "reason": window.reason,
                }
            )
    return sorted(found, key=lambda row: (row["start"], row["window"]))


def planned(
    days: Annotated[
        float, typer.Option(min=0.01, max=366, help="Show occurrences starting within DAYS.")
    ] = 14,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per occurrence.")] = False,
) -> None:
    """The planned windows' occurrences (on now, or starting within --days) and the SLOs each holds."""
    from app.cli import fail, load_slos, settings_or_exit
    from app.config import load_file_config
    from app.errors import ConfigError

    settings = settings_or_exit()
    try:
        config = load_file_config(settings.config_file)
    except ConfigError as exc:
        fail(str(exc))
    rows = occurrences(config.planned_windows, load_slos(None, settings), datetime.now(UTC), days)
    cancelled = [window.name for window in config.planned_windows if window.cancelled]
    if as_json:
        for row in rows:
            typer.echo(json.dumps(row, ensure_ascii=False))
        return
    if not rows:
        typer.echo(f"no planned window is on or starts within {days:g} days")
    for row in rows:
        state = "ON  " if row["on"] else "next"
        slos = ", ".join(row["slos"]) or "no loaded SLO"
        typer.echo(f"{state} {row['start']} .. {row['end']}  {row['window']}: {slos}")
    for name in cancelled:
        typer.echo(f"cancelled: {name}")
