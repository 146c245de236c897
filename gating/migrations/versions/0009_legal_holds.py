"""Legal holds: what the retention purge must keep, placed and lifted by `countersign hold`.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "legal_holds",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("repository", sa.String(200)),
        sa.Column("ticket", sa.String(100)),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("placed_entry", sa.BigInteger, nullable=False),
        sa.Column("released_at", sa.DateTime(timezone=True)),
        sa.Column("released_entry", sa.BigInteger),
    )
    op.create_index("ix_legal_holds_active", "legal_holds", ["released_at"])


def downgrade() -> None:
    op.drop_index("ix_legal_holds_active", table_name="legal_holds")
    op.drop_table("legal_holds")
