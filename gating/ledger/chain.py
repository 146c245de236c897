"""The hash chain, pure: entry hashes over canonical JSON, Ed25519 signatures, verification naming the first break."""

from __future__ import annotations

import hashlib
import json
from collections import deque
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from itertools import islice
from typing import Any, Generic, Protocol, TypeVar

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from gating.ledger import encoding, purges
from gating.ledger.encoding import canonical_json as canonical_json
from gating.ledger.encoding import format_time as format_time
from gating.ledger.purges import KeySnapshot, Purged, PurgedRange, PurgeRecordError
from gating.ledger.signing import Check, KeyChange, KeySpan, Schedule, is_key_change, parse_key_change, short_key
from gating.ledger.signing import decode_signature as decode_signature
from gating.ledger.signing import key_change_statement as key_change_statement
from gating.ledger.signing import public_key_hex as public_key_hex
from gating.ledger.signing import sign_hash as sign_hash
from gating.ledger.signing import signature_valid as signature_valid
from gating.ledger.signing import signature_valid_bytes as signature_valid_bytes

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
    """The chain's verification. `signatures_checked`: against a key the caller trusts, not only the chain's own."""

    ok: bool
    count: int
    head_hash: str
    first_bad_sequence: int | None = None
    reason: str | None = None
    signatures_checked: bool = False
    spans: tuple[KeySpan, ...] = ()  # the verified entries, in runs signed alike
    keys: tuple[str, ...] = ()  # every key the chain names or was verified with, oldest first
    purged: tuple[PurgedRange, ...] = ()  # the purged prefix the walk started after, oldest first
    snapshots: tuple[tuple[int, KeySnapshot], ...] = ()  # the keys in force after each entry asked for
    # After a walk that verified to its end: the keys in force after the last entry, and those that vouched for
    # the chain (signed an entry or proved a key change), so that a later walk can continue from here (`after`).
    state: KeySnapshot | None = None
    vouched: tuple[str, ...] = ()

    @property
    def last_sequence(self) -> int:
        """The sequence of the last entry verified: `count` plus the purged entries before them."""
        return self.count + (self.purged[-1].last if self.purged else 0)

    def as_dict(self) -> dict[str, Any]:
        result = {
            "ok": self.ok,
            "count": self.count,
            "head_hash": self.head_hash,
            "first_bad_sequence": self.first_bad_sequence,
            "reason": self.reason,
            "signatures_checked": self.signatures_checked,
            "spans": [span.as_dict() for span in self.spans],
            "keys": list(self.keys),
        }
        if self.purged:  # only then: a ledger never purged reads as it always did
            result["last_sequence"] = self.last_sequence
            result["purged"] = [found.as_dict() for found in self.purged]
        return result

    def signer_of(self, sequence: int) -> str | None:
        """The key that signed entry `sequence`, as verified; None when unsigned, unchecked or not verified."""
        for span in self.spans:
            if span.first <= sequence <= span.last:
                return span.public_key
        return None


class _Scan:
    """Marker: find the first key change by reading the entries themselves (they are then held in memory)."""


SCAN = _Scan()
NOT_JSON = object()  # what `check` receives for stored text that does not parse


def parse(payload: str) -> Any:
    """Stored text parsed as JSON, or NOT_JSON."""
    try:
        return json.loads(payload)
    except ValueError:
        return NOT_JSON


def read_envelope(parsed: Any) -> dict[str, Any]:
    """The envelope as appended: v1 text is read literally (it predates tags), v2 is decoded. ValueError otherwise."""
    if parsed is NOT_JSON:
        raise ValueError("content is not JSON")
    if not isinstance(parsed, dict):
        raise ValueError("content is not a ledger envelope")
    version = parsed.get("v")
    if version == 1:
        return parsed
    if version == 2:
        decoded: dict[str, Any] = encoding.decode(parsed)
        return decoded
    raise ValueError(f"unknown envelope version {version!r}")


def key_change_in(sequence: int, prev_hash: str, parsed: Any) -> KeyChange | None:
    """The key change an entry records, or None; ValueError when it claims to be one but is malformed."""
    if not is_key_change(parsed):
        return None
    return parse_key_change(sequence, prev_hash, read_envelope(parsed).get("payload"))


