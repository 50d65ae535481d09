"""slo status budget coverage

Where each evaluation's period budget came from (the recording rules, or the raw SLI while the rules have
not yet recorded for a whole period) and how much of the period that data covers: app/slo/coverage.py.

Revision ID: 0012_slo_status_budget_coverage
Revises: 0011_slack_user
Create Date: 2026-12-02 19:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0012_slo_status_budget_coverage"
down_revision = "0011_slack_user"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("slo_status") as table:
        table.add_column(sa.Column("budget_basis", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        table.add_column(sa.Column("budget_coverage", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("slo_status") as table:
        table.drop_column("budget_coverage")
        table.drop_column("budget_basis")
