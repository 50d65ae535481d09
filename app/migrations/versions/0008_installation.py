"""installation id

One row with a random id, written here and nowhere else: a running sloguard remembers it and refuses a
database that no longer holds it (dropped and re-created, a SQLite file removed). A database migrated from
0007 gets its row now; a new one gets it with the rest of the schema.

Revision ID: 0008_installation
Revises: 0007
Create Date: 2026-11-27 10:00:00.000000
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0008_installation"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    installation = op.create_table(
        "installation",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.bulk_insert(installation, [{"id": str(uuid.uuid4()), "created_at": datetime.now(UTC)}])


def downgrade() -> None:
    op.drop_table("installation")
