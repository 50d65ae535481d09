"""Which replica runs the scheduled jobs.

On PostgreSQL, the leader is the replica holding a session-level advisory lock on a connection it keeps
open for that purpose alone. A replica that dies (or whose connection drops) loses the lock with its
session; the others try for it every third of the takeover time, so one of them takes over within it.
The leader checks its connection just as often and steps down the moment the check fails, and the
session sets `idle_session_timeout` to the takeover time, so a leader cut off from the database by the
network lets the lock go on the server side too. On SQLite (one process by design) the process leads.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

log = logging.getLogger(__name__)
# Advisory lock keys are shared by every application on the database: ours is a hash of a name and the
# schema, so two sloguard deployments in two schemas of one database each have their own leader.
TRY_LOCK = "SELECT pg_try_advisory_lock(hashtextextended('sloguard-scheduler:' || current_schema(), 0))"


def replica_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


class Leadership:
    """The in-process case: always the leader."""

    mode = "in-process"

    def __init__(self) -> None:
        self.replica = replica_name()
        self._listeners: list[Callable[[bool], None]] = []

    @property
    def is_leader(self) -> bool:
        return True

    def on_change(self, listener: Callable[[bool], None]) -> None:
        """Call `listener(leading)` when this replica becomes or stops being the leader."""
        self._listeners.append(listener)

    def _announce(self, leading: bool) -> None:
        for listener in self._listeners:
            try:
                listener(leading)
            except Exception:
                log.exception("leadership listener failed")

    def start(self) -> None:
        self._announce(True)

    def stop(self) -> None:
        pass

    def describe(self) -> dict[str, Any]:
        return {"mode": self.mode, "leader": self.is_leader, "replica": self.replica}

    def guard(self, func: Callable[[], object]) -> Callable[[], object]:
        """`func` as a scheduled job that only runs on the leader."""

        def job() -> object:
            return func() if self.is_leader else None

        return job


class AdvisoryLockLeadership(Leadership):
    """Leadership through `pg_try_advisory_lock` on a dedicated PostgreSQL connection."""

    mode = "postgresql-advisory-lock"

    def __init__(self, database_url: str, takeover_seconds: float) -> None:
        super().__init__()
        self.interval = max(0.2, takeover_seconds / 3)
        url = make_url(database_url)
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        connect_timeout = max(1, int(self.interval))
        self.engine = sa.create_engine(
            url,
            poolclass=NullPool,
            connect_args={
                "connect_timeout": connect_timeout,
                "application_name": "sloguard-leader",
                # A dead peer is noticed in seconds rather than the kernel's two hours.
                "keepalives": 1,
                "keepalives_idle": connect_timeout,
                "keepalives_interval": 1,
                "keepalives_count": 3,
            },
        )
        self.idle_timeout_ms = int(takeover_seconds * 1000)
        self._connection: Connection | None = None
        self._leading = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def is_leader(self) -> bool:
        return self._leading

    def start(self) -> None:
        self.tick()  # decide right away, so a lone replica leads from its first second
        self._thread = threading.Thread(target=self._loop, name="sloguard-leader", daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()

    def tick(self) -> None:
        """Check the held lock, or try to take it."""
        with self._lock:
            try:
                if self._connection is None:
                    self._connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
                    self._limit_idle_session(self._connection)
                if self._leading:
                    self._connection.execute(sa.text("SELECT 1"))
                    return
                got = self._connection.execute(sa.text(TRY_LOCK)).scalar()
            except SQLAlchemyError as exc:
                log.warning("leader lock connection failed", extra={"error": type(exc).__name__})
                self._drop_connection()
                if self._leading:
                    self._set(False)
                return
            if got:
                self._set(True)

    def _limit_idle_session(self, connection: Connection) -> None:
        """PostgreSQL 14+ ends this session (and frees the lock) once idle for the takeover time: a
        leader cut off by the network cannot hold the lock for the kernel's keepalive time."""
        try:
            connection.execute(
                sa.text("SELECT set_config('idle_session_timeout', :ms, false)"),
                {"ms": str(self.idle_timeout_ms)},
            )
        except sa.exc.ProgrammingError:
            log.info("idle_session_timeout not supported by this PostgreSQL; relying on keepalives")

    def _set(self, leading: bool) -> None:
        self._leading = leading
        log.info("scheduler leadership changed", extra={"leader": leading, "replica": self.replica})
        self._announce(leading)

    def _drop_connection(self) -> None:
        if self._connection is not None:
            try:
                self._connection.invalidate()
                self._connection.close()
            except SQLAlchemyError:
                pass
            self._connection = None

    def stop(self) -> None:
        """Let the lock go at once (closing the session releases it), so another replica takes over."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        with self._lock:
            if self._connection is not None:
                try:
                    self._connection.close()
                except SQLAlchemyError:
                    pass
                self._connection = None
            if self._leading:
                self._set(False)
        self.engine.dispose()


def leadership_for(database_url: str, takeover_seconds: float) -> Leadership:
    if make_url(database_url).get_backend_name() == "postgresql":
        return AdvisoryLockLeadership(database_url, takeover_seconds)
    return Leadership()
