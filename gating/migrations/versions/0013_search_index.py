"""The console's search index (search_* tables), filled from the deployment decisions already in the ledger.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

# Hexadecimal SHAs compare byte by byte whatever the database's collation, so a prefix is a range of the index.
_HEX = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")


def upgrade() -> None:
    op.create_table(
        "search_deployments",
        # On SQLite an INTEGER primary key is the rowid: rows are found by sequence in one lookup, not two.
        sa.Column(
            "sequence", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=False
        ),
        sa.Column("entry_id", sa.Integer, nullable=False),
        sa.Column("repository", sa.String(200)),
        sa.Column("environment", sa.String(200)),
        sa.Column("deployment_id", sa.BigInteger),
        sa.Column("sha", sa.String(64)),
        sa.Column("decision", sa.String(30)),
        sa.Column("ref", sa.String(300)),
        sa.Column("requester", sa.String(200)),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("tickets", sa.Text, nullable=False),
        sa.Column("commit_count", sa.Integer, nullable=False),
        sa.UniqueConstraint("entry_id", name="uq_search_deployments_entry"),
    )
    op.create_index("ix_search_deployments_repository", "search_deployments", ["repository", "sequence"])
    op.create_index("ix_search_deployments_environment", "search_deployments", ["environment", "sequence"])
    op.create_index("ix_search_deployments_decision", "search_deployments", ["decision", "sequence"])
    op.create_index("ix_search_deployments_recorded_at", "search_deployments", ["recorded_at"])
    op.create_table(
        "search_commits",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("sha", _HEX, primary_key=True),
    )
    op.create_index("ix_search_commits_sha", "search_commits", ["sha", "sequence"])
    op.create_table(
        "search_tickets",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("ticket_key", sa.String(100), primary_key=True),
    )
    op.create_index("ix_search_tickets_key", "search_tickets", ["ticket_key", "sequence"])
    op.create_table(
        "search_people",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("role", sa.String(20), primary_key=True),
        sa.Column("identity", sa.String(200), primary_key=True),
    )
    op.create_index("ix_search_people_identity", "search_people", ["identity", "role", "sequence"])
    op.create_table(
        "search_versions",
        sa.Column("sequence", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("version", sa.String(300), primary_key=True),
    )
    op.create_index("ix_search_versions_version", "search_versions", ["version", "sequence"])

    op.create_table("search_repositories", sa.Column("name", sa.String(200), primary_key=True))

    # The entries already recorded, read and indexed a batch at a time: a large ledger is never held in memory.
    # The rows are built by the same code as at append time, so old and new entries are found alike.
    from gating.console.index import backfill

    backfill(op.get_bind(), repository=False)  # the child rows' repository column is added (and filled) by 0016


def downgrade() -> None:
    for table in (
        "search_repositories",
        "search_versions",
        "search_people",
        "search_tickets",
        "search_commits",
        "search_deployments",
    ):
        op.drop_table(table)
