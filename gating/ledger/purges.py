"""Retention purges, pure: the rule, what a `retention_purge` entry records, and the known gap it leaves in the chain.

A purge removes a contiguous prefix of the chain (entries 1..P, or the next run of them after an earlier purge) and
appends one entry per at most `MAX_RANGE` entries it removed, recording their sequence range, every hash, the link
into the range (`prev_hash`) and out of it (`last_hash`, the next entry's `prev_hash`), and the signing keys in force
at its end. Verification reads these records before walking the chain, starts the walk after the gap, and checks
that the first entry it meets links to the recorded `last_hash`; any other missing entry is still a missing entry.

A purge may remove an earlier purge's entry; the new record then carries the earlier ranges forward (without their
hashes, which the removed entry held), so the records present always describe the whole purged prefix.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from gating.ledger import encoding
from gating.ledger.signing import KeyChange, Schedule

KIND = "retention_purge"
GENESIS = "0" * 64
MAX_RANGE = 10_000  # entries one purge entry records, so that no entry grows past about 700 kB
_HEX = re.compile(r"[0-9a-f]{64}")
_RULE = re.compile(r"([1-9][0-9]{0,4})([dwy])")
_UNITS = {"d": "day", "w": "week", "y": "year"}
DASH = "\N{EN DASH}"


class PurgeRecordError(ValueError):
    """Purge records that do not describe one contiguous purged prefix; `sequence` names the entry at fault."""

    def __init__(self, sequence: int, reason: str) -> None:
        super().__init__(f"entry {sequence}: {reason}")
        self.sequence = sequence
        self.reason = reason


# -- the retention rule ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """`--older-than`: N days, weeks or (calendar) years."""

    count: int
    unit: str  # d, w or y

    @classmethod
    def parse(cls, text: str) -> Retention:
        """`30d`, `12w`, `7y`; at least one day. ValueError says what is accepted."""
        match = _RULE.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not a retention period: give a whole number of days, weeks or years, "
                "e.g. 400d, 60w or 7y (at least 1d)"
            )
        return cls(int(match.group(1)), match.group(2))

    def __str__(self) -> str:
        return f"{self.count}{self.unit}"

    def describe(self) -> str:
        return f"{self.count} {_UNITS[self.unit]}{'' if self.count == 1 else 's'}"

    def cutoff(self, now: datetime) -> datetime:
        """Entries recorded before this are past retention. Years are calendar years: 29 February becomes the 28th."""
        if self.unit == "y":
            year = now.year - self.count
            try:
                return now.replace(year=year)
            except ValueError:
                return now.replace(year=year, day=28)
        return now - timedelta(days=self.count * (7 if self.unit == "w" else 1))


def is_purge(envelope: Any) -> bool:
    """Whether parsed stored text is a purge envelope; only v2 entries can be (v1 predates purges)."""
    return isinstance(envelope, dict) and envelope.get("v") == 2 and envelope.get("kind") == KIND


def hashes_digest(hashes: Iterable[str]) -> str:
    """SHA-256 of the hashes, each followed by a newline: `cut -f4 entries/chain.tsv | tail -n +2 | sha256sum`."""
    digest = hashlib.sha256()
    for value in hashes:
        digest.update(value.encode("ascii") + b"\n")
    return digest.hexdigest()


# -- the signing keys at the end of a purged range -------------------------------------------------------------------


@dataclass(frozen=True)
class KeySnapshot:
    """Which keys may sign right after a purged range: what verification resumes from on the other side of it."""

    keys: tuple[str, ...]  # may sign next, the declared key first; empty: unsigned so far, or no key known
    known: bool  # False: entries were signed by a key no key change names, and none was given
    signed_since: int | None  # the first signed entry; after it, an unsigned entry is an error
    changed: bool  # a key change was seen

    def as_dict(self) -> dict[str, Any]:
        return {
            "keys_in_force": list(self.keys),
            "known": self.known,
            "signed_since": self.signed_since,
            "key_changes": self.changed,
        }

    @classmethod
    def parse(cls, value: Any) -> KeySnapshot:
        if not isinstance(value, Mapping):
            raise ValueError("signing is not an object")
        keys, known, since, changed = (
            value.get("keys_in_force"),
            value.get("known"),
            value.get("signed_since"),
            value.get("key_changes"),
        )
        if not isinstance(keys, list) or not all(isinstance(k, str) and _HEX.fullmatch(k) for k in keys):
            raise ValueError("signing.keys_in_force is not a list of keys (64 lowercase hex digits)")
        if not isinstance(known, bool) or not isinstance(changed, bool):
            raise ValueError("signing.known and signing.key_changes must be true or false")
        if since is not None and (type(since) is not int or since < 1):
            raise ValueError(f"signing.signed_since {since!r} is not a sequence")
        return cls(tuple(keys), known, since, changed)


def snapshot(schedule: Schedule) -> KeySnapshot:
    return KeySnapshot(tuple(schedule.allowed), schedule.known, schedule.signed_since, schedule.changed)


def resume(state: KeySnapshot, first_change: KeyChange | None, anchor: str | None) -> Schedule:
    """The schedule right after a purged range, as `state` recorded it. With no key known there, the key is found
    as it would be for a ledger never purged: the first remaining key change's previous key, else `anchor`."""
    at = first_change.sequence if first_change is not None else None
    if state.known:
        schedule = Schedule(None, known=True, first_change=at)
        schedule.declared = state.keys[0] if state.keys else None
        schedule.allowed = list(state.keys)
    elif first_change is not None:
        schedule = Schedule(first_change.previous_public_key, known=True, first_change=at)
    else:
        schedule = Schedule(anchor, known=anchor is not None, first_change=None)
    schedule.signed_since = state.signed_since
    schedule.changed = state.changed
    return schedule


