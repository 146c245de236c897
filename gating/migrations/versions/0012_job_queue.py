"""The PostgreSQL job queue: procrastinate's tables, types and functions (nothing on SQLite, whose worker uses the
deliveries table itself).

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None

# Every object procrastinate's schema creates, for the downgrade. Functions are found by name rather than
# listed, so that the list cannot fall behind the schema of the pinned version.
_TABLES = ("procrastinate_periodic_defers", "procrastinate_events", "procrastinate_jobs", "procrastinate_workers")
_TYPES = ("procrastinate_job_to_defer_v1", "procrastinate_job_event_type", "procrastinate_job_status")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    from procrastinate.schema import SchemaManager

    # The schema of the pinned procrastinate version (requirements.lock), as one script. It runs on the
    # migration's own connection, so it commits with the rest of the upgrade. Sent through the driver
    # without parameters: the script holds `%` and `:` that SQLAlchemy or psycopg would take for placeholders.
    # Upgrading procrastinate later means a new migration running its sql/migrations scripts.
    driver = op.get_bind().connection.driver_connection
    driver.execute(SchemaManager.get_schema())  # type: ignore[union-attr]


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _TABLES:
        op.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
    op.execute(
        """
        DO $$
        DECLARE f record;
        BEGIN
            FOR f IN SELECT p.oid::regprocedure AS signature FROM pg_proc p
                     JOIN pg_namespace n ON n.oid = p.pronamespace
                     WHERE n.nspname = current_schema() AND p.proname LIKE 'procrastinate\\_%'
            LOOP
                EXECUTE 'DROP FUNCTION ' || f.signature || ' CASCADE';
            END LOOP;
        END $$
        """
    )
    for kind in _TYPES:
        op.execute(f"DROP TYPE IF EXISTS {kind} CASCADE")
