"""The durable outbox (`app/outbox/`) on real SQLite and PostgreSQL: order per group, due times, backoff
and Retry-After, unknown outcomes, collapsed updates, completions in the delivering transaction, dead rows
and their revival, leases, concurrent claimers, the backlog gauge and pruning.

Delivery is driven with `Worker.deliver_one(lane)` (one claim and one handler call, in the test's thread),
so what a call delivered is known when it returns; the end-to-end tests start the worker's threads. The
handlers are plain functions that record what they were given: they stand where the Slack or evidence code
stands, the outbox itself is the real one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db, outbox
from app.config import OutboxOptions
from app.db import utcnow
from app.outbox import CHAT, DEAD, DONE, PENDING, WORK, DeliveryFailed, Effect, OutboxRow
from tests.conftest import pg_schema_url

pytestmark = pytest.mark.integration
WAIT = 30.0  # seconds a condition may take before the test gives up (never a bound on speed)


# ---------------------------------------------------------------- helpers


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    """A migrated, empty database on each backend."""
    engine = db.make_engine(database_url)
    db.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture
def pg_url(pg_database: str) -> Iterator[str]:
    """A fresh PostgreSQL schema (for the tests that only mean something with concurrent claimers)."""
    yield from pg_schema_url(pg_database)


def put(
    engine: Engine,
    kind: str,
    group: str,
    payload: dict[str, Any] | None = None,
    *,
    incident_id: int | None = None,
    not_before: datetime | None = None,
) -> int:
    """Enqueue one row in a unit of work of its own; its id."""

    def unit(session: Session, events: db.Events) -> int:
        row = outbox.enqueue(session, kind, group, payload, incident_id=incident_id, not_before=not_before)
        session.flush()
        assert row.id is not None
        return row.id

    return db.unit_of_work(engine, None, unit)


def get(engine: Engine, row_id: int) -> OutboxRow:
    with Session(engine) as session:
        row = session.get(OutboxRow, row_id)
        assert row is not None, f"outbox row {row_id} is gone"
        return row


def all_rows(engine: Engine) -> list[OutboxRow]:
    with Session(engine) as session:
        return list(session.exec(select(OutboxRow).order_by(col(OutboxRow.id))))


def until(condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def drive(worker: outbox.Worker, lane: str, done: Callable[[], bool], what: str) -> None:
    """deliver_one until `done()`; pauses briefly only when nothing was due."""
    deadline = time.monotonic() + WAIT
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out delivering until {what}")
        if not worker.deliver_one(lane):
            time.sleep(0.01)


class Calls:
    """A handler's record of what it was given (thread-safe: the end-to-end tests run worker threads)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.seen: list[tuple[int, str, bool, datetime]] = []  # id, group, uncertain, when

    def record(self, effect: Effect) -> None:
        with self.lock:
            self.seen.append((effect.id, effect.group, effect.uncertain, utcnow()))

    def ids(self) -> list[int]:
        with self.lock:
            return [found[0] for found in self.seen]

    def of(self, row_id: int) -> list[tuple[int, str, bool, datetime]]:
        with self.lock:
            return [found for found in self.seen if found[0] == row_id]


def fast(**overrides: Any) -> OutboxOptions:
    """Options for tests: short backoff caps, quick polling; anything else as given."""
    values: dict[str, Any] = {"chat_backoff_cap": 0.1, "work_backoff_cap": 0.1, "poll_interval": 0.05}
    return OutboxOptions(**(values | overrides))


# ---------------------------------------------------------------- 1. order within a group


