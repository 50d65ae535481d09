"""Helpers shared by the security tests: table counts, waiting out background work, Slack signatures."""

from __future__ import annotations

import hashlib
import hmac
import time

import sqlalchemy as sa
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table on SQLModel.metadata)
from tests.servers import wait_until

# Rows in these tables are written by migrations or at start-up, not by requests.
BOOKKEEPING = {"alembic_version"}


def row_counts(database_url: str) -> dict[str, int]:
    """Rows per table, for every table the app defines: "stores nothing" means none of these moved."""
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as connection:
            return {
                table.name: connection.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
                for table in SQLModel.metadata.sorted_tables
                if table.name not in BOOKKEEPING
            }
    finally:
        engine.dispose()


def settle(database_url: str, timeout: float = 60) -> None:
    """Wait until no outbox row is pending: the work a change started in the background (the evidence an
    incident gathers, its measurement) is done, so whatever changes afterwards is a later request's."""
    engine = sa.create_engine(database_url)
    pending = sa.text("SELECT count(*) FROM outbox WHERE state = 'pending'")
    try:

        def idle() -> bool:
            with engine.connect() as connection:
                return bool(connection.execute(pending).scalar_one() == 0)

        wait_until(idle, timeout=timeout, what="the background work")
    finally:
        engine.dispose()


def slack_headers(body: str, secret: str, timestamp: int | None = None) -> dict[str, str]:
    """Sign a body exactly as Slack does (v0 HMAC-SHA256 over `v0:<ts>:<body>`)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    digest = hmac.new(secret.encode(), f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
    return {
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": f"v0={digest}",
        "Content-Type": "application/x-www-form-urlencoded",
    }
