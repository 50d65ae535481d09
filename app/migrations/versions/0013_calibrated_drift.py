"""calibrated drift

Drift signals calibrated to sample size (app/ml/drift.py): each keeps its state (drifted, ok or
insufficient_data), the current window's size, the effect size and the feature's kind; a signal with too
few values to judge has no statistic or threshold.

Revision ID: 0013_calibrated_drift
Revises: 0012_slo_status_budget_coverage
Create Date: 2026-12-02 20:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0013_calibrated_drift"
down_revision = "0012_slo_status_budget_coverage"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift_signal") as table:
        table.add_column(sa.Column("state", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
        table.add_column(sa.Column("n", sa.Integer(), nullable=True))
        table.add_column(sa.Column("effect", sa.Float(), nullable=True))
        table.add_column(sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True))
        table.alter_column("score", existing_type=sa.Float(), nullable=True)
        table.alter_column("threshold", existing_type=sa.Float(), nullable=True)


def downgrade() -> None:
    with op.batch_alter_table("drift_signal") as table:
        table.alter_column("threshold", existing_type=sa.Float(), nullable=False)
        table.alter_column("score", existing_type=sa.Float(), nullable=False)
        table.drop_column("kind")
        table.drop_column("effect")
        table.drop_column("n")
        table.drop_column("state")
