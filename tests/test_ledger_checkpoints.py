"""Checkpoints that cannot be used, a checkpoint of an empty ledger, and a broken ledger behind a good checkpoint."""

from __future__ import annotations

from typing import Any

import pytest
from ledger_helpers import T0, A
from sqlalchemy import text

from gating.db import Database
from gating.ledger import Ledger, make_checkpoint, verify_against_checkpoint


def fill(ledger: Ledger, count: int) -> None:
    for n in range(1, count + 1):
        ledger.append("deployment_decision", {"n": n}, index={"deployment_id": n, "decision": "approved"})


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"sequence": None, "head_hash": None}, "checkpoint is missing sequence, head_hash"),
        ({"sequence": -1}, "checkpoint sequence -1 is not a non-negative integer"),
        ({"sequence": "3"}, "checkpoint sequence '3' is not a non-negative integer"),
        ({"public_key": "not a key"}, "checkpoint has a signature but no valid public_key"),
        ({"public_key": None}, "checkpoint has a signature but no valid public_key"),
    ],
    ids=["missing", "negative", "text", "bad key", "no key"],
)
def test_a_checkpoint_that_cannot_be_used_is_refused_before_the_ledger_is_read(
    db: Database, change: dict[str, Any], reason: str
) -> None:
    ledger = Ledger(db, A)
    fill(ledger, 2)
    checkpoint = make_checkpoint(ledger, A, now=T0)
    damaged = {k: v for k, v in (checkpoint | change).items() if v is not None}

    result = verify_against_checkpoint(ledger, damaged)

    assert (result.ok, result.count, result.head_hash, result.reason) == (False, 0, "", reason)
    assert result.signatures_checked is True
    assert verify_against_checkpoint(ledger, checkpoint).ok


def test_a_checkpoint_of_an_empty_ledger_holds_for_whatever_was_appended_since(db: Database) -> None:
    ledger = Ledger(db)
    checkpoint = make_checkpoint(ledger, now=T0)
    assert checkpoint == {
        "version": 1,
        "count": 0,
        "sequence": 0,
        "head_hash": "0" * 64,
        "created_at": "2026-11-30T12:00:00Z",
    }
    fill(ledger, 2)

    result = verify_against_checkpoint(ledger, checkpoint)

    assert (result.ok, result.count) == (True, 2)


def test_a_broken_ledger_is_reported_as_broken_whatever_the_checkpoint_says(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 3)
    checkpoint = make_checkpoint(ledger, now=T0)
    with db.engine.begin() as connection:
        statement = text("UPDATE ledger_entries SET payload = replace(payload, :old, :new) WHERE sequence = 2")
        connection.execute(statement, {"old": '"n":2', "new": '"n":9'})

    result = verify_against_checkpoint(ledger, checkpoint)

    assert result == ledger.verify()
    assert (result.ok, result.first_bad_sequence) == (False, 2)
    assert result.reason == "entry 2: hash does not match its content (edited)"