def test_a_group_is_delivered_in_order_and_a_failing_row_holds_up_only_its_own_group(engine: Engine) -> None:
    calls = Calls()
    failing = {"a1": True}

    def handler(effect: Effect) -> None:
        calls.record(effect)
        if effect.payload["name"] == "a1" and failing["a1"]:
            # Due again after the (tiny) backoff: it is its group's order, not a wait, that keeps a2 and
            # a3 back.
            raise DeliveryFailed("source down", retry_after=0)

    a1, a2, a3 = (put(engine, "evidence.enrich", "incident:1", {"name": f"a{n}"}) for n in (1, 2, 3))
    b1, b2 = (put(engine, "evidence.enrich", "incident:2", {"name": f"b{n}"}) for n in (1, 2))
    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast())

    assert worker.deliver_one(WORK) is True
    assert calls.ids() == [a1]  # failed
    assert get(engine, a1).state == PENDING and get(engine, a1).last_error == "source down"
    # Meanwhile the other group goes ahead (a1 waits for its backoff).
    assert worker.deliver_one(WORK) and worker.deliver_one(WORK)
    assert calls.ids() == [a1, b1, b2]
    # a1 keeps failing: every claim hands out a1 again once it is due, never a2 or a3 behind it.
    for _ in range(3):
        until(lambda: worker.deliver_one(WORK), "a1 due again")
    assert calls.ids() == [a1, b1, b2, a1, a1, a1]
    assert get(engine, a2).attempts == 0 and get(engine, a3).attempts == 0

    failing["a1"] = False
    drive(worker, WORK, lambda: get(engine, a3).state == DONE, "a3 is delivered")
    assert calls.ids() == [a1, b1, b2, a1, a1, a1, a1, a2, a3]
    assert [row.state for row in all_rows(engine)] == [DONE] * 5
    assert worker.deliver_one(WORK) is False


def test_order_holds_across_lanes_of_one_group(engine: Engine) -> None:
    """A group is one order whatever the lanes: a work row waits for the chat row before it."""
    calls = Calls()
    post = put(engine, "slack.post", "incident:3")
    enrich = put(engine, "evidence.enrich", "incident:3")

    def handler(effect: Effect) -> None:
        calls.record(effect)

    worker = outbox.Worker(engine, {"slack.post": handler, "evidence.enrich": handler}, fast())
    assert worker.deliver_one(WORK) is False  # the only work row waits behind an undelivered chat row
    assert worker.deliver_one(CHAT) is True
    assert worker.deliver_one(WORK) is True
    assert calls.ids() == [post, enrich]


# ---------------------------------------------------------------- 2. not_before


def test_a_row_due_later_is_skipped_until_due_without_holding_up_other_groups(engine: Engine) -> None:
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)

    due_at = utcnow() + timedelta(seconds=1.5)
    later = put(engine, "rollback.verify", "rollback:1", not_before=due_at)
    behind = put(engine, "rollback.verify", "rollback:1")
    other = put(engine, "evidence.enrich", "incident:1")
    worker = outbox.Worker(engine, {"rollback.verify": handler, "evidence.enrich": handler}, fast())

    assert worker.deliver_one(WORK) is True
    assert calls.ids() == [other]
    asked_at = utcnow()
    nothing = worker.deliver_one(WORK)
    if asked_at < due_at:  # (a stall of 1.5 s would make the row due: then there is nothing to check)
        assert nothing is False and calls.ids() == [other]

    drive(worker, WORK, lambda: get(engine, behind).state == DONE, "the row behind the later one")
    assert calls.ids() == [other, later, behind]
    assert calls.of(later)[0][3] >= due_at  # not handed out before it was due


# ---------------------------------------------------------------- 3. backoff and Retry-After


def test_backoff_is_within_half_to_all_of_the_capped_doubling() -> None:
    for cap in (0.1, 1.0, 10.0, 300.0):
        for attempts in range(1, 16):
            base = min(cap, 2.0 ** (attempts - 1))
            for _ in range(200):
                wait = outbox.backoff(attempts, cap)
                assert 0.5 * base <= wait <= base, (attempts, cap, wait)
    # The jitter is real: not one fixed fraction.
    assert len({round(outbox.backoff(3, 10.0), 6) for _ in range(50)}) > 10


def fail_window(worker: outbox.Worker, lane: str) -> tuple[datetime, datetime]:
    before = utcnow()
    assert worker.deliver_one(lane) is True
    return before, utcnow()


