"""Durable effects: every consequence outside the database is a row, delivered at least once.

A unit of work that changes something records what must follow (a Slack post, evidence gathering, a
review draft, a rollback's verification) as `outbox` rows in the same transaction (`enqueue`), so a
commit and its consequences stand or fall together. A delivery worker on every replica claims due rows
and runs each kind's handler:

- **Order** is kept per group (an incident and a destination: `slack:incident:7`): a row is claimed only
  when every earlier row of its group is delivered, so an incident's first post goes before its updates
  and thread replies, and rows behind a row that failed or died wait for it. Groups are independent, so
  a verification due in ten minutes or a slow enrichment never holds up a Slack post.
- **Claiming** takes the row with `FOR UPDATE SKIP LOCKED` on PostgreSQL (replicas never wait for each
  other) and in the process's writer turn on SQLite, and leases it for `lease` seconds: a replica that
  dies mid-delivery leaves a lease that runs out, and another replica takes the row then.
- **Retries** back off exponentially with jitter (at most `chat_backoff_cap` seconds apart for Slack, at
  most `work_backoff_cap` for the rest); a handler that is told when to come back (Slack's 429
  `Retry-After`) is not tried before then.
- **Unknown outcomes.** A claim marks the row `uncertain` before the handler runs; only a failure known
  not to have reached the other side (connection refused, an error answer) clears it. The handler of a
  row claimed while `uncertain` first looks for what an earlier attempt may have done (a Slack message
  carrying the row's metadata) instead of doing it twice.
- **Nothing ages out silently.** A row becomes `dead` only `dead_after` seconds after its delivery began,
  with its last error kept; `sloguard outbox retry` revives it. Delivered rows are pruned after
  `keep_delivered` seconds.

Handlers return an optional completion, `(session, events) -> None`, run in the same transaction that
marks the row delivered: what a delivery records (a message's ts, evidence, a timeline note) is stored
exactly once however often the delivery itself was tried.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import uuid
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import JSON, Column, Field, Session, SQLModel, col, select

from app import db
from app.db import UTCDateTime, utcnow

log = logging.getLogger(__name__)

CHAT = "chat"  # Slack calls: short backoff, their own worker threads
WORK = "work"  # evidence, drafts, verification: may be slow, never in the way of a Slack call
PENDING, DONE, DEAD = "pending", "done", "dead"
ERROR_LIMIT = 2000


class OutboxRow(SQLModel, table=True):
    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_group_id", "group_key", "id"),
        sa.Index("ix_outbox_due", "state", "lane", "not_before"),
    )

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=40)  # the handler: slack.post, evidence.enrich, ...
    lane: str = Field(max_length=10)
    group_key: str = Field(max_length=200)  # order is kept within a group
    incident_id: int | None = Field(default=None, index=True)
    payload: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    progress: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    state: str = Field(default=PENDING, max_length=10)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    since: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)  # delivery (re)started
    not_before: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim: str | None = Field(default=None, max_length=36)
    attempts: int = 0
    uncertain: bool = False  # an attempt began whose outcome is not known
    last_error: str | None = Field(default=None, max_length=ERROR_LIMIT)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


# ---------------------------------------------------------------- writing rows (inside a unit of work)


GROUP_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('sloguard-outbox:' || current_schema() || :group, 0))"
)
_wakers: weakref.WeakKeyDictionary[Engine, dict[str, threading.Event]] = weakref.WeakKeyDictionary()
_wakers_guard = threading.Lock()


def _waker(engine: Engine, lane: str) -> threading.Event:
    with _wakers_guard:
        return _wakers.setdefault(engine, {}).setdefault(lane, threading.Event())


# Called with the lane of every row this process commits, besides waking its own worker: how `serve`
# wakes the worker in its child process (app/outbox/process.py).
_forwarders: weakref.WeakKeyDictionary[Engine, list[Callable[[str], None]]] = weakref.WeakKeyDictionary()


def forward_wakes(engine: Engine, forward: Callable[[str], None]) -> None:
    with _wakers_guard:
        _forwarders.setdefault(engine, []).append(forward)


def lane_of(kind: str) -> str:
    return CHAT if kind.startswith("slack.") else WORK


def enqueue(
    session: Session,
    kind: str,
    group: str,
    payload: dict[str, Any] | None = None,
    *,
    incident_id: int | None = None,
    not_before: datetime | None = None,
) -> OutboxRow:
    """Record an effect in the caller's transaction; this process's worker is woken once it commits.

    On PostgreSQL the transaction first takes a lock on the group, held until it commits: row ids are
    handed out at INSERT but seen at COMMIT, so without it a transaction that inserted earlier but
    committed later (two units about one incident) would put its row before one already delivered."""
    now = utcnow()
    lane = lane_of(kind)
    locked: set[str] = session.info.setdefault("outbox_groups", set())
    if group not in locked and session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text(GROUP_LOCK), {"group": group})
        locked.add(group)
    row = OutboxRow(
        kind=kind,
        lane=lane,
        group_key=group,
        incident_id=incident_id,
        payload=payload or {},
        created_at=now,
        since=now,
        not_before=not_before or now,
    )
    session.add(row)
    session.info.setdefault("outbox_lanes", set()).add(lane)
    return row


@sa.event.listens_for(Session, "after_commit")
def _wake_after_commit(session: Session) -> None:
    session.info.pop("outbox_groups", None)
    lanes = session.info.pop("outbox_lanes", None)
    bind = session.get_bind() if lanes else None
    if lanes and isinstance(bind, Engine):
        for lane in lanes:
            _waker(bind, lane).set()
            for forward in _forwarders.get(bind, ()):
                forward(lane)


@sa.event.listens_for(Session, "after_rollback")
def _forget_after_rollback(session: Session) -> None:
    session.info.pop("outbox_lanes", None)
    session.info.pop("outbox_groups", None)


# ---------------------------------------------------------------- what handlers get and raise


@dataclass
class Effect:
    """One claimed row, as its handler sees it."""

    id: int
    kind: str
    group: str
    incident_id: int | None
    payload: dict[str, Any]
    progress: dict[str, Any]
    attempts: int  # this one included
    uncertain: bool  # an earlier attempt may have reached the other side
    created_at: datetime
    checkpoint: Callable[[dict[str, Any]], None] = field(repr=False, default=lambda _: None)

    def save(self, **values: Any) -> None:
        """Remember how far a multi-step delivery got (a channel created, a copy posted), at once."""
        self.progress.update(values)
        self.checkpoint(dict(self.progress))


class DeliveryFailed(Exception):
    """A delivery that did not happen. `sent=False` when the other side certainly did not act on it
    (connection refused, an error answer); `retry_after` when it said when to come back."""

    def __init__(
        self, reason: str, *, sent: bool = True, retry_after: float | None = None, error: str | None = None
    ) -> None:
        super().__init__(reason)
        self.reason, self.sent, self.retry_after = reason, sent, retry_after
        self.error = error  # the other side's error code, when it answered one


Completion = Callable[[Session, db.Events], None]
Handler = Callable[[Effect], Completion | None]


# ---------------------------------------------------------------- claiming and finishing


@functools.cache
def _claim_statement(dialect: str, lane: str) -> Any:
    """The statements that pick the next due row of `lane` whose group has nothing undelivered before it
    and lease it, returning the row as leased and whether an earlier attempt had left it uncertain
    (built once: a worker runs them for every delivery). On PostgreSQL one statement does both: `(None,
    leasing)`; elsewhere `(picking, leasing)`."""
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    earlier = table.alias("earlier")
    now = sa.bindparam("now", type_=UTCDateTime())
    waiting_behind = (
        sa.select(sa.literal(1))
        .where(
            earlier.c.group_key == table.c.group_key,
            earlier.c.id < table.c.id,
            earlier.c.state != DONE,
        )
        .exists()
    )
    picked = (
        sa.select(table.c.id, table.c.uncertain.label("was_uncertain"))
        .where(
            table.c.state == PENDING,
            table.c.lane == lane,
            table.c.not_before <= now,
            sa.or_(table.c.lease_until.is_(None), table.c.lease_until < now),
            ~waiting_behind,
        )
        .order_by(table.c.not_before, table.c.id)
        .limit(1)
    )
    lease = dict(
        attempts=table.c.attempts + 1,
        uncertain=True,
        claim=sa.bindparam("token"),
        lease_until=sa.bindparam("until", type_=UTCDateTime()),
        # its delivery begins at its first attempt: `dead_after` counts from here
        since=sa.case((table.c.attempts == 0, now), else_=table.c.since),
    )
    if dialect != "postgresql":
        # SQLite's RETURNING sees only the updated table: the pick and the lease are two statements, in
        # the one process's writer turn.
        leasing = sa.update(table).where(table.c.id == sa.bindparam("picked_id")).values(**lease)
        return picked, leasing.returning(*table.c)
    chosen = picked.with_for_update(skip_locked=True, of=table).cte("chosen")
    leasing = (
        sa.update(table)
        .where(table.c.id == chosen.c.id)
        .values(**lease)
        .returning(*table.c, chosen.c.was_uncertain)
    )
    return None, leasing


@functools.cache
def _followers_statement() -> Any:
    table = OutboxRow.__table__  # type: ignore[attr-defined]
    return (
        sa.select(table.c.id, table.c.kind)
        .where(
            table.c.group_key == sa.bindparam("group"),
            table.c.id > sa.bindparam("after"),
            table.c.state == PENDING,
        )
        .order_by(table.c.id)
        .limit(50)
    )


@dataclass
class Claimed:
    row: OutboxRow
    token: str
    uncertain: bool
    collapsed: list[int]  # later updates of the same message, redrawn by this one


def claim(engine: Engine, lane: str, lease: float) -> Claimed | None:
    """Take the next due row of `lane` whose group has nothing undelivered before it, leased to us."""
    now = utcnow()
    token = str(uuid.uuid4())
    picking, leasing = _claim_statement(engine.dialect.name, lane)

    def command(session: Session, events: db.Events) -> Claimed | None:
        values: dict[str, Any] = {"now": now, "token": token, "until": now + timedelta(seconds=lease)}
        if picking is not None:
            picked = session.execute(picking, values).first()
            if picked is None:
                return None
            values["picked_id"], uncertain = picked.id, picked.was_uncertain
        found = session.execute(leasing, values).mappings().first()
        if found is None:
            return None
        fields = dict(found)
        uncertain = bool(fields.pop("was_uncertain", None) if picking is None else uncertain)
        row = OutboxRow(**fields)
        collapsed: list[int] = []
        if row.kind == "slack.update":
            # A message update redraws the incident as it stands when it is delivered, so the updates
            # queued right behind it (committed before this read, so drawn in) need no call of their own.
            later = session.execute(_followers_statement(), {"group": row.group_key, "after": row.id})
            for follower_id, kind in later:
                if kind != "slack.update":
                    break
                collapsed.append(follower_id)
        return Claimed(row, token, uncertain, collapsed)

    return db.unit_of_work(engine, None, command)


def _has_due(engine: Engine, lane: str) -> bool:
    """A cheap look (no lock, no write) before claiming: is anything of `lane` due at all?"""
    now = utcnow()
    with engine.connect() as connection:
        return (
            connection.execute(
                sa.select(col(OutboxRow.id))
                .where(
                    col(OutboxRow.state) == PENDING,
                    col(OutboxRow.lane) == lane,
                    col(OutboxRow.not_before) <= now,
                    sa.or_(col(OutboxRow.lease_until).is_(None), col(OutboxRow.lease_until) < now),
                )
                .limit(1)
            ).first()
            is not None
        )


def _settle(session: Session, claimed: Claimed, **values: Any) -> bool:
    """Write `values` onto the claimed row if it is still ours (its lease was not taken over)."""
    result = session.execute(
        sa.update(OutboxRow)
        .where(
            col(OutboxRow.id) == claimed.row.id,
            col(OutboxRow.claim) == claimed.token,
            col(OutboxRow.state) == PENDING,
        )
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def backoff(attempts: int, cap: float) -> float:
    """Seconds before try `attempts + 1`: doubling from 1 s, capped, with jitter (half to all of it)."""
    base = min(cap, 2.0 ** max(0, attempts - 1))
    return base * random.uniform(0.5, 1.0)


# ---------------------------------------------------------------- the worker


@dataclass
class Backlog:
    """What the outbox holds now (every replica's rows), for /metrics and /readyz."""

    at: datetime | None = None
    pending: dict[str, int] = field(default_factory=dict)
    oldest_age_seconds: dict[str, float] = field(default_factory=dict)
    dead: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def summary(self) -> dict[str, Any]:
        return {
            "pending": sum(self.pending.values()),
            "dead": sum(self.dead.values()),
            "oldest_age_seconds": round(max(self.oldest_age_seconds.values(), default=0.0), 1),
            "by_kind": {
                kind: {
                    "pending": self.pending.get(kind, 0),
                    "dead": self.dead.get(kind, 0),
                    "oldest_age_seconds": round(self.oldest_age_seconds.get(kind, 0.0), 1),
                }
                for kind in sorted({*self.pending, *self.dead})
            },
            "measured_at": self.at.isoformat() if self.at else None,
            **({"error": self.error} if self.error else {}),
        }


def backlog(engine: Engine) -> Backlog:
    """Pending and dead rows by kind, and how long the oldest row that is due has been waiting: since it
    became due (enqueued, or its not-before time) until its first attempt, since that attempt afterwards. A
    row scheduled for later (a verification due in ten minutes) is counted but not yet waiting."""
    now = utcnow()
    found = Backlog(at=now)
    became_due = sa.case(
        (col(OutboxRow.not_before) > col(OutboxRow.created_at), col(OutboxRow.not_before)),
        else_=col(OutboxRow.created_at),
    )
    waiting_since = sa.case((col(OutboxRow.attempts) == 0, became_due), else_=col(OutboxRow.since))
    waiting = sa.or_(col(OutboxRow.attempts) > 0, col(OutboxRow.not_before) <= now)
    oldest_waiting = sa.func.min(sa.case((waiting, waiting_since), else_=None))
    with Session(engine) as session:
        rows = session.execute(
            sa.select(
                col(OutboxRow.kind),
                col(OutboxRow.state),
                sa.func.count(),
                sa.type_coerce(oldest_waiting, UTCDateTime()),
            )
            .where(col(OutboxRow.state).in_((PENDING, DEAD)))
            .group_by(col(OutboxRow.kind), col(OutboxRow.state))
        ).all()
    for kind, state, count, oldest in rows:
        if state == DEAD:
            found.dead[kind] = count
            continue
        found.pending[kind] = count
        if oldest is not None:
            oldest = oldest if oldest.tzinfo else oldest.replace(tzinfo=now.tzinfo)
            found.oldest_age_seconds[kind] = max(0.0, (now - oldest).total_seconds())
    return found


def prune(engine: Engine, keep_delivered: float) -> int:
    cutoff = utcnow() - timedelta(seconds=keep_delivered)
    with engine.begin() as connection:
        return connection.execute(
            sa.delete(OutboxRow).where(col(OutboxRow.state) == DONE, col(OutboxRow.delivered_at) < cutoff)
        ).rowcount


# ---------------------------------------------------------------- operators (CLI)


def rows(session: Session, *, dead_only: bool = False, limit: int = 200) -> list[OutboxRow]:
    """Undelivered rows (pending and dead), oldest first; only dead ones with `dead_only`."""
    states: Iterable[str] = (DEAD,) if dead_only else (PENDING, DEAD)
    return list(
        session.exec(
            select(OutboxRow).where(col(OutboxRow.state).in_(states)).order_by(col(OutboxRow.id)).limit(limit)
        )
    )


def retry(engine: Engine, *, row_id: int | None = None, all_dead: bool = False) -> list[int]:
    """Deliver a dead row (or every dead one) again: its delivery starts over, due now."""
    now = utcnow()

    def command(session: Session, events: db.Events) -> list[int]:
        query = select(OutboxRow).where(col(OutboxRow.state) == DEAD)
        if not all_dead:
            query = query.where(col(OutboxRow.id) == row_id)
        revived = []
        for row in session.exec(query).all():
            row.state, row.since, row.not_before = PENDING, now, now
            row.lease_until, row.claim = None, None
            session.add(row)
            assert row.id is not None
            revived.append(row.id)
            session.info.setdefault("outbox_lanes", set()).add(row.lane)
        return revived

    return db.unit_of_work(engine, None, command)


# The worker lives in its own module (it delivers what this one claims); importable from here.
from app.outbox.worker import Worker  # noqa: E402

__all__ = [
    "CHAT",
    "DEAD",
    "DONE",
    "PENDING",
    "WORK",
    "Backlog",
    "Claimed",
    "Completion",
    "DeliveryFailed",
    "Effect",
    "Handler",
    "OutboxRow",
    "Worker",
    "backlog",
    "backoff",
    "claim",
    "enqueue",
    "lane_of",
    "prune",
    "retry",
    "rows",
]
