"""What the console's pages show, read in as few queries as a page allows. No writes here.

The overview reads the newest evaluation of every SLO from the last cycle's rows (an index on the
evaluation time), sorts by budget left, and reads the sparklines of one page of SLOs in one grouped query:
the page tier's burn (app/slo/service.page_burn) at most once per SPARK_BUCKET over the last day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.incidents import service as incidents
from app.incidents.models import Incident
from app.slo import service as slos
from app.slo.burn import State
from app.slo.model import Slo
from app.slo.models import SloStatus

SPARK_SPAN = timedelta(days=1)
SPARK_BUCKET = 900  # seconds: 96 points over the day
PER_PAGE = 100
STATES = tuple(state.value for state in State)


@dataclass
class SloRow:
    slo: Slo
    state: str
    budget_remaining: float | None
    tier: str | None
    evaluated_at: datetime | None
    detail: str | None
    page_factor: float | None
    spark: list[tuple[float, float]] = field(default_factory=list)  # (seconds since start, burn)

    @property
    def model(self) -> str | None:
        return self.slo.model


@dataclass
class Overview:
    rows: list[SloRow]
    total: int
    page: int
    pages: int
    last_evaluation: datetime | None
    services: list[str]
    models: list[str]


@dataclass(frozen=True)
class Latest:
    """The columns of an SLO's newest evaluation the overview shows (not its windows' JSON)."""

    slo_id: str
    evaluated_at: datetime
    state: str
    budget_remaining: float | None
    tier: str | None
    detail: str | None
    id: int


def newest_rows(session: Session, lookback: float) -> dict[str, Latest]:
    """Each SLO's newest row among those of the last cycle or two (`lookback` seconds before the newest
    evaluation): one index range read, however long the history is, of the columns shown only."""
    newest = session.exec(select(sa.func.max(SloStatus.evaluated_at))).one()
    if newest is None:
        return {}
    if newest.tzinfo is None:
        newest = newest.replace(tzinfo=UTC)
    columns = (
        col(SloStatus.slo_id),
        col(SloStatus.evaluated_at),
        col(SloStatus.state),
        col(SloStatus.budget_remaining),
        col(SloStatus.tier),
        col(SloStatus.detail),
        col(SloStatus.id),
    )
    rows = session.execute(
        sa.select(*columns).where(col(SloStatus.evaluated_at) >= newest - timedelta(seconds=lookback))
    ).all()
    found: dict[str, Latest] = {}
    for values in rows:
        row = Latest(*values)
        kept = found.get(row.slo_id)
        if kept is None or (row.evaluated_at, row.id) > (kept.evaluated_at, kept.id):
            found[row.slo_id] = row
    return found


def _budget_key(row: SloRow) -> tuple[int, float, str]:
    value = row.budget_remaining
    known = value is not None and math.isfinite(value)
    return (0 if known else 1, value if known and value is not None else 0.0, row.slo.id)


def overview(
    session: Session,
    specs: Sequence[Slo],
    *,
    eval_interval: float,
    now: datetime,
    service: str | None = None,
    model: str | None = None,
    state: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Overview:
    stored = newest_rows(session, lookback=max(2 * eval_interval, 300.0))
    rows = []
    for spec in specs:
        if (service and spec.service != service) or (model and spec.model != model):
            continue
        row = stored.get(spec.id)
        tier = slos.page_tier(spec)
        found = SloRow(
            slo=spec,
            state=row.state if row else State.no_data.value,
            budget_remaining=row.budget_remaining if row else None,
            tier=row.tier if row else None,
            evaluated_at=row.evaluated_at if row else None,
            detail=row.detail if row else "not evaluated yet",
            page_factor=tier.factor if tier else None,
        )
        if state and found.state != state:
            continue
        rows.append(found)
    rows.sort(key=_budget_key)  # least budget left first; not yet known last
    pages = max(1, math.ceil(len(rows) / per_page))
    page = min(max(page, 1), pages)
    shown = rows[(page - 1) * per_page : page * per_page]
    _sparklines(session, shown, now)
    last = max((r.evaluated_at for r in stored.values()), default=None)
    return Overview(
        rows=shown,
        total=len(rows),
        page=page,
        pages=pages,
        last_evaluation=last,
        services=sorted({spec.service for spec in specs}),
        models=sorted({spec.model for spec in specs if spec.model}),
    )


def _sparklines(session: Session, rows: list[SloRow], now: datetime) -> None:
    """One grouped query for the page: the highest page-tier burn in each bucket of the last day."""
    if not rows:
        return
    since = now - SPARK_SPAN
    seconds = sa.func.extract("epoch", col(SloStatus.evaluated_at))
    bucket = sa.func.floor(seconds / SPARK_BUCKET).label("bucket")
    query = (
        sa.select(col(SloStatus.slo_id), bucket, sa.func.max(col(SloStatus.page_burn)))
        .where(col(SloStatus.slo_id).in_([r.slo.id for r in rows]))
        .where(col(SloStatus.evaluated_at) >= since)
        .where(col(SloStatus.page_burn).is_not(None))
        .group_by(col(SloStatus.slo_id), bucket)
    )
    by_id = {r.slo.id: r for r in rows}
    start = since.timestamp()
    for slo_id, number, value in session.execute(query):
        if value is None or not math.isfinite(value):
            continue
        moment = (float(number) + 0.5) * SPARK_BUCKET - start
        by_id[slo_id].spark.append((min(max(moment, 0.0), SPARK_SPAN.total_seconds()), float(value)))
    for row in rows:
        row.spark.sort()


def sparkline_points(row: SloRow, width: float = 120, height: float = 28) -> dict[str, Any]:
    """The SVG polyline of a row's sparkline, scaled so the page factor's line is always in view."""
    peak = max([value for _, value in row.spark] + [row.page_factor or 1.0]) * 1.15
    span = SPARK_SPAN.total_seconds()

    def y(value: float) -> float:
        return round(height - value / peak * height, 1)

    points = " ".join(f"{round(t / span * width, 1)},{y(v)}" for t, v in row.spark)
    latest = row.spark[-1][1] if row.spark else None
    last_x = round(row.spark[-1][0] / span * width, 1) if row.spark else None
    highest = max((v for _, v in row.spark), default=None)
    return {
        "points": points,
        "threshold_y": y(row.page_factor) if row.page_factor else None,
        "last": (last_x, y(latest)) if latest is not None else None,
        "latest": latest,
        "highest": highest,
        "width": width,
        "height": height,
    }


def status_history(session: Session, slo_id: str, since: datetime) -> list[SloStatus]:
    return list(
        session.exec(
            select(SloStatus)
            .where(SloStatus.slo_id == slo_id, col(SloStatus.evaluated_at) >= since)
            .order_by(col(SloStatus.evaluated_at))
        ).all()
    )


def open_incidents(session: Session, limit: int = 20) -> Sequence[Incident]:
    return incidents.list_incidents(session, open_only=True, limit=limit)
