"""Shared by the ledger's tests: fixed keys, a deterministic clock, key files and raw SQL on ledger_entries."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from gating.db import Database
from gating.ledger import Ledger

# Fixed keys, so that a key's hex (and a message naming it) reads the same in every run.
A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
X = Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34)))  # a forger's own key
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DASH = "\N{EN DASH}"


def hex_of(key: Ed25519PrivateKey) -> str:
    return key.public_key().public_bytes_raw().hex()


def short(key: Ed25519PrivateKey) -> str:
    return hex_of(key)[:16] + "…"


class Clock:
    """Deterministic time: each call `step` (a second) later than the last, from `start`."""

    def __init__(self, start: datetime = T0, step: timedelta = timedelta(seconds=1)) -> None:
        self.now, self.step = start, step

    def __call__(self) -> datetime:
        self.now += self.step
        return self.now


def key_file(tmp_path: Path, key: Ed25519PrivateKey, name: str = "ledger.pem") -> Path:
    """`key` as the unencrypted PEM file COUNTERSIGN_SIGNING_KEY_PATH names."""
    path = tmp_path / name
    path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return path


def fill(ledger: Ledger, count: int, start: int = 1) -> None:
    """`count` approved deployment decisions, numbered from `start`."""
    for n in range(start, start + count):
        ledger.append(
            "deployment_decision",
            {"tickets": [{"key": f"PAY-{n}", "status": "Approved"}]},
            index={"repository": "acme/payments", "deployment_id": n, "decision": "approved"},
        )


def sql(db: Database, statement: str, **params: Any) -> None:
    with db.engine.begin() as connection:
        connection.execute(text(statement), params)


def row(db: Database, sequence: int) -> Any:
    with db.engine.connect() as connection:
        return connection.execute(text("SELECT * FROM ledger_entries WHERE sequence = :s"), {"s": sequence}).one()
