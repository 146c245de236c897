"""Evidence ledger entries and API tokens.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

LEDGER_INDEXES = ("repository", "environment", "deployment_id", "sha", "decision", "kind", "created_at")


def upgrade() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("payload", sa.Text, nullable=False),
        sa.Column("signature", sa.String(200)),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("repository", sa.String(200)),
        sa.Column("environment", sa.String(200)),
        sa.Column("deployment_id", sa.BigInteger),
        sa.Column("sha", sa.String(64)),
        sa.Column("decision", sa.String(30)),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("sequence", name="uq_ledger_sequence"),
        sa.UniqueConstraint("prev_hash", name="uq_ledger_prev_hash"),
    )
    for column in LEDGER_INDEXES:
        op.create_index(f"ix_ledger_{column}", "ledger_entries", [column])
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("token_sha256", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True)),
        sa.UniqueConstraint("name", name="uq_api_token_name"),
        sa.UniqueConstraint("token_sha256", name="uq_api_token_sha256"),
    )


def downgrade() -> None:
    op.drop_table("api_tokens")
    for column in LEDGER_INDEXES:
        op.drop_index(f"ix_ledger_{column}", table_name="ledger_entries")
    op.drop_table("ledger_entries")
