"""slack user names

The names of the Slack users the incident record shows (users.info), cached: app/chat/people.py.

Revision ID: 0011_slack_user
Revises: 0010_incident_impact
Create Date: 2026-12-02 16:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0011_slack_user"
down_revision = "0010_incident_impact"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "slack_user",
        sa.Column("id", sqlmodel.sql.sqltypes.AutoString(length=50), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("fetched_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )


def downgrade() -> None:
    op.drop_table("slack_user")
