"""Evidence ledger: canonical JSON, the hash chain, tamper detection, checkpoints, the CLI and concurrent appends."""

from __future__ import annotations

import json
import os
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import ledger_helpers
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import T0, Clock, row, sql

from gating.cli import main
from gating.db import Database
from gating.ledger import (
    GENESIS,
    Ledger,
    LedgerKeyError,
    canonical_json,
    entry_hash,
    load_signing_key,
    make_checkpoint,
    verify,
    verify_against_checkpoint,
)
from gating.ledger.chain import sign_hash


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture
def key_file(tmp_path: Path, key: Ed25519PrivateKey) -> Path:
    return ledger_helpers.key_file(tmp_path, key)


def decision(n: int, verdict: str = "approved") -> tuple[dict[str, Any], dict[str, Any]]:
    sha = f"{n:040x}"
    payload = {
        "repository": "acme/payments",
        "environment": "production",
        "deployment_id": 1000 + n,
        "sha": sha,
        "decision": verdict,
        "tickets": [{"key": f"PAY-{n}", "status": "Approved", "approver": "carol"}],
        "reasons": [],
    }
    index = {k: payload[k] for k in ("repository", "environment", "deployment_id", "sha", "decision")}
    return payload, index


def fill(ledger: Ledger, count: int) -> None:
    for n in range(1, count + 1):
        payload, index = decision(n, "rejected" if n % 3 == 0 else "approved")
        ledger.append("deployment_decision", payload, index=index)


# -- chain.py, pure ------------------------------------------------------------------------------------------------


def test_entry_hash_is_sha256_of_prev_newline_payload() -> None:
    import hashlib

    assert entry_hash(GENESIS, "{}") == hashlib.sha256(("0" * 64 + "\n{}").encode()).hexdigest()


def test_pure_verify_names_each_kind_of_break(key: Ed25519PrivateKey) -> None:
    from dataclasses import dataclass, replace

    @dataclass(frozen=True)
    class E:
        sequence: int
        prev_hash: str
        payload: str
        hash: str
        signature: str | None

    entries, prev = [], GENESIS
    for n in range(1, 6):
        payload = canonical_json({"n": n})
        digest = entry_hash(prev, payload)
        entries.append(E(n, prev, payload, digest, sign_hash(key, digest)))
        prev = digest
    good = verify(entries, key.public_key())
    assert (good.ok, good.count, good.head_hash, good.signatures_checked) == (True, 5, prev, True)

    edited = [*entries[:2], replace(entries[2], payload='{"n":33}'), *entries[3:]]
    assert verify(edited).first_bad_sequence == 3
    missing = entries[:3] + entries[4:]
    result = verify(missing)
    assert (result.first_bad_sequence, result.count) == (4, 3)
    assert "a row is missing" in (result.reason or "")
    unsigned = [replace(e, signature=None) for e in entries]
    assert verify(unsigned).ok
    # Unsigned throughout: signing has not begun, which is not tampering; nothing was checked against the key.
    nothing_signed = verify(unsigned, key.public_key())
    assert (nothing_signed.ok, nothing_signed.signatures_checked) == (True, False)
    stripped = [*entries[:3], replace(entries[3], signature=None), entries[4]]
    result = verify(stripped, key.public_key())
    assert (result.first_bad_sequence, result.count) == (4, 3)
    assert "no signature, but the ledger is signed since entry 1" in (result.reason or "")
    assert verify([], key.public_key()).as_dict() == {
        "ok": True,
        "count": 0,
        "head_hash": GENESIS,
        "first_bad_sequence": None,
        "reason": None,
        "signatures_checked": False,
        "spans": [],
        "keys": [],
    }


# -- store.py ------------------------------------------------------------------------------------------------------


