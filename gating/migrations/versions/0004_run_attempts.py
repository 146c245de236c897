"""Deploy gate: one decision per workflow run attempt, so that a re-run is decided and answered anew.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Batch mode: SQLite rebuilds the table to change a unique constraint.
    with op.batch_alter_table("deployment_decisions") as table:
        table.add_column(sa.Column("run_attempt", sa.Integer, nullable=False, server_default="1"))
        table.drop_constraint("uq_deployment_decision", type_="unique")
        table.create_unique_constraint("uq_deployment_decision", ["repository", "environment", "run_id", "run_attempt"])


def downgrade() -> None:
    with op.batch_alter_table("deployment_decisions") as table:
        table.drop_constraint("uq_deployment_decision", type_="unique")
        table.create_unique_constraint("uq_deployment_decision", ["repository", "environment", "run_id"])
        table.drop_column("run_attempt")
