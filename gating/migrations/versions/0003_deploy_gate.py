"""Deploy gate: decisions sent once, emergencies awaiting retroactive approval.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deployment_decisions",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200), nullable=False),
        sa.Column("run_id", sa.BigInteger, nullable=False),
        sa.Column("deployment_id", sa.BigInteger),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("callback_url", sa.Text),
        sa.Column("ledger_entry_id", sa.Integer, nullable=False),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("callback_sent_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("repository", "environment", "run_id", name="uq_deployment_decision"),
    )
    op.create_index("ix_deployment_decision_latest", "deployment_decisions", ["repository", "environment", "state"])
    op.create_table(
        "emergencies",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("ledger_entry_id", sa.Integer, nullable=False),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("environment", sa.String(200)),
        sa.Column("deployment_id", sa.BigInteger),
        sa.Column("installation_id", sa.BigInteger, nullable=False),
        sa.Column("sha", sa.String(64), nullable=False),
        sa.Column("tickets", sa.Text, nullable=False),
        sa.Column("people", sa.Text, nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True)),
        sa.Column("resolution_entry_id", sa.Integer),
    )
    op.create_index("ix_emergency_open", "emergencies", ["resolved_at", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_emergency_open", table_name="emergencies")
    op.drop_table("emergencies")
    op.drop_index("ix_deployment_decision_latest", table_name="deployment_decisions")
    op.drop_table("deployment_decisions")