def test_a_failed_slack_call_comes_back_within_the_chat_cap(engine: Engine) -> None:
    cap, work_cap = 0.25, 0.6  # disjoint ranges on the first try: [0.125, 0.25] s and [0.3, 0.6] s

    def handler(effect: Effect) -> None:
        raise DeliveryFailed("Slack chat.postMessage: TimeoutError (the outcome is unknown)")

    options = fast(chat_backoff_cap=cap, work_backoff_cap=work_cap)
    worker = outbox.Worker(engine, {"slack.post": handler, "evidence.enrich": handler}, options)
    post = put(engine, "slack.post", "slack:incident:1")
    for attempt in range(1, 5):
        before, after = fail_window(worker, CHAT)
        row = get(engine, post)
        assert row.attempts == attempt and row.state == PENDING
        # Moved forward by half to all of min(cap, 2 ** (attempts - 1)) = cap: never more than the cap.
        assert before + timedelta(seconds=cap / 2) <= row.not_before <= after + timedelta(seconds=cap)
        until(lambda: utcnow() >= get(engine, post).not_before, "the retry to be due")

    enrich = put(engine, "evidence.enrich", "incident:1")
    before, after = fail_window(worker, WORK)
    row = get(engine, enrich)
    assert before + timedelta(seconds=work_cap / 2) <= row.not_before <= after + timedelta(seconds=work_cap)


def test_retry_after_is_honoured_as_a_minimum_even_beyond_the_cap(engine: Engine) -> None:
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)
        if len(calls.seen) == 1:
            raise DeliveryFailed("Slack chat.postMessage: rate limited", sent=False, retry_after=1.0)

    worker = outbox.Worker(engine, {"slack.post": handler}, fast(chat_backoff_cap=0.1))
    post = put(engine, "slack.post", "slack:incident:1")
    before, after = fail_window(worker, CHAT)
    row = get(engine, post)
    assert before + timedelta(seconds=1.0) <= row.not_before <= after + timedelta(seconds=1.0)

    drive(worker, CHAT, lambda: get(engine, post).state == DONE, "the rate-limited post")
    first, second = calls.of(post)
    assert second[3] >= row.not_before
    assert second[3] - first[3] >= timedelta(seconds=1.0)


# ---------------------------------------------------------------- 4. uncertain


@pytest.mark.parametrize(
    ("failure", "then_uncertain"),
    [
        (
            DeliveryFailed("Slack chat.postMessage: TimeoutError (the outcome is unknown)", retry_after=0),
            True,
        ),
        (ValueError("the handler broke half way"), True),
        (DeliveryFailed("Slack chat.postMessage: connection refused", sent=False, retry_after=0), False),
    ],
    ids=["sent", "plain-exception", "not-sent"],
)
def test_the_next_attempt_knows_whether_an_earlier_one_may_have_reached_the_other_side(
    engine: Engine, failure: Exception, then_uncertain: bool
) -> None:
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)
        if len(calls.seen) == 1:
            raise failure

    worker = outbox.Worker(engine, {"slack.post": handler}, fast())
    post = put(engine, "slack.post", "slack:incident:1")
    assert worker.deliver_one(CHAT) is True
    assert get(engine, post).uncertain is then_uncertain
    drive(worker, CHAT, lambda: get(engine, post).state == DONE, "the second attempt")
    assert [found[2] for found in calls.of(post)] == [False, then_uncertain]
    assert get(engine, post).uncertain is False  # delivered: nothing is unknown any more


def test_an_attempt_that_may_have_reached_the_other_side_is_not_forgotten_by_a_later_refusal(
    engine: Engine,
) -> None:
    """Attempt 1 times out after Slack may have posted; attempt 2 (looking for that post first) is refused
    or rate limited; attempt 3 must still look first (Effect.uncertain: "an earlier attempt may have
    reached the other side"), or the incident is posted twice."""
    calls = Calls()
    script: list[Exception | None] = [
        DeliveryFailed("Slack chat.postMessage: TimeoutError (the outcome is unknown)", retry_after=0),
        DeliveryFailed("Slack conversations.history: rate limited", sent=False, retry_after=0),
        None,
    ]

    def handler(effect: Effect) -> None:
        calls.record(effect)
        step = script[len(calls.seen) - 1]
        if step is not None:
            raise step

    worker = outbox.Worker(engine, {"slack.post": handler}, fast())
    post = put(engine, "slack.post", "slack:incident:1")
    drive(worker, CHAT, lambda: get(engine, post).state == DONE, "the third attempt")
    assert [found[2] for found in calls.of(post)] == [False, True, True]


# ---------------------------------------------------------------- 5. collapsed updates


