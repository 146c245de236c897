"""Signing keys over the ledger's life: signing turned on, keys rotated, forged key changes, checkpoints and the CLI."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from ledger_helpers import DASH, A, B, X, fill, hex_of, row, short, sql
from sqlalchemy import text
from test_layout import impurities

from gating.cli import main
from gating.console.dossiers import build_dossier
from gating.db import Database
from gating.ledger import Ledger, LedgerKeyError, canonical_json, entry_hash, make_checkpoint, verify_against_checkpoint
from gating.ledger.chain import key_change_statement, sign_hash


def kinds(db: Database) -> list[str]:
    with db.engine.connect() as connection:
        return list(connection.execute(text("SELECT kind FROM ledger_entries ORDER BY sequence")).scalars())


def spans(result: Any) -> list[tuple[int, int, str | None]]:
    return [(s.first, s.last, s.public_key) for s in result.spans]


def rewrite_from(db: Database, sequence: int, old: str, new: str) -> None:
    """Edit one entry and recompute every hash after it, keeping the signatures: a forger without the keys."""
    prev = row(db, sequence - 1).hash
    count = len(kinds(db))
    for n in range(sequence, count + 1):
        current = row(db, n)
        payload = current.payload.replace(old, new) if n == sequence else current.payload
        digest = entry_hash(prev, payload)
        update = "UPDATE ledger_entries SET payload = :p, prev_hash = :prev, hash = :h WHERE sequence = :s"
        sql(db, update, p=payload, prev=prev, h=digest, s=n)
        prev = digest


# -- signing turned on -------------------------------------------------------------------------------------------


def test_signing_turned_on_after_unsigned_entries_reports_them_unsigned_not_tampered(db: Database) -> None:
    fill(Ledger(db), 3)
    fill(Ledger(db, A), 2, start=4)
    assert kinds(db) == ["deployment_decision"] * 3 + ["signing_key"] + ["deployment_decision"] * 2
    key_entry = Ledger(db).at_sequence(4)
    assert key_entry is not None
    assert key_entry.data == {
        "algorithm": "Ed25519",
        "public_key": hex_of(A),
        "previous_public_key": None,
        "proof": key_entry.data["proof"],
    }
    for anchor in (A.public_key(), None):
        result = Ledger(db).verify(anchor)
        assert result.ok, result.reason
        assert spans(result) == [(1, 3, None), (4, 6, hex_of(A))]
        assert result.signatures_checked is (anchor is not None)
    assert Ledger(db, A).verify().count == 6


def test_a_ledger_signed_before_key_entries_existed_keeps_verifying(db: Database) -> None:
    # What earlier versions wrote: unsigned entries, then entries signed by A with no record of the key.
    fill(Ledger(db), 5)
    for n in (3, 4, 5):
        signature = sign_hash(A, row(db, n).hash)
        sql(db, "UPDATE ledger_entries SET signature = :sig WHERE sequence = :s", sig=signature, s=n)
    ledger = Ledger(db, A)
    fill(ledger, 1, start=6)
    assert kinds(db).count("signing_key") == 0  # the key in force is A already: nothing to record
    result = ledger.verify()
    assert result.ok and result.signatures_checked, result.reason
    assert spans(result) == [(1, 2, None), (3, 6, hex_of(A))]
    # Once signed, always signed: an unsigned entry after the signed ones is still caught.
    fill(Ledger(db), 1, start=7)
    broken = ledger.verify()
    assert (broken.ok, broken.first_bad_sequence) == (False, 7)
    assert "no signature" in (broken.reason or "")


# -- rotation ------------------------------------------------------------------------------------------------------


def rotated(db: Database) -> Ledger:
    """1 signing on with A, 2-3 signed by A, 4 the key change to B (signed by A), 5 by A still, 6-7 by B."""
    fill(Ledger(db, A), 2)
    Ledger(db, A).rotate_key(B)
    fill(Ledger(db, A), 1, start=3)  # the app has not been restarted with B yet
    ledger = Ledger(db, B)
    fill(ledger, 2, start=4)
    return ledger


def test_rotation_from_a_to_b_verifies_with_either_key(db: Database) -> None:
    ledger = rotated(db)
    assert kinds(db)[3] == "signing_key"
    change = ledger.at_sequence(4)
    assert change is not None and change.data["previous_public_key"] == hex_of(A)
    assert change.data["public_key"] == hex_of(B)
    for anchor in (B.public_key(), A.public_key()):
        result = Ledger(db).verify(anchor)
        assert result.ok and result.signatures_checked, result.reason
        assert spans(result) == [(1, 5, hex_of(A)), (6, 7, hex_of(B))]
    foreign = Ledger(db).verify(X.public_key())
    assert not foreign.ok
    keys = f"{short(A)}, {short(B)}"
    assert foreign.reason == f"no entry is signed by the given key {short(X)}; this ledger's keys: {keys}"


def test_the_new_key_verifies_before_it_has_signed_anything(db: Database) -> None:
    fill(Ledger(db, A), 2)
    Ledger(db, A).rotate_key(B)
    result = Ledger(db, B).verify()
    assert result.ok and result.signatures_checked, result.reason


def test_the_old_key_is_retired_once_the_new_one_signs(db: Database) -> None:
    rotated(db)
    fill(Ledger(db, A), 1, start=9)
    result = Ledger(db, B).verify()
    assert result.first_bad_sequence == 8
    assert f"signature does not verify with key {short(B)}" in (result.reason or "")


def test_during_a_rotation_only_the_old_and_the_new_key_may_sign(db: Database) -> None:
    fill(Ledger(db, A), 2)
    Ledger(db, A).rotate_key(B)
    fill(Ledger(db, X), 1, start=3)
    result = Ledger(db, B).verify()
    assert result.first_bad_sequence == 5
    assert f"signature does not verify with key {short(B)} or {short(A)}" in (result.reason or "")


def test_the_dossier_checks_each_entry_with_the_key_that_signed_it(db: Database) -> None:
    ledger = rotated(db)
    verification = ledger.verify()
    for sequence in (2, 7):  # signed by A, before the rotation; by B, after it
        entry = ledger.at_sequence(sequence)
        assert entry is not None
        dossier = build_dossier(entry, verification, ledger)
        assert dossier["entry"]["signature_valid"] is True
        assert dossier["verification"]["entry_verified"] is True


def test_rotation_needs_the_key_in_force(db: Database) -> None:
    fill(Ledger(db, A), 1)
    with pytest.raises(LedgerKeyError, match=f"signed by key {short(A)}"):
        Ledger(db, X).rotate_key(B)
    with pytest.raises(LedgerKeyError, match="signed by key"):
        Ledger(db).rotate_key(B)
    with pytest.raises(LedgerKeyError, match="already"):
        Ledger(db, A).rotate_key(A)


def test_starting_with_a_new_key_without_recording_it_is_reported_with_what_to_do(
    db: Database, caplog: pytest.LogCaptureFixture
) -> None:
    fill(Ledger(db, A), 2)
    fill(Ledger(db, B), 1, start=3)  # the key file swapped, no `countersign key rotate`
    assert "ledger.signing_key_not_in_force" in [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    result = Ledger(db, B).verify()
    assert result.first_bad_sequence == 4
    assert f"signature does not verify with key {short(A)}" in (result.reason or "")
    assert "countersign key rotate" in (result.reason or "")


# -- forged key changes ----------------------------------------------------------------------------------------------


def append_forged_key_change(
    db: Database, new: Ed25519PrivateKey, *, previous: Ed25519PrivateKey | None, signer: Ed25519PrivateKey
) -> None:
    """A key change written straight into the table by someone holding `signer` and `new` but not the key in force."""
    last = row(db, len(kinds(db)))
    sequence = last.sequence + 1
    previous_hex = hex_of(previous) if previous else None
    proof = new.sign(key_change_statement(last.hash, hex_of(new), previous_hex)).hex()
    change = {"algorithm": "Ed25519", "public_key": hex_of(new), "previous_public_key": previous_hex, "proof": proof}
    envelope = {
        "v": 2,
        "kind": "signing_key",
        "sequence": sequence,
        "recorded_at": "2026-11-30T12:00:00Z",
        "index": {},
        "payload": change,
    }
    payload = canonical_json(envelope)
    digest = entry_hash(last.hash, payload)
    sql(
        db,
        "INSERT INTO ledger_entries (sequence, prev_hash, hash, payload, signature, kind, created_at) "
        "VALUES (:s, :prev, :h, :p, :sig, 'signing_key', :at)",
        s=sequence,
        prev=last.hash,
        h=digest,
        p=payload,
        sig=sign_hash(signer, digest),
        at=datetime(2026, 11, 30, 12, 0, tzinfo=UTC),
    )


@pytest.mark.parametrize("anchor", [A, None], ids=["with the key", "without a key"])
def test_a_key_change_not_signed_by_the_key_in_force_is_caught(db: Database, anchor: Ed25519PrivateKey | None) -> None:
    fill(Ledger(db, A), 3)
    append_forged_key_change(db, X, previous=A, signer=X)
    fill(Ledger(db, X), 2, start=4)  # and entries the forger signs with the key they declared
    result = Ledger(db).verify(anchor.public_key() if anchor else None)
    assert result.first_bad_sequence == 5
    assert f"key change is not signed by the key in force ({short(A)})" in (result.reason or "")


def test_a_forged_sign_on_over_a_signed_ledger_is_caught(db: Database) -> None:
    fill(Ledger(db, A), 3)
    append_forged_key_change(db, X, previous=None, signer=X)
    result = Ledger(db).verify(A.public_key())
    assert result.first_bad_sequence == 5
    assert f"names no previous key, but {short(A)} is in force" in (result.reason or "")


def test_a_forged_sign_on_of_an_unsigned_ledger_does_not_pass_for_the_real_key(db: Database) -> None:
    fill(Ledger(db), 3)
    append_forged_key_change(db, X, previous=None, signer=X)
    assert Ledger(db).verify().ok  # consistent in itself: only a key you trust can tell
    result = Ledger(db).verify(A.public_key())
    assert not result.ok
    assert result.reason == f"no entry is signed by the given key {short(A)}; this ledger's keys: {short(X)}"


def test_a_key_change_signed_by_neither_key_is_caught(db: Database) -> None:
    fill(Ledger(db, A), 2)
    Ledger(db, A).rotate_key(B)
    sql(db, "UPDATE ledger_entries SET signature = :sig WHERE sequence = 4", sig=sign_hash(X, row(db, 4).hash))
    result = Ledger(db).verify(B.public_key())
    assert result.first_bad_sequence == 4
    assert "key change is not signed by the key in force" in (result.reason or "")


# -- tampering in each span ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("sequence", "span"), [(2, "unsigned"), (5, "A"), (8, "B")])
def test_tampering_is_caught_in_every_span(db: Database, sequence: int, span: str) -> None:
    fill(Ledger(db), 2)  # 1-2 unsigned
    fill(Ledger(db, A), 2, start=3)  # 3 signs on with A, 4-5
    Ledger(db, A).rotate_key(B)  # 6, signed by A
    fill(Ledger(db, B), 2, start=5)  # 7-8 signed by B
    original = Ledger(db, B).verify()
    assert original.ok and spans(original) == [(1, 2, None), (3, 6, hex_of(A)), (7, 8, hex_of(B))], original.reason

    edited = row(db, sequence).payload.replace('"approved"', '"emergency"')
    assert edited != row(db, sequence).payload
    rewrite_from(db, sequence, '"approved"', '"emergency"')
    sql(db, "UPDATE ledger_entries SET decision = 'emergency' WHERE sequence = :s", s=sequence)
    result = Ledger(db, B).verify()
    assert not result.ok, span
    # An unsigned entry has no signature to fail: the first signed entry after it no longer verifies.
    assert result.first_bad_sequence == (3 if span == "unsigned" else sequence)
    assert "signature does not verify" in (result.reason or "")


# -- checkpoints -----------------------------------------------------------------------------------------------------


def test_checkpoints_taken_before_a_rotation_still_verify_after_it(db: Database) -> None:
    fill(Ledger(db, A), 3)
    before = make_checkpoint(Ledger(db, A), A)
    Ledger(db, A).rotate_key(B)
    fill(Ledger(db, B), 2, start=4)
    after = make_checkpoint(Ledger(db, B), B)
    for checkpoint in (before, after):
        for ledger in (Ledger(db, B), Ledger(db, A), Ledger(db)):
            result = verify_against_checkpoint(ledger, checkpoint)
            assert result.ok, result.reason
    foreign = make_checkpoint(Ledger(db), X)
    refused = verify_against_checkpoint(Ledger(db, B), foreign)
    assert not refused.ok
    assert "signed by a key this ledger was never signed with" in (refused.reason or "")


# -- the command line ------------------------------------------------------------------------------------------------


def pem(tmp_path: Path, key: Ed25519PrivateKey, name: str, *, public: bool = False) -> Path:
    path = tmp_path / name
    if public:
        info = serialization.PublicFormat.SubjectPublicKeyInfo
        data = key.public_key().public_bytes(serialization.Encoding.PEM, info)
    else:
        data = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    path.write_bytes(data)
    return path


def cli(database_url: str, *args: str, key_file: Path | None = None) -> Any:
    env = {"DATABASE_URL": database_url, "COUNTERSIGN_SIGNING_KEY_PATH": str(key_file) if key_file else ""}
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_cli_verify_names_each_span_and_its_key(db: Database, database_url: str, tmp_path: Path) -> None:
    fill(Ledger(db), 3)
    fill(Ledger(db, A), 2, start=4)
    key_a = pem(tmp_path, A, "a.pem")
    result = cli(database_url, "verify", key_file=key_a)
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[1] == f"entries 1{DASH}3 unsigned; 4{DASH}6 signed by key {short(A)}"
    assert lines[2] == "signatures verified"
    unanchored = cli(database_url, "verify").output.splitlines()
    assert unanchored[1] == lines[1]
    assert unanchored[2].startswith("signatures match the keys the ledger records, but were not checked against")


def test_cli_key_rotate_then_verify_with_the_old_public_key(db: Database, database_url: str, tmp_path: Path) -> None:
    key_a, key_b = pem(tmp_path, A, "a.pem"), pem(tmp_path, B, "b.pem")
    fill(Ledger(db, A), 2)
    rotated_ = cli(database_url, "key", "rotate", "--new-key", str(key_b), key_file=key_a)
    assert rotated_.exit_code == 0, rotated_.output
    assert f"entry 4 records the key change from {short(A)} to {short(B)}" in rotated_.output
    assert "COUNTERSIGN_SIGNING_KEY_PATH" in rotated_.output
    fill(Ledger(db, B), 1, start=3)
    public_a = pem(tmp_path, A, "a.pub.pem", public=True)
    third_party = cli(database_url, "verify", "--public-key", str(public_a))
    assert third_party.exit_code == 0, third_party.output
    expected = f"entries 1{DASH}4 signed by key {short(A)}; 5 signed by key {short(B)}"
    assert third_party.output.splitlines()[1] == expected
    assert "signatures verified" in third_party.output
    as_json = json.loads(cli(database_url, "verify", "--json", key_file=key_b).stdout)
    assert as_json["spans"] == [
        {"first": 1, "last": 4, "state": "signed", "public_key": hex_of(A)},
        {"first": 5, "last": 5, "state": "signed", "public_key": hex_of(B)},
    ]
    stranger = cli(database_url, "verify", "--public-key", str(pem(tmp_path, X, "x.pub.pem", public=True)))
    assert stranger.exit_code == 1
    assert stranger.output.splitlines() == [
        f"ledger BROKEN: no entry is signed by the given key {short(X)}; this ledger's keys: {short(A)}, {short(B)}",
        expected,
    ]
    # The app's key file still names A: only B, in force now, can hand over.
    refused = cli(database_url, "key", "rotate", "--new-key", str(pem(tmp_path, X, "x.pem")), key_file=key_a)
    assert refused.exit_code == 1
    assert f"the ledger is signed by key {short(B)}: only that key can hand over" in refused.output


def test_the_signing_module_is_pure() -> None:
    source = (Path(__file__).resolve().parent.parent / "gating" / "ledger" / "signing.py").read_text()
    assert impurities(source) == []
