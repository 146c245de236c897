"""The hash chain, pure: entry hashes over canonical JSON, Ed25519 signatures, verification naming the first break."""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections import deque
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

# Re-exported: the chain hashes this text, and the store and checkpoints format times as it does.
from gating.ledger.encoding import canonical_json as canonical_json
from gating.ledger.encoding import format_time as format_time

GENESIS = "0" * 64


class EntryLike(Protocol):
    """What verification reads from an entry: a row, a named tuple or a view all qualify."""

    @property
    def sequence(self) -> int: ...

    @property
    def prev_hash(self) -> str: ...

    @property
    def payload(self) -> str: ...

    @property
    def hash(self) -> str: ...

    @property
    def signature(self) -> str | None: ...


E = TypeVar("E", bound=EntryLike)


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    count: int
    head_hash: str
    first_bad_sequence: int | None = None
    reason: str | None = None
    signatures_checked: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "count": self.count,
            "head_hash": self.head_hash,
            "first_bad_sequence": self.first_bad_sequence,
            "reason": self.reason,
            "signatures_checked": self.signatures_checked,
        }


def entry_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + payload).encode("utf-8")).hexdigest()


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


def _link_problem(entry: EntryLike, expected: int, previous: str) -> tuple[int, str] | None:
    """Sequence, link and content checks for one entry: (the bad sequence, why) or None."""
    if entry.sequence != expected:
        if entry.sequence > expected:
            return expected, f"missing; entry {entry.sequence} follows {expected - 1} (a row is missing)"
        return entry.sequence, f"sequence {expected} expected (duplicated or reordered)"
    if entry.prev_hash != previous:
        where = "the start of the chain" if expected == 1 else f"entry {expected - 1}"
        return expected, f"prev_hash does not match {where} (deleted, reordered or inserted, or that entry rehashed)"
    if entry_hash(entry.prev_hash, entry.payload) != entry.hash:
        return expected, "hash does not match its content (edited)"
    return None


def _signature_problem(public_key: Ed25519PublicKey, entry: EntryLike) -> str | None:
    if not entry.signature:
        return "no signature, but the ledger is signed (rewritten without the key?)"
    if not signature_valid(public_key, entry.hash, entry.signature):
        return "signature does not verify (rewritten without the key?)"
    return None


def _first_signature_problem(public_key: Ed25519PublicKey, entries: list[E]) -> tuple[int, str] | None:
    for i, entry in enumerate(entries):
        problem = _signature_problem(public_key, entry)
        if problem:
            return i, problem
    return None


@dataclass
class _Batch(Generic[E]):
    """Entries whose links checked out, waiting for their signatures."""

    count_before: int
    head_before: str
    good: list[E]
    pending: list[tuple[int, Future[tuple[int, str] | None]]]


def verify(
    entries: Iterable[E],
    public_key: Ed25519PublicKey | None = None,
    *,
    check: Callable[[E], str | None] | None = None,
    workers: int = 1,
    batch: int = 2048,
) -> VerifyResult:
    """Recompute the chain in sequence order and name the first entry that does not fit.

    Per entry: sequence, prev_hash link, hash of the content, `check` (an extra test returning a reason or None),
    then, with a public key, the signature: every entry must carry a valid one, so a chain recomputed without the
    key fails. Signatures are checked on `workers` threads (OpenSSL releases the GIL) while later entries' links
    are being checked; the first failure in sequence order is still the one reported.
    """
    signed = public_key is not None
    count = 0
    previous = GENESIS
    pool = ThreadPoolExecutor(max_workers=max(workers, 1)) if public_key is not None else None
    waiting: deque[_Batch[E]] = deque()

    def signature_failure(item: _Batch[E]) -> VerifyResult | None:
        for offset, future in item.pending:
            found = future.result()
            if found is not None:
                i = offset + found[0]
                last = item.good[i - 1].hash if i else item.head_before
                sequence = item.good[i].sequence
                return VerifyResult(False, item.count_before + i, last, sequence, f"entry {sequence}: {found[1]}", True)
        return None

    iterator = iter(entries)
    try:
        while chunk := list(islice(iterator, batch)):
            good: list[E] = []
            head = previous
            failure: tuple[int, str] | None = None
            for entry in chunk:
                failure = _link_problem(entry, count + len(good) + 1, head)
                if failure is None and check is not None:
                    problem = check(entry)
                    failure = (entry.sequence, problem) if problem else None
                if failure is not None:
                    break
                good.append(entry)
                head = entry.hash
            if pool is not None and public_key is not None and good:
                step = -(-len(good) // max(workers, 1))
                futures = [
                    (start, pool.submit(_first_signature_problem, public_key, good[start : start + step]))
                    for start in range(0, len(good), step)
                ]
                waiting.append(_Batch(count, previous, good, futures))
            if failure is not None:
                while waiting:
                    bad = signature_failure(waiting.popleft())
                    if bad is not None:
                        return bad
                sequence, reason = failure
                return VerifyResult(False, count + len(good), head, sequence, f"entry {sequence}: {reason}", signed)
            count += len(good)
            previous = head
            # Keep a bounded number of batches in flight: the oldest must pass before reading much further.
            while len(waiting) > 2:
                bad = signature_failure(waiting.popleft())
                if bad is not None:
                    return bad
        while waiting:
            bad = signature_failure(waiting.popleft())
            if bad is not None:
                return bad
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)
    return VerifyResult(True, count, previous, None, None, signed)
