"""The ledger in the database: serialised appends, search, and streaming verification of the whole chain."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import Connection, select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gating.db import Database
from gating.ledger import chain, encoding, purges, signing
from gating.models import LedgerEntry

# The columns copied out of an entry for searching; they are also inside the hashed text, so edits show.
INDEX_FIELDS = ("repository", "environment", "deployment_id", "sha", "decision")
# pg_advisory_xact_lock key serialising appends ("Cntrsign" as a 63-bit integer).
ADVISORY_LOCK_KEY = 0x436E74727369676E
SIGNING_KEY_ENV = "COUNTERSIGN_SIGNING_KEY_PATH"

log = logging.getLogger(__name__)
# 1: Python's sorted compact JSON, no floats (entries written before RFC 8785). 2: RFC 8785 JCS over the tagged
# encoding of gating.ledger.encoding. Each entry keeps the text it was hashed as, so both kinds verify side by side.
ENVELOPE_VERSION = 2


class LedgerKeyError(ValueError):
    pass


class LedgerConflict(RuntimeError):
    """Appends kept colliding with other writers; the caller may retry later."""


@dataclass(frozen=True)
class LedgerEntryView:
    id: int
    sequence: int
    kind: str
    prev_hash: str
    hash: str
    payload: str  # the canonical envelope text that was hashed
    signature: str | None
    created_at: datetime
    repository: str | None
    environment: str | None
    deployment_id: int | None
    sha: str | None
    decision: str | None

    def content(self) -> dict[str, Any]:
        """The parsed envelope: v, kind, sequence, recorded_at, index and the caller's payload, decoded as written."""
        return chain.read_envelope(chain.parse(self.payload))

    @property
    def data(self) -> dict[str, Any]:
        """The payload the caller appended."""
        data: dict[str, Any] = self.content()["payload"]
        return data

    @classmethod
    def of(cls, row: LedgerEntry) -> LedgerEntryView:
        return cls(
            id=row.id,
            sequence=row.sequence,
            kind=row.kind,
            prev_hash=row.prev_hash,
            hash=row.hash,
            payload=row.payload,
            signature=row.signature,
            created_at=row.created_at,
            repository=row.repository,
            environment=row.environment,
            deployment_id=row.deployment_id,
            sha=row.sha,
            decision=row.decision,
        )


def _utcnow() -> datetime:
    return datetime.now(UTC)


def load_signing_key(path: str | Path) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, unencrypted."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise LedgerKeyError(f"{SIGNING_KEY_ENV}={path} cannot be read: {exc.strerror}") from exc
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        raise LedgerKeyError(f"{path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise LedgerKeyError(
            f"{path} holds a {type(key).__name__}, the ledger needs Ed25519 "
            "(openssl genpkey -algorithm ed25519 -out ledger.pem)"
        )
    return key


def load_public_key(path: str | Path) -> Ed25519PublicKey:
    """A PEM Ed25519 public key, or the public half of a PEM private key."""
    data = Path(path).read_bytes()
    if b"PRIVATE KEY" in data:
        return load_signing_key(path).public_key()
    key = serialization.load_pem_public_key(data)
    if not isinstance(key, Ed25519PublicKey):
        raise LedgerKeyError(f"{path} holds a {type(key).__name__}, the ledger needs Ed25519")
    return key


def signing_key_from_env(env: Mapping[str, str] | None = None) -> Ed25519PrivateKey | None:
    env = os.environ if env is None else env
    path = env.get(SIGNING_KEY_ENV, "").strip()
    return load_signing_key(path) if path else None


def public_key_hex(key: Ed25519PublicKey) -> str:
    return signing.public_key_hex(key)


def public_key_from_hex(value: str) -> Ed25519PublicKey:
    return Ed25519PublicKey.from_public_bytes(bytes.fromhex(value))


_VERIFY_COLUMNS = (
    LedgerEntry.sequence,
    LedgerEntry.prev_hash,
    LedgerEntry.payload,
    LedgerEntry.hash,
    LedgerEntry.signature,
    LedgerEntry.kind,
    LedgerEntry.created_at,
    LedgerEntry.repository,
    LedgerEntry.environment,
    LedgerEntry.deployment_id,
    LedgerEntry.sha,
    LedgerEntry.decision,
)


