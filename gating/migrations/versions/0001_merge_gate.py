"""Merge gate tables: deliveries, ticket index, check runs.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(20), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("action", sa.String(100)),
        sa.Column("payload_sha256", sa.String(64), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "pull_request_tickets",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("number", sa.Integer, nullable=False),
        sa.Column("ticket_key", sa.String(100), nullable=False),
        sa.Column("installation_id", sa.BigInteger, nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("repository", "number", "ticket_key", name="uq_pr_ticket"),
    )
    op.create_index("ix_pr_ticket_key", "pull_request_tickets", ["ticket_key"])
    op.create_table(
        "check_runs",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(200), nullable=False),
        sa.Column("head_sha", sa.String(64), nullable=False),
        sa.Column("check_name", sa.String(100), nullable=False),
        sa.Column("check_run_id", sa.BigInteger, nullable=False),
        sa.Column("pull_number", sa.Integer),
        sa.Column("outcome", sa.String(20)),
        sa.Column("title", sa.Text),
        sa.Column("evaluated_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("repository", "head_sha", "check_name", name="uq_check_run"),
    )


def downgrade() -> None:
    op.drop_table("check_runs")
    op.drop_index("ix_pr_ticket_key", table_name="pull_request_tickets")
    op.drop_table("pull_request_tickets")
    op.drop_table("deliveries")
