from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Engine
from sqlmodel import SQLModel

import app.models  # noqa: F401
from app import db

pytestmark = pytest.mark.integration


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = db.make_engine(database_url)
    yield engine
    engine.dispose()


def schema_of(engine: Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {
        table: {column["name"] for column in inspector.get_columns(table)}
        for table in inspector.get_table_names()
        if table != "alembic_version"
    }


def test_migrations_create_exactly_the_models(engine: Engine) -> None:
    assert schema_of(engine) == {}
    db.upgrade(engine)
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_sqlite_and_postgresql_get_the_same_tables(pg_database: str, tmp_path: object) -> None:
    from tests.conftest import pg_schema_url

    sqlite_engine = db.make_engine(f"sqlite:///{tmp_path}/same.db")
    urls = pg_schema_url(pg_database)
    pg_engine = db.make_engine(next(urls))
    try:
        db.upgrade(sqlite_engine)
        db.upgrade(pg_engine)
        expected = {table.name: set(table.columns.keys()) for table in SQLModel.metadata.sorted_tables}
        assert schema_of(sqlite_engine) == expected
        assert schema_of(pg_engine) == expected
    finally:
        sqlite_engine.dispose()
        pg_engine.dispose()
        urls.close()


def test_upgrade_is_idempotent(engine: Engine) -> None:
    db.upgrade(engine)
    db.upgrade(engine)
    with engine.connect() as connection:
        revision = connection.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one()
    from alembic.script import ScriptDirectory

    assert revision == ScriptDirectory.from_config(db.alembic_config(engine)).get_current_head()


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(tmp_path: object) -> None:
    engine = db.make_engine(f"sqlite:///{tmp_path}/wal.db")
    try:
        with engine.connect() as connection:
            assert connection.execute(sa.text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert (
                connection.execute(sa.text("PRAGMA busy_timeout")).scalar_one() == db.SQLITE_BUSY_TIMEOUT_MS
            )
    finally:
        engine.dispose()