def _columns_match_content(row: Any, parsed: Any) -> str | None:
    """The searchable columns must say what the hashed text says; otherwise a search could mislead."""
    if parsed is chain.NOT_JSON:
        return "content is not JSON (edited)"
    if not isinstance(parsed, dict):
        return "content is not a ledger envelope (edited)"
    version = parsed.get("v")
    if version not in (1, 2):
        return f"unknown envelope version {version!r} (edited)"
    if parsed.get("sequence") != row.sequence:
        return f"sequence column {row.sequence} differs from the content's {parsed.get('sequence')!r} (renumbered)"
    if parsed.get("kind") != row.kind:
        return f"kind column {row.kind!r} differs from the content's {parsed.get('kind')!r} (edited)"
    if parsed.get("recorded_at") != chain.format_time(row.created_at):
        return f"created_at column differs from the content's recorded_at {parsed.get('recorded_at')!r} (edited)"
    index = parsed.get("index") or {}
    if version == 2:  # only the index is decoded here: the payload can be large, and the hash already covers it
        try:
            index = encoding.decode(index)
        except ValueError as exc:
            return f"index is not in the ledger's encoding: {exc} (edited)"
    if not isinstance(index, dict):
        return "index is not an object (edited)"
    for field in INDEX_FIELDS:
        if getattr(row, field) != index.get(field):
            return f"{field} column {getattr(row, field)!r} differs from the content's {index.get(field)!r} (edited)"
    return None


@dataclass(frozen=True)
class KeyState:
    """The ledger's signing keys as its latest entries leave them, for deciding how to sign the next one."""

    signed: bool  # some entry is signed, or a key change exists; False: signing has not begun
    declared: str | None = None  # the key in force: the latest key change's, else the last signed entry's
    previous: str | None = None  # the key the latest key change took over from; it may sign until `declared` does
    known: bool = True  # False: entries are signed by a key no key change names and we do not hold


class _Position(NamedTuple):
    """The head's sequence and hash: the key state read at that head holds until the head moves."""

    sequence: int
    hash: str