def first_key_change(entries: Iterable[EntryLike]) -> KeyChange | None:
    """The first well-formed key change among `entries`, in their order."""
    for entry in entries:
        try:
            change = key_change_in(entry.sequence, entry.prev_hash, parse(entry.payload))
        except ValueError:
            continue
        if change is not None:
            return change
    return None


def entry_hash(prev_hash: str, payload: str) -> str:
    return hashlib.sha256((prev_hash + "\n" + payload).encode("utf-8")).hexdigest()


def find_purged(entries: Iterable[EntryLike], *, all_purges: bool = False) -> Purged | None:
    """The purged prefix the `retention_purge` entries among `entries` describe. Raises PurgeRecordError.

    `all_purges`: every entry given is one (the store selects them by kind), so one that does not read as a purge
    record is named as malformed rather than passed over.
    """
    ranges: list[PurgedRange] = []
    for entry in entries:
        if all_purges or purges.is_purge(parse(entry.payload)):
            try:
                found, _hashes = purges.purge_record(
                    entry.sequence, entry_hash(entry.prev_hash, entry.payload), entry.payload
                )
            except ValueError as exc:
                raise PurgeRecordError(entry.sequence, f"retention purge record is malformed: {exc}") from exc
            ranges.extend(found)
    return purges.join(ranges)


def _link_problem(
    entry: EntryLike, expected: int, previous: str, purged: Purged | None = None
) -> tuple[int, str] | None:
    """Sequence, link and content checks for one entry: (the bad sequence, why) or None."""
    after_gap = purged is not None and expected == purged.last + 1
    if entry.sequence != expected:
        if entry.sequence > expected:
            follows = f"the purged entries 1{purges.DASH}{expected - 1}" if after_gap else f"{expected - 1}"
            return expected, f"missing; entry {entry.sequence} follows {follows} (a row is missing)"
        if purged is not None and entry.sequence <= purged.last:
            found = purged.covering(entry.sequence)
            return entry.sequence, (
                f"present, but recorded as purged on {found.purged_at[:10]} by entry {found.recorded_by} "
                "(restored or re-inserted?)"
            )
        return entry.sequence, f"sequence {expected} expected (duplicated or reordered)"
    if entry.prev_hash != previous:
        if purged is not None and after_gap:
            where = f"the hash of entry {purged.last} that the purge recorded"
        else:
            where = "the start of the chain" if expected == 1 else f"entry {expected - 1}"
        return expected, f"prev_hash does not match {where} (deleted, reordered or inserted, or that entry rehashed)"
    if entry_hash(entry.prev_hash, entry.payload) != entry.hash:
        return expected, "hash does not match its content (edited)"
    return None


def _first_signature_problem(checks: list[tuple[int, Check]]) -> tuple[int, str] | None:
    for i, (hash_hex, signature, key, key_hex) in checks:
        if not signature_valid(key, hash_hex, signature):
            return i, (
                f"signature does not verify with key {short_key(key_hex)}, the key in force (rewritten without the "
                "key, or signed by a key never recorded with `countersign key rotate`?)"
            )
    return None


@dataclass
class _Batch(Generic[E]):
    """Entries whose links checked out, waiting for their signatures."""

    count_before: int
    head_before: str
    good: list[E]
    pending: list[Future[tuple[int, str] | None]]


class _Spans:
    """Runs of entries signed alike, built as the walk goes."""

    def __init__(self, earlier: Iterable[KeySpan] = ()) -> None:
        # [first, last, label]; label None unsigned, "?" unchecked, else a key. `earlier`: a verified prefix's spans.
        self.runs: list[list[Any]] = [
            [span.first, span.last, {"unsigned": None, "unchecked": "?"}.get(span.state, span.public_key)]
            for span in earlier
        ]

    def add(self, sequence: int, label: str | None) -> None:
        if self.runs and self.runs[-1][2] == label and self.runs[-1][1] == sequence - 1:
            self.runs[-1][1] = sequence
        else:
            self.runs.append([sequence, sequence, label])

    def before(self, sequence: int | None) -> tuple[KeySpan, ...]:
        spans = []
        for first, last, label in self.runs:
            if sequence is not None and first >= sequence:
                break
            last = last if sequence is None else min(last, sequence - 1)
            state = "unsigned" if label is None else "unchecked" if label == "?" else "signed"
            spans.append(KeySpan(first, last, state, label if state == "signed" else None))
        return tuple(spans)


