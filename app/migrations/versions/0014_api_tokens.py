"""personal api tokens

Personal API tokens, stored as their SHA-256 (app/identity): each acts as its owner within its scope.
Timeline and audit rows keep the token their actor used.

Revision ID: 0014_api_tokens
Revises: 0013_calibrated_drift
Create Date: 2026-12-02 23:50:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0014_api_tokens"
down_revision = "0013_calibrated_drift"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "api_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user", text(length=100), nullable=False),
        sa.Column("name", text(length=100), nullable=False),
        sa.Column("scope", text(length=10), nullable=False),
        sa.Column("token_hash", text(length=64), nullable=False),
        sa.Column("hint", text(length=20), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("created_by", text(length=100), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_by", text(length=100), nullable=True),
        sa.Column("last_used_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_api_token_user", "api_token", ["user"])
    op.create_index("ix_api_token_token_hash", "api_token", ["token_hash"], unique=True)
    with op.batch_alter_table("timeline_event") as table:
        table.add_column(sa.Column("token_id", sa.Integer(), nullable=True))
    with op.batch_alter_table("audit_event") as table:
        table.add_column(sa.Column("token_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit_event") as table:
        table.drop_column("token_id")
    with op.batch_alter_table("timeline_event") as table:
        table.drop_column("token_id")
    op.drop_index("ix_api_token_token_hash", table_name="api_token")
    op.drop_index("ix_api_token_user", table_name="api_token")
    op.drop_table("api_token")
