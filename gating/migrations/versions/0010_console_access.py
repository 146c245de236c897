"""Console access: API tokens scoped to repositories and their last use; sessions of people signed in.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # NULL repositories: every repository, as every token saw before scopes existed.
    op.add_column("api_tokens", sa.Column("repositories", sa.Text))
    op.add_column("api_tokens", sa.Column("last_used_at", sa.DateTime(timezone=True)))
    op.create_table(
        "console_sessions",
        sa.Column("id_sha256", sa.String(64), primary_key=True),
        sa.Column("provider", sa.String(20), nullable=False),
        sa.Column("subject", sa.String(200), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("repositories", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_console_sessions_expires", "console_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_index("ix_console_sessions_expires", table_name="console_sessions")
    op.drop_table("console_sessions")
    with op.batch_alter_table("api_tokens") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("last_used_at")
        batch.drop_column("repositories")
