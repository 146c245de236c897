"""The database's `TokenStore`: installation tokens shared by every process, encrypted at rest.

The key is derived from the app's private key (HKDF-SHA256), so a dump of the database alone yields
no usable token, and a new private key turns every stored token into one that does not decrypt:
it is treated as missing and minted anew. The claim is a conditional UPDATE, the same on SQLite
and PostgreSQL: whoever changes the row holds the right to mint until the claim expires.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from sqlalchemy import or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from gating.db import Database, rows_updated
from gating.models import InstallationToken

# Names what the derived key is for, so that it differs from any other key derived from the same private key.
_HKDF_INFO = b"countersign installation tokens v1"


def token_key(private_key_pem: str) -> bytes:
    """The Fernet key for stored tokens, derived from the app's private key (PEM)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        private_key_pem.strip().encode()
    )
    return base64.urlsafe_b64encode(derived)


class SqlTokenStore:
    """`gating.github_api.TokenStore` on the `installation_tokens` table."""

    def __init__(self, db: Database, private_key_pem: str, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.clock = clock
        self._fernet = Fernet(token_key(private_key_pem))
        # Who holds a claim, so that only the holder's release clears it.
        self.holder = uuid.uuid4().hex

    def load(self, installation_id: int) -> tuple[str, datetime] | None:
        with self.db.session() as session:
            row = session.get(InstallationToken, installation_id)
            if row is None or row.token_ciphertext is None or row.expires_at is None:
                return None
            token = self._decrypted(row.token_ciphertext)
            return None if token is None else (token, row.expires_at)

    def claim(self, installation_id: int, lease_seconds: float) -> bool:
        now = self.clock()
        with self.db.session() as session:
            self._ensure_row(session, installation_id)
            won = rows_updated(
                session,
                update(InstallationToken)
                .where(
                    InstallationToken.installation_id == installation_id,
                    or_(InstallationToken.claimed_until.is_(None), InstallationToken.claimed_until <= now),
                )
                .values(claimed_by=self.holder, claimed_until=now + timedelta(seconds=lease_seconds)),
            )
        return won == 1

    def save(self, installation_id: int, token: str, expires_at: datetime) -> None:
        ciphertext = self._fernet.encrypt(token.encode()).decode()
        with self.db.session() as session:
            self._ensure_row(session, installation_id)
            # A newer token replaces whatever is there; the claim, whoever held it, is done with.
            session.execute(
                update(InstallationToken)
                .where(InstallationToken.installation_id == installation_id)
                .values(token_ciphertext=ciphertext, expires_at=expires_at, claimed_by=None, claimed_until=None)
            )

    def release(self, installation_id: int) -> None:
        with self.db.session() as session:
            session.execute(
                update(InstallationToken)
                .where(
                    InstallationToken.installation_id == installation_id, InstallationToken.claimed_by == self.holder
                )
                .values(claimed_by=None, claimed_until=None)
            )

    def discard(self, installation_id: int, token: str) -> None:
        with self.db.session() as session:
            row = session.get(InstallationToken, installation_id)
            if row is None or row.token_ciphertext is None:
                return
            ciphertext = row.token_ciphertext
            if self._decrypted(ciphertext) != token:
                return  # already replaced by another process: that token is still good
            # Only if it still holds the very ciphertext read: a token saved meanwhile stays.
            session.execute(
                update(InstallationToken)
                .where(
                    InstallationToken.installation_id == installation_id,
                    InstallationToken.token_ciphertext == ciphertext,
                )
                .values(token_ciphertext=None, expires_at=None)
            )

    def _decrypted(self, ciphertext: str) -> str | None:
        try:
            return self._fernet.decrypt(ciphertext.encode()).decode()
        except (InvalidToken, ValueError):
            return None  # written with another private key (rotated) or damaged: mint anew

    @staticmethod
    def _ensure_row(session: Session, installation_id: int) -> None:
        dialect = session.get_bind().dialect.name
        insert = postgresql_insert if dialect == "postgresql" else sqlite_insert
        session.execute(insert(InstallationToken).values(installation_id=installation_id).on_conflict_do_nothing())
