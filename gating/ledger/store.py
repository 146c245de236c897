"""The ledger in the database: serialised appends, search, and streaming verification of the whole chain."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from gating.db import Database
from gating.ledger import chain, encoding
from gating.models import LedgerEntry

# The columns copied out of an entry for searching; they are also inside the hashed text, so edits show.
INDEX_FIELDS = ("repository", "environment", "deployment_id", "sha", "decision")
# pg_advisory_xact_lock key serialising appends ("Cntrsign" as a 63-bit integer).
ADVISORY_LOCK_KEY = 0x436E74727369676E
SIGNING_KEY_ENV = "COUNTERSIGN_SIGNING_KEY_PATH"
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
        return read_envelope(self.payload)

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


def read_envelope(text_: str) -> dict[str, Any]:
    """The envelope as it was appended. v1 text is read literally (it predates tags); v2 is decoded.

    Raises ValueError (LedgerEncodingError included) for text that is no envelope of a known version.
    """
    parsed = json.loads(text_)
    if not isinstance(parsed, dict):
        raise ValueError("content is not a ledger envelope")
    version = parsed.get("v")
    if version == 1:
        return parsed
    if version == 2:
        decoded: dict[str, Any] = encoding.decode(parsed)
        return decoded
    raise ValueError(f"unknown envelope version {version!r}")


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
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw).hex()


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


def _columns_match_content(row: Any) -> str | None:
    """The searchable columns must say what the hashed text says; otherwise a search could mislead."""
    try:
        content = read_envelope(row.payload)
    except ValueError as exc:
        return f"{exc} (edited)"
    if content.get("sequence") != row.sequence:
        return f"sequence column {row.sequence} differs from the content's {content.get('sequence')!r} (renumbered)"
    if content.get("kind") != row.kind:
        return f"kind column {row.kind!r} differs from the content's {content.get('kind')!r} (edited)"
    if content.get("recorded_at") != chain.format_time(row.created_at):
        return f"created_at column differs from the content's recorded_at {content.get('recorded_at')!r} (edited)"
    index = content.get("index") or {}
    for field in INDEX_FIELDS:
        if getattr(row, field) != index.get(field):
            return f"{field} column {getattr(row, field)!r} differs from the content's {index.get(field)!r} (edited)"
    return None


class Ledger:
    """Append-only evidence ledger over `ledger_entries`; signs entries when given an Ed25519 key."""

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

    def _lock(self, session: Session) -> None:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": ADVISORY_LOCK_KEY})
        else:
            # A write that changes nothing takes SQLite's write lock now, so the head read below cannot go stale.
            session.execute(text("UPDATE ledger_entries SET sequence = sequence WHERE 1 = 0"))

    def _append_in(
        self, session: Session, kind: str, payload: Mapping[str, Any], index: Mapping[str, Any]
    ) -> LedgerEntryView:
        self._lock(session)
        head = session.execute(
            select(LedgerEntry.sequence, LedgerEntry.hash).order_by(LedgerEntry.sequence.desc()).limit(1)
        ).first()
        sequence, prev_hash = (head.sequence + 1, head.hash) if head else (1, chain.GENESIS)
        now = self.clock().astimezone(UTC)
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
        digest = chain.entry_hash(prev_hash, text_)
        row = LedgerEntry(
            sequence=sequence,
            prev_hash=prev_hash,
            hash=digest,
            payload=text_,
            signature=chain.sign_hash(self.signing_key, digest) if self.signing_key is not None else None,
            kind=kind,
            created_at=now,
            **columns,
        )
        session.add(row)
        session.flush()
        return LedgerEntryView.of(row)

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

    def verify(self, public_key: Ed25519PublicKey | None = None, *, chunk: int = 2000) -> chain.VerifyResult:
        """Recompute the whole chain, streamed in sequence order; signatures too when a key is known."""
        key = public_key or self.public_key
        query = select(*_VERIFY_COLUMNS).order_by(LedgerEntry.sequence)
        with self.db.engine.connect() as connection:
            rows = connection.execution_options(yield_per=chunk).execute(query)
            return chain.verify(rows, key, check=_columns_match_content, workers=min(os.cpu_count() or 1, 8))