def test_consecutive_updates_are_redrawn_by_one_call_but_not_across_a_thread_reply(engine: Engine) -> None:
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)

    group = "slack:incident:1"
    u1, u2, u3 = (put(engine, "slack.update", group, incident_id=1) for _ in range(3))
    other = put(engine, "slack.update", "slack:incident:2", incident_id=2)  # another message: its own call
    thread = put(engine, "slack.thread", group, {"text": "acknowledged"}, incident_id=1)
    u4, u5 = (put(engine, "slack.update", group, incident_id=1) for _ in range(2))
    worker = outbox.Worker(engine, {"slack.update": handler, "slack.thread": handler}, fast())

    assert worker.deliver_one(CHAT) is True
    assert calls.ids() == [u1]
    assert {row.id: row.state for row in all_rows(engine)} == {
        u1: DONE,
        u2: DONE,
        u3: DONE,
        other: PENDING,
        thread: PENDING,
        u4: PENDING,
        u5: PENDING,
    }
    drive(worker, CHAT, lambda: get(engine, u5).state == DONE, "the last update")
    assert calls.ids() == [u1, other, thread, u4]
    assert all(row.state == DONE and row.delivered_at is not None for row in all_rows(engine))
    assert worker.deliver_one(CHAT) is False


# ---------------------------------------------------------------- 6. completions


class CompletionBroke(Exception):
    pass


def notes(engine: Engine) -> list[OutboxRow]:
    return [row for row in all_rows(engine) if row.kind == "test.note"]


def test_a_completion_is_part_of_the_transaction_that_marks_the_row_delivered(engine: Engine) -> None:
    calls = Calls()

    def handler(effect: Effect) -> outbox.Completion:
        calls.record(effect)
        attempt = len(calls.seen)

        def complete(session: Session, events: db.Events) -> None:
            # What a delivery records (here: a row of its own), written in the delivering transaction.
            outbox.enqueue(session, "test.note", "notes", {"attempt": attempt})
            if attempt == 1:
                raise CompletionBroke("the completion failed after writing")

        return complete

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast())
    row_id = put(engine, "evidence.enrich", "incident:1")
    assert worker.deliver_one(WORK) is True
    assert len(calls.seen) == 1
    row = get(engine, row_id)
    assert row.state == PENDING and row.delivered_at is None
    assert notes(engine) == []  # rolled back with the row's "done"
    # Tried again like a failed delivery, the error kept, the outcome unknown (the effect did happen).
    assert row.last_error is not None and "CompletionBroke" in row.last_error
    assert row.uncertain is True

    drive(worker, WORK, lambda: get(engine, row_id).state == DONE, "the second delivery")
    assert [found[2] for found in calls.seen] == [False, True]
    assert [note.payload for note in notes(engine)] == [{"attempt": 2}]
    assert get(engine, row_id).delivered_at is not None


def test_progress_saved_by_a_failed_attempt_is_seen_by_the_next(engine: Engine) -> None:
    progress: list[dict[str, Any]] = []

    def handler(effect: Effect) -> None:
        progress.append(dict(effect.progress))
        if not effect.progress:
            effect.save(room="C0ROOM")
            raise DeliveryFailed("Slack conversations.invite: TimeoutError", retry_after=0)

    worker = outbox.Worker(engine, {"slack.channel": handler}, fast())
    row_id = put(engine, "slack.channel", "slack:incident:1")
    drive(worker, CHAT, lambda: get(engine, row_id).state == DONE, "the channel row")
    assert progress == [{}, {"room": "C0ROOM"}]


# ---------------------------------------------------------------- 7. dead rows and their revival


def fail_until_dead(worker: outbox.Worker, engine: Engine, row_id: int, lane: str) -> None:
    """deliver_one until the row is dead; every failure before dead_after left it pending."""
    dead_after = timedelta(seconds=worker.options.dead_after)
    deadline = time.monotonic() + WAIT
    attempts = get(engine, row_id).attempts
    while True:
        started = utcnow()
        assert worker.deliver_one(lane) is True
        row = get(engine, row_id)
        attempts += 1
        assert row.attempts == attempts  # this row was the one tried
        if row.state == DEAD:
            assert utcnow() - row.since >= dead_after  # not a moment before dead_after
            return
        assert row.state == PENDING
        assert started - row.since < dead_after  # a failure at dead_after or later would have killed it
        assert time.monotonic() < deadline, "the row never died"
        until(lambda: utcnow() >= get(engine, row_id).not_before, "the retry to be due")