def verify(
    entries: Iterable[E],
    public_key: Ed25519PublicKey | None = None,
    *,
    check: Callable[[E, Any], str | None] | None = None,
    workers: int = 1,
    batch: int = 2048,
    first_change: KeyChange | _Scan | None = SCAN,
    purged: Purged | _Scan | None = SCAN,
    snapshot_at: Collection[int] = (),
    after: VerifyResult | None = None,
) -> VerifyResult:
    """Recompute the chain in sequence order and name the first entry that does not fit.

    Per entry: sequence, prev_hash link, hash of the content, `check` (an extra test given the entry and its parsed
    text, returning a reason or None), then the signature with the key in force there (see `Schedule`): an unsigned
    start before signing began is reported as unsigned, and from the first signed entry on each must carry a valid
    signature. `public_key` is a key the caller trusts: it must be one that signed entries (or proved a key change)
    unless the ledger is unsigned throughout, and it is the key of the entries before any key change.
    `first_change` is the ledger's first key change, known beforehand (the store finds it by its index); by default
    the entries are read twice to find it. Signatures are checked on `workers` threads (OpenSSL releases the GIL)
    while later entries' links are being checked; the first failure in sequence order is still the one reported.

    `purged` is the prefix a retention purge removed, as the `retention_purge` entries describe it (the store reads
    them by their index; by default the entries are scanned): the walk starts after it, from the keys it recorded,
    and must meet every purge entry that description rests on. `snapshot_at` names entries after which to note the
    keys in force (what a purge records).

    `after` is an earlier result that verified a prefix of this chain to its end: `entries` are then the entries
    after it, checked as the whole walk would have checked them, continuing from its head hash, its keys in force
    and its spans; the result covers the prefix and them. Only the link into the prefix's head is checked, not the
    prefix itself: the caller must know it is unchanged. A purge record among `entries` fails (the caller verifies
    in full after a purge), and `purged` is not used.
    """
    if after is not None and (not after.ok or after.state is None):
        raise ValueError("a walk continues only after a prefix that verified to its end")
    anchor = public_key_hex(public_key) if public_key is not None else None
    if isinstance(first_change, _Scan) or isinstance(purged, _Scan):
        entries = entries if isinstance(entries, Sequence) else list(entries)
    if isinstance(first_change, _Scan):
        first_change = first_key_change(entries)
    if after is not None:
        purged = None
    elif isinstance(purged, _Scan):
        try:
            purged = find_purged(entries)
        except PurgeRecordError as exc:
            return VerifyResult(False, 0, GENESIS, exc.sequence, str(exc), anchor is not None)
    if after is not None:
        assert after.state is not None  # checked above; for the type checker
        schedule = purges.resume(after.state, first_change, anchor)
        schedule.keys = list(after.keys)
        schedule.used.update(after.vouched)
    elif purged is not None:
        schedule = purges.resume(purged.state, first_change, anchor)
    elif first_change is not None:
        schedule = Schedule(first_change.previous_public_key, known=True, first_change=first_change.sequence)
    else:
        schedule = Schedule(anchor, known=anchor is not None, first_change=None)
    spans = _Spans(after.spans if after is not None else ())
    count = 0
    base = after.count if after is not None else 0  # entries verified before this walk, by `after`
    offset = purged.last if purged is not None else after.last_sequence if after is not None else 0
    previous = purged.last_hash if purged is not None else after.head_hash if after is not None else GENESIS
    gaps = purged.ranges if purged is not None else after.purged if after is not None else ()
    listing = purged.listing_hashes() if purged is not None else {}
    met: set[int] = set()
    snapshots: list[tuple[int, KeySnapshot]] = []

    def content_check(entry: E, parsed: Any) -> str | None:
        problem = check(entry, parsed) if check is not None else None
        if problem:
            return problem
        if entry.sequence in listing:
            if entry.hash != listing[entry.sequence]:
                return "retention purge record changed while the chain was being verified (verify again)"
            met.add(entry.sequence)
        elif purges.is_purge(parsed):
            return "a retention purge record that was not read before the walk (appended meanwhile? verify again)"
        return None

    pool = ThreadPoolExecutor(max_workers=max(workers, 1))
    waiting: deque[_Batch[E]] = deque()

    def failed(count_: int, head: str, sequence: int | None, reason: str) -> VerifyResult:
        where = f"entry {sequence}: " if sequence is not None else ""
        keys = tuple(schedule.keys)
        return VerifyResult(
            False, base + count_, head, sequence, where + reason, anchor is not None, spans.before(sequence), keys, gaps
        )

    def signature_failure(item: _Batch[E]) -> VerifyResult | None:
        for future in item.pending:
            found = future.result()
            if found is not None:
                i, reason = found
                last = item.good[i - 1].hash if i else item.head_before
                return failed(item.count_before + i, last, item.good[i].sequence, reason)
        return None

    def drain(limit: int = 0) -> VerifyResult | None:
        while len(waiting) > limit:
            bad = signature_failure(waiting.popleft())
            if bad is not None:
                return bad
        return None

    iterator = iter(entries)
    try:
        while chunk := list(islice(iterator, batch)):
            good: list[E] = []
            checks: list[tuple[int, Check]] = []
            head = previous
            failure: tuple[int, str] | None = None
            for entry in chunk:
                failure = _link_problem(entry, offset + count + len(good) + 1, head, purged)
                if failure is None:
                    failure = _content_problem(entry, schedule, spans, checks, len(good), content_check)
                if failure is not None:
                    break
                good.append(entry)
                head = entry.hash
                if entry.sequence in snapshot_at:
                    snapshots.append((entry.sequence, purges.snapshot(schedule)))
            if checks:
                step = -(-len(checks) // max(workers, 1))
                futures = [
                    pool.submit(_first_signature_problem, checks[i : i + step]) for i in range(0, len(checks), step)
                ]
                waiting.append(_Batch(count, previous, good, futures))
            if failure is not None:
                bad = drain()
                if bad is not None:
                    return bad
                sequence, reason = failure
                return failed(count + len(good), head, sequence, reason)
            count += len(good)
            previous = head
            # Keep a bounded number of batches in flight: the oldest must pass before reading much further.
            bad = drain(limit=2)
            if bad is not None:
                return bad
        bad = drain()
        if bad is not None:
            return bad
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
    unmet = sorted(set(listing) - met)
    if unmet:
        # A purge record read beforehand that the chain no longer holds: the gap it explained is unexplained.
        return failed(count, previous, unmet[0], "missing; it records a purge the chain relies on")
    checked = anchor is not None and (anchor in schedule.used or anchor in schedule.proven)
    if anchor is not None and not checked and (schedule.used or schedule.proven):
        # Keys that vouch only for themselves: a chain rebuilt with a forger's key looks just like this.
        keys = ", ".join(short_key(k) for k in schedule.keys)
        reason = f"no entry is signed by the given key {short_key(anchor)}; this ledger's keys: {keys}"
        if gaps:
            # The key changes that handed over from it may be among the purged entries: only the keys left vouch.
            reason += f" (entries 1{purges.DASH}{offset} were purged: give a key that signs the entries left)"
        return failed(count, previous, None, reason)
    return VerifyResult(
        True,
        base + count,
        previous,
        None,
        None,
        checked,
        spans.before(None),
        tuple(schedule.keys),
        gaps,
        tuple(snapshots),
        purges.snapshot(schedule),
        tuple(sorted(schedule.used | schedule.proven)),
    )


def _content_problem(
    entry: E,
    schedule: Schedule,
    spans: _Spans,
    checks: list[tuple[int, Check]],
    index: int,
    check: Callable[[E, Any], str | None],
) -> tuple[int, str] | None:
    """The caller's check, then who may have signed the entry: (its sequence, why it fails) or None."""
    parsed = parse(entry.payload)
    problem = check(entry, parsed)
    if problem:
        return entry.sequence, problem
    try:
        change = key_change_in(entry.sequence, entry.prev_hash, parsed)
        if change is not None:
            spans.add(entry.sequence, schedule.change(change, entry.hash, entry.signature))
            return None
        label, later = schedule.entry(entry.sequence, entry.hash, entry.signature)
    except ValueError as exc:
        return entry.sequence, str(exc)
    spans.add(entry.sequence, label)
    if later is not None:
        checks.append((index, later))
    return None
