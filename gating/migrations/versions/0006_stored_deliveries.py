"""Deliveries keep their payload and act as the embedded job queue: accepted means answered, after any restart.

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as table:
        table.add_column(sa.Column("payload", sa.Text))  # NULL for deliveries accepted before this version
        table.add_column(sa.Column("queue", sa.String(20), nullable=False, server_default="merge"))
        table.add_column(sa.Column("run_after", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("lease_until", sa.DateTime(timezone=True)))
    op.create_index("ix_deliveries_runnable", "deliveries", ["queue", "status", "received_at"])
    # Under way when the old version stopped: abandoned now, so that a worker marks them failed (their
    # payloads were not kept) and a redelivery from GitHub runs them again.
    op.execute("UPDATE deliveries SET lease_until = updated_at WHERE status = 'processing'")


def downgrade() -> None:
    op.drop_index("ix_deliveries_runnable", table_name="deliveries")
    with op.batch_alter_table("deliveries") as table:
        table.drop_column("lease_until")
        table.drop_column("run_after")
        table.drop_column("queue")
        table.drop_column("payload")