def test_a_row_failing_past_dead_after_dies_holds_its_group_and_is_revived_in_order(engine: Engine) -> None:
    calls = Calls()
    down = {"yes": True}

    def handler(effect: Effect) -> None:
        calls.record(effect)
        if effect.payload.get("name") == "head" and down["yes"]:
            raise DeliveryFailed(f"Slack chat.postMessage: channel_not_found #{len(calls.seen)}", sent=False)

    worker = outbox.Worker(engine, {"slack.post": handler}, fast(dead_after=0.5, chat_backoff_cap=0.05))
    head = put(engine, "slack.post", "slack:incident:1", {"name": "head"})
    behind = put(engine, "slack.post", "slack:incident:1", {"name": "behind"})
    fail_until_dead(worker, engine, head, CHAT)
    dead = get(engine, head)
    assert dead.last_error == f"Slack chat.postMessage: channel_not_found #{len(calls.seen)}"

    # The row behind it waits: a later row of another group goes, and then there is nothing due.
    marker = put(engine, "slack.post", "slack:incident:2", {"name": "marker"})
    assert worker.deliver_one(CHAT) is True
    assert calls.ids()[-1] == marker
    assert worker.deliver_one(CHAT) is False
    assert behind not in calls.ids()
    assert get(engine, behind).state == PENDING and get(engine, head).state == DEAD

    down["yes"] = False
    assert outbox.retry(engine, row_id=behind) == []  # only a dead row is revived
    revived_at = utcnow()
    assert outbox.retry(engine, row_id=head) == [head]
    row = get(engine, head)
    assert row.state == PENDING and row.since >= revived_at and row.not_before <= utcnow()
    assert row.last_error == dead.last_error  # kept until it is delivered
    assert outbox.retry(engine, row_id=head) == []  # pending now, not dead

    drive(worker, CHAT, lambda: get(engine, behind).state == DONE, "the row behind the revived one")
    assert calls.ids()[-2:] == [head, behind]
    assert get(engine, head).state == DONE and get(engine, head).last_error is None


def test_retry_all_dead_revives_every_dead_row(engine: Engine) -> None:
    down = {"yes": True}

    def handler(effect: Effect) -> None:
        if down["yes"]:
            raise DeliveryFailed("source down", sent=False)

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast(dead_after=0.3))
    first = put(engine, "evidence.enrich", "incident:1")
    fail_until_dead(worker, engine, first, WORK)
    second = put(engine, "evidence.enrich", "incident:2")
    fail_until_dead(worker, engine, second, WORK)

    assert sorted(outbox.retry(engine, all_dead=True)) == [first, second]
    assert [row.state for row in all_rows(engine)] == [PENDING, PENDING]
    assert outbox.retry(engine, all_dead=True) == []
    down["yes"] = False
    drive(worker, WORK, lambda: all(r.state == DONE for r in all_rows(engine)), "both revived rows")


def test_a_row_whose_delivery_only_just_began_does_not_die_on_its_first_failure(engine: Engine) -> None:
    """dead_after counts from when a row's delivery began ("A row becomes dead only dead_after seconds
    after its delivery began"; `since`: "delivery (re)started"). A row that waited behind a dead row
    until the operator revived that one has not been tried at all: one failure must not kill it."""
    calls = Calls()
    down = {"yes": True}

    def handler(effect: Effect) -> None:
        calls.record(effect)
        name = effect.payload["name"]
        if name == "head" and down["yes"]:
            raise DeliveryFailed("Slack chat.postMessage: channel_not_found", sent=False)
        if name == "behind" and len(calls.of(effect.id)) == 1:
            raise DeliveryFailed("Slack chat.postMessage: rate limited", sent=False, retry_after=0)

    worker = outbox.Worker(engine, {"slack.post": handler}, fast(dead_after=0.5, chat_backoff_cap=0.05))
    head = put(engine, "slack.post", "slack:incident:1", {"name": "head"})
    behind = put(engine, "slack.post", "slack:incident:1", {"name": "behind"})
    fail_until_dead(worker, engine, head, CHAT)
    down["yes"] = False
    assert outbox.retry(engine, row_id=head) == [head]
    assert worker.deliver_one(CHAT) is True and get(engine, head).state == DONE

    assert worker.deliver_one(CHAT) is True  # the first attempt of `behind`: rate limited
    assert len(calls.of(behind)) == 1
    assert get(engine, behind).state == PENDING


