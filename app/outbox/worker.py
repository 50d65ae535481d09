"""The outbox's delivery worker: threads per lane on every replica, claiming due rows (see the package's
docstring for the rules), running their handlers and recording the outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from app import db
from app.config import OutboxOptions, hide_url_password
from app.db import utcnow
from app.outbox import (
    CHAT,
    DEAD,
    DONE,
    ERROR_LIMIT,
    PENDING,
    WORK,
    Backlog,
    Claimed,
    Completion,
    DeliveryFailed,
    Effect,
    Handler,
    OutboxRow,
    _has_due,
    _ours,
    _waker,
    backlog,
    backoff,
    claim,
    lane_of,
    prune,
)

log = logging.getLogger(__name__)


class Worker:
    """Delivers this database's outbox from this replica: threads per lane, woken by local commits and
    looking for other replicas' rows every `poll_interval`. A gauge thread measures the backlog and prunes
    delivered rows."""

    def __init__(
        self,
        engine: Engine,
        handlers: dict[str, Handler],
        options: OutboxOptions,
        *,
        dispatcher: db.Reactor | None = None,
        metrics: Any = None,
        replica: str = "",
    ) -> None:
        self.engine, self.handlers, self.options = engine, handlers, options
        self.dispatcher, self.metrics, self.replica = dispatcher, metrics, replica
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.latest = Backlog()

    # -------------------------------------------------- lifecycle

    def start(self) -> None:
        if self.engine.dialect.name == "sqlite":
            # One process serves a SQLite database: a lease left by a process that is gone is void.
            with db.writer_lock(self.engine), self.engine.begin() as connection:
                connection.execute(
                    sa.update(OutboxRow)
                    .where(col(OutboxRow.state) == PENDING, col(OutboxRow.lease_until).is_not(None))
                    .values(lease_until=None, claim=None)
                )
        lanes = [(CHAT, self.options.chat_workers), (WORK, self.options.work_workers)]
        for lane, count in lanes:
            for number in range(count):
                thread = threading.Thread(
                    target=self._run, args=(lane,), name=f"outbox-{lane}-{number}", daemon=True
                )
                self._threads.append(thread)
        self._threads.append(threading.Thread(target=self._measure, name="outbox-gauges", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Let deliveries in progress finish (up to `timeout`); what is left stays in the outbox."""
        self._stop.set()
        for lane in (CHAT, WORK):
            _waker(self.engine, lane).set()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -------------------------------------------------- delivering

    def _run(self, lane: str) -> None:
        waker = _waker(self.engine, lane)
        while not self._stop.is_set():
            try:
                delivered = self.deliver_one(lane)
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("outbox worker failed; trying again shortly", extra={"lane": lane})
                delivered = False
                self._stop.wait(self.options.poll_interval)
            if delivered:
                continue
            waker.wait(self.options.poll_interval)
            waker.clear()

    def deliver_one(self, lane: str) -> bool:
        """Claim and deliver one due row of `lane`; False when there was none."""
        if not _has_due(self.engine, lane):
            return False
        claimed = claim(self.engine, lane, self.options.lease)
        if claimed is None:
            return False
        row = claimed.row
        assert row.id is not None
        handler = self.handlers.get(row.kind)
        if handler is None:
            # Written by a newer (or older) sloguard with a kind this one does not know: left for a
            # replica that does, and counted as failing meanwhile.
            self._failed(claimed, DeliveryFailed(f"no handler for {row.kind!r} in this version", sent=False))
            return True
        effect = Effect(
            id=row.id,
            kind=row.kind,
            group=row.group_key,
            incident_id=row.incident_id,
            payload=dict(row.payload),
            progress=dict(row.progress),
            attempts=row.attempts,
            uncertain=claimed.uncertain,
            created_at=row.created_at,
            checkpoint=lambda progress: self._checkpoint(claimed, progress),
        )
        try:
            with self._holding(claimed):
                completion = handler(effect)
        except DeliveryFailed as exc:
            self._failed(claimed, exc)
            return True
        except Exception as exc:
            log.warning(
                "outbox delivery failed",
                extra={"outbox_id": row.id, "kind": row.kind, "error": type(exc).__name__},
                exc_info=True,
            )
            self._failed(claimed, DeliveryFailed(f"{type(exc).__name__}: {exc}"))
            return True
        try:
            self._done(claimed, completion)
        except Exception as exc:
            # Delivered, but what it should record could not be stored: tried again like a failure (the
            # handler finds what it did, e.g. the Slack message by its metadata, since the row stays
            # uncertain).
            log.warning("recording an outbox delivery failed", extra={"outbox_id": row.id}, exc_info=True)
            self._failed(
                claimed, DeliveryFailed(f"recording the delivery failed: {type(exc).__name__}: {exc}")
            )
        return True

    @contextmanager
    def _holding(self, claimed: Claimed) -> Iterator[None]:
        """Renew the claim's lease every third of it while the handler runs: only a replica that stopped
        (or lost the database) lets its lease run out, never a slow delivery."""
        done = threading.Event()

        def renew() -> None:
            while not done.wait(self.options.lease / 3):
                try:
                    with db.writer_lock(self.engine), self.engine.begin() as connection:
                        connection.execute(
                            sa.update(OutboxRow)
                            .where(col(OutboxRow.id) == claimed.row.id, col(OutboxRow.claim) == claimed.token)
                            .values(lease_until=utcnow() + timedelta(seconds=self.options.lease))
                        )
                except Exception:
                    log.warning("could not renew an outbox lease", extra={"outbox_id": claimed.row.id})

        renewer = threading.Thread(target=renew, name="outbox-lease", daemon=True)
        renewer.start()
        try:
            yield
        finally:
            done.set()
            renewer.join()

    def _checkpoint(self, claimed: Claimed, progress: dict[str, Any]) -> None:
        def command(session: Session, events: db.Events) -> None:
            row = _ours(session, claimed)
            if row is not None:
                row.progress = progress
                session.add(row)

        db.unit_of_work(self.engine, None, command)

    def _done(self, claimed: Claimed, completion: Completion | None) -> None:
        now = utcnow()

        def command(session: Session, events: db.Events) -> bool:
            row = _ours(session, claimed)
            if row is None:
                return False  # the lease ran out and another replica took the row over
            if completion is not None:
                completion(session, events)
            row.state, row.delivered_at, row.lease_until, row.claim = DONE, now, None, None
            row.uncertain, row.last_error = False, None
            session.add(row)
            if claimed.collapsed:
                session.execute(
                    sa.update(OutboxRow)
                    .where(col(OutboxRow.id).in_(claimed.collapsed), col(OutboxRow.state) == PENDING)
                    .values(state=DONE, delivered_at=now, last_error=f"redrawn by {row.id}")
                )
            return True

        if not db.unit_of_work(self.engine, self.dispatcher, command):
            log.warning("outbox row delivered after its lease ran out", extra={"outbox_id": claimed.row.id})
            return
        if self.metrics is not None:
            self.metrics.outbox_delivered.labels(claimed.row.kind).inc()

    def _failed(self, claimed: Claimed, failure: DeliveryFailed) -> None:
        now = utcnow()
        kind = claimed.row.kind
        cap = self.options.chat_backoff_cap if lane_of(kind) == CHAT else self.options.work_backoff_cap

        def command(session: Session, events: db.Events) -> str | None:
            row = _ours(session, claimed)
            if row is None:
                return None
            wait = backoff(row.attempts, cap)
            if failure.retry_after is not None:
                wait = max(wait, failure.retry_after)  # never before the other side said
            row.not_before = now + timedelta(seconds=wait)
            row.lease_until, row.claim = None, None
            # Still uncertain if an earlier attempt may have reached the other side, or this one may have.
            row.uncertain = claimed.uncertain or failure.sent
            row.last_error = hide_url_password(failure.reason)[:ERROR_LIMIT]
            if now - row.since >= timedelta(seconds=self.options.dead_after):
                row.state = DEAD
            session.add(row)
            return row.state

        state = db.unit_of_work(self.engine, None, command)
        if state == DEAD:
            log.error(
                "outbox row is dead: it was not delivered in time; `sloguard outbox retry` revives it",
                extra={"outbox_id": claimed.row.id, "kind": kind, "error": failure.reason[:200]},
            )
            if self.metrics is not None:
                self.metrics.outbox_dead.labels(kind).inc()
        elif state is not None:
            log.info(
                "outbox delivery will be tried again",
                extra={"outbox_id": claimed.row.id, "kind": kind, "error": failure.reason[:200]},
            )

    # -------------------------------------------------- measuring and pruning

    def _measure(self) -> None:
        last_prune = 0.0
        while not self._stop.is_set():
            try:
                self.latest = backlog(self.engine)
                if self.metrics is not None:
                    self.metrics.show_outbox(self.latest)
                if time.monotonic() - last_prune > 60:
                    prune(self.engine, self.options.keep_delivered)
                    last_prune = time.monotonic()
            except Exception as exc:
                self.latest = Backlog(at=utcnow(), error=f"cannot measure the outbox: {type(exc).__name__}")
                log.warning("outbox measurement failed", exc_info=True)
            self._stop.wait(5.0)