def test_append_then_verify_ok_signed(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key, clock=Clock())
    fill(ledger, 7)
    result = ledger.verify()
    # Entry 1 records the key that signs from then on: the ledger's first signed append turns signing on.
    assert result.ok and result.count == 8 and result.signatures_checked
    assert ledger.head() == (8, result.head_hash)
    sign_on = ledger.at_sequence(1)
    assert sign_on is not None and sign_on.prev_hash == GENESIS and sign_on.kind == "signing_key"
    first = ledger.at_sequence(2)
    assert first is not None and first.prev_hash == sign_on.hash
    assert first.data["tickets"][0]["key"] == "PAY-1"
    assert first.content()["recorded_at"] == "2026-11-30T12:00:01Z"
    assert ledger.get(first.id) == first
    assert first.created_at == T0 + timedelta(seconds=1)
    # Without the key the chain still verifies, but it says signatures were not checked against a trusted key.
    assert Ledger(db).verify().signatures_checked is False


def test_empty_ledger_verifies(db: Database) -> None:
    result = Ledger(db).verify()
    assert (result.ok, result.count, result.head_hash) == (True, 0, GENESIS)
    assert Ledger(db).head() == (0, GENESIS)


def test_search_by_indexed_columns_time_and_ticket(db: Database) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 12)
    assert [e.sequence for e in ledger.search(decision="rejected")] == [12, 9, 6, 3]
    assert [e.sequence for e in ledger.search(sha=f"{5:040x}")] == [5]
    assert [e.sequence for e in ledger.search(ticket="PAY-1")] == [1]  # not PAY-10, PAY-11, PAY-12
    assert [e.sequence for e in ledger.search(repo="acme/payments", environment="production", limit=2)] == [12, 11]
    window = ledger.search(since=T0 + timedelta(seconds=3), until=T0 + timedelta(seconds=5))
    assert [e.sequence for e in window] == [4, 3]
    assert ledger.search(ticket="PAY-%") == []
    assert ledger.search(repo="acme/other") == []


def test_unknown_index_field_is_refused(db: Database) -> None:
    with pytest.raises(ValueError, match="allowed"):
        Ledger(db).append("deployment_decision", {}, index={"ticket": "PAY-1"})


def test_append_joins_the_callers_transaction(db: Database) -> None:
    ledger = Ledger(db)
    payload, index = decision(1)

    class Abort(Exception):
        pass

    with pytest.raises(Abort), db.session() as session:
        ledger.append("deployment_decision", payload, index=index, session=session)
        raise Abort
    assert ledger.head() == (0, GENESIS)
    with db.session() as session:
        view = ledger.append("deployment_decision", payload, index=index, session=session)
    assert ledger.head() == (1, view.hash)


# -- tampering ---------------------------------------------------------------------------------------------------


def test_edited_payload_field_is_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 6)
    sql(db, "UPDATE ledger_entries SET payload = REPLACE(payload, '\"rejected\"', '\"approved\"') WHERE sequence = 3")
    result = ledger.verify()
    assert not result.ok
    assert result.first_bad_sequence == 3
    assert result.count == 2
    assert result.reason == "entry 3: hash does not match its content (edited)"


def test_edited_search_column_is_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 6)
    sql(db, "UPDATE ledger_entries SET decision = 'approved' WHERE sequence = 6")
    result = ledger.verify()
    assert result.first_bad_sequence == 6
    assert "decision column 'approved' differs from the content's 'rejected'" in (result.reason or "")


def test_deleted_row_is_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 6)
    sql(db, "DELETE FROM ledger_entries WHERE sequence = 4")
    result = ledger.verify()
    assert result.first_bad_sequence == 4
    assert "a row is missing" in (result.reason or "")


def test_deleted_row_with_renumbering_is_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 6)
    sql(db, "DELETE FROM ledger_entries WHERE sequence = 4")
    for n in (5, 6):
        sql(db, "UPDATE ledger_entries SET sequence = :new WHERE sequence = :old", new=n - 1, old=n)
    result = ledger.verify()
    assert result.first_bad_sequence == 4
    assert "prev_hash does not match entry 3" in (result.reason or "")


def test_swapped_rows_are_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 6)
    sql(db, "UPDATE ledger_entries SET sequence = -1 WHERE sequence = 2")
    sql(db, "UPDATE ledger_entries SET sequence = 2 WHERE sequence = 5")
    sql(db, "UPDATE ledger_entries SET sequence = 5 WHERE sequence = -1")
    result = ledger.verify()
    assert result.first_bad_sequence == 2
    assert "prev_hash does not match entry 1" in (result.reason or "")


