"""The overview's read model on both databases: every SLO in budget order, paged and filtered, and the
sparklines of one page read in one query of the rollup every cycle's store keeps. The history goes in
through the evaluation store (as the scheduler writes it); the expected figures are worked out here from
the burns the test chose (the highest page-tier burn in each 15-minute bucket), not read back from the
code. The migration's backfill of the rollup from rows stored before it is checked the same way."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from app import db
from app.slo import burn
from app.slo import service as slo_service
from app.slo.burn import State
from app.slo.model import Slo
from app.slo.models import SloStatus
from app.slo.spec import load_specs
from app.web import views

SPEC = """version: "prometheus/v1"
service: "{service}"
labels: {{model: "{model}"}}
slos:
{slos}
"""
ONE = """  - name: "{name}"
    objective: 99.9
    sli:
      events:
        error_query: sum(rate(errors_total{{slo="{name}"}}[{{{{.window}}}}]))
        total_query: sum(rate(requests_total{{slo="{name}"}}[{{{{.window}}}}]))
    alerting:
      page_alert: {{}}
      ticket_alert: {{}}
"""


def write_specs(folder: Path, services: dict[str, list[str]]) -> None:
    folder.mkdir()
    for number, (service, names) in enumerate(services.items()):
        text = SPEC.format(
            service=service, model=f"model-{number}", slos="".join(ONE.format(name=n) for n in names)
        )
        (folder / f"{service}.yaml").write_text(text, encoding="utf-8")


def count_queries(engine: sa.engine.Engine) -> list[str]:
    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    return seen


def result(
    spec: Slo, at: datetime, page_burn: float | None, left: float | None = None
) -> slo_service.SloResult:
    """An evaluation whose page tier's two windows both burn at `page_burn` (the other windows at 0)."""
    tier = slo_service.page_tier(spec)
    assert tier is not None
    paging = {tier.short.name, tier.long.name}
    windows = {
        w.name: burn.WindowFigures(error_ratio=None, burn_rate=page_burn if w.name in paging else 0.0)
        for t in spec.tiers
        for w in (t.short, t.long)
    }
    state = State.page if left is not None and left < 0 else State.ok
    evaluation = burn.Evaluation(
        state=state,
        windows=windows,
        budget_remaining=left,
        time_to_exhaustion=None,
        firing=(),
        memory=burn.TierMemory(state=state),
    )
    return slo_service.SloResult(slo=spec, state=state, evaluated_at=at, evaluation=evaluation)


