"""gate exceptions

Release gates (app/gates): an exception a named person granted for one blocked release, kept as its audit
record; and whether each model environment's promotions are frozen, as last judged (so a freeze is
announced once, with hysteresis).

Revision ID: 0016_gate_exceptions
Revises: 0015_console
Create Date: 2026-12-03 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0016_gate_exceptions"
down_revision = "0015_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "gate_exception",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", text(length=200), nullable=False),
        sa.Column("version", text(length=100), nullable=False),
        sa.Column("environment", text(length=50), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("granted_by", text(length=100), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("confirmed_by", text(length=100), nullable=True),
        sa.Column("state", text(length=12), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_gate_exception_model", "gate_exception", ["model"])
    op.create_table(
        "gate_freeze",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("model", text(length=200), nullable=False),
        sa.Column("environment", text(length=50), nullable=False),
        sa.Column("frozen", sa.Boolean(), nullable=False),
        sa.Column("changed_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("lowest", sa.Float(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("model", "environment", name="uq_gate_freeze_model_environment"),
    )


def downgrade() -> None:
    op.drop_table("gate_freeze")
    op.drop_index("ix_gate_exception_model", table_name="gate_exception")
    op.drop_table("gate_exception")
