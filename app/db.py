"""Engine, sessions and migrations.

The schema changes only through Alembic (`app/migrations/versions`); start-up and `sloguard db upgrade` apply
the migrations. SQLite is the embedded default (WAL, busy timeout, foreign keys on); PostgreSQL is for
anything shared.

Storage that notices: the migration that creates the `installation` table writes one row with a random id.
After migrating, the service remembers that id (`remember_installation`); from then on each new database
connection checks that the row is still there and the same, and on SQLite each transaction first checks
that the file is still the one it opened (device and inode: a folder removed under a running service
leaves open connections writing into deleted files). Any mismatch raises StorageReplaced (HTTP 503), and
nothing re-migrates a re-created database while the service runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from sqlalchemy.engine import URL, Dialect, Engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlmodel import Field, Session, SQLModel, create_engine

from app.errors import StorageReplaced

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


class Installation(SQLModel, table=True):
    """Which database this is: one row, written by the migration that creates the table (0008)."""

    __tablename__ = "installation"

    id: str = Field(primary_key=True, max_length=36)  # a random UUID
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


INSTALLATION_QUERY = "SELECT id FROM installation"


def describe_database(url: URL) -> str:
    """Where a database is, for messages people read: the SQLite file, or backend://host:port/name.
    Never the user, the password or the query string."""
    backend = url.get_backend_name()
    if backend == "sqlite":
        return _sqlite_file(url) or "an in-memory SQLite database"
    port = f":{url.port}" if url.port else ""
    return f"{backend}://{url.host or 'localhost'}{port}/{url.database or ''}"


def _sqlite_file(url: URL) -> str | None:
    database = url.database or ""
    if database in ("", ":memory:") or url.query.get("mode") == "memory":
        return None
    return os.path.abspath(database)


def _missing_table(exc: BaseException) -> bool:
    """True for "no such table" from SQLite or PostgreSQL (SQLSTATE 42P01), raw or wrapped by SQLAlchemy."""
    orig = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    return getattr(orig, "sqlstate", None) == "42P01" or "no such table" in str(orig)


@dataclass
class StorageGuard:
    """What this process saw when it started (after migrating); checked again on every new connection and,
    on SQLite, at every transaction. Nothing is checked until `pin` (so the first migration can run)."""

    where: str
    sqlite_file: str | None
    installation_id: str | None = None
    file_identity: tuple[int, int] | None = None

    def pin(self, installation_id: str) -> None:
        if self.sqlite_file is not None:
            found = os.stat(self.sqlite_file)
            self.file_identity = (found.st_dev, found.st_ino)
        self.installation_id = installation_id

    def refusal(self, what: str) -> StorageReplaced:
        return StorageReplaced(
            f"the database at {self.where} was replaced or removed ({what}); "
            "restart sloguard after restoring it"
        )

    def check_file(self) -> None:
        """The SQLite file is still the one opened at start. An os.stat: about a microsecond."""
        if self.file_identity is None or self.sqlite_file is None:
            return
        try:
            found = os.stat(self.sqlite_file)
        except OSError as exc:
            raise self.refusal(f"the file is gone: {exc.strerror}") from exc
        if (found.st_dev, found.st_ino) != self.file_identity:
            raise self.refusal("another file is in its place")

    def check_ids(self, ids: Sequence[str] | None) -> None:
        """`ids`: the installation table's ids as read now (None: the table is gone)."""
        if self.installation_id is None:
            return
        if ids is None:
            raise self.refusal("its installation table is gone")
        if list(ids) != [self.installation_id]:
            shown = ", ".join(ids) or "none"
            raise self.refusal(f"installation {self.installation_id} expected, found {shown}")

    def check_connection(self, dbapi_connection: Any) -> None:
        """A new DBAPI connection reaches the same installation (one query, then its transaction ends)."""
        if self.installation_id is None:
            return
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(INSTALLATION_QUERY)
            ids: list[str] | None = [str(row[0]) for row in cursor.fetchall()]
        except Exception as exc:
            if not _missing_table(exc):
                raise
            ids = None
        finally:
            cursor.close()
            dbapi_connection.rollback()
        self.check_ids(ids)


# One guard per engine; an engine that was never pinned (tools, tests of migrations) checks nothing.
_guards: weakref.WeakKeyDictionary[Engine, StorageGuard] = weakref.WeakKeyDictionary()


