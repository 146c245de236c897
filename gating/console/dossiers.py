"""Deployment dossiers: one `deployment_decision` ledger entry as an auditor sees it.

The evidence exactly as recorded, the entry's place in the hash chain, the verification of the chain up
to now, and the auditor's five questions answered from that evidence (`gating.policy.answers`). The same
document backs the JSON API, the HTML page and `countersign export`.
"""

from __future__ import annotations

from typing import Any

from gating.console.index import KIND
from gating.console.queries import iso
from gating.console.scope import Scope
from gating.ledger import Ledger, LedgerEntryView, VerifyResult, entry_hash
from gating.ledger.chain import signature_valid as check_signature
from gating.ledger.store import public_key_from_hex
from gating.ledger.verification import FULL, Verification, verify_cached
from gating.policy.answers import answer_questions


def _evidence(entry: LedgerEntryView) -> dict[str, Any]:
    try:
        data = entry.data
    except (ValueError, KeyError, TypeError):
        return {}
    return data if isinstance(data, dict) else {}


def _recorded_at(entry: LedgerEntryView) -> str:
    try:
        return str(entry.content()["recorded_at"])
    except (ValueError, KeyError, TypeError):
        return str(iso(entry.created_at))


def summary(entry: LedgerEntryView) -> dict[str, Any]:
    evidence = _evidence(entry)
    return {
        "id": entry.id,
        "recorded_at": _recorded_at(entry),
        "repository": entry.repository,
        "environment": entry.environment,
        "deployment_id": entry.deployment_id,
        "sha": entry.sha,
        "decision": entry.decision,
        "tickets": [t.get("key") for t in evidence.get("tickets") or []],
        "commit_count": len(evidence.get("commits") or []),
        "links": {"self": f"/api/v1/deployments/{entry.id}", "page": f"/deployments/{entry.id}"},
    }


def load_dossier(
    ledger: Ledger,
    entry_id: int,
    scope: Scope,
    verification: VerifyResult | Verification | None = None,
    *,
    verify_limit: int | None = None,
) -> dict[str, Any] | None:
    """The dossier of ledger entry `entry_id`, or None when there is no such deployment decision in `scope`
    (outside it, the same None: a viewer learns nothing of what it may not see, not even that it exists).

    Without a `verification`, the cached one extended to the head (`verify_cached`): a view recomputes only the
    entries appended since the last verification, at most `verify_limit` of them (more are left to the worker and
    the dossier says so), and says when the chain was last verified in full."""
    entry = ledger.get(entry_id)
    if entry is None or entry.kind != KIND or not scope.allows(entry.repository):
        return None
    if verification is None:
        verification = verify_cached(ledger, limit=verify_limit)
    dossier = build_dossier(entry, verification, ledger)
    dossier["range_base"] = range_base(ledger, entry, dossier["evidence"])
    return dossier


def range_base(ledger: Ledger, entry: LedgerEntryView, evidence: dict[str, Any]) -> dict[str, Any] | None:
    """The ledger's own record of the approved deployment the release's range starts from, when it holds one."""
    range_ = evidence.get("range") or {}
    base_sha = range_.get("base_sha")
    if range_.get("method") != "last_approved" or not base_sha:
        return None
    for earlier in ledger.search(
        repo=entry.repository, environment=entry.environment, sha=base_sha, kind=KIND, limit=20
    ):
        if earlier.sequence < entry.sequence and earlier.decision in ("approved", "emergency"):
            return {"id": earlier.id, "decided_at": _evidence(earlier).get("captured_at") or _recorded_at(earlier)}
    return None


def build_dossier(
    entry: LedgerEntryView, verification: VerifyResult | Verification, ledger: Ledger | None = None
) -> dict[str, Any]:
    """The dossier of `entry` with the chain's `verification`: a bare result is one just computed in full."""
    if isinstance(verification, VerifyResult):
        # Recomputed in full by the caller just now (an export): when, the caller says (its "produced at").
        result = verification
        how: dict[str, Any] = {
            "how": FULL,
            "entries_checked": result.count,
            "verified_at": None,
            "last_full_verification": None,
            "pending": None,
        }
    else:
        result, how = verification.result, verification.as_dict()
    evidence = _evidence(entry)
    hash_matches = entry_hash(entry.prev_hash, entry.payload) == entry.hash
    signature_valid: bool | None = None
    if entry.signature and ledger is not None and ledger.public_key is not None:
        # Checked with the key in force at this entry, which a rotation may have retired since.
        signer = result.signer_of(entry.sequence)
        key = public_key_from_hex(signer) if signer else ledger.public_key
        signature_valid = check_signature(key, entry.hash, entry.signature)
    # Verified through this entry: an OK walk that reached it (one left to the worker may stop short of it), or a
    # broken chain whose first bad entry comes after it.
    covered = (result.ok and entry.sequence <= result.last_sequence) or (
        result.first_bad_sequence is not None and result.first_bad_sequence > entry.sequence
    )
    verification_doc = (
        result.as_dict()
        | {
            "entry_hash_matches": hash_matches,
            "entry_verified": bool(covered and hash_matches),
            "verified_through": result.last_sequence if result.ok else None,
        }
        | how
    )
    entry_doc = {
        "id": entry.id,
        "sequence": entry.sequence,
        "kind": entry.kind,
        "recorded_at": _recorded_at(entry),
        "hash": entry.hash,
        "prev_hash": entry.prev_hash,
        "signature_present": bool(entry.signature),
        "signature_valid": signature_valid,
        # What a third party checks with the key's holder's public key: Ed25519 over the 32 raw bytes of `hash`.
        "signature": entry.signature,
        "signed_by": result.signer_of(entry.sequence),
    }
    return {
        "id": entry.id,
        "summary": summary(entry),
        "evidence": evidence,
        "entry": entry_doc,
        "verification": verification_doc,
        "answers": answer_questions(evidence, entry_doc, verification_doc),
    }