# -- purge records ---------------------------------------------------------------------------------------------------


def purge_payload(
    *,
    rule: Retention,
    cutoff: datetime,
    run_at: datetime,
    first: int,
    prev_hash: str,
    hashes: Sequence[str],
    first_recorded_at: datetime,
    last_recorded_at: datetime,
    state: KeySnapshot,
    carried: Sequence[PurgedRange] = (),
    held: Sequence[Mapping[str, Any]] = (),
    kept: Mapping[str, Any] | None = None,
    part: tuple[int, int] = (1, 1),
) -> dict[str, Any]:
    """The payload of the `retention_purge` entry for entries `first`.. (one per hash in `hashes`)."""
    return {
        "rule": {"older_than": str(rule), "description": rule.describe(), "cutoff": cutoff, "run_at": run_at},
        "range": {
            "first": first,
            "last": first + len(hashes) - 1,
            "count": len(hashes),
            "prev_hash": prev_hash,
            "last_hash": hashes[-1],
            "first_recorded_at": first_recorded_at,
            "last_recorded_at": last_recorded_at,
            "hashes": list(hashes),
        },
        "signing": state.as_dict(),
        "carried": [found.carried() for found in carried],
        "held": list(held),
        "kept_past_retention": kept,
        "part": {"number": part[0], "of": part[1]},
    }


def _sequence(value: Any, name: str) -> int:
    if type(value) is not int or value < 1:
        raise ValueError(f"{name} {value!r} is not a sequence")
    return value


def _hash(value: Any, name: str) -> str:
    if not isinstance(value, str) or not _HEX.fullmatch(value):
        raise ValueError(f"{name} {value!r} is not a SHA-256 in hex")
    return value