def test_inserted_forged_row_is_detected(db: Database) -> None:
    ledger = Ledger(db)
    fill(ledger, 5)
    # Make room at 3 (via negative numbers, so the unique index never sees a duplicate), then forge an entry there
    # with a self-consistent hash; its prev_hash cannot reuse entry 2's hash, which entry 4 (the old 3) holds.
    for n in (5, 4, 3):
        sql(db, "UPDATE ledger_entries SET sequence = :new WHERE sequence = :old", new=-(n + 1), old=n)
    sql(db, "UPDATE ledger_entries SET sequence = -sequence WHERE sequence < 0")
    payload = canonical_json({"kind": "deployment_decision", "payload": {"decision": "approved"}, "sequence": 3})
    forged_prev = "f" * 64
    sql(
        db,
        "INSERT INTO ledger_entries (sequence, prev_hash, hash, payload, kind, decision, created_at) "
        "VALUES (3, :prev, :hash, :payload, 'deployment_decision', 'approved', :at)",
        prev=forged_prev,
        hash=entry_hash(forged_prev, payload),
        payload=payload,
        at=T0,
    )
    result = ledger.verify()
    assert result.first_bad_sequence == 3
    assert "prev_hash does not match entry 2" in (result.reason or "")


def test_forged_row_appended_without_the_key_is_detected(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key, clock=Clock())
    fill(ledger, 4)
    count, head = ledger.head()
    # A perfectly chained entry, written by someone with database access but without the signing key.
    Ledger(db, clock=Clock()).append("deployment_decision", *decision(99)[:1], index=decision(99)[1])
    for verifier in (ledger, Ledger(db)):  # the chain records its key, so even a reader without it can tell
        result = verifier.verify()
        assert result.first_bad_sequence == 6
        assert "no signature, but the ledger is signed since entry 1" in (result.reason or "")
        assert (result.count, result.head_hash) == (count, head)


def test_chain_recomputed_without_the_key_is_caught_by_signatures(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key)
    fill(ledger, 6)
    # Rewrite entry 2 and recompute every hash after it, keeping the old signatures (a forger has no key).
    prev = row(db, 1).hash
    for n in range(2, 8):
        current = row(db, n)
        payload = current.payload.replace('"approved"', '"emergency"') if n == 2 else current.payload
        digest = entry_hash(prev, payload)
        sql(
            db,
            "UPDATE ledger_entries SET payload = :p, prev_hash = :prev, hash = :h WHERE sequence = :s",
            p=payload,
            prev=prev,
            h=digest,
            s=n,
        )
        prev = digest
    sql(db, "UPDATE ledger_entries SET decision = 'emergency' WHERE sequence = 2")
    short = key.public_key().public_bytes_raw().hex()[:16]
    for verifier in (ledger, Ledger(db)):  # entry 1 names the key, whose old signatures no longer match
        result = verifier.verify()
        assert result.first_bad_sequence == 2
        assert result.reason == (
            f"entry 2: signature does not verify with key {short}…, the key in force (rewritten without the key, "
            "or signed by a key never recorded with `countersign key rotate`?)"
        )
    # Had the forger replaced entry 1 with their own key too, only the real key tells.
    assert not Ledger(db).verify(Ed25519PrivateKey.generate().public_key()).ok


def test_truncated_tail_is_only_caught_against_a_checkpoint(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key, clock=Clock())
    fill(ledger, 5)
    checkpoint = make_checkpoint(ledger, key, now=T0)  # entry 1 turned signing on; 2-6 are the decisions
    assert (
        checkpoint["count"] == 6 and checkpoint["sequence"] == 6 and checkpoint["created_at"] == "2026-11-30T12:00:00Z"
    )
    fill(ledger, 2)
    assert verify_against_checkpoint(ledger, checkpoint).ok  # the ledger extends the checkpoint
    sql(db, "DELETE FROM ledger_entries WHERE sequence > 3")
    assert ledger.verify().ok
    result = verify_against_checkpoint(ledger, checkpoint)
    assert (result.ok, result.first_bad_sequence, result.count) == (False, 4, 3)
    assert "tail truncated" in (result.reason or "")


