"""db.unit_of_work's retry rule, on real SQLite and PostgreSQL errors: a unit that lost a race to a unique
key runs again; one that breaks a rule the next attempt would break too (NOT NULL) is raised at once."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlmodel import Session

from app import db

pytestmark = pytest.mark.integration
METADATA = sa.MetaData()
ROWS = sa.Table(
    "uow_rows",
    METADATA,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(20), unique=True),
    sa.Column("note", sa.String(20), nullable=False),
)


def engine_with_rows(database_url: str) -> sa.Engine:
    engine = db.make_engine(database_url)
    METADATA.create_all(engine)
    with engine.begin() as connection:
        connection.execute(sa.insert(ROWS).values(id=1, key="taken", note="first"))
    return engine


def test_a_unique_conflict_is_run_again_and_a_not_null_is_raised_at_once(database_url: str) -> None:
    engine = engine_with_rows(database_url)
    attempts: list[str] = []

    def claim(session: Session, events: db.Events) -> str:
        # The first attempt takes a key a "concurrent writer" holds; the retry picks the next one.
        key = "taken" if not attempts else "free"
        attempts.append(key)
        session.execute(sa.insert(ROWS).values(key=key, note="retry"))
        return key

    assert db.unit_of_work(engine, None, claim) == "free"
    assert attempts == ["taken", "free"]

    tries = 0

    def broken(session: Session, events: db.Events) -> None:
        nonlocal tries
        tries += 1
        session.execute(sa.insert(ROWS).values(key="other", note=None))

    with pytest.raises(sa.exc.IntegrityError):
        db.unit_of_work(engine, None, broken)
    assert tries == 1  # not retried: the next attempt would fail the same way
    engine.dispose()


def test_lost_race_reads_the_drivers_error_code(database_url: str) -> None:
    engine = engine_with_rows(database_url)
    caught: dict[str, sa.exc.DBAPIError] = {}
    for name, values in {
        "unique": {"key": "taken", "note": "x"},
        "not null": {"key": "n", "note": None},
    }.items():
        with engine.connect() as connection:
            try:
                connection.execute(sa.insert(ROWS).values(**values))
            except sa.exc.DBAPIError as exc:
                caught[name] = exc
    assert db.lost_race(caught["unique"]) is True
    assert db.lost_race(caught["not null"]) is False
    engine.dispose()
