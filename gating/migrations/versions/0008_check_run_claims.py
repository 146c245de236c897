"""Merge gate: check-run claims and compare-and-set publishing; ticket changes every process can see.

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table to make check_run_id nullable.
    with op.batch_alter_table("check_runs") as table:
        table.alter_column("check_run_id", existing_type=sa.BigInteger, nullable=True)
        table.add_column(sa.Column("claim_token", sa.String(64)))
        table.add_column(sa.Column("claim_expires_at", sa.DateTime(timezone=True)))
        table.add_column(sa.Column("published_as_of", sa.DateTime(timezone=True)))
    op.create_table(
        "ticket_changes",
        sa.Column("key", sa.String(100), primary_key=True),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ticket_changes")
    op.execute("DELETE FROM check_runs WHERE check_run_id IS NULL")  # claims that never got a check run
    with op.batch_alter_table("check_runs") as table:
        table.drop_column("published_as_of")
        table.drop_column("claim_expires_at")
        table.drop_column("claim_token")
        table.alter_column("check_run_id", existing_type=sa.BigInteger, nullable=False)
