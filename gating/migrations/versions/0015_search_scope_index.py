"""The repository of each indexed decision, beside its sequence: a scoped viewer's search finds it from an index.

A search by a ticket, commit, person or version selects its decisions' sequences from another index table; within a
viewer's scope each of them must then be tested against the scope's repository patterns. Without this index that
test reads each decision's row from the table, one random page per decision (for an approver of 1 decision in 8,
thousands of pages per search, to count them); with it the database reads the repository from the index alone.

Revision ID: 0015
Revises: 0013
"""

from alembic import op

revision = "0015"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_search_deployments_scope", "search_deployments", ["sequence", "repository"])


def downgrade() -> None:
    op.drop_index("ix_search_deployments_scope", table_name="search_deployments")
