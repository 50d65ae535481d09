"""People by name: the Slack display name of a user ID (`users.info`, which needs the `users:read`
scope), cached in the database for a day. Whatever cannot be had (no Slack, an error, an ID Slack does
not know) falls back to the ID itself, so the record never waits on Slack or loses who did what."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from slack_sdk.errors import SlackApiError, SlackClientError
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from app import db
from app.chat.models import SlackUser
from app.inputs import fit

log = logging.getLogger(__name__)
FRESH = timedelta(days=1)
ASK_AT_MOST = 50  # users.info calls for one record (Slack's Tier 4: 100 a minute)
ASK_FOR = 5.0  # seconds of users.info calls for one record, at most: a slow Slack does not hold it up
USER_ID = re.compile(r"^[UW][A-Z0-9]{2,30}$")
NAME_LIMIT = 200


def is_user_id(value: str | None) -> bool:
    return bool(value) and USER_ID.match(value or "") is not None


def _name(answer: Any) -> str | None:
    user = answer.get("user") or {}
    profile = user.get("profile") or {}
    for candidate in (
        profile.get("display_name"),
        profile.get("real_name"),
        user.get("real_name"),
        user.get("name"),
    ):
        if isinstance(candidate, str) and candidate.strip():
            return fit(candidate.strip(), NAME_LIMIT)
    return None


def names(engine: Engine, client: Any, ids: Iterable[str | None], now: datetime) -> dict[str, str]:
    """{user ID: display name} for the Slack user IDs among `ids`: from the cache, else from users.info
    (stored for next time, and so is an ID Slack does not know). IDs without a name are left out. Slack
    is asked for ASK_FOR seconds at most, and not again after a call that did not reach it."""
    wanted = sorted({value for value in ids if value and is_user_id(value)})
    if not wanted:
        return {}
    with Session(engine) as session:
        cached = {row.id: row for row in session.exec(select(SlackUser).where(col(SlackUser.id).in_(wanted)))}
    found = {uid: row.name for uid, row in cached.items()}
    stale = [uid for uid in wanted if uid not in cached or cached[uid].fetched_at < now - FRESH]
    fetched: dict[str, str] = {}
    deadline = time.monotonic() + ASK_FOR
    for uid in stale[:ASK_AT_MOST] if client is not None else []:
        if time.monotonic() > deadline:
            break
        try:
            name = _name(client.users_info(user=uid))
        except SlackApiError as exc:  # Slack answered: e.g. user_not_found, which is remembered
            error = exc.response.get("error") if isinstance(exc.response.data, dict) else None
            log.info("no Slack name for a user", extra={"user": uid, "error": error})
            name = uid if error in ("user_not_found", "users_not_found") else None
        except (SlackClientError, OSError) as exc:  # Slack not reached: the rest would not be either
            log.info("Slack not reached for names", extra={"error": type(exc).__name__})
            break
        if name:
            fetched[uid] = name
    if fetched:

        def store(session: Session, events: db.Events) -> None:
            for uid, name in fetched.items():
                session.merge(SlackUser(id=uid, name=name, fetched_at=now))

        db.unit_of_work(engine, None, store)
    return {uid: name for uid, name in (found | fetched).items() if name != uid}


def label(known: dict[str, str], actor: str | None) -> str | None:
    """`Alice Smith (U0ALICE)`, or the actor as it was recorded."""
    if actor and actor in known and known[actor] != actor:
        return f"{known[actor]} ({actor})"
    return actor
