"""What the console's pages show, read in as few queries as a page allows. No writes here.

The overview reads the newest evaluation of every SLO from the last cycle's rows (an index on the
evaluation time), sorts by budget left, and reads the sparklines of one page of SLOs from the rollup each
cycle keeps (SloSpark): the page tier's highest burn (app/slo/service.page_burn) in each quarter hour of
the last day.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from app.incidents import service as incidents
from app.incidents.models import Incident
from app.slo import service as slos
from app.slo.burn import State
from app.slo.model import Slo
from app.slo.models import SPARK_BUCKET, SloSpark, SloStatus

SPARK_SPAN = timedelta(days=1)
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


LATEST_COLUMNS = (
    col(SloStatus.slo_id),
    col(SloStatus.evaluated_at),
    col(SloStatus.state),
    col(SloStatus.budget_remaining),
    col(SloStatus.tier),
    col(SloStatus.detail),
    col(SloStatus.id),
)


def newest_rows(session: Session, slo_ids: Sequence[str]) -> dict[str, Latest]:
    """Each SLO's newest row, of the columns shown only (app/slo/service.newest_per_slo)."""
    rows = slos.newest_per_slo(session, slo_ids, LATEST_COLUMNS)
    return {slo_id: Latest(*values) for slo_id, values in rows.items()}


def _budget_key(pair: tuple[Slo, Latest | None]) -> tuple[int, float, str]:
    spec, row = pair
    value = row.budget_remaining if row else None
    known = value is not None and math.isfinite(value)
    return (0 if known else 1, value if known and value is not None else 0.0, spec.id)


def overview(
    session: Session,
    specs: Sequence[Slo],
    *,
    now: datetime,
    service: str | None = None,
    model: str | None = None,
    state: str | None = None,
    page: int = 1,
    per_page: int = PER_PAGE,
) -> Overview:
    wanted = [
        spec
        for spec in specs
        if not (service and spec.service != service) and not (model and spec.model != model)
    ]
    stored = newest_rows(session, [spec.id for spec in wanted])
    pairs = [(spec, stored.get(spec.id)) for spec in wanted]
    if state:
        pairs = [(spec, row) for spec, row in pairs if (row.state if row else State.no_data.value) == state]
    pairs.sort(key=_budget_key)  # least budget left first; not yet known last
    pages = max(1, math.ceil(len(pairs) / per_page))
    page = min(max(page, 1), pages)
    shown = [_slo_row(spec, row) for spec, row in pairs[(page - 1) * per_page : page * per_page]]
    _sparklines(session, shown, now)
    last = max((r.evaluated_at for r in stored.values()), default=None)
    return Overview(
        rows=shown,
        total=len(pairs),
        page=page,
        pages=pages,
        last_evaluation=last,
        services=sorted({spec.service for spec in specs}),
        models=sorted({spec.model for spec in specs if spec.model}),
    )


def _slo_row(spec: Slo, row: Latest | None) -> SloRow:
    tier = slos.page_tier(spec)
    return SloRow(
        slo=spec,
        state=row.state if row else State.no_data.value,
        budget_remaining=row.budget_remaining if row else None,
        tier=row.tier if row else None,
        evaluated_at=row.evaluated_at if row else None,
        detail=row.detail if row else "not evaluated yet",
        page_factor=tier.factor if tier else None,
    )


def _sparklines(session: Session, rows: list[SloRow], now: datetime) -> None:
    """The page's sparklines from the quarter-hour rollup each cycle keeps (SloSpark): one indexed read."""
    if not rows:
        return
    since = now - SPARK_SPAN
    query = (
        sa.select(col(SloSpark.slo_id), col(SloSpark.bucket), col(SloSpark.burn))
        .where(col(SloSpark.slo_id).in_([r.slo.id for r in rows]))
        .where(col(SloSpark.bucket) >= int(since.timestamp()) // SPARK_BUCKET)
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
