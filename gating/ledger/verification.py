"""Cached, incremental verification of the ledger: a dossier view verifies only what was appended since the last one.

The result of each verification is kept in `ledger_verifications`, one row per trusted key, with the head it reached
(sequence and hash) and the signing keys in force there. The next verification continues from that head to the new
one (`verify_cached`); `verify_in_full` recomputes every entry and records when it last did (`countersign verify`,
`GET /api/v1/ledger/verify` and the daily `verify_ledger` job).

A view verifies at most `limit` entries itself (COUNTERSIGN_VIEW_VERIFY_ENTRIES): a view that would have to walk
more (a new install's first, the first after a purge, or after a long time without views) answers from what was
verified before and says what is left, marked `pending`, while the worker's `extend_verification` job (every
minute) walks the rest. A request is never held for the length of the chain, and nothing unverified reads as
verified: an entry past the verified head, or a chain whose cached result no longer checks out, is "not verified".

What an incremental verification guarantees, beyond the cached result:
- every entry appended since is checked exactly as a full verification checks it (sequence, link, hash of its
  content, columns against content, signature with the key in force, key changes), starting from the cached head;
- the cached head is still there with the same stored hash, its content still hashes to it (so the first new
  entry links to an unedited head), and the number of entries up to it is still the number verified (a row deleted
  from or inserted into the verified range shows);
- any retention purge since, signing turned on since (the first key change is among the new entries), a cached
  result that did not verify OK, and a trusted key not verified with before make it verify in full.

What only a full verification finds: an entry *inside* the verified range edited or rehashed in place (its content,
hash, signature or columns) while its neighbours, the count and the head stayed as they were. That is why the page
says when the chain was last verified in full, and why the app does so daily. Signed checkpoints kept elsewhere
remain the defence against a chain rebuilt from scratch.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from gating.ledger import chain, purges
from gating.ledger.purges import KeySnapshot, PurgedRange
from gating.ledger.signing import KeySpan, public_key_hex
from gating.ledger.store import _VERIFY_COLUMNS, Ledger, _columns_match_content
from gating.models import LedgerEntry, LedgerVerification

log = logging.getLogger(__name__)

FULL = "full"  # every entry recomputed
INCREMENTAL = "incremental"  # the entries after the cached head, on top of the cached result
CACHED = "cached"  # nothing appended since: the cached result, its head cross-checked
PENDING = "pending"  # more to walk than a view may: what was verified before (if it still holds); the worker does it


@dataclass(frozen=True)
class Verification:
    """A verification and how it was reached: `entries_checked` is how many entries this call recomputed."""

    result: chain.VerifyResult
    how: str
    entries_checked: int
    verified_at: datetime
    full_verified_at: datetime | None
    full_verified_sequence: int | None
    full_ok: bool | None
    # PENDING: why this view did not verify to the head, and how many entries are left for the worker.
    pending: str | None = None
    pending_entries: int = 0
    cache_failed: bool = False  # what was verified before no longer checks out: edited, removed or purged since

    def as_dict(self) -> dict[str, Any]:
        return {
            "how": self.how,
            "pending": (
                {"reason": self.pending, "entries": self.pending_entries, "cache_failed": self.cache_failed}
                if self.pending
                else None
            ),
            "entries_checked": self.entries_checked,
            "verified_at": chain.format_time(self.verified_at),
            "last_full_verification": (
                {
                    "at": chain.format_time(self.full_verified_at),
                    "through_sequence": self.full_verified_sequence,
                    "ok": self.full_ok,
                }
                if self.full_verified_at is not None
                else None
            ),
        }


def encode_result(result: chain.VerifyResult) -> str:
    """A verification as the cache keeps it: what it reports, and what a later walk continues from."""
    document = result.as_dict() | {
        "purged": [found.as_dict() | {"listed_hash": found.listed_hash} for found in result.purged],
        "state": result.state.as_dict() if result.state is not None else None,
        "vouched": list(result.vouched),
    }
    return chain.canonical_json(document)


def decode_result(text: str) -> chain.VerifyResult:
    """The inverse of `encode_result`; ValueError (or KeyError, TypeError) for anything else."""
    document = json.loads(text)
    purged = tuple(
        PurgedRange(**{k: v for k, v in found.items() if k != "count"}) for found in document.get("purged") or []
    )
    state = document.get("state")
    return chain.VerifyResult(
        ok=bool(document["ok"]),
        count=int(document["count"]),
        head_hash=str(document["head_hash"]),
        first_bad_sequence=document.get("first_bad_sequence"),
        reason=document.get("reason"),
        signatures_checked=bool(document.get("signatures_checked")),
        spans=tuple(KeySpan(**span) for span in document.get("spans") or []),
        keys=tuple(document.get("keys") or []),
        purged=purged,
        state=KeySnapshot.parse(state) if state is not None else None,
        vouched=tuple(document.get("vouched") or []),
    )


def _anchor(ledger: Ledger, public_key: Ed25519PublicKey | None) -> tuple[Ed25519PublicKey | None, str]:
    key = public_key or ledger.public_key
    return key, public_key_hex(key) if key is not None else ""


def _record(
    ledger: Ledger, anchor: str, result: chain.VerifyResult, how: str, checked: int, now: datetime
) -> Verification:
    """Keep `result` as the latest verification with `anchor`; a full one also becomes the last full verification."""
    with ledger.db.session() as session:
        row = session.get(LedgerVerification, anchor)
        if row is None:
            row = LedgerVerification(anchor=anchor)
            session.add(row)
        row.sequence = result.last_sequence
        row.head_hash = result.head_hash
        row.ok = result.ok
        row.result = encode_result(result)
        row.verified_at = now
        if how == FULL:
            row.full_verified_at, row.full_verified_sequence, row.full_ok = now, result.last_sequence, result.ok
        full = (row.full_verified_at, row.full_verified_sequence, row.full_ok)
    return Verification(result, how, checked, now, *full)


def _save(
    ledger: Ledger, anchor: str, result: chain.VerifyResult, how: str, checked: int, now: datetime
) -> Verification:
    try:
        return _record(ledger, anchor, result, how, checked, now)
    except IntegrityError:
        # Another process recorded its first verification with this key at the same moment: theirs is as good.
        return _record(ledger, anchor, result, how, checked, now)


def verify_in_full(
    ledger: Ledger, public_key: Ed25519PublicKey | None = None, *, now: datetime | None = None
) -> Verification:
    """Recompute every entry (`Ledger.verify`) and record it as the last full verification with that key."""
    key, anchor = _anchor(ledger, public_key)
    result = ledger.verify(key)
    return _save(ledger, anchor, result, FULL, result.count, now or ledger.clock())


def _cached(ledger: Ledger, anchor: str) -> LedgerVerification | None:
    with ledger.db.session() as session:
        return session.get(LedgerVerification, anchor)


def _head_still_verified(ledger: Ledger, row: LedgerVerification, cached: chain.VerifyResult) -> bool:
    """The cross-checks that let a cached result stand for the range it covers (see the module's docstring)."""
    with ledger.db.session() as session:
        head = session.execute(
            select(LedgerEntry.prev_hash, LedgerEntry.payload, LedgerEntry.hash).where(
                LedgerEntry.sequence == row.sequence
            )
        ).first()
        if head is None or head.hash != row.head_hash or chain.entry_hash(head.prev_hash, head.payload) != head.hash:
            return False
        counted = session.scalar(select(func.count()).where(LedgerEntry.sequence <= row.sequence))
        purged_since = session.scalar(
            select(func.count()).where(LedgerEntry.kind == purges.KIND, LedgerEntry.sequence > row.sequence)
        )
    return counted == cached.count and not purged_since


def _pending(
    row: LedgerVerification | None,
    result: chain.VerifyResult,
    why: str,
    left: int,
    now: datetime,
    *,
    cache_failed: bool = False,
) -> Verification:
    """A view's answer when the walk is left to the worker: `result` is what stands meanwhile."""
    full = (row.full_verified_at, row.full_verified_sequence, row.full_ok) if row is not None else (None, None, None)
    verified_at = row.verified_at if row is not None and result.ok else now
    return Verification(
        result, PENDING, 0, verified_at, *full, pending=why, pending_entries=left, cache_failed=cache_failed
    )


def _unverified(reason: str) -> chain.VerifyResult:
    """Nothing verified that still holds: no entry reads as verified, and `reason` says why."""
    return chain.VerifyResult(ok=False, count=0, head_hash="", reason=reason)


def verify_cached(
    ledger: Ledger,
    public_key: Ed25519PublicKey | None = None,
    *,
    now: datetime | None = None,
    limit: int | None = None,
) -> Verification:
    """The chain's verification for a view: the cached one, extended to the current head; in full when it cannot be.

    In full when there is no cached result with this key, when it did not verify OK (a broken chain is recomputed
    until it verifies again), or when its head no longer checks out (edited, deleted, purged since). With a `limit`,
    a walk over more entries than that is not made here (PENDING, see the module's docstring).
    """
    key, anchor = _anchor(ledger, public_key)
    moment = now or ledger.clock()
    row = _cached(ledger, anchor)
    try:
        cached = decode_result(row.result) if row is not None else None
    except (ValueError, KeyError, TypeError):
        cached = None  # a cache written by another version, or damaged: recompute
    head_sequence = ledger.head()[0]
    too_long = limit is not None and head_sequence > limit

    def in_full(standing: chain.VerifyResult, why: str, *, cache_failed: bool = False) -> Verification:
        if too_long:
            return _pending(row, standing, why, head_sequence, moment, cache_failed=cache_failed)
        return verify_in_full(ledger, key, now=moment)

    if row is not None and cached is not None and not cached.ok:
        return in_full(cached, "the chain did not verify last time; it is being verified again in full")
    if row is None or cached is None or cached.state is None:
        return in_full(_unverified("not verified yet"), "the chain has not been verified yet")
    if not _head_still_verified(ledger, row, cached):
        why = (
            f"entry {row.sequence}, the last one verified, or the entries before it changed since (edited, removed "
            "or purged); the chain is being verified again in full"
        )
        return in_full(_unverified(why), why, cache_failed=True)
    if limit is not None and head_sequence - row.sequence > limit:
        left = head_sequence - row.sequence
        why = f"the entries after entry {row.sequence} are being verified"
        return _pending(row, cached, why, left, moment)
    counter = _Counter()
    query = select(*_VERIFY_COLUMNS).where(LedgerEntry.sequence > row.sequence).order_by(LedgerEntry.sequence)
    with ledger.db.engine.connect() as connection:
        first = Ledger._first_key_change(connection)
        if first is not None and first.sequence > row.sequence:
            # Signing was turned on since: the keys the cached walk assumed (the trusted key) were a guess that the
            # key change now settles, so the whole chain is walked again from the start.
            connection.close()
            return in_full(
                _unverified("signing was turned on since the last verification"),
                "signing was turned on since the last verification; the chain is being verified again in full",
            )
        rows = connection.execution_options(yield_per=2000).execute(query)
        result = chain.verify(counter.count(rows), key, check=_columns_match_content, first_change=first, after=cached)
    if counter.seen == 0:
        full = (row.full_verified_at, row.full_verified_sequence, row.full_ok)
        return Verification(cached, CACHED, 0, row.verified_at, *full)
    return _save(ledger, anchor, result, INCREMENTAL, counter.seen, moment)


class _Counter:
    """Counts the entries a walk reads: how a test (and the page) knows how much was recomputed."""

    def __init__(self) -> None:
        self.seen = 0

    def count(self, rows: Iterable[Any]) -> Iterator[Any]:
        for found in rows:
            self.seen += 1
            yield found


def last_full_verification(ledger: Ledger, public_key: Ed25519PublicKey | None = None) -> dict[str, Any] | None:
    """When the chain was last verified in full with this key, how far, and whether it was OK; None if never."""
    _key, anchor = _anchor(ledger, public_key)
    row = _cached(ledger, anchor)
    if row is None or row.full_verified_at is None:
        return None
    return {
        "at": chain.format_time(row.full_verified_at),
        "through_sequence": row.full_verified_sequence,
        "ok": row.full_ok,
    }


def latest_checkpoint(folder: Path) -> dict[str, Any] | None:
    """The newest checkpoint file (by its `created_at`) in `folder`, as {sequence, head_hash, created_at, file}."""
    found: list[dict[str, Any]] = []
    for path in sorted(folder.glob("*.json")):
        try:
            checkpoint = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a checkpoint: the folder may hold other files
        if isinstance(checkpoint, Mapping) and {"sequence", "head_hash", "created_at"} <= set(checkpoint):
            fields = {k: checkpoint[k] for k in ("sequence", "head_hash", "created_at")}
            found.append(fields | {"file": path.name, "signed": bool(checkpoint.get("signature"))})
    return max(found, key=lambda c: str(c["created_at"])) if found else None


def ledger_state(
    ledger: Ledger,
    public_key: Ed25519PublicKey | None = None,
    *,
    checkpoint_dir: Path | None = None,
) -> dict[str, Any]:
    """The ledger at a glance, for the dashboard: entries, head, last checkpoint (if a folder is given) and the last
    full verification. Reads no entry's content: an index lookup and a count."""
    sequence, head_hash = ledger.head()
    with ledger.db.session() as session:
        entries = int(session.scalar(select(func.count()).select_from(LedgerEntry)) or 0)
    return {
        "entries": entries,
        "head": {"sequence": sequence, "hash": head_hash},
        "last_checkpoint": latest_checkpoint(checkpoint_dir) if checkpoint_dir is not None else None,
        "last_full_verification": last_full_verification(ledger, public_key),
    }