def test_budget_order_paging_filters_and_one_query_sparklines(tmp_path: Path, database_url: str) -> None:
    write_specs(tmp_path / "slo", {"checkout": ["a", "b", "c"], "search": ["d", "e"]})
    specs = load_specs([tmp_path / "slo"])
    by_id = {spec.id: spec for spec in specs}
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    now = datetime(2026, 12, 3, 12, 0, 7, tzinfo=UTC)
    # The last cycle: budgets chosen out of order; `search-e` was never evaluated.
    budgets = {"checkout-a": 0.62, "checkout-b": -0.40, "checkout-c": 0.05, "search-d": 0.99}
    # A day of history every 4 minutes for checkout-b: its burn climbs by 0.01 a cycle (a known shape),
    # stored oldest first as the scheduler would, with a week's retention.
    history = [now - timedelta(minutes=4 * k) for k in range(1, 361)]  # 24 h back, inside the span
    week = 7 * 86400.0
    with Session(engine) as session:
        # Older than the day: never on the sparkline.
        slo_service.store(session, [result(by_id["checkout-b"], now - timedelta(days=2), 99.0)], week)
        for k, at in sorted(enumerate(history), key=lambda pair: pair[1]):
            slo_service.store(session, [result(by_id["checkout-b"], at, 0.01 * k)], week)
        slo_service.store(session, [result(by_id[i], now, None, left) for i, left in budgets.items()], week)
        session.commit()

    with Session(engine) as session:
        statements = count_queries(engine)
        found = views.overview(session, specs, now=now)
    ids = [row.slo.id for row in found.rows]
    assert ids == ["checkout-b", "checkout-c", "checkout-a", "search-d", "search-e"]
    assert [row.budget_remaining for row in found.rows][:4] == [-0.40, 0.05, 0.62, 0.99]
    assert found.rows[-1].state == "no_data" and found.last_evaluation == now
    # The newest cycle (its time, then its rows), search-e looked up on its own (never evaluated: nothing),
    # and the sparklines: four statements for the whole page, however long the history.
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 4, selects

    # The highest burn of each 900 s bucket (buckets aligned to the epoch), computed from what was written.
    expected: dict[int, float] = {}
    for k, at in enumerate(history):
        bucket = math.floor(at.timestamp() / 900)
        expected[bucket] = max(expected.get(bucket, -1.0), 0.01 * k)
    check_spark(found.rows[0].spark, expected, now)
    assert all(not row.spark for row in found.rows[1:])

    with Session(engine) as session:
        paged = views.overview(session, specs, now=now, per_page=2, page=2)
        filtered = views.overview(session, specs, now=now, service="search")
        paging = views.overview(session, specs, now=now, state="page")
        beyond = views.overview(session, specs, now=now, per_page=2, page=99)
    assert [r.slo.id for r in paged.rows] == ["checkout-a", "search-d"] and paged.pages == 3
    assert [r.slo.id for r in filtered.rows] == ["search-d", "search-e"]
    assert [r.slo.id for r in paging.rows] == ["checkout-b"]
    assert beyond.page == 3 and [r.slo.id for r in beyond.rows] == ["search-e"]

    # Retention: a cycle two weeks on prunes the rollup with the rows; a later SLO is found on its own.
    later = now + timedelta(days=14)
    with Session(engine) as session:
        slo_service.store(session, [result(by_id["checkout-a"], later, 0.5, 0.5)], week)
        session.commit()
    with Session(engine) as session:
        after = views.overview(session, specs, now=later)
    assert [r.slo.id for r in after.rows][:1] == ["checkout-a"]
    assert {r.slo.id: r.budget_remaining for r in after.rows}["checkout-b"] is None  # pruned with its rows
    assert [value for _, value in after.rows[0].spark] == [0.5]
    engine.dispose()


def check_spark(spark: list[tuple[float, float]], expected: dict[int, float], now: datetime) -> None:
    assert len(spark) == len(expected) <= 97
    start = (now - timedelta(days=1)).timestamp()
    for (offset, value), bucket in zip(spark, sorted(expected), strict=True):
        assert math.isclose(value, expected[bucket])
        assert math.isclose(offset, min(max((bucket + 0.5) * 900 - start, 0), 86400))


def test_the_rollup_is_filled_from_rows_stored_before_it(tmp_path: Path, database_url: str) -> None:
    """An installation upgraded from 0016 keeps its day of sparklines: the migration rolls up its rows."""
    write_specs(tmp_path / "slo", {"checkout": ["b"]})
    specs = load_specs([tmp_path / "slo"])
    engine = db.make_engine(database_url)
    db.upgrade(engine, "0016_gate_exceptions")
    now = datetime(2026, 12, 3, 12, 0, 7, tzinfo=UTC)
    history = [now - timedelta(minutes=7 * k) for k in range(0, 200)]
    burns = {at: (k * 37 % 11) / 4 for k, at in enumerate(history)}  # up and down, not monotonic
    with engine.begin() as connection:
        connection.execute(
            sa.insert(SloStatus.__table__),  # type: ignore[attr-defined]
            [
                {"slo_id": "checkout-b", "evaluated_at": at, "windows": {}, "state": "ok", "page_burn": b}
                for at, b in burns.items()
            ],
        )
    db.upgrade(engine)
    expected: dict[int, float] = {}
    for at, value in burns.items():
        if at >= now - timedelta(days=1):
            bucket = math.floor(at.timestamp() / 900)
            expected[bucket] = max(expected.get(bucket, -1.0), value)
    with Session(engine) as session:
        found = views.overview(session, specs, now=now)
    check_spark(found.rows[0].spark, expected, now)
    engine.dispose()