# ---------------------------------------------------------------- 8. unknown kinds


def test_a_kind_without_a_handler_stays_pending_and_says_which_kind(engine: Engine) -> None:
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast(dead_after=3600))
    unknown = put(engine, "review.translate", "incident:1")
    known = put(engine, "evidence.enrich", "incident:2")

    assert worker.deliver_one(WORK) is True
    row = get(engine, unknown)
    assert row.state == PENDING and row.attempts == 1
    assert row.last_error is not None and "review.translate" in row.last_error
    assert worker.deliver_one(WORK) is True  # the other group is not held up
    assert calls.ids() == [known]

    until(lambda: utcnow() >= get(engine, unknown).not_before, "the unknown row to be due again")
    assert worker.deliver_one(WORK) is True
    row = get(engine, unknown)
    assert row.state == PENDING and row.attempts == 2 and "review.translate" in (row.last_error or "")


# ---------------------------------------------------------------- 9. leases


def test_a_claimed_row_is_taken_over_only_after_its_lease_runs_out(engine: Engine) -> None:
    row_id = put(engine, "evidence.enrich", "incident:1")
    first = outbox.claim(engine, WORK, 1.0)
    assert first is not None and first.row.id == row_id and first.uncertain is False
    lease_until = get(engine, row_id).lease_until
    assert lease_until is not None

    again = outbox.claim(engine, WORK, 1.0)
    if utcnow() < lease_until:  # (the claim began before the lease ran out)
        assert again is None

    def takeover() -> outbox.Claimed | None:
        return outbox.claim(engine, WORK, 1.0)

    second = until(takeover, "the lease to run out")
    assert utcnow() > lease_until
    assert second.row.id == row_id and second.token != first.token
    assert second.uncertain is True  # the first claimer may have acted before it vanished
    assert get(engine, row_id).attempts == 2


def test_a_delivery_whose_lease_was_taken_over_does_not_complete(engine: Engine) -> None:
    taken: list[str] = []

    def slow(effect: Effect) -> outbox.Completion:
        # Another replica takes the row over, as it would once this one's lease ran out (cut off from
        # the database, it could not renew it).
        with engine.begin() as connection:
            connection.execute(
                sa.update(OutboxRow).where(col(OutboxRow.id) == effect.id).values(claim="another")
            )
        taken.append("another")

        def complete(session: Session, events: db.Events) -> None:
            outbox.enqueue(session, "test.note", "notes")

        return complete

    worker = outbox.Worker(engine, {"evidence.enrich": slow}, fast(lease=0.3))
    row_id = put(engine, "evidence.enrich", "incident:1")
    assert worker.deliver_one(WORK) is True
    row = get(engine, row_id)
    assert row.state == PENDING and row.claim == taken[0]
    assert notes(engine) == []


