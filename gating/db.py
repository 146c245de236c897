"""The database: engine, sessions and Alembic migrations (`countersign db upgrade`)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, cast

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import CursorResult, Engine, Update, create_engine, event
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS = Path(__file__).parent / "migrations"


class NotMigrated(RuntimeError):
    pass


class DatabaseUnavailable(RuntimeError):
    """The database did not answer: one line naming the URL (password hidden) and the driver's reason."""

    def __init__(self, url: str, reason: str) -> None:
        self.url = _redact(url)
        self.reason = reason
        super().__init__(f"cannot connect to the database at {self.url}: {reason}")


def _alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


class Database:
    def __init__(self, url: str) -> None:
        self.url = url
        if url.startswith("sqlite"):
            _make_folder_for(url)
            self.engine: Engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    def upgrade(self) -> None:
        with self.engine.begin() as connection:
            config = _alembic_config(self.url)
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    def pending_migrations(self) -> bool:
        head = ScriptDirectory.from_config(_alembic_config(self.url)).get_current_head()
        with self.engine.connect() as connection:
            current = MigrationContext.configure(connection).get_current_revision()
        return current != head

    def require_migrated(self) -> None:
        try:
            pending = self.pending_migrations()
        except OperationalError as exc:
            # At boot this is the operator's first sight of a wrong DATABASE_URL: a sentence, not a traceback.
            raise DatabaseUnavailable(self.url, connection_failure(exc, self.url)) from None
        if pending:
            raise NotMigrated(
                "the database is not migrated to this version of Countersign; run `countersign db upgrade` "
                f"(DATABASE_URL={_redact(self.url)})"
            )

    def dispose(self) -> None:
        self.engine.dispose()


def rows_updated(session: Session, statement: Update) -> int:
    """Run an UPDATE and say how many rows it changed (how a worker knows it won a claim)."""
    result = session.execute(statement)
    return int(cast(CursorResult[Any], result).rowcount)


def _make_folder_for(url: str) -> None:
    """SQLite creates the file but not its folder (the instance folder on a first run)."""
    from sqlalchemy.engine import make_url

    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).resolve().parent.mkdir(parents=True, exist_ok=True)


def _sqlite_pragmas(dbapi_connection, _record) -> None:  # type: ignore[no-untyped-def]
    # WAL lets the dashboard read while a worker writes; busy_timeout rides out short write locks.
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    # In WAL mode NORMAL loses at most the last commits on power loss, never consistency; a lost
    # delivery record only means a redelivery is processed again. Production runs PostgreSQL.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def connection_failure(exc: OperationalError, url: str) -> str:
    """The driver's reason in one line (its first), with the password removed should a driver ever echo it."""
    from sqlalchemy.engine import make_url

    lines = str(exc.orig or exc).strip().splitlines()
    reason = lines[0].strip() if lines else type(exc).__name__
    password = make_url(url).password
    return reason.replace(str(password), "***") if password else reason


def _redact(url: str) -> str:
    """A URL safe to print: any password replaced."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
