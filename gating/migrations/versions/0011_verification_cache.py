"""The ledger's last verification per trusted key, so that a dossier view verifies only the entries appended since.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ledger_verifications",
        sa.Column("anchor", sa.String(64), primary_key=True),
        sa.Column("sequence", sa.BigInteger, nullable=False),
        sa.Column("head_hash", sa.String(64), nullable=False),
        sa.Column("ok", sa.Boolean, nullable=False),
        sa.Column("result", sa.Text, nullable=False),
        sa.Column("verified_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("full_verified_at", sa.DateTime(timezone=True)),
        sa.Column("full_verified_sequence", sa.BigInteger),
        sa.Column("full_ok", sa.Boolean),
    )


def downgrade() -> None:
    op.drop_table("ledger_verifications")
