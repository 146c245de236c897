"""The chain, pure: what verification reports for each way a chain of entries can be wrong, signed or not.

Entries are built in memory exactly as the store writes them (a v2 envelope hashed over its predecessor), so
every case here is one a ledger table can hold.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gating.ledger import GENESIS, canonical_json, entry_hash, verify
from gating.ledger.chain import VerifyResult, sign_hash
from gating.ledger.encoding import LedgerEncodingError, decode
from gating.ledger.signing import (
    KeySpan,
    decode_signature,
    describe_spans,
    key_change_payload,
    public_key_hex,
    signature_valid,
)

A = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
B = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
T0 = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
DASH = "\N{EN DASH}"


def hex_of(key: Ed25519PrivateKey) -> str:
    return public_key_hex(key.public_key())


def short(key: Ed25519PrivateKey) -> str:
    return hex_of(key)[:16] + "…"


@dataclass(frozen=True)
class Entry:
    sequence: int
    prev_hash: str
    payload: str
    hash: str
    signature: str | None


class Chain:
    """Entries appended as the store appends them: v2 envelopes, each hashed over the one before."""

    def __init__(self) -> None:
        self.entries: list[Entry] = []

    @property
    def head(self) -> str:
        return self.entries[-1].hash if self.entries else GENESIS

    def append(self, kind: str, payload: Any, signer: Ed25519PrivateKey | None = None) -> Entry:
        sequence = len(self.entries) + 1
        envelope = {"v": 2, "kind": kind, "sequence": sequence, "recorded_at": T0, "index": {}, "payload": payload}
        text = canonical_json(envelope)
        digest = entry_hash(self.head, text)
        entry = Entry(sequence, self.head, text, digest, sign_hash(signer, digest) if signer else None)
        self.entries.append(entry)
        return entry

    def decisions(self, count: int, signer: Ed25519PrivateKey | None = None) -> Chain:
        for _ in range(count):
            self.append("deployment_decision", {"decision": "approved", "n": len(self.entries) + 1}, signer)
        return self

    def key_change(
        self,
        new: Ed25519PrivateKey,
        previous: Ed25519PrivateKey | None,
        signer: Ed25519PrivateKey,
        **overrides: Any,
    ) -> Chain:
        payload = key_change_payload(new, self.head, hex_of(previous) if previous else None) | overrides
        self.append("signing_key", payload, signer)
        return self


def spans(result: VerifyResult) -> list[tuple[int, int, str, str | None]]:
    return [(s.first, s.last, s.state, s.public_key) for s in result.spans]


# -- links ---------------------------------------------------------------------------------------------------------


def test_a_duplicated_entry_is_named_with_the_sequence_expected_there() -> None:
    entries = Chain().decisions(3).entries
    result = verify([*entries[:2], entries[1], entries[2]])
    assert (result.ok, result.count, result.head_hash, result.first_bad_sequence) == (False, 2, entries[1].hash, 2)
    assert result.reason == "entry 2: sequence 3 expected (duplicated or reordered)"


def test_nothing_is_signed_by_an_entry_past_the_first_break() -> None:
    chain = Chain().key_change(A, None, A).decisions(2, A)
    edited = replace(chain.entries[2], payload=chain.entries[2].payload.replace("approved", "rejected"))
    result = verify([*chain.entries[:2], edited], A.public_key())
    assert (result.first_bad_sequence, result.reason) == (3, "entry 3: hash does not match its content (edited)")
    assert result.signer_of(2) == hex_of(A)
    assert result.signer_of(3) is None


# -- signing turned on, keys rotated -------------------------------------------------------------------------------


def test_a_chain_that_turns_signing_on_is_verified_from_its_own_key_change() -> None:
    chain = Chain().decisions(2).key_change(A, None, A).decisions(2, A)

    result = verify(chain.entries)  # no key given: the key change in the entries says which key signs

    assert (result.ok, result.count, result.signatures_checked) == (True, 5, False)
    assert spans(result) == [(1, 2, "unsigned", None), (3, 5, "signed", hex_of(A))]
    assert describe_spans(result.spans) == f"entries 1{DASH}2 unsigned; 3{DASH}5 signed by key {short(A)}"
    assert verify(chain.entries, A.public_key()).signatures_checked is True


def test_entries_signed_before_keys_were_recorded_are_unchecked_without_a_key() -> None:
    entries = Chain().decisions(3, A).entries

    result = verify(entries)

    assert result.ok
    assert result.spans == (KeySpan(1, 3, "unchecked", None),)
    assert describe_spans(result.spans) == f"entries 1{DASH}3 signed, not checked (no key given)"
    assert describe_spans(verify([]).spans) == "no entries"


def test_a_signature_on_an_entry_before_signing_began_is_caught() -> None:
    chain = Chain().decisions(1, A).decisions(1).key_change(A, None, A)

    result = verify(chain.entries)

    assert (result.first_bad_sequence, result.count) == (1, 0)
    assert result.reason == "entry 1: has a signature, but signing began only at entry 3"


def test_a_key_change_the_index_does_not_list_is_refused() -> None:
    # The store finds the first key change by its kind column; one it did not find was hidden from it.
    chain = Chain().decisions(1).key_change(A, None, A)

    result = verify(chain.entries, first_change=None)

    assert (result.first_bad_sequence, result.count) == (2, 1)
    assert result.reason == "entry 2: a key change the ledger's index does not list (kind column edited?)"


def test_a_key_change_to_the_key_already_in_force_is_refused() -> None:
    chain = Chain().key_change(A, None, A).decisions(1, A).key_change(A, A, A)

    result = verify(chain.entries, A.public_key())

    assert result.first_bad_sequence == 3
    assert result.reason == f"entry 3: key change names the key already in force ({short(A)})"


def test_a_key_change_whose_proof_the_new_key_did_not_make_is_refused() -> None:
    # Signed by the key in force, but the proof is B's over another position: it was lifted from elsewhere.
    stolen = key_change_payload(B, "f" * 64, hex_of(A))["proof"]
    chain = Chain().key_change(A, None, A).decisions(1, A).key_change(B, A, A, proof=stolen)

    result = verify(chain.entries, A.public_key())

    assert result.first_bad_sequence == 3
    assert result.reason == f"entry 3: key change's proof does not verify with the key it names ({short(B)})"


@pytest.mark.parametrize(
    ("overrides", "reason"),
    [
        ({"algorithm": "RSA"}, "key change names algorithm 'RSA', the ledger signs with Ed25519"),
        ({"public_key": "ABCD"}, "key change public_key 'ABCD' is not 64 lowercase hex digits"),
        ({"previous_public_key": 7}, "key change previous_public_key 7 is not 64 lowercase hex digits or null"),
        ({"proof": None}, "key change has no proof"),
    ],
    ids=["algorithm", "public key", "previous key", "proof"],
)
def test_a_malformed_key_change_is_named_for_what_is_wrong(overrides: dict[str, Any], reason: str) -> None:
    chain = Chain().decisions(1).key_change(A, None, A, **overrides).decisions(1, A)

    result = verify(chain.entries)

    assert (result.ok, result.first_bad_sequence, result.reason) == (False, 2, f"entry 2: {reason}")


def test_a_key_change_with_no_payload_is_named() -> None:
    chain = Chain().decisions(1)
    chain.append("signing_key", "A's key")

    assert verify(chain.entries).reason == "entry 2: key change has no payload"


def test_a_bad_signature_found_after_a_rotation_names_the_spans_before_it_only() -> None:
    # 1 turns signing on with A, 2-3 signed by A, 4 hands over to B, 5 signed by B; 3's signature is forged.
    chain = Chain().key_change(A, None, A).decisions(2, A).key_change(B, A, A).decisions(1, B)
    forged = replace(chain.entries[2], signature=sign_hash(B, chain.entries[2].hash))
    entries = [*chain.entries[:2], forged, *chain.entries[3:]]
    assert verify(chain.entries).ok

    result = verify(entries, A.public_key())

    assert (result.first_bad_sequence, result.count, result.head_hash) == (3, 2, chain.entries[1].hash)
    assert result.reason == (
        f"entry 3: signature does not verify with key {short(A)}, the key in force (rewritten without the key, "
        "or signed by a key never recorded with `countersign key rotate`?)"
    )
    assert spans(result) == [(1, 2, "signed", hex_of(A))]


def test_a_bad_signature_is_the_one_reported_however_many_batches_are_in_flight() -> None:
    chain = Chain().key_change(A, None, A).decisions(7, A)
    forged = replace(chain.entries[2], signature=sign_hash(B, chain.entries[2].hash))
    entries = [*chain.entries[:2], forged, *chain.entries[3:]]

    for batch, workers in ((1, 1), (1, 4), (3, 2)):
        result = verify(entries, A.public_key(), batch=batch, workers=workers)
        assert (result.first_bad_sequence, result.count, result.head_hash) == (3, 2, entries[1].hash), batch
        assert (result.reason or "").startswith(f"entry 3: signature does not verify with key {short(A)}")


# -- signatures ----------------------------------------------------------------------------------------------------


def test_a_signature_may_be_hex_or_base64_and_nothing_else() -> None:
    digest = entry_hash(GENESIS, "{}")
    signature = sign_hash(A, digest)
    as_base64 = base64.b64encode(bytes.fromhex(signature)).decode()

    assert decode_signature(as_base64) == bytes.fromhex(signature)
    assert signature_valid(A.public_key(), digest, as_base64)
    assert signature_valid(A.public_key(), digest, f"  {signature}\n")
    with pytest.raises(ValueError, match=r"^signature is 96 bytes, an Ed25519 signature is 64$"):
        decode_signature("z" * 128)  # 128 characters, not hex: read as base64, too long
    with pytest.raises(ValueError, match=r"^signature is neither hex nor base64$"):
        decode_signature("!" * 128)
    assert not signature_valid(A.public_key(), digest, "!" * 128)
    assert not signature_valid(A.public_key(), "not a hash", signature)


# -- the canonical form --------------------------------------------------------------------------------------------


class Decision(enum.Enum):
    APPROVED = "approved"


class Level(enum.IntEnum):
    HIGH = 3


def test_enums_are_recorded_as_their_values_and_dates_as_iso_8601() -> None:
    assert canonical_json({"decision": Decision.APPROVED, "level": Level.HIGH, "on": date(2026, 11, 30)}) == (
        '{"decision":"approved","level":3,"on":"2026-11-30"}'
    )


def test_an_escaped_object_that_is_not_a_list_of_pairs_is_refused() -> None:
    with pytest.raises(LedgerEncodingError, match=r"^\$ledger:object needs a list of \[key, value\] pairs, not 'x'$"):
        decode({"$ledger:object": "x"})
    with pytest.raises(LedgerEncodingError, match="needs a list of"):
        decode({"$ledger:object": [["only a key"]]})
