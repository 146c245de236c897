"""Each decision's repository in the child index tables (search_commits, search_tickets, search_people,
search_versions), lower-case as a viewer's scope compares it, with indexes that end in it and the sequence.

A scoped search by approver (or ticket, commit, version) selected its matches from the child table, then looked
each one up in search_deployments to test the scope: one probe per match, thousands for an approver named on one
decision in eight. With the repository in the child row, the scope is tested in the child's index and the count
is answered from that index alone.

The rows already indexed are filled from search_deployments a range of sequences at a time (one UPDATE with a
correlated subquery each), so a large index is never rewritten in one transaction-sized statement on PostgreSQL
nor held in memory.

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None

# (table, the columns its search filters on): each index is those columns, then the repository and the sequence.
TABLES = (
    ("search_commits", ("sha",)),
    ("search_tickets", ("ticket_key",)),
    ("search_people", ("identity", "role")),
    ("search_versions", ("version",)),
)
BATCH = 20_000  # sequences per UPDATE


def fill(connection: sa.Connection, table: str, *, batch: int = BATCH) -> None:
    """Copy each row's decision's repository, lower-case, into `table`, `batch` sequences at a time."""
    highest = connection.execute(sa.text(f"SELECT max(sequence) FROM {table}")).scalar()
    if highest is None:
        return
    update = sa.text(
        # The table names are this module's constants, never input.
        f"UPDATE {table} SET repository = ("
        "SELECT lower(d.repository) FROM search_deployments d WHERE d.sequence = "
        f"{table}.sequence) WHERE sequence > :low AND sequence <= :high"
    )
    low = 0
    while low < highest:
        connection.execute(update, {"low": low, "high": low + batch})
        low += batch


def upgrade() -> None:
    connection = op.get_bind()
    for table, columns in TABLES:
        op.add_column(table, sa.Column("repository", sa.String(200)))
        fill(connection, table)
        name = table.removeprefix("search_")
        op.create_index(f"ix_search_{name}_scope", table, [*columns, "repository", "sequence"])


def downgrade() -> None:
    for table, _ in TABLES:
        name = table.removeprefix("search_")
        op.drop_index(f"ix_search_{name}_scope", table_name=table)
        with op.batch_alter_table(table) as batch:
            batch.drop_column("repository")
