"""The ledger table: edits made by someone who recomputes the hash, keys read from files, colliding appends, and
key changes that are missing, malformed or relabelled."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import T0, A, B, Clock, X, fill, hex_of, row, short, sql
from sqlalchemy import text

from gating.db import Database
from gating.ledger import (
    Ledger,
    LedgerConflict,
    LedgerKeyError,
    canonical_json,
    entry_hash,
    load_public_key,
    load_signing_key,
)
from gating.ledger.chain import sign_hash
from gating.ledger.signing import key_change_payload


def rewrite(db: Database, sequence: int, payload: str) -> None:
    """Replace an entry's stored text and recompute its hash: a forger who knows how the chain is hashed."""
    digest = entry_hash(row(db, sequence).prev_hash, payload)
    sql(db, "UPDATE ledger_entries SET payload = :p, hash = :h WHERE sequence = :s", p=payload, h=digest, s=sequence)


def insert(db: Database, kind: str, payload: dict[str, Any], signer: Ed25519PrivateKey | None = None) -> None:
    """An entry written straight into the table after the head, hashed as the store hashes."""
    with db.engine.connect() as connection:
        head = connection.execute(text("SELECT sequence, hash FROM ledger_entries ORDER BY sequence DESC")).first()
    sequence = head.sequence + 1
    envelope = {"v": 2, "kind": kind, "sequence": sequence, "recorded_at": T0, "index": {}, "payload": payload}
    stored = canonical_json(envelope)
    digest = entry_hash(head.hash, stored)
    sql(
        db,
        "INSERT INTO ledger_entries (sequence, prev_hash, hash, payload, signature, kind, created_at) "
        "VALUES (:s, :prev, :h, :p, :sig, :kind, :at)",
        s=sequence,
        prev=head.hash,
        h=digest,
        p=stored,
        sig=sign_hash(signer, digest) if signer else None,
        kind=kind,
        at=T0,
    )


def edited(change: Callable[[dict[str, Any]], Any]) -> Callable[[str], str]:
    def edit(stored: str) -> str:
        envelope = json.loads(stored)
        return json.dumps(change(envelope), sort_keys=True, separators=(",", ":"))

    return edit


@pytest.mark.parametrize(
    ("edit", "reason", "read_as"),
    [
        (lambda _: "approved, honestly", "content is not JSON (edited)", "content is not JSON"),
        (lambda _: "[1, 2]", "content is not a ledger envelope (edited)", "content is not a ledger envelope"),
        (edited(lambda e: e | {"v": 3}), "unknown envelope version 3 (edited)", "unknown envelope version 3"),
        (edited(lambda e: e | {"sequence": 4}), "sequence column 3 differs from the content's 4 (renumbered)", None),
        (
            edited(lambda e: e | {"kind": "emergency_approval"}),
            "kind column 'deployment_decision' differs from the content's 'emergency_approval' (edited)",
            None,
        ),
        (
            edited(lambda e: e | {"recorded_at": "2026-11-29T12:00:03Z"}),
            "created_at column differs from the content's recorded_at '2026-11-29T12:00:03Z' (edited)",
            None,
        ),
        (
            edited(lambda e: e | {"index": {"$ledger:int": "3"}}),
            "index is not in the ledger's encoding: $ledger:int needs the decimal digits of an integer beyond "
            "±2^53-1, not '3' (edited)",
            None,
        ),
        (edited(lambda e: e | {"index": ["acme/payments"]}), "index is not an object (edited)", None),
        (
            edited(lambda e: e | {"index": e["index"] | {"decision": "emergency"}}),
            "decision column 'approved' differs from the content's 'emergency' (edited)",
            None,
        ),
    ],
    ids=["not json", "not an envelope", "version", "sequence", "kind", "recorded_at", "index tag", "index", "column"],
)
def test_an_edit_whose_hash_was_recomputed_is_caught_by_what_the_columns_say(
    db: Database, edit: Callable[[str], str], reason: str, read_as: str | None
) -> None:
    ledger = Ledger(db, clock=Clock())
    fill(ledger, 3)
    rewrite(db, 3, edit(row(db, 3).payload))

    result = ledger.verify()

    assert (result.ok, result.count, result.first_bad_sequence) == (False, 2, 3)
    assert result.reason == f"entry 3: {reason}"
    entry = ledger.at_sequence(3)
    assert entry is not None
    if read_as is not None:  # the console cannot read such an entry either, and says why
        with pytest.raises(ValueError, match="^" + re.escape(read_as) + "$"):
            entry.content()


# -- keys from files -----------------------------------------------------------------------------------------------


def pem(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_signing_key_file_that_is_not_an_unencrypted_pem_key_is_named(tmp_path: Path) -> None:
    garbage = pem(tmp_path, "ledger.pem", b"ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI ops@example.com\n")
    with pytest.raises(LedgerKeyError, match="^" + re.escape(f"{garbage} is not an unencrypted PEM private key: ")):
        load_signing_key(garbage)
    encrypted = pem(
        tmp_path,
        "encrypted.pem",
        A.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"passphrase"),
        ),
    )
    with pytest.raises(LedgerKeyError, match="^" + re.escape(f"{encrypted} is not an unencrypted PEM private key: ")):
        load_signing_key(encrypted)


