"""drift signal detail

A categorical feature's categories that the reference never held, named with their counts, and their
share of the window (`drift_signal.detail`).

Revision ID: 0020_drift_detail
Revises: 0019_planned_silences
Create Date: 2026-12-06 23:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_drift_detail"
down_revision = "0019_planned_silences"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("drift_signal") as batch:
        batch.add_column(sa.Column("detail", sa.JSON(none_as_null=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("drift_signal") as batch:
        batch.drop_column("detail")
