"""The database a ledger benchmark writes: given or a temporary SQLite file, migrated, and empty; the options that
choose it."""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from sqlalchemy import text

from gating.db import Database, _redact


def ledger_arguments(description: str | None, count_help: str) -> argparse.ArgumentParser:
    """A benchmark's command line with --count (100,000 by default), --database-url and --reset; add its own."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000, help=count_help)
    parser.add_argument("--database-url", help="default: a SQLite file in a temporary directory")
    parser.add_argument("--reset", action="store_true", help="delete existing ledger entries first")
    return parser


def empty_ledger_database(
    url: str | None, *, reset: bool, tmp: tempfile.TemporaryDirectory[str]
) -> tuple[str, Database]:
    """`url` (else a SQLite file in `tmp`), migrated; exits when it already holds entries unless `reset`."""
    url = url or f"sqlite:///{Path(tmp.name) / 'ledger.sqlite3'}"
    db = Database(url)
    db.upgrade()
    with db.engine.begin() as connection:
        if reset:
            connection.execute(text("DELETE FROM ledger_entries"))
        existing = connection.execute(text("SELECT COUNT(*) FROM ledger_entries")).scalar_one()
    if existing:
        sys.exit(f"the ledger in {_redact(url)} already holds {existing} entries; pass --reset or a fresh database")
    return url, db