def test_a_delivery_slower_than_its_lease_keeps_its_claim(engine: Engine) -> None:
    seen: list[outbox.Claimed | None] = []

    def slow(effect: Effect) -> None:
        time.sleep(1.0)  # more than three leases: the worker renews its claim meanwhile
        seen.append(outbox.claim(engine, WORK, 60.0))

    worker = outbox.Worker(engine, {"evidence.enrich": slow}, fast(lease=0.3))
    row_id = put(engine, "evidence.enrich", "incident:1")
    assert worker.deliver_one(WORK) is True
    assert seen == [None]  # nobody could take it over while it was being delivered
    assert get(engine, row_id).state == DONE


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_starting_on_sqlite_voids_the_leases_of_a_process_that_is_gone(engine: Engine) -> None:
    row_id = put(engine, "evidence.enrich", "incident:1")
    assert outbox.claim(engine, WORK, 3600.0) is not None  # then the process "died"
    delivered = threading.Event()

    def handler(effect: Effect) -> None:
        delivered.set()

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast(work_workers=1, chat_workers=1))
    worker.start()
    try:
        assert delivered.wait(WAIT)
        until(lambda: get(engine, row_id).state == DONE, "the row to be marked delivered")
    finally:
        worker.stop()


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_starting_on_postgresql_leaves_other_replicas_leases_alone(engine: Engine) -> None:
    leased = put(engine, "evidence.enrich", "incident:1")
    assert outbox.claim(engine, WORK, 3600.0) is not None  # another replica is delivering it
    calls = Calls()

    def handler(effect: Effect) -> None:
        calls.record(effect)

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast(work_workers=1, chat_workers=1))
    worker.start()
    try:
        marker = put(engine, "evidence.enrich", "incident:2")
        until(lambda: get(engine, marker).state == DONE, "the later row of another group")
    finally:
        worker.stop()
    # The one worker thread chose the marker while the leased row (due earlier) was not claimable.
    assert calls.ids() == [marker]
    assert get(engine, leased).state == PENDING and get(engine, leased).attempts == 1


# ---------------------------------------------------------------- end to end, with the worker's threads


def test_the_running_worker_delivers_what_is_committed_in_order(engine: Engine) -> None:
    calls = Calls()
    failed: set[int] = set()

    def handler(effect: Effect) -> None:
        calls.record(effect)
        if effect.payload["n"] == 0 and effect.id not in failed:
            failed.add(effect.id)
            raise DeliveryFailed("first try fails", retry_after=0.05)

    options = fast(chat_workers=2, work_workers=2)
    worker = outbox.Worker(engine, {"slack.post": handler, "evidence.enrich": handler}, options)
    worker.start()
    try:
        expected: dict[str, list[int]] = {}
        for n in range(4):
            for group, kind in (("slack:incident:1", "slack.post"), ("incident:1", "evidence.enrich")):
                expected.setdefault(group, []).append(put(engine, kind, group, {"n": n}))
        until(lambda: all(row.state == DONE for row in all_rows(engine)), "every row to be delivered")
    finally:
        worker.stop()
    for group, ids in expected.items():
        delivered = [found[0] for found in calls.seen if found[1] == group]
        assert delivered == [ids[0], *ids], group  # the first failed once; nothing overtook it


# ---------------------------------------------------------------- 10. concurrent claimers (PostgreSQL)


def test_four_claimers_deliver_every_row_exactly_once_in_group_order(pg_url: str) -> None:
    setup = db.make_engine(pg_url)
    db.upgrade(setup)
    groups = [f"slack:incident:{g}" for g in range(20)]

    def fill(session: Session, events: db.Events) -> None:
        for n in range(10):  # interleaved, so that every claim has every group to choose from
            for group in groups:
                outbox.enqueue(session, "slack.post", group, {"n": n})

    db.unit_of_work(setup, None, fill)
    lock = threading.Lock()
    delivered: list[tuple[str, int]] = []
    errors: list[BaseException] = []

    def handler(effect: Effect) -> None:
        with lock:
            delivered.append((effect.group, effect.id))
        time.sleep(0.001)

    engines = [db.make_engine(pg_url) for _ in range(4)]  # four replicas
    workers = [outbox.Worker(e, {"slack.post": handler}, fast()) for e in engines]
    deadline = time.monotonic() + 120

    def loop(worker: outbox.Worker) -> None:
        try:
            while time.monotonic() < deadline:
                with lock:
                    if len(delivered) >= 200:
                        return
                if not worker.deliver_one(CHAT):
                    time.sleep(0.005)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=loop, args=(w,)) for w in workers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert errors == []
        rows = all_rows(setup)
        assert len(delivered) == 200
        assert sorted(row_id for _, row_id in delivered) == [row.id for row in rows]  # each exactly once
        for group in groups:
            ids = [row_id for found_group, row_id in delivered if found_group == group]
            assert len(ids) == 10 and ids == sorted(ids), group
        assert all(row.state == DONE and row.attempts == 1 for row in rows)
    finally:
        for worker in workers:
            worker.stop()  # its lease-renewal thread too, before the engines go
        for e in [*engines, setup]:
            e.dispose()


