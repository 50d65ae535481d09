"""The overview's read model on both databases: every SLO in budget order, paged and filtered, and the
sparklines of one page read in one grouped query. The expected figures are worked out here from the
rows the test writes (the highest page-tier burn in each 15-minute bucket), not read back from the code."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session

from app import db
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


def test_budget_order_paging_filters_and_one_query_sparklines(tmp_path: Path, database_url: str) -> None:
    write_specs(tmp_path / "slo", {"checkout": ["a", "b", "c"], "search": ["d", "e"]})
    specs = load_specs([tmp_path / "slo"])
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    now = datetime(2026, 12, 3, 12, 0, 7, tzinfo=UTC)
    # The last cycle: budgets chosen out of order; `search-e` was never evaluated.
    budgets = {"checkout-a": 0.62, "checkout-b": -0.40, "checkout-c": 0.05, "search-d": 0.99}
    # A day of history every 4 minutes for checkout-b: its burn climbs by 0.01 a row (a known shape).
    history = [now - timedelta(minutes=4 * k) for k in range(1, 361)]  # 24 h back, inside the span
    with Session(engine) as session:
        for k, at in enumerate(history):
            session.add(SloStatus(slo_id="checkout-b", evaluated_at=at, state="ok", page_burn=0.01 * k))
        # Older than the day: never on the sparkline.
        session.add(
            SloStatus(slo_id="checkout-b", evaluated_at=now - timedelta(days=2), state="ok", page_burn=99)
        )
        for slo_id, left in budgets.items():
            session.add(
                SloStatus(
                    slo_id=slo_id, evaluated_at=now, state="page" if left < 0 else "ok", budget_remaining=left
                )
            )
        session.commit()

    with Session(engine) as session:
        statements = count_queries(engine)
        found = views.overview(session, specs, eval_interval=60, now=now)
    ids = [row.slo.id for row in found.rows]
    assert ids == ["checkout-b", "checkout-c", "checkout-a", "search-d", "search-e"]
    assert [row.budget_remaining for row in found.rows][:4] == [-0.40, 0.05, 0.62, 0.99]
    assert found.rows[-1].state == "no_data" and found.last_evaluation == now
    # newest cycle (max, then its rows) and the sparklines: three statements for the whole page
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 3, selects

    # The highest burn of each 900 s bucket (buckets aligned to the epoch), computed from what was written.
    expected: dict[int, float] = {}
    for k, at in enumerate(history):
        bucket = math.floor(at.timestamp() / 900)
        expected[bucket] = max(expected.get(bucket, -1.0), 0.01 * k)
    spark = found.rows[0].spark
    assert len(spark) == len(expected) <= 97
    start = (now - timedelta(days=1)).timestamp()
    for (offset, value), bucket in zip(spark, sorted(expected), strict=True):
        assert math.isclose(value, expected[bucket])
        assert math.isclose(offset, min(max((bucket + 0.5) * 900 - start, 0), 86400))
    assert all(not row.spark for row in found.rows[1:])

    with Session(engine) as session:
        paged = views.overview(session, specs, eval_interval=60, now=now, per_page=2, page=2)
        filtered = views.overview(session, specs, eval_interval=60, now=now, service="search")
        paging = views.overview(session, specs, eval_interval=60, now=now, state="page")
        beyond = views.overview(session, specs, eval_interval=60, now=now, per_page=2, page=99)
    assert [r.slo.id for r in paged.rows] == ["checkout-a", "search-d"] and paged.pages == 3
    assert [r.slo.id for r in filtered.rows] == ["search-d", "search-e"]
    assert [r.slo.id for r in paging.rows] == ["checkout-b"]
    assert beyond.page == 3 and [r.slo.id for r in beyond.rows] == ["search-e"]
    engine.dispose()
