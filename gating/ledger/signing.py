"""Ed25519 over the ledger, pure: signatures, key-change entries, and which key may sign each entry of the chain."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gating.ledger.encoding import canonical_json

KEY_CHANGE = "signing_key"  # the entry kind that records a signing key taking over
ALGORITHM = "Ed25519"
_PURPOSE = "countersign ledger signing key"
_HEX_KEY = re.compile(r"[0-9a-f]{64}")
_DASH = "\N{EN DASH}"


def sign_hash(key: Ed25519PrivateKey, hash_hex: str) -> str:
    """Hex Ed25519 signature over the 32 raw bytes of the entry hash."""
    return key.sign(bytes.fromhex(hash_hex)).hex()


def decode_signature(signature: str) -> bytes:
    """Hex (128 characters) or base64; raises ValueError otherwise."""
    text = signature.strip()
    if len(text) == 128:
        try:
            return bytes.fromhex(text)
        except ValueError:
            pass
    try:
        raw = base64.b64decode(text, validate=True)
    except binascii.Error as exc:
        raise ValueError("signature is neither hex nor base64") from exc
    if len(raw) != 64:
        raise ValueError(f"signature is {len(raw)} bytes, an Ed25519 signature is 64")
    return raw


def signature_valid_bytes(public_key: Ed25519PublicKey, message: bytes, signature: str) -> bool:
    try:
        public_key.verify(decode_signature(signature), message)
    except (InvalidSignature, ValueError):
        return False
    return True


def signature_valid(public_key: Ed25519PublicKey, hash_hex: str, signature: str) -> bool:
    try:
        message = bytes.fromhex(hash_hex)
    except ValueError:
        return False
    return signature_valid_bytes(public_key, message, signature)


def public_key_hex(key: Ed25519PublicKey) -> str:
    """The raw 32-byte public key in hex: how the ledger names a key."""
    return key.public_bytes_raw().hex()


def short_key(key_hex: str) -> str:
    """How messages name a key: its first 16 hex digits."""
    return key_hex[:16] + "…"


def key_change_statement(prev_hash: str, public_key: str, previous_public_key: str | None) -> bytes:
    """What the new key signs: itself, the key it follows and the chain position, so the proof cannot be replayed."""
    statement = {
        "purpose": _PURPOSE,
        "prev_hash": prev_hash,
        "public_key": public_key,
        "previous_public_key": previous_public_key,
    }
    return canonical_json(statement).encode("utf-8")


def key_change_payload(new_key: Ed25519PrivateKey, prev_hash: str, previous_public_key: str | None) -> dict[str, Any]:
    """The payload of a key-change entry appended after the entry whose hash is `prev_hash`."""
    public_key = public_key_hex(new_key.public_key())
    proof = new_key.sign(key_change_statement(prev_hash, public_key, previous_public_key)).hex()
    return {
        "algorithm": ALGORITHM,
        "public_key": public_key,
        "previous_public_key": previous_public_key,
        "proof": proof,
    }


@dataclass(frozen=True)
class KeyChange:
    """A key-change entry: from this entry on, `public_key` signs; `previous_public_key` signed before (or none)."""

    sequence: int
    prev_hash: str
    public_key: str
    previous_public_key: str | None
    proof: str

    def proof_valid(self) -> bool:
        statement = key_change_statement(self.prev_hash, self.public_key, self.previous_public_key)
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(self.public_key))
        return signature_valid_bytes(key, statement, self.proof)


def is_key_change(envelope: Any) -> bool:
    """Whether parsed stored text is a key-change envelope; only v2 entries can be (v1 predates them)."""
    return isinstance(envelope, dict) and envelope.get("v") == 2 and envelope.get("kind") == KEY_CHANGE


def parse_key_change(sequence: int, prev_hash: str, payload: Any) -> KeyChange:
    """The key change in a key-change envelope's payload; ValueError says what is malformed."""
    if not isinstance(payload, Mapping):
        raise ValueError("key change has no payload")
    public_key, previous, proof = payload.get("public_key"), payload.get("previous_public_key"), payload.get("proof")
    if payload.get("algorithm") != ALGORITHM:
        raise ValueError(f"key change names algorithm {payload.get('algorithm')!r}, the ledger signs with {ALGORITHM}")
    if not isinstance(public_key, str) or not _HEX_KEY.fullmatch(public_key):
        raise ValueError(f"key change public_key {public_key!r} is not 64 lowercase hex digits")
    if previous is not None and (not isinstance(previous, str) or not _HEX_KEY.fullmatch(previous)):
        raise ValueError(f"key change previous_public_key {previous!r} is not 64 lowercase hex digits or null")
    if not isinstance(proof, str):
        raise ValueError("key change has no proof")
    return KeyChange(sequence, prev_hash, public_key, previous, proof)


@dataclass(frozen=True)
class KeySpan:
    """Consecutive entries signed alike: `state` unsigned, signed (by `public_key`), or unchecked (no key known)."""

    first: int
    last: int
    state: str
    public_key: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"first": self.first, "last": self.last, "state": self.state, "public_key": self.public_key}

    def describe(self) -> str:
        where = f"{self.first}" if self.first == self.last else f"{self.first}{_DASH}{self.last}"
        if self.state == "unsigned":
            return f"{where} unsigned"
        if self.state == "unchecked":
            return f"{where} signed, not checked (no key given)"
        return f"{where} signed by key {short_key(self.public_key or '')}"


