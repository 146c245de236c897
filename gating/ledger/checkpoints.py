"""Signed checkpoints (count, head hash) kept outside the database: they catch a truncated tail or a rebuilt chain."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from gating.ledger import chain
from gating.ledger.store import Ledger, public_key_from_hex, public_key_hex

CHECKPOINT_VERSION = 1
_REQUIRED = ("count", "sequence", "head_hash", "created_at")


def _signed_text(checkpoint: dict[str, Any]) -> bytes:
    return chain.canonical_json({k: v for k, v in checkpoint.items() if k != "signature"}).encode("utf-8")


def make_checkpoint(
    ledger: Ledger, signing_key: Ed25519PrivateKey | None = None, *, now: datetime | None = None
) -> dict[str, Any]:
    """{version, count, sequence, head_hash, created_at[, public_key, signature]} for the current head."""
    count, head_hash = ledger.head()
    return checkpoint_of(count, head_hash, now or ledger.clock(), signing_key)


def checkpoint_of(
    sequence: int, head_hash: str, now: datetime, signing_key: Ed25519PrivateKey | None = None
) -> dict[str, Any]:
    """The checkpoint of the entry `sequence` whose hash is `head_hash` (`count` is its sequence, as it always was)."""
    checkpoint: dict[str, Any] = {
        "version": CHECKPOINT_VERSION,
        "count": sequence,
        "sequence": sequence,
        "head_hash": head_hash,
        "created_at": chain.format_time(now),
    }
    if signing_key is not None:
        checkpoint["public_key"] = public_key_hex(signing_key.public_key())
        checkpoint["signature"] = signing_key.sign(signed_bytes(checkpoint)).hex()
    return checkpoint


def signed_bytes(checkpoint: dict[str, Any]) -> bytes:
    """What a checkpoint's signature covers: the JCS bytes of the checkpoint without its signature."""
    return _signed_text(checkpoint)


def _checkpoint_problem(checkpoint: dict[str, Any], key: Ed25519PublicKey | None) -> str | None:
    missing = [name for name in _REQUIRED if name not in checkpoint]
    if missing:
        return f"checkpoint is missing {', '.join(missing)}"
    if not isinstance(checkpoint["sequence"], int) or checkpoint["sequence"] < 0:
        return f"checkpoint sequence {checkpoint['sequence']!r} is not a non-negative integer"
    signature = checkpoint.get("signature")
    if not signature:
        if key is not None:
            return "checkpoint is not signed, but a signing key is configured (a forged checkpoint proves nothing)"
        return None
    try:
        signer = public_key_from_hex(str(checkpoint.get("public_key", "")))
    except ValueError:
        return "checkpoint has a signature but no valid public_key"
    if not chain.signature_valid_bytes(signer, _signed_text(checkpoint), str(signature)):
        return "checkpoint signature does not verify (the checkpoint file was edited)"
    return None


def _foreign_signer(checkpoint: dict[str, Any], result: chain.VerifyResult, key: Ed25519PublicKey | None) -> str | None:
    """A checkpoint signed by none of the ledger's keys (any of them: it may predate a rotation) proves nothing."""
    if not checkpoint.get("signature"):
        return None
    signer = str(checkpoint.get("public_key"))
    ours = set(result.keys) | ({public_key_hex(key)} if key is not None else set())
    if not ours or signer in ours:
        return None  # no key known at all (a ledger signed before keys were recorded, checked without one)
    return f"checkpoint was signed by a key this ledger was never signed with ({signer[:16]}…)"


def verify_against_checkpoint(
    ledger: Ledger, checkpoint: dict[str, Any], public_key: Ed25519PublicKey | None = None
) -> chain.VerifyResult:
    """The chain verifies AND still contains the checkpoint's entry with exactly its hash."""
    key = public_key or ledger.public_key
    problem = _checkpoint_problem(checkpoint, key)
    if problem:
        return chain.VerifyResult(False, 0, "", None, problem, key is not None)
    result = ledger.verify(key)
    if not result.ok:
        return result
    foreign = _foreign_signer(checkpoint, result, key)
    if foreign:
        return dataclasses.replace(result, ok=False, reason=foreign)
    sequence = int(checkpoint["sequence"])
    expected = str(checkpoint["head_hash"])
    taken = checkpoint["created_at"]
    if sequence == 0:
        return result
    last = result.last_sequence
    if last < sequence:
        return dataclasses.replace(
            result,
            ok=False,
            first_bad_sequence=last + 1,
            reason=f"entry {last + 1}: missing; the checkpoint of {taken} covers {sequence} entries but the "
            f"ledger has {last} (tail truncated)",
        )
    if result.purged and sequence <= result.purged[-1].last:
        # The checkpoint's entry was purged since: its hash is the one the purge recorded, when still recorded.
        found = next(r for r in result.purged if r.last >= sequence)
        recorded = ledger.purged_hash(found, sequence)
        if recorded is None:
            return dataclasses.replace(
                result,
                ok=False,
                first_bad_sequence=sequence,
                reason=f"entry {sequence}: purged ({found.describe()}), and its hash is no longer recorded: "
                f"the checkpoint of {taken} cannot be compared; use one taken after the purge",
            )
        if recorded != expected:
            return dataclasses.replace(
                result,
                ok=False,
                first_bad_sequence=sequence,
                reason=f"entry {sequence}: the hash its purge recorded ({recorded[:16]}…) differs from the checkpoint "
                f"of {taken} ({expected[:16]}…): the chain was rebuilt or rewritten since the checkpoint",
            )
        return result
    entry = ledger.at_sequence(sequence)
    actual = entry.hash if entry is not None else ""
    if actual != expected:
        return dataclasses.replace(
            result,
            ok=False,
            first_bad_sequence=sequence,
            reason=f"entry {sequence}: hash {actual[:16]}… differs from the checkpoint of {taken} ({expected[:16]}…): "
            "the chain was rebuilt or rewritten since the checkpoint",
        )
    return result