def test_rebuilt_chain_is_caught_against_a_checkpoint(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key, clock=Clock())
    fill(ledger, 5)
    checkpoint = make_checkpoint(ledger, key)
    sql(db, "DELETE FROM ledger_entries")
    for n in range(1, 7):  # rebuilt by someone holding the key, with different history
        payload, index = decision(n + 100)
        ledger.append("deployment_decision", payload, index=index)
    assert ledger.verify().ok
    result = verify_against_checkpoint(ledger, checkpoint)
    assert result.first_bad_sequence == 6
    assert "rebuilt or rewritten" in (result.reason or "")


def test_edited_or_foreign_checkpoint_is_refused(db: Database, key: Ed25519PrivateKey) -> None:
    ledger = Ledger(db, key, clock=Clock())
    fill(ledger, 3)
    checkpoint = make_checkpoint(ledger, key)
    assert "signature does not verify" in (verify_against_checkpoint(ledger, {**checkpoint, "count": 2}).reason or "")
    other = make_checkpoint(ledger, Ed25519PrivateKey.generate())
    assert "a key this ledger was never signed with" in (verify_against_checkpoint(ledger, other).reason or "")
    unsigned = make_checkpoint(ledger, None)
    assert "not signed" in (verify_against_checkpoint(ledger, unsigned).reason or "")
    assert verify_against_checkpoint(Ledger(db), unsigned).ok