class Ledger:
    """Append-only evidence ledger over `ledger_entries`; signs entries when given an Ed25519 key.

    With a key, the first append of a ledger nothing has signed yet records the key first (a `signing_key` entry):
    that is how signing is turned on. Another key takes over only through `rotate_key`, signed by the key in force.
    """

    def __init__(
        self,
        db: Database,
        signing_key: Ed25519PrivateKey | None = None,
        *,
        clock: Callable[[], datetime] = _utcnow,
        retries: int = 10,
    ) -> None:
        self.db = db
        self.signing_key = signing_key
        self.clock = clock
        self.retries = retries
        self._own = signing.public_key_hex(signing_key.public_key()) if signing_key is not None else None
        # The key state at a head this process has seen; a head moved by anyone else makes it be read again.
        self._known_state: tuple[_Position, KeyState] | None = None

    @property
    def public_key(self) -> Ed25519PublicKey | None:
        return self.signing_key.public_key() if self.signing_key is not None else None

    def append(
        self,
        kind: str,
        payload: Mapping[str, Any],
        *,
        index: Mapping[str, Any],
        session: Session | None = None,
    ) -> LedgerEntryView:
        """Append one entry. Inside `session` (the caller's transaction, not committed here) or in its own.

        In its own transaction a collision with another writer is retried; inside the caller's, the
        IntegrityError propagates so the caller can retry its whole transaction.
        """
        unknown = sorted(set(index) - set(INDEX_FIELDS))
        if unknown:
            raise ValueError(f"unknown index field(s) {unknown}; allowed: {list(INDEX_FIELDS)}")
        if session is not None:
            return self._append_in(session, kind, payload, index)
        for _attempt in range(self.retries):
            try:
                with self.db.session() as own:
                    return self._append_in(own, kind, payload, index)
            except IntegrityError:
                continue
        raise LedgerConflict(f"could not append a {kind} entry after {self.retries} attempts")

    def rotate_key(self, new_key: Ed25519PrivateKey) -> LedgerEntryView:
        """Record that `new_key` signs from now on: a key-change entry signed by the key in force (this ledger's).

        On a ledger nothing has signed yet, the entry turns signing on and is signed by `new_key` itself. Entries
        signed by the old key keep verifying until the first one signed by the new key.
        """
        new_hex = signing.public_key_hex(new_key.public_key())
        with self.db.session() as session:
            self._lock(session)
            head = self._head(session)
            state = self._key_state(session, head)
            if not state.signed:
                signer, previous = new_key, None
            elif not state.known or state.declared is None:
                raise LedgerKeyError(
                    "the ledger's latest entries are signed by a key no key change records; "
                    "rotate with COUNTERSIGN_SIGNING_KEY_PATH set to that key"
                )
            elif new_hex == state.declared:
                raise LedgerKeyError(f"key {signing.short_key(new_hex)} is already the ledger's key")
            elif self.signing_key is None or self._own != state.declared:
                raise LedgerKeyError(
                    f"the ledger is signed by key {signing.short_key(state.declared)}: only that key can hand over, "
                    "so run this with COUNTERSIGN_SIGNING_KEY_PATH set to it"
                )
            else:
                signer, previous = self.signing_key, state.declared
            position = head or _Position(0, chain.GENESIS)
            row = self._write(
                session,
                signing.KEY_CHANGE,
                signing.key_change_payload(new_key, position.hash, previous),
                {},
                position,
                self.clock().astimezone(UTC),
                signer,
            )
            self._known_state = (_Position(row.sequence, row.hash), KeyState(True, new_hex, previous))
            return LedgerEntryView.of(row)

    def _lock(self, session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            # PostgreSQL only: `make test` measures coverage on its SQLite pass, where this never runs.
            session.execute(  # pragma: no cover
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
            )
        else:
            # A write that changes nothing takes SQLite's write lock now, so the head read below cannot go stale.
            session.execute(text("UPDATE ledger_entries SET sequence = sequence WHERE 1 = 0"))

    def _head(self, session: Session) -> _Position | None:
        head = session.execute(
            select(LedgerEntry.sequence, LedgerEntry.hash).order_by(LedgerEntry.sequence.desc()).limit(1)
        ).first()
        return _Position(int(head.sequence), str(head.hash)) if head else None

    def _key_state(self, session: Session, head: _Position | None) -> KeyState:
        """Which key signs at `head` (read under the append lock); remembered until the head moves."""
        if head is None:
            return KeyState(signed=False)
        if self._known_state is not None and self._known_state[0] == head:
            return self._known_state[1]
        state = self._read_key_state(session)
        self._known_state = (head, state)
        return state

    def _read_key_state(self, session: Session) -> KeyState:
        changes = session.execute(
            select(LedgerEntry.sequence, LedgerEntry.prev_hash, LedgerEntry.payload)
            .where(LedgerEntry.kind == signing.KEY_CHANGE)
            .order_by(LedgerEntry.sequence.desc())
        )
        for found in changes:
            try:
                change = chain.key_change_in(found.sequence, found.prev_hash, chain.parse(found.payload))
            except ValueError:
                continue  # not a key change the chain would accept either; verification names it
            if change is not None:
                return KeyState(True, change.public_key, change.previous_public_key)
        # No key change left: the keys a purge recorded as in force at the end of what it removed.
        purge = session.execute(
            select(LedgerEntry.sequence, LedgerEntry.prev_hash, LedgerEntry.payload)
            .where(LedgerEntry.kind == purges.KIND)
            .order_by(LedgerEntry.sequence.desc())
            .limit(1)
        ).first()
        if purge is not None:
            try:
                ranges, _hashes = purges.purge_record(purge.sequence, "", purge.payload)
            except ValueError:
                ranges = []  # verification names the malformed record
            state = ranges[0].state if ranges else None
            if state is not None and state.keys:
                return KeyState(True, state.keys[0], state.keys[1] if len(state.keys) > 1 else None)
        # No key change: a ledger signed before key changes were recorded, or one not signed yet.
        last = session.execute(
            select(LedgerEntry.hash, LedgerEntry.signature)
            .where(LedgerEntry.signature.is_not(None))
            .order_by(LedgerEntry.sequence.desc())
            .limit(1)
        ).first()
        if last is None:
            return KeyState(signed=False)
        if self.signing_key is not None and chain.signature_valid(
            self.signing_key.public_key(), last.hash, last.signature
        ):
            return KeyState(True, self._own)
        return KeyState(True, known=False)

    def _append_in(
        self, session: Session, kind: str, payload: Mapping[str, Any], index: Mapping[str, Any]
    ) -> LedgerEntryView:
        self._lock(session)
        head = self._head(session)
        position = head or _Position(0, chain.GENESIS)
        now = self.clock().astimezone(UTC)
        state: KeyState | None = None
        if self.signing_key is not None:
            state = self._key_state(session, head)
            if not state.signed:
                # Signing begins: record the key first, so verification knows the entries before were unsigned.
                change = signing.key_change_payload(self.signing_key, position.hash, None)
                row = self._write(session, signing.KEY_CHANGE, change, {}, position, now, self.signing_key)
                position, state = _Position(row.sequence, row.hash), KeyState(True, self._own)
            elif state.declared != self._own:
                self._warn_key_not_in_force(state)
        row = self._write(session, kind, payload, index, position, now, self.signing_key)
        if state is not None:
            self._known_state = (_Position(row.sequence, row.hash), state)
        return LedgerEntryView.of(row)

    def _warn_key_not_in_force(self, state: KeyState) -> None:
        own = signing.short_key(self._own or "")
        if state.previous is not None and state.previous == self._own:
            log.warning(
                "ledger.key_rotation_pending",
                extra={"signing_key": own, "new_key": signing.short_key(state.declared or "")},
            )
        else:
            # Verification will flag these entries: the key was swapped without `countersign key rotate`.
            in_force = signing.short_key(state.declared) if state.declared else "an unrecorded key"
            log.error("ledger.signing_key_not_in_force", extra={"signing_key": own, "key_in_force": in_force})

    def _write(
        self,
        session: Session,
        kind: str,
        payload: Mapping[str, Any],
        index: Mapping[str, Any],
        after: _Position,
        now: datetime,
        signer: Ed25519PrivateKey | None,
    ) -> LedgerEntry:
        sequence = after.sequence + 1
        columns = {field: index.get(field) for field in INDEX_FIELDS}
        envelope = {
            "v": ENVELOPE_VERSION,
            "kind": kind,
            "sequence": sequence,
            "recorded_at": now,
            "index": {k: v for k, v in columns.items() if v is not None},
            "payload": payload,
        }
        text_ = chain.canonical_json(envelope)
        digest = chain.entry_hash(after.hash, text_)
        row = LedgerEntry(
            sequence=sequence,
            prev_hash=after.hash,
            hash=digest,
            payload=text_,
            signature=chain.sign_hash(signer, digest) if signer is not None else None,
            kind=kind,
            created_at=now,
            **columns,
        )
        session.add(row)
        session.flush()
        return row

    def head(self) -> tuple[int, str]:
        """(entry count, head hash); (0, GENESIS) when empty. One index lookup, whatever the size."""
        with self.db.session() as session:
            row = session.execute(
                select(LedgerEntry.sequence, LedgerEntry.hash).order_by(LedgerEntry.sequence.desc()).limit(1)
            ).first()
        return (int(row.sequence), str(row.hash)) if row else (0, chain.GENESIS)

    def get(self, entry_id: int) -> LedgerEntryView | None:
        with self.db.session() as session:
            row = session.get(LedgerEntry, entry_id)
            return LedgerEntryView.of(row) if row is not None else None

    def at_sequence(self, sequence: int) -> LedgerEntryView | None:
        with self.db.session() as session:
            row = session.scalars(select(LedgerEntry).where(LedgerEntry.sequence == sequence)).first()
            return LedgerEntryView.of(row) if row is not None else None

    def search(
        self,
        *,
        repo: str | None = None,
        environment: str | None = None,
        sha: str | None = None,
        decision: str | None = None,
        kind: str | None = None,
        deployment_id: int | None = None,
        since: datetime | None = None,
        until: datetime | None = None,
        ticket: str | None = None,
        limit: int = 100,
    ) -> list[LedgerEntryView]:
        """Newest first. `ticket` matches the key as a whole JSON string anywhere in the content."""
        query = select(LedgerEntry).order_by(LedgerEntry.sequence.desc()).limit(limit)
        for column, value in (
            (LedgerEntry.repository, repo),
            (LedgerEntry.environment, environment),
            (LedgerEntry.sha, sha),
            (LedgerEntry.decision, decision),
            (LedgerEntry.kind, kind),
            (LedgerEntry.deployment_id, deployment_id),
        ):
            if value is not None:
                query = query.where(column == value)
        if since is not None:
            query = query.where(LedgerEntry.created_at >= since)
        if until is not None:
            query = query.where(LedgerEntry.created_at < until)
        if ticket is not None:
            escaped = ticket.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            query = query.where(LedgerEntry.payload.like(f'%"{escaped}"%', escape="\\"))
        with self.db.session() as session:
            return [LedgerEntryView.of(row) for row in session.scalars(query)]

    def verify(
        self,
        public_key: Ed25519PublicKey | None = None,
        *,
        chunk: int = 2000,
        snapshot_at: Collection[int] = (),
    ) -> chain.VerifyResult:
        """Recompute the whole chain, streamed in sequence order; signatures too, against a key when one is known.

        A purged prefix is known from the `retention_purge` entries, read first; `snapshot_at`: see `chain.verify`.
        """
        key = public_key or self.public_key
        query = select(*_VERIFY_COLUMNS).order_by(LedgerEntry.sequence)
        with self.db.engine.connect() as connection:
            first = self._first_key_change(connection)
            try:
                purged = self._purged(connection)
            except purges.PurgeRecordError as exc:
                return chain.VerifyResult(False, 0, chain.GENESIS, exc.sequence, str(exc), key is not None)
            rows = connection.execution_options(yield_per=chunk).execute(query)
            workers = min(os.cpu_count() or 1, 8)
            return chain.verify(
                rows,
                key,
                check=_columns_match_content,
                workers=workers,
                first_change=first,
                purged=purged,
                snapshot_at=snapshot_at,
            )

    @staticmethod
    def _purged(connection: Connection) -> purges.Purged | None:
        """The purged prefix as the purge entries present describe it, found by their kind; the walk checks them."""
        return chain.find_purged(
            connection.execute(
                select(LedgerEntry.sequence, LedgerEntry.prev_hash, LedgerEntry.payload, LedgerEntry.hash)
                .where(LedgerEntry.kind == purges.KIND)
                .order_by(LedgerEntry.sequence)
            ),
            all_purges=True,
        )

    def purged_hash(self, found: purges.PurgedRange, sequence: int) -> str | None:
        """The hash entry `sequence` had when `found`'s purge removed it; None when the record holding it is gone."""
        if found.listed_by != found.recorded_by:
            return found.last_hash if sequence == found.last else None
        with self.db.session() as session:
            row = session.execute(
                select(LedgerEntry.sequence, LedgerEntry.payload).where(LedgerEntry.sequence == found.listed_by)
            ).first()
        if row is None:
            return None
        try:
            _ranges, hashes = purges.purge_record(row.sequence, "", row.payload)
        except ValueError:
            return None
        return hashes[sequence - found.first]

    @staticmethod
    def _first_key_change(connection: Connection) -> signing.KeyChange | None:
        """Found by its kind column ahead of the walk, which then checks it is where the chain says."""
        changes = connection.execute(
            select(LedgerEntry.sequence, LedgerEntry.prev_hash, LedgerEntry.payload)
            .where(LedgerEntry.kind == signing.KEY_CHANGE)
            .order_by(LedgerEntry.sequence)
        )
        for found in changes:
            try:
                change = chain.key_change_in(found.sequence, found.prev_hash, chain.parse(found.payload))
            except ValueError:
                continue
            if change is not None:
                return change
        return None
