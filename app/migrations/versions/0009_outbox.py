"""outbox

Durable effects: one row per consequence outside the database (a Slack call, evidence gathering, a review
draft, a rollback's verification), written in the unit of work that causes it and delivered by the worker
of every replica (`app/outbox.py`).

Revision ID: 0009_outbox
Revises: 0008_installation
Create Date: 2026-12-01 23:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0009_outbox"
down_revision = "0008_installation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("lane", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("group_key", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("incident_id", sa.Integer(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("progress", sa.JSON(), nullable=False),
        sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("since", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("not_before", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lease_until", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("claim", sqlmodel.sql.sqltypes.AutoString(length=36), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("uncertain", sa.Boolean(), nullable=False),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(length=2000), nullable=True),
        sa.Column("delivered_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_outbox_group_id", "outbox", ["group_key", "id"])
    op.create_index("ix_outbox_due", "outbox", ["state", "lane", "not_before"])
    op.create_index(op.f("ix_outbox_incident_id"), "outbox", ["incident_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_outbox_incident_id"), table_name="outbox")
    op.drop_index("ix_outbox_due", table_name="outbox")
    op.drop_index("ix_outbox_group_id", table_name="outbox")
    op.drop_table("outbox")
