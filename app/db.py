"""Engine, sessions and migrations.

The schema changes only through Alembic (`app/migrations/versions`); start-up and `sloguard db upgrade` apply
the migrations. SQLite is the embedded default (WAL, busy timeout, foreign keys on); PostgreSQL is for
anything shared.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import weakref
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import Dialect, Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Session, create_engine

log = logging.getLogger(__name__)

ALEMBIC_DIR = Path(__file__).resolve().parent / "migrations"  # inside the package: wheels carry it
SQLITE_BUSY_TIMEOUT_MS = 5000


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """Timezone-aware timestamps on every backend: stored as UTC, read back with tzinfo=UTC.

    SQLite has no time zones, so without this a value written aware would come back naive and
    compare wrongly with `datetime.now(UTC)`.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(connection: sa.Connection) -> None:
    """Start a real transaction at the first statement.

    The sqlite3 module otherwise runs SELECTs outside any transaction and only opens one before the
    first write, so one unit of work could read two different database states. With an explicit
    BEGIN every unit of work reads one snapshot; a writer that lost a race gets "database is locked"
    and is retried by the caller.
    """
    connection.exec_driver_sql("BEGIN")


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url`, configured for concurrent use by the web server and the jobs."""
    if database_url.startswith("sqlite"):
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        sa.event.listen(engine, "connect", _sqlite_pragmas)
        sa.event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        database_url,
        pool_pre_ping=True,
        pool_size=10,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    with Session(engine, expire_on_commit=False) as session:
        yield session


def alembic_config(engine: Engine) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(ALEMBIC_DIR))
    config.attributes["engine"] = engine
    return config


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Apply migrations up to `revision` on `engine`'s database."""
    command.upgrade(alembic_config(engine), revision)
    log.info("database migrated", extra={"revision": revision})


# Whole statements, values bound: SQL is never assembled from strings (tests/security scans for it).
ADVISORY_LOCK = "SELECT pg_advisory_lock(hashtextextended(:name || current_schema(), :key))"
ADVISORY_UNLOCK = "SELECT pg_advisory_unlock(hashtextextended(:name || current_schema(), :key))"


# SQLite has one writer at a time, and it refuses a transaction that read before writing at once ("database
# is locked", the busy timeout does not apply) when another writer committed meanwhile. Under a burst of
# Alertmanager notifications this process's own commands then knocked each other out until the retries ran
# out (HTTP 500). They queue on one lock per database instead; PostgreSQL orders its writers itself (row
# locks, unique keys). Reentrant, so that a command that ends up writing again cannot deadlock itself.
_sqlite_writers: weakref.WeakKeyDictionary[Engine, threading.RLock] = weakref.WeakKeyDictionary()
_sqlite_writers_guard = threading.Lock()


def writer_lock(engine: Engine) -> AbstractContextManager[Any]:
    """Held around a unit of work that reads and then writes: on SQLite every such writer of this
    process takes turns; on PostgreSQL it is a no-op."""
    if engine.dialect.name != "sqlite":
        return contextlib.nullcontext()
    with _sqlite_writers_guard:
        return _sqlite_writers.setdefault(engine, threading.RLock())


@contextmanager
def advisory_lock(engine: Engine, name: str, key: int = 0) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock named by `name` (and `key`, e.g. a row id) in this schema, on a
    connection of its own, for the duration of the block: one holder across every replica. On SQLite
    (one process) it does nothing; callers pair it with a thread lock where threads compete."""
    if engine.dialect.name != "postgresql":
        yield
        return
    params = {"name": f"sloguard:{name}:", "key": key}
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        connection.execute(sa.text(ADVISORY_LOCK), params)
        try:
            yield
        finally:
            connection.execute(sa.text(ADVISORY_UNLOCK), params)


def ping(engine: Engine) -> None:
    """Raise if the database does not answer a trivial query."""
    with engine.connect() as connection:
        connection.execute(sa.text("SELECT 1"))
