"""Who is asking: API tokens (create, revoke, list; scoped to repositories), console sessions, and the decorators that
guard /api/v1 (`require_token`) and the pages (`require_viewer`)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import wraps
from typing import Any, TypeVar
from urllib.parse import urlencode

from flask import current_app, g, jsonify, redirect, request, session
from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError

from gating.console.scope import EVERYTHING, Scope
from gating.db import Database
from gating.models import ApiToken, ConsoleSession
from gating.settings import REPOSITORY_PATTERN

log = logging.getLogger(__name__)

TOKEN_PREFIX = "cs_"
# A token's last use is recorded to the minute: a busy script must not turn every read into a write.
LAST_USED_RESOLUTION = timedelta(minutes=1)
SESSION_KEY = "sid"  # the cookie's only lasting entry: a random id whose SHA-256 names the session row
F = TypeVar("F", bound=Callable[..., Any])


class TokenError(Exception):
    pass


@dataclass(frozen=True)
class TokenInfo:
    name: str
    created_at: datetime
    revoked_at: datetime | None
    scope: Scope = EVERYTHING
    last_used_at: datetime | None = None


@dataclass(frozen=True)
class Viewer:
    """Whoever a request authenticated as: an API token, or a person signed in with GitHub or OpenID Connect."""

    kind: str  # token | github | oidc
    name: str
    scope: Scope

    @property
    def signed_in(self) -> bool:
        """A person with a session cookie (who can sign out), as opposed to a token."""
        return self.kind != "token"


def token_sha256(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def parse_repositories(patterns: str | None) -> Scope:
    """`--repos`: comma-separated repository patterns (`acme/*,other/web`); blank or `*` is every repository."""
    scope = Scope.of(patterns)
    bad = [p for p in scope.patterns or () if not REPOSITORY_PATTERN.fullmatch(p)]
    if bad:
        raise TokenError(f"{bad[0]!r} is not a repository pattern (owner/name, owner/*, or * for every repository)")
    return scope


def _stored(scope: Scope) -> str | None:
    return None if scope.patterns is None else ",".join(scope.patterns)


def create_token(db: Database, name: str, now: datetime, repositories: str | None = None) -> str:
    """A new token (returned once, never stored); only its SHA-256 is kept. `repositories` limits what it sees."""
    name = name.strip()
    if not name:
        raise TokenError("a token needs a non-empty --name")
    scope = parse_repositories(repositories)
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    try:
        with db.session() as session_:
            if session_.scalars(select(ApiToken).where(ApiToken.name == name)).first() is not None:
                raise TokenError(f"a token named {name!r} already exists; revoke it or choose another name")
            session_.add(
                ApiToken(name=name, token_sha256=token_sha256(token), created_at=now, repositories=_stored(scope))
            )
    except IntegrityError as exc:  # a concurrent create of the same name
        raise TokenError(f"a token named {name!r} already exists; revoke it or choose another name") from exc
    return token


def revoke_token(db: Database, name: str, now: datetime) -> None:
    with db.session() as session_:
        row = session_.scalars(select(ApiToken).where(ApiToken.name == name)).first()
        if row is None:
            raise TokenError(f"no token named {name!r} (see `countersign token list`)")
        if row.revoked_at is None:
            row.revoked_at = now


def list_tokens(db: Database) -> list[TokenInfo]:
    with db.session() as session_:
        rows = session_.scalars(select(ApiToken).order_by(ApiToken.name)).all()
        return [TokenInfo(r.name, r.created_at, r.revoked_at, Scope.of(r.repositories), r.last_used_at) for r in rows]


def authenticate(db: Database, token: str, now: datetime | None = None) -> Viewer | None:
    """The live token matching `token` as a viewer, or None; records its use (at most once a minute) when `now`."""
    digest = token_sha256(token)
    with db.session() as session_:
        row = session_.scalars(select(ApiToken).where(ApiToken.token_sha256 == digest)).first()
        if row is None or not hmac.compare_digest(row.token_sha256, digest) or row.revoked_at is not None:
            return None
        viewer = Viewer("token", row.name, Scope.of(row.repositories))
        if now is not None and (row.last_used_at is None or row.last_used_at <= now - LAST_USED_RESOLUTION):
            # Conditional, so that concurrent requests of one token write once, and the read above stays a read.
            session_.execute(
                update(ApiToken)
                .where(ApiToken.id == row.id)
                .where(or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at <= now - LAST_USED_RESOLUTION))
                .values(last_used_at=now)
            )
        return viewer


# -- console sessions ---------------------------------------------------------------------------------------------


def start_session(
    db: Database, *, provider: str, subject: str, display_name: str, scope: Scope, now: datetime, lifetime: timedelta
) -> str:
    """A new session row; the random id returned goes into the signed cookie, only its SHA-256 into the database."""
    sid = secrets.token_urlsafe(32)
    with db.session() as session_:
        # Expired rows are swept here, at sign-in: cheap, and no periodic job is needed for them.
        session_.execute(delete(ConsoleSession).where(ConsoleSession.expires_at <= now))
        session_.add(
            ConsoleSession(
                id_sha256=token_sha256(sid),
                provider=provider,
                subject=subject[:200],
                display_name=display_name[:200],
                repositories=json.dumps(list(scope.patterns) if scope.patterns is not None else ["*"]),
                created_at=now,
                expires_at=now + lifetime,
            )
        )
    return sid


def load_session(db: Database, sid: str, now: datetime) -> Viewer | None:
    with db.session() as session_:
        row = session_.get(ConsoleSession, token_sha256(sid))
        if row is None or row.expires_at <= now:
            return None
        patterns = json.loads(row.repositories)
        scope = EVERYTHING if "*" in patterns else Scope(tuple(patterns))
        return Viewer(row.provider, row.display_name, scope)


def end_session(db: Database, sid: str) -> None:
    with db.session() as session_:
        session_.execute(delete(ConsoleSession).where(ConsoleSession.id_sha256 == token_sha256(sid)))


def session_viewer() -> Viewer | None:
    """The person the request's session cookie names, if sign-in is on and the session is live."""
    services = current_app.extensions["countersign"]
    if services.settings.signin is None:
        return None
    sid = session.get(SESSION_KEY)
    if not isinstance(sid, str) or not sid:
        return None
    return load_session(services.db, sid, services.clock())