def describe_spans(spans: tuple[KeySpan, ...] | list[KeySpan]) -> str:
    """'entries 1-40 unsigned; 41-60 signed by key ab12…' (with en dashes) for a verification's spans."""
    return "entries " + "; ".join(span.describe() for span in spans) if spans else "no entries"


# A signature to check later, off the walk: the entry's hash, its signature, and the one key (and its hex) that must
# have made it.
Check = tuple[str, str, Ed25519PublicKey, str]


class Schedule:
    """Which keys may sign each entry, walking the chain in order.

    Before the first key change the ledger may be unsigned, then signed by `start` (the key the first key change
    names as previous; with none, the key given to verification; with neither, signatures are not checked). A key
    change must be signed by a key allowed at its position (by the key it names, when nothing was signed before)
    and carry the new key's proof. After a change to B, the key before it may still sign until B signs an entry:
    a running app keeps its old key until it is restarted with the new one.
    """

    def __init__(self, start: str | None, *, known: bool, first_change: int | None) -> None:
        self.declared = start  # the latest key the chain names; None: unsigned so far
        self.known = known  # False: no key anywhere (no key change, none given), nothing to check
        self.allowed: list[str] = [start] if start else []  # may sign now, the declared key first
        self.first_change = first_change
        self.changed = False
        self.signed_since: int | None = None
        self.keys: list[str] = []
        self.proven: set[str] = set()
        self.used: set[str] = set()
        self._objects: dict[str, Ed25519PublicKey] = {}

    def key(self, key_hex: str) -> Ed25519PublicKey:
        found = self._objects.get(key_hex)
        if found is None:
            found = self._objects[key_hex] = Ed25519PublicKey.from_public_bytes(bytes.fromhex(key_hex))
        return found

    def _valid(self, key_hex: str, hash_hex: str, signature: str) -> bool:
        return signature_valid(self.key(key_hex), hash_hex, signature)

    def _remember(self, key_hex: str) -> None:
        if key_hex not in self.keys:
            self.keys.append(key_hex)

    def _signed_by(self, key_hex: str, sequence: int) -> None:
        self.used.add(key_hex)
        self._remember(key_hex)
        if self.signed_since is None:
            self.signed_since = sequence
        if key_hex == self.declared:
            self.allowed = [key_hex]  # the newest key has signed: the ones before it are retired

    def entry(self, sequence: int, hash_hex: str, signature: str | None) -> tuple[str | None, Check | None]:
        """For an ordinary entry: (its signer label, a signature to check later or None). Raises ValueError."""
        if not self.known:
            return ("?" if signature else None), None
        if self.declared is None:
            if signature:
                raise ValueError(f"has a signature, but signing began only at entry {self.first_change}")
            return None, None
        if not signature:
            if self.signed_since is None and not self.changed:
                return None, None  # the ledger before signing began
            since = self.signed_since or self.first_change
            raise ValueError(f"no signature, but the ledger is signed since entry {since} (appended without the key?)")
        if len(self.allowed) == 1:
            key_hex = self.allowed[0]
            self._signed_by(key_hex, sequence)
            return key_hex, (hash_hex, signature, self.key(key_hex), key_hex)
        for key_hex in self.allowed:  # a rotation in progress: checked here, since it decides who may sign next
            if self._valid(key_hex, hash_hex, signature):
                self._signed_by(key_hex, sequence)
                return key_hex, None
        raise ValueError(f"signature does not verify with key {self._allowed_names()} (rewritten without the key?)")

    def change(self, change: KeyChange, hash_hex: str, signature: str | None) -> str:
        """For a key-change entry: check it and let its key take over; returns the key that signed it."""
        if not self.changed and change.sequence != self.first_change:
            raise ValueError("a key change the ledger's index does not list (kind column edited?)")
        self.changed = True
        previous = self.declared
        if change.previous_public_key != previous:
            named = short_key(change.previous_public_key) if change.previous_public_key else "no previous key"
            held = f"{short_key(previous)} is in force" if previous else "the ledger was unsigned"
            raise ValueError(f"key change names {named}, but {held} (forged?)")
        if change.public_key == previous:
            raise ValueError(f"key change names the key already in force ({short_key(change.public_key)})")
        if previous is None:
            if not signature or not self._valid(change.public_key, hash_hex, signature):
                key = short_key(change.public_key)
                raise ValueError(f"signature does not verify with the key it turns signing on with ({key})")
            signer = change.public_key
        else:
            candidates = [k for k in self.allowed if signature and self._valid(k, hash_hex, signature)]
            if not candidates:
                raise ValueError(
                    f"key change is not signed by the key in force ({self._allowed_names()}): "
                    "only that key's holder can hand over to another"
                )
            signer = candidates[0]
        if not change.proof_valid():
            key = short_key(change.public_key)
            raise ValueError(f"key change's proof does not verify with the key it names ({key})")
        before = [signer] if signer == previous else self.allowed
        if previous is not None:
            self._remember(previous)
        self._remember(signer)
        self.used.add(signer)
        self.signed_since = self.signed_since or change.sequence
        self.proven.add(change.public_key)
        self.declared = change.public_key
        self.known = True
        self.allowed = [change.public_key, *(k for k in before if k != change.public_key)] if previous else [signer]
        self._remember(change.public_key)
        return signer

    def _allowed_names(self) -> str:
        return " or ".join(short_key(k) for k in self.allowed)
