"""API bearer tokens: create, revoke, list, and the `require_token` decorator guarding /api/v1."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from functools import wraps
from typing import Any, TypeVar

from flask import current_app, g, jsonify, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gating.console.scope import EVERYTHING
from gating.db import Database
from gating.models import ApiToken

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cs_"
F = TypeVar("F", bound=Callable[..., Any])


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(db: Database, name: str, now: datetime) -> str:
    """A new token (returned once, never stored); only its SHA-256 is kept."""
    name = name.strip()
    if not name:
        raise TokenError("a token needs a non-empty --name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with db.session() as session:
            if session.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
                raise TokenError(f"a token named {name!r} already exists; revoke it or choose another name")
            session.add(ApiToken(name=name, token_sha256=token_sha256(token), created_at=now))
    except IntegrityError as exc:  # a concurrent create of the same name
        raise TokenError(f"a token named {name!r} already exists; revoke it or choose another name") from exc
    return token


def revoke_token(db: Database, name: str, now: datetime) -> None:
    with db.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.name == name)).first()
        if row is None:
            raise TokenError(f"no token named {name!r} (see `countersign token list`)")
        if row.revoked_at is None:
            row.revoked_at = now


def list_tokens(db: Database) -> list[TokenInfo]:
    with db.session() as session:
        rows = session.scalars(select(ApiToken).order_by(ApiToken.name)).all()
        return [TokenInfo(r.name, r.created_at, r.revoked_at) for r in rows]


def authenticate(db: Database, token: str) -> str | None:
    """The name of the live token matching `token`, or None."""
    digest = token_sha256(token)
    with db.session() as session:
        row = session.scalars(select(ApiToken).where(ApiToken.token_sha256 == digest)).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked_at is not None:
            return None
        return row.name


def _unauthorized(message: str, *, invalid: bool) -> Any:
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return response


def require_token(view: F) -> F:
    """Answer 401 (JSON, WWW-Authenticate: Bearer) unless the request carries a live API token."""

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return _unauthorized(
                "missing bearer token: send 'Authorization: Bearer <token>' "
                "(create one with `countersign token create --name NAME`)",
                invalid=False,
            )
        name = authenticate(current_app.extensions["countersign"].db, token)
        if name is None:
            # The token itself is never logged, only that one was refused.
            log.warning("api.bad_token", extra={"path": request.path, "remote_addr": request.remote_addr})
            return _unauthorized("invalid or revoked token", invalid=True)
        g.api_token_name = name
        g.scope = EVERYTHING  # tokens are not scoped to repositories (yet): each sees every one
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]


def _basic_password(header: str) -> str | None:
    """The password of an HTTP Basic Authorization header (any username), or None."""
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    _, sep, password = decoded.partition(":")
    return password if sep and password else None


def _basic_challenge(message: str) -> Any:
    response = current_app.response_class(message + "\n", status=401, mimetype="text/plain")
    response.headers["WWW-Authenticate"] = 'Basic realm="Countersign"'
    return response


def require_token_or_basic(view: F) -> F:
    """For HTML pages: a live API token as a bearer token, or as the password of HTTP Basic (any username).

    A 401 carries `WWW-Authenticate: Basic realm="Countersign"` so that a browser asks for it. Tokens are never
    accepted in the URL: query strings end up in access logs and browser history.
    """

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        scheme, _, rest = header.partition(" ")
        if scheme.lower() == "bearer":
            token: str | None = rest.strip() or None
        else:
            token = _basic_password(header)
        if token is None:
            return _basic_challenge("authentication required: an API token as the password (any user name)")
        name = authenticate(current_app.extensions["countersign"].db, token)
        if name is None:
            log.warning("console.bad_token", extra={"path": request.path, "remote_addr": request.remote_addr})
            return _basic_challenge("invalid or revoked token")
        g.api_token_name = name
        g.scope = EVERYTHING  # tokens are not scoped to repositories (yet): each sees every one
        return view(*args, **kwargs)

    return guarded  # type: ignore[return-value]
