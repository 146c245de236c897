"""The migrations build exactly the schema the models describe: every table, column, type and index."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from gating.db import Database
from gating.models import Base


def test_the_migrated_database_is_what_the_models_describe(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    # The job queue's tables are procrastinate's own (migration 0012, PostgreSQL only), not our models.
    ours = [d for d in differences if "procrastinate" not in str(d)]
    assert ours == []
