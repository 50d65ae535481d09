"""planned silences

Each occurrence of a planned window (sloguard.yaml `planned_windows:`) that sloguard silences in
Alertmanager before it starts, with the silence's ID once Alertmanager answered.

Revision ID: 0019_planned_silences
Revises: 0018_change_events
Create Date: 2026-12-04 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0019_planned_silences"
down_revision = "0018_change_events"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "planned_silence",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", text(length=120), nullable=False),
        sa.Column("window", text(length=63), nullable=False),
        sa.Column("starts_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ends_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("slo_ids", sa.JSON(), nullable=False),
        sa.Column("state", text(length=12), nullable=False),
        sa.Column("silence_id", text(length=64), nullable=True),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key", name="uq_planned_silence_key"),
    )


def downgrade() -> None:
    op.drop_table("planned_silence")
