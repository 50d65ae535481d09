"""Each SLO's newest stored evaluation, on both databases, in a number of statements that does not grow
with the history: the newest cycle's rows by their shared time, and one index probe for each SLO that
cycle does not answer for. The expected rows are the ones this test wrote, chosen by hand."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session

from app import db
from app.slo import service
from app.slo.models import SloStatus

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)


def test_newest_row_of_each_slo_and_the_last_judged_state(database_url: str) -> None:
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    rows = []
    for minute in range(120, 0, -1):  # two hours of cycles for a, b and c, oldest first
        at = NOW - timedelta(minutes=minute)
        rows += [
            SloStatus(slo_id=slo, evaluated_at=at, state="ok", budget_remaining=minute / 1000)
            for slo in "abc"
        ]
    # b pages a minute before the last cycle, which only saw its source fail; c left the SLO files two
    # minutes before the last cycle (its newest row is older); d is known but was never evaluated.
    rows.append(
        SloStatus(slo_id="b", evaluated_at=NOW - timedelta(seconds=30), state="page", tier="page-fast")
    )
    rows += [
        SloStatus(slo_id="a", evaluated_at=NOW, state="ticket", tier="ticket-slow", budget_remaining=0.5),
        SloStatus(slo_id="b", evaluated_at=NOW, state="source_error", detail="prometheus: timed out"),
        SloStatus(slo_id="e", evaluated_at=NOW, state="ok"),  # not asked for: not returned
    ]
    with Session(engine) as session:
        session.add_all(rows)
        session.commit()
        session.execute(
            sa.delete(SloStatus).where(
                SloStatus.slo_id == "c", SloStatus.evaluated_at > NOW - timedelta(minutes=3)
            )
        )  # type: ignore[arg-type]
        session.commit()

    seen: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *args: seen.append(args[2]))
    with Session(engine) as session:
        newest = service.newest_per_slo(session, ["a", "b", "c", "d"], [SloStatus])
        states = service.latest_states(session, ["a", "b", "c", "d"])
    assert {slo: (row.state, row.evaluated_at) for slo, row in newest.items()} == {
        "a": ("ticket", NOW),
        "b": ("source_error", NOW),
        "c": ("ok", NOW - timedelta(minutes=3)),
    }
    assert newest["a"].budget_remaining == 0.5
    # The judged state looks past b's failed read to its page; c's last judged row is its newest.
    assert states == {"a": ("ticket", "ticket-slow"), "b": ("page", "page-fast"), "c": ("ok", None)}
    # Newest time + that cycle's rows + one probe each for c and d; the same again with the state filter,
    # where b too is probed: 4 + 5 statements, however many cycles are stored.
    selects = [s for s in seen if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 9, selects
    engine.dispose()
