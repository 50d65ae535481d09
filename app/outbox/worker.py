"""The outbox's delivery worker: threads per lane on every replica, claiming due rows (see the package's
docstring for the rules), running their handlers and recording the outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
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
    _settle,
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
        counted: Callable[[str, str], None] | None = None,
    ) -> None:
        self.engine, self.handlers, self.options = engine, handlers, options
        self.dispatcher, self.metrics, self.replica = dispatcher, metrics, replica
        self.counted = counted  # told of each delivery and each dead row: ("delivered" | "dead", kind)
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self.latest = Backlog()
        self._held: dict[str, int] = {}  # claims being delivered: token -> row id
        self._held_guard = threading.Lock()
        self._renewer: threading.Thread | None = None

    # -------------------------------------------------- lifecycle

    def start(self, *, deliver: bool = True, measure: bool = True) -> None:
        """Start delivering (threads per lane) and measuring (the backlog gauges, and pruning). A process
        whose deliveries run in a child process only measures; the child only delivers."""
        if deliver and self.engine.dialect.name == "sqlite":
            # One process serves a SQLite database: a lease left by a process that is gone is void.
            with db.writer_lock(self.engine), self.engine.begin() as connection:
                connection.execute(
                    sa.update(OutboxRow)
                    .where(col(OutboxRow.state) == PENDING, col(OutboxRow.lease_until).is_not(None))
                    .values(lease_until=None, claim=None)
                )
        lanes = [(CHAT, self.options.chat_workers), (WORK, self.options.work_workers)] if deliver else []
        for lane, count in lanes:
            for number in range(count):
                thread = threading.Thread(
                    target=self._run, args=(lane,), name=f"outbox-{lane}-{number}", daemon=True
                )
                self._threads.append(thread)
        if measure:
            self._threads.append(threading.Thread(target=self._measure, name="outbox-gauges", daemon=True))
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 15.0) -> None:
        """Let deliveries in progress finish (up to `timeout`); what is left stays in the outbox."""
        self._stop.set()
        for lane in (CHAT, WORK):
            _waker(self.engine, lane).set()
        deadline = time.monotonic() + timeout
        with self._held_guard:
            renewer = self._renewer
        for thread in [*self._threads, *([renewer] if renewer is not None else [])]:
            thread.join(max(0.0, deadline - time.monotonic()))

    # -------------------------------------------------- delivering

    def _run(self, lane: str) -> None:
        waker = _waker(self.engine, lane)
        delivered = False
        # On SQLite a claim waits for the writer turn the requests need too, so the worker always looks
        # (a plain read) first; on PostgreSQL, right after a delivery the next row is likely due and a
        # claim that finds nothing costs no more than the look.
        always_look = self.engine.dialect.name == "sqlite"
        while not self._stop.is_set():
            try:
                delivered = self.deliver_one(lane, look_first=always_look or not delivered)
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

    def deliver_one(self, lane: str, *, look_first: bool = True) -> bool:
        """Claim and deliver one due row of `lane`; False when there was none. `look_first` asks with a
        plain read whether anything is due before taking a claim (a write, and on SQLite the writer turn)."""
        if look_first and not _has_due(self.engine, lane):
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
        """Keep the claim's lease renewed while the handler runs: only a replica that stopped (or lost
        the database) lets its lease run out, never a slow delivery."""
        with self._held_guard:
            self._held[claimed.token] = claimed.row.id or 0
            if self._renewer is None:
                self._renewer = threading.Thread(target=self._renew, name="outbox-lease", daemon=True)
                self._renewer.start()
        try:
            yield
        finally:
            with self._held_guard:
                self._held.pop(claimed.token, None)

    def _renew(self) -> None:
        """One thread renews every claim this worker holds, every third of a lease."""
        while not self._stop.wait(self.options.lease / 3):
            with self._held_guard:
                held = dict(self._held)
            if not held:
                continue
            try:
                with db.writer_lock(self.engine), self.engine.begin() as connection:
                    connection.execute(
                        sa.update(OutboxRow)
                        .where(col(OutboxRow.claim).in_(list(held)))
                        .values(lease_until=utcnow() + timedelta(seconds=self.options.lease))
                    )
            except Exception:
                log.warning("could not renew outbox leases", extra={"outbox_ids": sorted(held.values())})

    def _checkpoint(self, claimed: Claimed, progress: dict[str, Any]) -> None:
        db.unit_of_work(self.engine, None, lambda session, _: _settle(session, claimed, progress=progress))

    def _done(self, claimed: Claimed, completion: Completion | None) -> None:
        now = utcnow()

        def command(session: Session, events: db.Events) -> bool:
            # Marked first: the update takes the row's lock, and finds it gone if the lease ran out and
            # another replica took the row over (then nothing of this delivery is recorded).
            done = dict(delivered_at=now, lease_until=None, claim=None, uncertain=False, last_error=None)
            if not _settle(session, claimed, state=DONE, **done):
                return False
            if completion is not None:
                completion(session, events)
            if claimed.collapsed:
                session.execute(
                    sa.update(OutboxRow)
                    .where(col(OutboxRow.id).in_(claimed.collapsed), col(OutboxRow.state) == PENDING)
                    .values(state=DONE, delivered_at=now, last_error=f"redrawn by {claimed.row.id}")
                )
            return True

        if not db.unit_of_work(self.engine, self.dispatcher, command):
            log.warning("outbox row delivered after its lease ran out", extra={"outbox_id": claimed.row.id})
            return
        self._count("delivered", claimed.row.kind)

    def _failed(self, claimed: Claimed, failure: DeliveryFailed) -> None:
        now = utcnow()
        row = claimed.row  # as claimed: attempts and since are ours while the claim holds
        kind = row.kind
        cap = self.options.chat_backoff_cap if lane_of(kind) == CHAT else self.options.work_backoff_cap
        wait = backoff(row.attempts, cap)
        if failure.retry_after is not None:
            wait = max(wait, failure.retry_after)  # never before the other side said
        dead = now - row.since >= timedelta(seconds=self.options.dead_after)
        values = dict(
            state=DEAD if dead else PENDING,
            not_before=now + timedelta(seconds=wait),
            lease_until=None,
            claim=None,
            # Still uncertain if an earlier attempt may have reached the other side, or this one may have.
            uncertain=claimed.uncertain or failure.sent,
            last_error=hide_url_password(failure.reason)[:ERROR_LIMIT],
        )
        if not db.unit_of_work(self.engine, None, lambda session, _: _settle(session, claimed, **values)):
            return  # the lease ran out and another replica took the row over
        if dead:
            log.error(
                "outbox row is dead: it was not delivered in time; `sloguard outbox retry` revives it",
                extra={"outbox_id": row.id, "kind": kind, "error": failure.reason[:200]},
            )
            self._count("dead", kind)
        else:
            log.info(
                "outbox delivery will be tried again",
                extra={"outbox_id": row.id, "kind": kind, "error": failure.reason[:200]},
            )

    def _count(self, event: str, kind: str) -> None:
        if self.metrics is not None:
            counter = self.metrics.outbox_delivered if event == "delivered" else self.metrics.outbox_dead
            counter.labels(kind).inc()
        if self.counted is not None:
            self.counted(event, kind)

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