# -- the decorators -----------------------------------------------------------------------------------------------


def _admit(viewer: Viewer) -> None:
    g.viewer = viewer
    g.scope = viewer.scope
    if viewer.kind == "token":
        g.api_token_name = viewer.name


def _token_viewer(token: str) -> Viewer | None:
    services = current_app.extensions["countersign"]
    return authenticate(services.db, token, services.clock())


def _unauthorized(message: str, *, invalid: bool) -> Any:
    response = jsonify(error=message)
    response.status_code = 401
    response.headers["WWW-Authenticate"] = 'Bearer error="invalid_token"' if invalid else "Bearer"
    return response


def require_token(view: F) -> F:
    """Answer 401 (JSON, WWW-Authenticate: Bearer) unless the request carries a live API token.

    Session cookies are not accepted here: the API is for scripts, and a cookie-authenticated API would need
    CSRF protection on every route.
    """

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
        viewer = _token_viewer(token)
        if viewer is None:
            # The token itself is never logged, only that one was refused.
            log.warning("api.bad_token", extra={"path": request.path, "remote_addr": request.remote_addr})
            return _unauthorized("invalid or revoked token", invalid=True)
        _admit(viewer)
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


def safe_next(path: str | None) -> str:
    """A path on this site to return to after signing in; anything else (another host, `//evil`) is the dashboard."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path or any(c < " " for c in path):
        return "/"
    return path


def require_viewer(view: F) -> F:
    """For HTML pages: a signed-in person (session cookie), or a live API token as a bearer token or as the password
    of HTTP Basic (any username).

    With no credentials, a browser is sent to /login when sign-in is on; otherwise a 401 carries
    `WWW-Authenticate: Basic realm="Countersign"` so that it asks for a token. Tokens are never accepted in the URL:
    query strings end up in access logs and browser history.
    """

    @wraps(view)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, rest = header.partition(" ")
            token = (rest.strip() or None) if scheme.lower() == "bearer" else _basic_password(header)
            if token is None:
                return _basic_challenge("authentication required: an API token as the password (any user name)")
            viewer = _token_viewer(token)
            if viewer is None:
                log.warning("console.bad_token", extra={"path": request.path, "remote_addr": request.remote_addr})
                return _basic_challenge("invalid or revoked token")
            _admit(viewer)
            return view(*args, **kwargs)
        viewer = session_viewer()
        if viewer is not None:
            _admit(viewer)
            return view(*args, **kwargs)
        if current_app.extensions["countersign"].settings.signin is not None:
            target = request.full_path.rstrip("?") if request.query_string else request.path
            return redirect("/login?" + urlencode({"next": safe_next(target)}))
        return _basic_challenge("authentication required: an API token as the password (any user name)")

    return guarded  # type: ignore[return-value]


# The pages' decorator before sessions existed; kept so that nothing importing it breaks.
require_token_or_basic = require_viewer
