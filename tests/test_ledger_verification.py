"""The cached, incremental verification: a view recomputes only the entries appended since the last verification,
the cached range is cross-checked, and what only a full verification can find is found by it."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from ledger_helpers import T0, A, B, Clock
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError

from gating.db import Database
from gating.ledger import Ledger, chain, verification
from gating.ledger.purges import Retention
from gating.ledger.retention import plan_purge, purge
from gating.ledger.verification import (
    CACHED,
    FULL,
    INCREMENTAL,
    PENDING,
    Verification,
    decode_result,
    encode_result,
    ledger_state,
    verify_cached,
    verify_in_full,
)
from gating.models import LedgerVerification


def fill(ledger: Ledger, count: int) -> None:
    for _ in range(count):
        n = ledger.head()[0] + 1
        ledger.append("deployment_decision", {"tickets": [{"key": f"PAY-{n}"}]}, index={"deployment_id": n})


def tamper(db: Database, sequence: int, before: str = "PAY-", after: str = "PAX-") -> None:
    with db.engine.begin() as connection:
        connection.execute(
            text("UPDATE ledger_entries SET payload = replace(payload, :a, :b) WHERE sequence = :s"),
            {"a": before, "b": after, "s": sequence},
        )


def rehash_in_place(db: Database, sequence: int) -> None:
    """Entry `sequence` edited and its own hash recomputed, its neighbours left alone: only a full walk sees it."""
    tamper(db, sequence)
    with db.engine.begin() as connection:
        row = connection.execute(
            text("SELECT prev_hash, payload FROM ledger_entries WHERE sequence = :s"), {"s": sequence}
        ).one()
        connection.execute(
            text("UPDATE ledger_entries SET hash = :h WHERE sequence = :s"),
            {"h": chain.entry_hash(row.prev_hash, row.payload), "s": sequence},
        )


def test_a_second_view_verifies_only_what_was_appended(db: Database) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, 5)  # a key change, then five entries
    first = verify_cached(ledger)
    assert (first.how, first.entries_checked, first.result.ok, first.result.count) == (FULL, 6, True, 6)
    assert first.full_verified_at == first.verified_at and first.full_verified_sequence == 6 and first.full_ok

    again = verify_cached(ledger)
    assert (again.how, again.entries_checked) == (CACHED, 0)
    assert again.result.as_dict() == first.result.as_dict()

    fill(ledger, 3)
    later = verify_cached(ledger)
    assert (later.how, later.entries_checked, later.result.count) == (INCREMENTAL, 3, 9)
    # The same answer as recomputing everything, spans and keys included; the last full verification is unchanged.
    assert later.result.as_dict() == ledger.verify().as_dict()
    assert later.full_verified_at == first.full_verified_at and later.full_verified_sequence == 6
    assert later.as_dict()["last_full_verification"] == {
        "at": chain.format_time(first.verified_at),
        "through_sequence": 6,
        "ok": True,
    }
    assert later.as_dict()["how"] == INCREMENTAL and later.as_dict()["entries_checked"] == 3


def test_a_key_rotation_among_the_new_entries_is_checked_as_a_full_walk_checks_it(db: Database) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, 2)
    verify_cached(ledger)
    ledger.rotate_key(B)
    fill(ledger, 1)  # still signed by A, allowed until B signs
    rotated = Ledger(db, B, clock=ledger.clock)
    fill(rotated, 2)
    found = verify_cached(rotated)  # B's own cache: a key it never verified with is verified in full
    assert found.how == FULL and found.result.ok, found.result.reason
    fill(rotated, 1)
    later = verify_cached(rotated)
    assert later.how == INCREMENTAL and later.result.as_dict() == rotated.verify().as_dict()
    # With A as the trusted key, the cache of A continues across the hand-over to B.
    continued = verify_cached(rotated, A.public_key())
    assert continued.how == INCREMENTAL and continued.entries_checked == 5, continued.result.reason
    assert continued.result.as_dict() == rotated.verify(A.public_key()).as_dict()


def test_signing_turned_on_since_the_cached_head_means_a_full_verification(db: Database) -> None:
    unsigned = Ledger(db, clock=Clock())
    fill(unsigned, 2)
    assert verify_cached(unsigned, A.public_key()).how == FULL  # the trusted key, assumed for an unsigned ledger
    signed = Ledger(db, A, clock=unsigned.clock)
    fill(signed, 2)  # the key change that turns signing on, then two signed entries
    later = verify_cached(signed)
    assert later.how == FULL and later.result.ok, later.result.reason
    fill(signed, 1)
    assert verify_cached(signed).how == INCREMENTAL


def test_an_appended_tampered_entry_is_caught_by_the_incremental_walk(db: Database) -> None:
    ledger = Ledger(db, A, clock=Clock())
    fill(ledger, 3)
    verify_cached(ledger)
    fill(ledger, 2)
    tamper(db, 6)
    caught = verify_cached(ledger)
    assert caught.how == INCREMENTAL and caught.entries_checked == 2
    assert not caught.result.ok and caught.result.first_bad_sequence == 6, caught.result.reason
    assert caught.result.as_dict() == ledger.verify().as_dict()
    # A broken result is never extended: the next view recomputes everything until the chain verifies again.
    assert verify_cached(ledger).how == FULL


def test_an_entry_rehashed_inside_the_cached_range_is_found_by_a_full_verification(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 5)
    verify_cached(ledger)
    rehash_in_place(db, 1)  # the link from entry 2 now fails, but nothing the incremental walk reads shows it
    fill(ledger, 1)
    missed = verify_cached(ledger)
    assert missed.how == INCREMENTAL and missed.result.ok  # what an incremental check does not promise to find
    full = verify_in_full(ledger)
    assert full.how == FULL and not full.result.ok and full.result.first_bad_sequence == 2
    assert full.full_ok is False and full.full_verified_at == full.verified_at
    assert verify_cached(ledger).how == FULL


@pytest.mark.parametrize(
    "damage",
    [
        "UPDATE ledger_entries SET hash = 'f' || substr(hash, 2) WHERE sequence = 4",  # the cached head's hash
        "UPDATE ledger_entries SET payload = replace(payload, 'PAY-', 'PAX-') WHERE sequence = 4",  # its content
        "DELETE FROM ledger_entries WHERE sequence = 2",  # a row inside the cached range
        "DELETE FROM ledger_entries WHERE sequence = 4",  # the cached head itself
        "UPDATE ledger_verifications SET result = 'not json'",  # a damaged cache
    ],
)
def test_a_cached_head_that_no_longer_checks_out_means_a_full_verification(db: Database, damage: str) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 4)
    verify_cached(ledger)
    with db.engine.begin() as connection:
        connection.execute(text(damage))
    found = verify_cached(ledger)
    assert found.how == FULL and found.entries_checked == found.result.count
    assert found.result.as_dict() == ledger.verify().as_dict()


def test_a_purge_since_the_cached_head_means_a_full_verification_and_purged_ranges_are_cached(db: Database) -> None:
    clock = Clock()
    ledger = Ledger(db, clock=clock)
    fill(ledger, 4)
    verify_cached(ledger)
    clock.now += timedelta(days=30)
    fill(ledger, 1)
    purge(ledger, plan_purge(ledger, Retention.parse("7d")))
    after_purge = verify_cached(ledger)
    assert after_purge.how == FULL and after_purge.result.ok and after_purge.result.purged, after_purge.result.reason
    fill(ledger, 2)
    later = verify_cached(ledger)
    assert later.how == INCREMENTAL and later.result.as_dict() == ledger.verify().as_dict()
    assert decode_result(encode_result(later.result)) == later.result


def test_a_view_leaves_a_walk_longer_than_its_limit_to_the_worker(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 5)
    first = verify_cached(ledger, limit=3)  # never verified, five entries: more than a view walks
    assert (first.how, first.entries_checked, first.pending_entries) == (PENDING, 0, 5)
    assert not first.result.ok and first.result.first_bad_sequence is None  # nothing claimed, nothing found broken
    assert first.as_dict()["pending"] == {
        "reason": "the chain has not been verified yet",
        "entries": 5,
        "cache_failed": False,
    }
    with db.session() as session:
        assert session.get(LedgerVerification, "") is None  # a view's pending answer is not a verification

    worker = verify_cached(ledger)  # what the extend_verification job runs: no limit
    assert worker.how == FULL and worker.result.ok
    assert verify_cached(ledger, limit=3).how == CACHED

    fill(ledger, 2)
    assert verify_cached(ledger, limit=3).how == INCREMENTAL  # two new entries: within the limit
    fill(ledger, 4)
    behind = verify_cached(ledger, limit=3)
    assert (behind.how, behind.pending_entries, behind.result.last_sequence) == (PENDING, 4, 7)
    assert behind.result.ok and behind.verified_at != behind.full_verified_at  # the incremental walk through 7
    assert behind.as_dict()["last_full_verification"]["through_sequence"] == 5
    assert verify_cached(ledger).how == INCREMENTAL and verify_cached(ledger, limit=3).how == CACHED


@pytest.mark.parametrize(
    ("damage", "standing"),
    [
        ("UPDATE ledger_entries SET payload = replace(payload, 'PAY-', 'PAX-') WHERE sequence = 4", "changed since"),
        ("DELETE FROM ledger_entries WHERE sequence = 2", "changed since"),
    ],
)
def test_a_view_over_a_cache_that_no_longer_holds_claims_nothing(db: Database, damage: str, standing: str) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 4)
    verify_cached(ledger)
    with db.engine.begin() as connection:
        connection.execute(text(damage))
    found = verify_cached(ledger, limit=2)
    assert found.how == PENDING and not found.result.ok and found.result.count == 0
    assert standing in (found.result.reason or "") and "entry 4, the last one verified" in (found.pending or "")
    assert found.cache_failed
    assert not verify_cached(ledger).result.ok  # the worker's walk finds what changed


def test_a_broken_cached_result_stands_until_the_worker_verifies_again(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 3)
    tamper(db, 2)
    assert verify_cached(ledger).result.first_bad_sequence == 2
    shown = verify_cached(ledger, limit=1)
    assert shown.how == PENDING and not shown.result.ok and shown.result.first_bad_sequence == 2
    assert "did not verify last time" in (shown.pending or "")


def test_a_colliding_first_record_is_written_again(db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 1)
    real = verification._record
    calls: list[int] = []

    def once(*args: Any) -> Verification:
        calls.append(1)
        if len(calls) == 1:
            raise IntegrityError("INSERT", {}, Exception("duplicate key"))
        return real(*args)

    monkeypatch.setattr(verification, "_record", once)
    assert verify_in_full(ledger).result.ok and len(calls) == 2
    with db.session() as session:
        assert session.get(LedgerVerification, "") is not None


def test_continuing_needs_a_prefix_that_verified() -> None:
    broken = chain.VerifyResult(False, 1, "0" * 64, 2, "entry 2: edited")
    with pytest.raises(ValueError, match="only after a prefix that verified"):
        chain.verify([], after=broken)
    unknown = chain.VerifyResult(True, 1, "0" * 64)  # verified, but without the keys in force at its end
    with pytest.raises(ValueError, match="only after a prefix that verified"):
        chain.verify([], after=unknown)


def test_a_verification_never_done_in_full_says_so() -> None:
    done = Verification(chain.VerifyResult(True, 0, "0" * 64), INCREMENTAL, 0, T0, None, None, None)
    assert done.as_dict()["last_full_verification"] is None


def test_ledger_state_for_the_dashboard(db: Database, tmp_path: Path) -> None:
    ledger = Ledger(db, A, clock=Clock())
    empty = ledger_state(ledger)
    assert empty == {
        "entries": 0,
        "head": {"sequence": 0, "hash": "0" * 64},
        "last_checkpoint": None,
        "last_full_verification": None,
    }
    fill(ledger, 2)
    full = verify_in_full(ledger)
    (tmp_path / "notes.json").write_text("not json")
    (tmp_path / "other.json").write_text(json.dumps({"hello": "world"}))
    (tmp_path / "old.json").write_text(json.dumps({"sequence": 1, "head_hash": "a" * 64, "created_at": "2026-01-01"}))
    newest = {"sequence": 3, "head_hash": "b" * 64, "created_at": "2026-02-01T00:00:00Z", "signature": "00"}
    (tmp_path / "new.json").write_text(json.dumps(newest))
    state = ledger_state(ledger, checkpoint_dir=tmp_path)
    head = ledger.head()
    assert state["entries"] == 3 and state["head"] == {"sequence": head[0], "hash": head[1]}
    assert state["last_checkpoint"] == {
        "sequence": 3,
        "head_hash": "b" * 64,
        "created_at": "2026-02-01T00:00:00Z",
        "file": "new.json",
        "signed": True,
    }
    assert state["last_full_verification"] == {
        "at": chain.format_time(full.verified_at),
        "through_sequence": 3,
        "ok": True,
    }
    assert ledger_state(ledger, checkpoint_dir=tmp_path / "none")["last_checkpoint"] is None
