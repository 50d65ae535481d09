"""change events

Registry change events (app/changes): each model-registry webhook MLflow sent (an alias moved or removed,
a version registered), one row per delivery, with the version the alias pointed at before (sloguard's own
record: MLflow keeps no alias history) and, for sloguard's own moves, the rollback action and its actor.

Revision ID: 0018_change_events
Revises: 0017_slo_spark
Create Date: 2026-12-04 20:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0018_change_events"
down_revision = "0017_slo_spark"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "change_event",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("delivery_id", text(length=100), nullable=False),
        sa.Column("body_digest", text(length=64), nullable=False),
        sa.Column("source", text(length=20), nullable=False),
        sa.Column("kind", text(length=20), nullable=False),
        sa.Column("registered_model", text(length=200), nullable=False),
        sa.Column("model", text(length=200), nullable=False),
        sa.Column("environment", text(length=50), nullable=True),
        sa.Column("alias", text(length=100), nullable=True),
        sa.Column("version", text(length=100), nullable=True),
        sa.Column("from_version", text(length=100), nullable=True),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("received_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action_id", sa.Integer(), nullable=True),
        sa.Column("actor", text(length=100), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.ForeignKeyConstraint(["action_id"], ["rollback_action.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("delivery_id"),
    )
    op.create_index("ix_change_event_model", "change_event", ["model"])
    op.create_index("ix_change_event_action_id", "change_event", ["action_id"])
    op.create_index("ix_change_event_alias_at", "change_event", ["registered_model", "alias", "at"])


def downgrade() -> None:
    op.drop_index("ix_change_event_alias_at", table_name="change_event")
    op.drop_index("ix_change_event_action_id", table_name="change_event")
    op.drop_index("ix_change_event_model", table_name="change_event")
    op.drop_table("change_event")