def _sqlite_pragmas(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin (see _sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(guard: StorageGuard, connection: sa.Connection) -> None:
    """Start a real transaction at the first statement, in the file this process started on.

    The sqlite3 module otherwise runs SELECTs outside any transaction and only opens one before the
    first write, so one unit of work could read two different database states. With an explicit
    BEGIN every unit of work reads one snapshot; a writer that lost a race gets "database is locked"
    and is retried by the caller. An open connection to a deleted file would go on "working", so the
    file is checked first.
    """
    guard.check_file()
    connection.exec_driver_sql("BEGIN")


def _on_connect(guard: StorageGuard, sqlite: bool) -> Any:
    def connect(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        try:
            if sqlite:
                _sqlite_pragmas(dbapi_connection, record)
            guard.check_connection(dbapi_connection)
        except BaseException:
            dbapi_connection.close()  # the pool never sees it
            raise

    return connect


def make_engine(database_url: str) -> Engine:
    """An engine for `database_url`, configured for concurrent use by the web server and the jobs."""
    sqlite = database_url.startswith("sqlite")
    if sqlite:
        engine = create_engine(
            database_url,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
    else:
        engine = create_engine(
            database_url,
            pool_pre_ping=True,
            pool_size=10,
            max_overflow=10,
            connect_args={"connect_timeout": 5},
        )
    guard = StorageGuard(describe_database(engine.url), _sqlite_file(engine.url) if sqlite else None)
    _guards[engine] = guard
    sa.event.listen(engine, "connect", _on_connect(guard, sqlite))
    if sqlite:
        # Before sqlite3 opens the path: in a folder put back it would create an empty file there.
        sa.event.listen(engine, "do_connect", lambda *_: guard.check_file())
        sa.event.listen(engine, "begin", lambda connection: _sqlite_begin(guard, connection))
    return engine


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
    """Apply migrations up to `revision` on `engine`'s database.

    An empty database is migrated from scratch: that is how an installation begins. A database that was
    re-created empty under a stopped service cannot be told apart from a new one here, so it is said
    loudly; under a running service it is refused instead (see StorageGuard).
    """
    with engine.connect() as connection:
        before = MigrationContext.configure(connection).get_current_revision()
    if before is None:
        log.warning(
            "empty database: creating a new sloguard installation; if it held sloguard's data before, "
            "stop now and restore it",
            extra={"database": describe_database(engine.url)},
        )
    command.upgrade(alembic_config(engine), revision)
    log.info("database migrated", extra={"revision": revision})


def remember_installation(engine: Engine) -> str:
    """Pin `engine` to the installation it reaches now (call after `upgrade`); return its id.

    From here on, a new connection that finds another installation (or none), and on SQLite a transaction
    whose file was removed or replaced, raises StorageReplaced instead of reading or writing.
    """
    guard = _guards[engine]
    with engine.connect() as connection:
        ids = [str(found) for found in connection.execute(sa.text(INSTALLATION_QUERY)).scalars()]
    if len(ids) != 1:
        raise StorageReplaced(
            f"the database at {guard.where} has {len(ids)} installation rows; sloguard writes exactly one"
        )
    guard.pin(ids[0])
    log.info("database installation", extra={"installation": ids[0], "database": guard.where})
    return ids[0]


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


Events = list[Any]  # what a unit of work announces; reacted to inside its transaction
T = TypeVar("T")
UNIT_ATTEMPTS = 12


# A concurrent writer won: a unique key it took first (SQLite, PostgreSQL 23505), SQLite busy or locked,
# PostgreSQL serialization failure (40001) or deadlock (40P01). Other errors (a foreign key, NOT NULL)
# would fail the same way again: they are raised at once.
RACE_SQLITE_ERRORS = (
    "SQLITE_BUSY",
    "SQLITE_LOCKED",
    "SQLITE_CONSTRAINT_UNIQUE",
    "SQLITE_CONSTRAINT_PRIMARYKEY",
)
RACE_SQLSTATES = ("23505", "40001", "40P01")


def lost_race(exc: sa.exc.DBAPIError) -> bool:
    """Whether a failed commit lost a race with a concurrent writer (so running the unit again may win),
    judged by the driver's error code, not its message."""
    orig = exc.orig
    name = str(getattr(orig, "sqlite_errorname", ""))
    return name.startswith(RACE_SQLITE_ERRORS) or getattr(orig, "sqlstate", None) in RACE_SQLSTATES


class Reactor(Protocol):
    """What reacts to a unit's events inside its transaction (the domain event dispatcher)."""

    def react(self, session: Session, events: Events) -> None: ...


def unit_of_work(engine: Engine, reactor: Reactor | None, unit: Callable[[Session, Events], T]) -> T:
    """Run `unit(session, events)` in one transaction, let `reactor` react to the events it announced in
    the same transaction (opening an incident for a breach, recording the outbox rows of what must follow),
    and commit.

    The retry rule: a unit whose commit loses a race — a unique key a concurrent writer took first (two
    replicas opening one incident), SQLite's "database is locked", a PostgreSQL deadlock — is rolled back
    and run again from the start, up to UNIT_ATTEMPTS times. So a unit must be safe to repeat: it reads and
    writes the database through `session` and nothing else. It never calls Slack, a source, a rollback
    target or the file system; those effects are outbox rows (`app.outbox.enqueue`), delivered after the
    commit by the outbox worker. On SQLite the unit runs in this process's writer turn (writer_lock).
    """
    for attempt in range(UNIT_ATTEMPTS):
        events: Events = []
        try:
            with writer_lock(engine), Session(engine, expire_on_commit=False) as session:
                result = unit(session, events)
                if reactor is not None:
                    reactor.react(session, events)
                session.commit()
        except (sa.exc.IntegrityError, sa.exc.OperationalError) as exc:
            # Leaving the session rolled the transaction back; the wait below is outside the lock.
            if not lost_race(exc) or attempt == UNIT_ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0.005, 0.02) * (attempt + 1))
            continue
        return result
    raise RuntimeError("unreachable")


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


def installation_id(engine: Engine) -> str | None:
    """The installation `engine` was pinned to (None before `remember_installation`)."""
    guard = _guards.get(engine)
    return guard.installation_id if guard is not None else None


def check(engine: Engine) -> str | None:
    """Raise unless the database answers and is still the installation `engine` was pinned to (whose id is
    returned; None for an engine never pinned, which is only asked to answer)."""
    guard = _guards.get(engine)
    with engine.connect() as connection:
        if guard is None or guard.installation_id is None:
            connection.execute(sa.text("SELECT 1"))
            return None
        try:
            ids: list[str] | None = [
                str(found) for found in connection.execute(sa.text(INSTALLATION_QUERY)).scalars()
            ]
        except sa.exc.DBAPIError as exc:
            if not _missing_table(exc):
                raise
            ids = None
        guard.check_ids(ids)
    return guard.installation_id
