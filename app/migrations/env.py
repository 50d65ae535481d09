"""Alembic environment: the engine comes from app.db.alembic_config or SLOGUARD_DATABASE_URL."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import text
from sqlmodel import SQLModel

import app.models  # noqa: F401  (registers every table on SQLModel.metadata)
from app.db import make_engine

config = context.config
MIGRATION_LOCK = (
    "SELECT pg_advisory_xact_lock(hashtextextended('sloguard-migrations:' || current_schema(), 0))"
)
target_metadata = SQLModel.metadata


def run_migrations() -> None:
    engine = config.attributes.get("engine")
    if engine is None:
        engine = make_engine(os.environ.get("SLOGUARD_DATABASE_URL", "sqlite:///./sloguard.db"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=target_metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # Replicas starting together migrate one at a time; the others then find the schema
                # at head. The lock is released when the migration transaction ends.
                connection.execute(text(MIGRATION_LOCK))
            context.run_migrations()
        connection.commit()


run_migrations()
