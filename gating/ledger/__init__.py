"""The evidence ledger: a hash chain of canonical JSON entries, optionally Ed25519-signed, with checkpoints."""

from gating.ledger.chain import GENESIS, VerifyResult, canonical_json, entry_hash, verify
from gating.ledger.checkpoints import make_checkpoint, verify_against_checkpoint
from gating.ledger.store import (
    Ledger,
    LedgerConflict,
    LedgerEntryView,
    LedgerKeyError,
    load_public_key,
    load_signing_key,
    signing_key_from_env,
)

__all__ = [
    "GENESIS",
    "Ledger",
    "LedgerConflict",
    "LedgerEntryView",
    "LedgerKeyError",
    "VerifyResult",
    "canonical_json",
    "entry_hash",
    "load_public_key",
    "load_signing_key",
    "make_checkpoint",
    "signing_key_from_env",
    "verify",
    "verify_against_checkpoint",
]