def test_a_public_key_is_read_from_a_public_key_or_the_private_key_file(tmp_path: Path) -> None:
    private = pem(
        tmp_path,
        "ledger.pem",
        A.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    public = pem(
        tmp_path,
        "ledger.pub.pem",
        A.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    assert load_public_key(private).public_bytes_raw().hex() == hex_of(A)
    assert load_public_key(public).public_bytes_raw().hex() == hex_of(A)
    other = pem(
        tmp_path,
        "ec.pub.pem",
        ec.generate_private_key(ec.SECP256R1())
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo),
    )
    with pytest.raises(
        LedgerKeyError, match="^" + re.escape(f"{other} holds a ECPublicKey, the ledger needs Ed25519") + "$"
    ):
        load_public_key(other)


# -- appends -------------------------------------------------------------------------------------------------------


def test_appends_that_keep_colliding_stop_with_a_conflict_and_write_nothing(db: Database) -> None:
    ledger = Ledger(db, retries=3)
    fill(ledger, 1)
    # A row that already follows the head (as another writer's would): every append collides with it.
    head = row(db, 1)
    sql(
        db,
        "INSERT INTO ledger_entries (sequence, prev_hash, hash, payload, kind, created_at) "
        "VALUES (0, :prev, :h, '{}', 'deployment_decision', :at)",
        prev=head.hash,
        h="f" * 64,
        at=T0,
    )

    with pytest.raises(LedgerConflict, match=r"^could not append a deployment_decision entry after 3 attempts$"):
        ledger.append("deployment_decision", {"n": 2}, index={})

    with db.engine.connect() as connection:
        assert connection.execute(text("SELECT count(*) FROM ledger_entries")).scalar() == 2


# -- keys in force -------------------------------------------------------------------------------------------------


def test_rotating_to_a_key_on_an_unsigned_ledger_turns_signing_on_with_it(db: Database) -> None:
    fill(Ledger(db), 2)

    entry = Ledger(db).rotate_key(A)

    assert (entry.sequence, entry.kind, entry.signature is not None) == (3, "signing_key", True)
    assert entry.data["previous_public_key"] is None and entry.data["public_key"] == hex_of(A)
    fill(Ledger(db, A), 1)
    result = Ledger(db).verify(A.public_key())
    assert result.ok, result.reason
    assert [(s.first, s.last, s.state) for s in result.spans] == [(1, 2, "unsigned"), (3, 4, "signed")]


def sign_without_recording(db: Database, key: Ed25519PrivateKey, *sequences: int) -> None:
    """What versions before key changes wrote: signatures, and no entry naming the key."""
    for sequence in sequences:
        signature = sign_hash(key, row(db, sequence).hash)
        sql(db, "UPDATE ledger_entries SET signature = :sig WHERE sequence = :s", sig=signature, s=sequence)


def test_a_ledger_signed_by_a_key_no_entry_records_can_be_rotated_only_by_that_key(db: Database) -> None:
    fill(Ledger(db), 2)
    sign_without_recording(db, X, 1, 2)

    with pytest.raises(LedgerKeyError) as refused:
        Ledger(db, A).rotate_key(B)
    assert str(refused.value) == (
        "the ledger's latest entries are signed by a key no key change records; "
        "rotate with COUNTERSIGN_SIGNING_KEY_PATH set to that key"
    )

    entry = Ledger(db, X).rotate_key(B)  # the holder of that key hands over, and so records it
    assert (entry.data["previous_public_key"], entry.data["public_key"]) == (hex_of(X), hex_of(B))
    fill(Ledger(db, B), 1)
    result = Ledger(db).verify(X.public_key())
    assert result.ok, result.reason
    assert [(s.first, s.last, s.public_key) for s in result.spans] == [(1, 3, hex_of(X)), (4, 4, hex_of(B))]


def test_appending_with_another_key_than_the_unrecorded_one_in_force_is_logged_as_an_error(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    fill(Ledger(db), 2)
    sign_without_recording(db, X, 1, 2)

    with caplog.at_level(logging.ERROR, logger="gating.ledger.store"):
        fill(Ledger(db, A), 1)

    (record,) = [r for r in caplog.records if r.getMessage() == "ledger.signing_key_not_in_force"]
    assert (record.signing_key, record.key_in_force) == (short(A), "an unrecorded key")  # type: ignore[attr-defined]
    result = Ledger(db).verify(X.public_key())
    assert result.first_bad_sequence == 3
    assert (result.reason or "").startswith(f"entry 3: signature does not verify with key {short(X)}")


def test_a_malformed_key_change_is_not_taken_for_the_key_in_force_and_verification_names_it(db: Database) -> None:
    fill(Ledger(db), 2)
    insert(db, "signing_key", key_change_payload(X, row(db, 2).hash, None) | {"algorithm": "RSA"})

    fill(Ledger(db, A), 1)  # nothing valid has signed yet: A turns signing on after it

    assert [(n, row(db, n).kind) for n in (3, 4, 5)] == [
        (3, "signing_key"),
        (4, "signing_key"),
        (5, "deployment_decision"),
    ]
    result = Ledger(db).verify(A.public_key())
    assert (result.first_bad_sequence, result.count) == (3, 2)
    assert result.reason == "entry 3: key change names algorithm 'RSA', the ledger signs with Ed25519"


def test_an_entry_relabelled_as_a_key_change_is_not_taken_for_one_and_verification_names_it(db: Database) -> None:
    fill(Ledger(db), 2)
    sql(db, "UPDATE ledger_entries SET kind = 'signing_key' WHERE sequence = 2")

    fill(Ledger(db, A), 1)  # the relabelled entry names no key: A turns signing on

    assert row(db, 3).kind == "signing_key"
    result = Ledger(db).verify(A.public_key())
    assert (result.first_bad_sequence, result.count) == (2, 1)
    assert (
        result.reason == "entry 2: kind column 'signing_key' differs from the content's 'deployment_decision' (edited)"
    )
