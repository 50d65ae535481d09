"""Replay protection for POST /slack/events, in the database so that every replica sees it.

Slack's guidance is to refuse requests whose timestamp is more than five minutes away from now, and so
bound replays to that window (`door.signed_headers` does); inside it, the same signed request
delivered again is recognised by its signature — exactly the one header value that was verified — and
not acted on a second time.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Engine

from app import db
from app.chat.models import SlackDelivery

# Longer than the door's 5-minute window on either side of now, so a remembered signature outlives its use.
REMEMBER = timedelta(minutes=11)


def first_delivery(engine: Engine, signature: str, now: datetime) -> bool:
    """Record the delivery; False when this signature was seen already (a replay)."""
    table = SlackDelivery.__table__  # type: ignore[attr-defined]
    insert = (postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert)(table)
    with db.writer_lock(engine), engine.begin() as connection:
        connection.execute(sa.delete(table).where(table.c.received_at < now - REMEMBER))
        added = connection.execute(
            insert.values(signature=signature, received_at=now)
            .on_conflict_do_nothing()
            .returning(table.c.signature)
        ).first()
    return added is not None