# ---------------------------------------------------------------- 11. backlog and pruning


def test_backlog_counts_pending_and_dead_by_kind_with_the_oldest_age(engine: Engine) -> None:
    def handler(effect: Effect) -> None:
        if effect.payload.get("fail"):
            raise DeliveryFailed("source down", sent=False, retry_after=0.02)

    worker = outbox.Worker(
        engine, {"evidence.enrich": handler, "slack.thread": handler}, fast(dead_after=0.2)
    )
    dead = put(engine, "evidence.enrich", "incident:4", {"fail": True})
    fail_until_dead(worker, engine, dead, WORK)
    done = put(engine, "slack.thread", "slack:incident:5", {"text": "x"})
    assert worker.deliver_one(CHAT) is True and get(engine, done).state == DONE

    began = utcnow()
    put(engine, "slack.post", "slack:incident:1")
    enqueued = utcnow()
    put(engine, "slack.post", "slack:incident:2")
    put(engine, "evidence.enrich", "incident:3")
    time.sleep(0.3)  # an age worth measuring

    found = outbox.backlog(engine)
    assert found.error is None and found.at is not None
    assert found.pending == {"slack.post": 2, "evidence.enrich": 1}
    assert found.dead == {"evidence.enrich": 1}
    oldest = found.oldest_age_seconds["slack.post"]
    assert (found.at - enqueued).total_seconds() <= oldest <= (found.at - began).total_seconds()
    assert oldest >= 0.3
    summary = found.summary()
    assert summary["pending"] == 3 and summary["dead"] == 1
    assert summary["by_kind"]["evidence.enrich"]["pending"] == 1
    assert summary["by_kind"]["evidence.enrich"]["dead"] == 1
    assert "slack.thread" not in summary["by_kind"]


def test_prune_deletes_only_delivered_rows_older_than_the_cutoff(engine: Engine) -> None:
    def handler(effect: Effect) -> None:
        if effect.payload.get("fail"):
            raise DeliveryFailed("source down", sent=False, retry_after=3600)

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast())
    old = put(engine, "evidence.enrich", "incident:1")
    assert worker.deliver_one(WORK) is True
    failing = put(engine, "evidence.enrich", "incident:2", {"fail": True})  # pending, with an error
    assert worker.deliver_one(WORK) is True
    time.sleep(1.0)
    recent = put(engine, "evidence.enrich", "incident:3")
    assert worker.deliver_one(WORK) is True
    old_at, recent_at = get(engine, old).delivered_at, get(engine, recent).delivered_at
    assert old_at is not None and recent_at is not None
    middle = old_at + (recent_at - old_at) / 2

    assert outbox.prune(engine, (utcnow() - middle).total_seconds()) == 1
    assert [row.id for row in all_rows(engine)] == [failing, recent]
    assert outbox.prune(engine, 0) == 1  # every delivered row; never a pending (or dead) one
    assert [(row.id, row.state) for row in all_rows(engine)] == [(failing, PENDING)]


def test_rows_lists_undelivered_rows_oldest_first(engine: Engine) -> None:
    def handler(effect: Effect) -> None:
        if effect.payload.get("fail"):
            raise DeliveryFailed("source down", sent=False)

    worker = outbox.Worker(engine, {"evidence.enrich": handler}, fast(dead_after=0.2))
    dead = put(engine, "evidence.enrich", "incident:1", {"fail": True})
    fail_until_dead(worker, engine, dead, WORK)
    done = put(engine, "evidence.enrich", "incident:2")
    assert worker.deliver_one(WORK) is True and get(engine, done).state == DONE
    pending = put(engine, "evidence.enrich", "incident:3", not_before=utcnow() + timedelta(hours=1))
    with Session(engine) as session:
        assert [row.id for row in outbox.rows(session)] == [dead, pending]
        assert [row.id for row in outbox.rows(session, dead_only=True)] == [dead]
        assert [row.id for row in outbox.rows(session, limit=1)] == [dead]
    with engine.connect() as connection:  # and nothing was changed by looking
        states = connection.execute(sa.select(col(OutboxRow.state)).order_by(col(OutboxRow.id))).scalars()
        assert list(states) == [DEAD, DONE, PENDING]
