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

# The highest page burn of each SLO in each 900 s bucket (app.slo.models.SPARK_BUCKET when this was
# written), from the rows already stored.
BACKFILL_POSTGRESQL = (
    "INSERT INTO slo_spark (slo_id, bucket, burn) "
    "SELECT slo_id, CAST(floor(date_part('epoch', evaluated_at) / 900) AS BIGINT), max(page_burn) "
    "FROM slo_status WHERE page_burn IS NOT NULL GROUP BY 1, 2"
)
BACKFILL_SQLITE = (
    "INSERT INTO slo_spark (slo_id, bucket, burn) "
    "SELECT slo_id, CAST(strftime('%s', evaluated_at) AS INTEGER) / 900, max(page_burn) "
    "FROM slo_status WHERE page_burn IS NOT NULL GROUP BY 1, 2"
)


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
        op.execute(BACKFILL_POSTGRESQL)
        op.execute("ANALYZE slo_spark")
    else:
        op.execute(BACKFILL_SQLITE)


def downgrade() -> None:
    op.drop_index("ix_slo_spark_bucket", table_name="slo_spark")
    op.drop_table("slo_spark")