def test_signing_key_loading(tmp_path: Path, key_file: Path, key: Ed25519PrivateKey) -> None:
    loaded = load_signing_key(key_file)
    assert loaded.public_key().public_bytes_raw() == key.public_key().public_bytes_raw()
    with pytest.raises(LedgerKeyError, match="cannot be read"):
        load_signing_key(tmp_path / "absent.pem")
    from cryptography.hazmat.primitives.asymmetric import ec

    other = tmp_path / "ec.pem"
    other.write_bytes(
        ec.generate_private_key(ec.SECP256R1()).private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    with pytest.raises(LedgerKeyError, match="needs Ed25519"):
        load_signing_key(other)


# -- the CLI -------------------------------------------------------------------------------------------------------


def cli(database_url: str, *args: str, key_file: Path | None = None) -> Any:
    env = {"DATABASE_URL": database_url, "COUNTERSIGN_SIGNING_KEY_PATH": str(key_file) if key_file else ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_cli_verify_ok_and_broken(db: Database, database_url: str, key: Ed25519PrivateKey, key_file: Path) -> None:
    ledger = Ledger(db, key)
    fill(ledger, 4)
    ok = cli(database_url, "verify", key_file=key_file)
    assert ok.exit_code == 0, ok.output
    short = key.public_key().public_bytes_raw().hex()[:16]
    assert ok.output.splitlines() == [
        f"ledger OK: 5 entries, head {ledger.head()[1]}",
        f"entries 1\N{EN DASH}5 signed by key {short}…",
        "signatures verified",
    ]
    as_json = json.loads(cli(database_url, "verify", "--json", key_file=key_file).stdout)
    assert as_json["ok"] is True and as_json["count"] == 5

    sql(db, "UPDATE ledger_entries SET payload = REPLACE(payload, 'PAY-2', 'PAY-9') WHERE sequence = 3")
    broken = cli(database_url, "verify", key_file=key_file)
    assert broken.exit_code == 1
    assert broken.output.splitlines() == [
        "ledger BROKEN at entry 3: hash does not match its content (edited)",
        f"verified before it: entries 1\N{EN DASH}2 signed by key {short}…",
    ]
    broken_json = cli(database_url, "verify", "--json")
    assert broken_json.exit_code == 1
    assert json.loads(broken_json.stdout)["first_bad_sequence"] == 3


def test_cli_checkpoint_then_verify_against_it(
    db: Database, database_url: str, key: Ed25519PrivateKey, key_file: Path, tmp_path: Path
) -> None:
    fill(Ledger(db, key), 5)
    checkpoint_file = tmp_path / "checkpoint.json"
    written = cli(database_url, "checkpoint", "--output", str(checkpoint_file), key_file=key_file)
    assert written.exit_code == 0, written.output
    assert "signed" in written.output
    data = json.loads(checkpoint_file.read_text())
    assert data["count"] == 6 and data["signature"] and data["public_key"]

    assert cli(database_url, "verify", "--checkpoint", str(checkpoint_file), key_file=key_file).exit_code == 0
    sql(db, "DELETE FROM ledger_entries WHERE sequence = 6")
    assert cli(database_url, "verify", key_file=key_file).exit_code == 0  # a shorter chain is still a chain
    truncated = cli(database_url, "verify", "--checkpoint", str(checkpoint_file), key_file=key_file)
    assert truncated.exit_code == 1
    assert truncated.output.startswith("ledger BROKEN at entry 6: missing; the checkpoint of")
    assert "tail truncated" in truncated.output


def test_cli_checkpoint_without_output_writes_json_to_stdout_and_the_message_to_stderr(
    db: Database, database_url: str, key: Ed25519PrivateKey, key_file: Path, tmp_path: Path
) -> None:
    fill(Ledger(db, key), 3)
    result = cli(database_url, "checkpoint", key_file=key_file)
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing but the checkpoint on stdout, so it can be piped or redirected
    assert data["head_hash"] == Ledger(db).head()[1] and data["signature"]
    assert result.stderr.startswith(f"checkpoint of {data['count']} entries, head {data['head_hash']}, signed")
    kept = tmp_path / "kept.json"
    kept.write_text(result.stdout)
    assert cli(database_url, "verify", "--checkpoint", str(kept), key_file=key_file).exit_code == 0


def test_cli_refuses_to_checkpoint_a_broken_chain(db: Database, database_url: str, tmp_path: Path) -> None:
    fill(Ledger(db), 3)
    sql(db, "DELETE FROM ledger_entries WHERE sequence = 2")
    result = cli(database_url, "checkpoint", "--output", str(tmp_path / "c.json"))
    assert result.exit_code == 1
    assert "no checkpoint written" in result.output
    assert not (tmp_path / "c.json").exists()


def test_cli_verify_on_an_unmigrated_database_says_what_to_do(tmp_path: Path) -> None:
    result = cli(f"sqlite:///{tmp_path / 'empty.sqlite3'}", "verify")
    assert result.exit_code == 1
    assert "countersign db upgrade" in result.output


# -- concurrency ---------------------------------------------------------------------------------------------------


def append_concurrently(db: Database, key: Ed25519PrivateKey, writers: int) -> None:
    ledger = Ledger(db, key)
    barrier = threading.Barrier(writers)
    errors: list[BaseException] = []

    def write(n: int) -> None:
        try:
            payload, index = decision(n)
            barrier.wait()
            if n % 2:  # half inside a caller's transaction, as the deploy gate does
                with db.session() as session:
                    ledger.append("deployment_decision", payload, index=index, session=session)
            else:
                ledger.append("deployment_decision", payload, index=index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(1, writers + 1)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    result = ledger.verify()
    assert result.ok, result.reason
    assert result.count == writers + 1  # and the entry that turned signing on, written by the first writer
    decisions = ledger.search(kind="deployment_decision", limit=writers + 1)
    assert sorted(e.deployment_id or 0 for e in decisions) == list(range(1001, 1001 + writers))
    assert [e.sequence for e in ledger.search(kind="signing_key")] == [1]


@pytest.mark.postgres
@pytest.mark.skipif(
    os.environ.get("COUNTERSIGN_TEST_DB") != "postgresql",
    reason="needs PostgreSQL: run with COUNTERSIGN_TEST_DB=postgresql TEST_DATABASE_URL=postgresql+psycopg://...",
)
def test_twenty_concurrent_appends_form_one_chain_on_postgresql(db: Database, key: Ed25519PrivateKey) -> None:
    append_concurrently(db, key, 20)


def test_twenty_concurrent_appends_form_one_chain(db: Database, key: Ed25519PrivateKey) -> None:
    append_concurrently(db, key, 20)
