"""Two indexes a page view needs at a million entries: a decision's repository by its sequence, and the ledger's
entries by kind in chain order.

- `ix_search_deployments_scope` (sequence, repository): a search by a ticket, commit, person or version selects its
  decisions' sequences from another index table; within a viewer's scope each must then be tested against the
  scope's repository patterns. Without it that test reads each decision's row, one random page per decision (an
  approver named on 1 decision in 8 means thousands per search, to count them); with it, only the index.
- `ix_ledger_kind_sequence` (kind, sequence), in place of `ix_ledger_kind`: each dossier view's verification looks
  for the first key change (`kind = 'key_change' ORDER BY sequence`). SQLite's statistics say a kind matches nearly
  every entry (almost all are decisions), so with an index on the kind alone it walked the whole ledger in sequence
  order to avoid a sort; with the sequence in the index the filter and the order are one index range, and every
  query the old index served is still served by this one.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_search_deployments_scope", "search_deployments", ["sequence", "repository"])
    op.create_index("ix_ledger_kind_sequence", "ledger_entries", ["kind", "sequence"])
    op.drop_index("ix_ledger_kind", table_name="ledger_entries")


def downgrade() -> None:
    op.create_index("ix_ledger_kind", "ledger_entries", ["kind"])
    op.drop_index("ix_ledger_kind_sequence", table_name="ledger_entries")
    op.drop_index("ix_search_deployments_scope", table_name="search_deployments")
