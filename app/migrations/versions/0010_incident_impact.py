"""incident impact

The impact window measured from the incident's SLI (app/slo/impact.py): its method, start and end, the
events in it and the share of the period's budget they spent, and when it was measured.

Revision ID: 0010_incident_impact
Revises: 0009_outbox
Create Date: 2026-12-02 08:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0010_incident_impact"
down_revision = "0009_outbox"
branch_labels = None
depends_on = None

TIMES = ("impact_started_at", "impact_ended_at", "impact_measured_at")
FIGURES = ("impact_bad_events", "impact_total_events", "impact_budget_events", "impact_budget_consumed")


def upgrade() -> None:
    with op.batch_alter_table("incident") as table:
        table.add_column(sa.Column("impact_method", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        for name in TIMES:
            table.add_column(sa.Column(name, app.db.UTCDateTime(timezone=True), nullable=True))
        for name in FIGURES:
            table.add_column(sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("incident") as table:
        for name in ("impact_method", *TIMES, *FIGURES):
            table.drop_column(name)
