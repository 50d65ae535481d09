"""web console

The console's signed-in sessions (a hash of the cookie's secret) and OpenID Connect sign-ins under way;
each SLO evaluation keeps its page tier's burn as a column, so the overview's sparklines are one query.

Revision ID: 0015_console
Revises: 0014_api_tokens
Create Date: 2026-12-03 12:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

import app.db

revision = "0015_console"
down_revision = "0014_api_tokens"
branch_labels = None
depends_on = None


def upgrade() -> None:
    text = sqlmodel.sql.sqltypes.AutoString
    op.create_table(
        "web_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", text(length=64), nullable=False),
        sa.Column("user", text(length=100), nullable=False),
        sa.Column("display", text(length=200), nullable=False),
        sa.Column("scope", text(length=10), nullable=False),
        sa.Column("via", text(length=10), nullable=False),
        sa.Column("token_id", sa.Integer(), nullable=True),
        sa.Column("csrf", text(length=64), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_web_session_secret_hash", "web_session", ["secret_hash"], unique=True)
    op.create_table(
        "oidc_login",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("state", text(length=64), nullable=False),
        sa.Column("nonce", text(length=64), nullable=False),
        sa.Column("verifier", text(length=128), nullable=False),
        sa.Column("next_path", text(length=500), nullable=False),
        sa.Column("created_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_oidc_login_state", "oidc_login", ["state"], unique=True)
    with op.batch_alter_table("slo_status") as table:
        table.add_column(sa.Column("page_burn", sa.Float(), nullable=True))
    op.create_index("ix_slo_status_evaluated_at", "slo_status", ["evaluated_at"])


def downgrade() -> None:
    op.drop_index("ix_slo_status_evaluated_at", table_name="slo_status")
    with op.batch_alter_table("slo_status") as table:
        table.drop_column("page_burn")
    op.drop_index("ix_oidc_login_state", table_name="oidc_login")
    op.drop_table("oidc_login")
    op.drop_index("ix_web_session_secret_hash", table_name="web_session")
    op.drop_table("web_session")