def _text(value: Any, name: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{name} is missing")
    return value


@dataclass(frozen=True)
class PurgedRange:
    """Entries `first`..`last`, purged by the entry `recorded_by` (on `purged_at`), listed now by `listed_by`.

    `listed_by` is `recorded_by` unless a later purge removed that entry and carried the range forward; `listed_hash`
    is the hash of the listing entry as read beforehand, which the walk confirms. `state` is known for the range the
    listing entry purged itself, not for ranges it carries.
    """

    first: int
    last: int
    prev_hash: str
    last_hash: str
    hashes_sha256: str
    first_recorded_at: str
    last_recorded_at: str
    rule: str
    purged_at: str
    recorded_by: int
    listed_by: int
    listed_hash: str
    state: KeySnapshot | None = None

    @property
    def count(self) -> int:
        return self.last - self.first + 1

    def where(self) -> str:
        return f"{self.first}" if self.first == self.last else f"{self.first}{DASH}{self.last}"

    def describe(self) -> str:
        """'entries 1-40 purged on 2026-05-01, recorded by entry 95' (with an en dash)."""
        text = f"entries {self.where()} purged on {self.purged_at[:10]}, recorded by entry {self.recorded_by}"
        if self.listed_by != self.recorded_by:
            text += f" (itself purged since; carried by entry {self.listed_by})"
        return text

    def as_dict(self) -> dict[str, Any]:
        return {
            "first": self.first,
            "last": self.last,
            "count": self.count,
            "prev_hash": self.prev_hash,
            "last_hash": self.last_hash,
            "hashes_sha256": self.hashes_sha256,
            "first_recorded_at": self.first_recorded_at,
            "last_recorded_at": self.last_recorded_at,
            "rule": self.rule,
            "purged_at": self.purged_at,
            "recorded_by": self.recorded_by,
            "listed_by": self.listed_by,
        }

    def carried(self) -> dict[str, Any]:
        """How a later purge that removes this range's record carries it forward."""
        return {k: v for k, v in self.as_dict().items() if k not in ("count", "listed_by")}


def describe_purges(ranges: Sequence[PurgedRange]) -> str:
    return "; ".join(r.describe() for r in ranges)


def _range_fields(value: Any, name: str) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{name} is not an object")
    first, last = _sequence(value.get("first"), f"{name}.first"), _sequence(value.get("last"), f"{name}.last")
    if last < first:
        raise ValueError(f"{name} ends at {last}, before its first entry {first}")
    return {
        "first": first,
        "last": last,
        "prev_hash": _hash(value.get("prev_hash"), f"{name}.prev_hash"),
        "last_hash": _hash(value.get("last_hash"), f"{name}.last_hash"),
        "first_recorded_at": _text(value.get("first_recorded_at"), f"{name}.first_recorded_at"),
        "last_recorded_at": _text(value.get("last_recorded_at"), f"{name}.last_recorded_at"),
    }


def purge_record(sequence: int, hash_: str, payload_text: str) -> tuple[list[PurgedRange], list[str]]:
    """The ranges a `retention_purge` entry lists (the one it purged last) and the hashes of that one.

    `hash_` is the entry's hash recomputed from the text read. ValueError says what is malformed.
    """
    try:
        envelope = json.loads(payload_text)
    except ValueError:
        raise ValueError("content is not JSON") from None
    if not is_purge(envelope):
        raise ValueError("content is not a retention purge envelope")
    decoded = encoding.decode(envelope)
    payload, purged_at = decoded.get("payload"), _text(decoded.get("recorded_at"), "recorded_at")
    if not isinstance(payload, Mapping):
        raise ValueError("retention purge has no payload")
    rule = payload.get("rule")
    if not isinstance(rule, Mapping):
        raise ValueError("rule is not an object")
    own = _range_fields(payload.get("range"), "range")
    hashes = payload["range"].get("hashes")
    if not isinstance(hashes, list) or len(hashes) != own["last"] - own["first"] + 1:
        raise ValueError(f"range.hashes must list the {own['last'] - own['first'] + 1} purged entries' hashes")
    for position, value in enumerate(hashes):
        _hash(value, f"range.hashes[{position}]")
    if hashes[-1] != own["last_hash"]:
        raise ValueError("range.last_hash is not the last of range.hashes")
    if own["last"] >= sequence:
        raise ValueError(f"records entries up to {own['last']}, but is entry {sequence} itself")
    state = KeySnapshot.parse(payload.get("signing"))
    ranges = [
        PurgedRange(
            **own,
            hashes_sha256=hashes_digest(hashes),
            rule=_text(rule.get("older_than"), "rule.older_than"),
            purged_at=purged_at,
            recorded_by=sequence,
            listed_by=sequence,
            listed_hash=hash_,
            state=state,
        )
    ]
    carried = payload.get("carried", [])
    if not isinstance(carried, list):
        raise ValueError("carried is not a list")
    for position, value in enumerate(carried):
        name = f"carried[{position}]"
        fields = _range_fields(value, name)
        recorder = _sequence(value.get("recorded_by"), f"{name}.recorded_by")
        if fields["last"] >= own["first"] or recorder > own["last"]:
            raise ValueError(f"{name} is not a range purged before this one")
        ranges.append(
            PurgedRange(
                **fields,
                hashes_sha256=_hash(value.get("hashes_sha256"), f"{name}.hashes_sha256"),
                rule=_text(value.get("rule"), f"{name}.rule"),
                purged_at=_text(value.get("purged_at"), f"{name}.purged_at"),
                recorded_by=recorder,
                listed_by=sequence,
                listed_hash=hash_,
            )
        )
    return ranges, hashes


@dataclass(frozen=True)
class Purged:
    """The purged prefix of the chain, 1..`last`, as the purge entries present describe it (oldest range first)."""

    ranges: tuple[PurgedRange, ...]

    @property
    def last(self) -> int:
        return self.ranges[-1].last

    @property
    def last_hash(self) -> str:
        return self.ranges[-1].last_hash

    @property
    def state(self) -> KeySnapshot:
        state = self.ranges[-1].state
        assert state is not None  # join() makes sure the last range is its listing entry's own
        return state

    def listing_hashes(self) -> dict[int, str]:
        """The purge entries this description rests on, with their hashes as read: the walk must meet each."""
        return {r.listed_by: r.listed_hash for r in self.ranges}

    def covering(self, sequence: int) -> PurgedRange:
        """The range holding `sequence`, which must be at most `last`: the ranges cover 1..last without a hole."""
        return next(r for r in self.ranges if r.last >= sequence)


def join(ranges: Iterable[PurgedRange]) -> Purged | None:
    """The ranges as one purged prefix 1..P, each linked to the one before; None when nothing was purged.

    Raises PurgeRecordError naming the purge entry whose record does not fit.
    """
    ordered = sorted(ranges, key=lambda r: (r.first, r.listed_by))
    if not ordered:
        return None
    previous: PurgedRange | None = None
    for found in ordered:
        expected_first = previous.last + 1 if previous else 1
        expected_hash = previous.last_hash if previous else GENESIS
        if found.first != expected_first:
            if previous is not None and found.first <= previous.last:
                why = f"entries {found.where()} are recorded as purged twice (also by entry {previous.listed_by})"
            else:
                gap = f"{expected_first}{DASH}{found.first - 1}"
                why = f"records entries {found.where()} purged, but no purge record lists entries {gap}"
            raise PurgeRecordError(found.listed_by, why)
        if found.prev_hash != expected_hash:
            where = "the start of the chain" if previous is None else f"entry {previous.last}'s recorded hash"
            raise PurgeRecordError(found.listed_by, f"purged range {found.where()} does not link to {where}")
        previous = found
    if ordered[-1].state is None:
        raise PurgeRecordError(ordered[-1].listed_by, "the latest purged range is carried, but its record is missing")
    return Purged(tuple(ordered))
