"""slo spark rollup

The console's sparklines read a rollup (the highest page-tier burn of each SLO in each quarter hour) that
every evaluation cycle keeps, instead of grouping a day of slo_status rows on every page view; filled here
from the rows already stored.

Revision ID: 0017_slo_spark
Revises: 0016_gate_exceptions
Create Date: 2026-12-04 19:40:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0017_slo_spark"
down_revision = "0016_gate_exceptions"
branch_labels = None
depends_on = None

BUCKET = 900  # app.slo.models.SPARK_BUCKET when this was written


def upgrade() -> None:
    op.create_table(
        "slo_spark",
        sa.Column("slo_id", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("bucket", sa.BigInteger(), nullable=False),
        sa.Column("burn", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("slo_id", "bucket"),
    )
    op.create_index("ix_slo_spark_bucket", "slo_spark", ["bucket"])
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        epoch = "date_part('epoch', evaluated_at)"
    else:
        epoch = "CAST(strftime('%s', evaluated_at) AS INTEGER)"
    op.execute(
        "INSERT INTO slo_spark (slo_id, bucket, burn) "
        f"SELECT slo_id, CAST(floor({epoch} / {BUCKET}) AS BIGINT), max(page_burn) "
        "FROM slo_status WHERE page_burn IS NOT NULL GROUP BY 1, 2"
    )
    if bind.dialect.name == "postgresql":
        op.execute("ANALYZE slo_spark")


def downgrade() -> None:
    op.drop_index("ix_slo_spark_bucket", table_name="slo_spark")
    op.drop_table("slo_spark")
