"""Authentication as the app (a JWT signed with its private key) and as an installation (a token the app bought)."""

from __future__ import annotations

import secrets
import string
import time
from datetime import datetime
from typing import TYPE_CHECKING, Literal

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from simulators.github.errors import ApiError
from simulators.github.state import Store, _Token, now

if TYPE_CHECKING:
    from simulators.github.simulator import GitHubSimulator

Credential = Literal["jwt", "token"]


def generate_app_key() -> tuple[str, str]:
    """A fresh RSA 2048 key pair for a GitHub App: (private PEM, public PEM)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    public_pem = (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    return private_pem, public_pem


def authenticate(sim: GitHubSimulator, kind: Credential, authorization: str) -> int | None:
    """Checks an `Authorization` header; answers the installation a token acts for (None for the app's JWT)."""
    scheme, _, credential = authorization.partition(" ")
    if kind == "jwt":
        if scheme.lower() != "bearer" or not credential:
            raise ApiError(401, "A JSON web token could not be decoded")
        verify_jwt(sim, credential)
        return None
    if scheme.lower() not in ("token", "bearer") or not credential:
        raise ApiError(401, "Bad credentials")
    with sim.store.lock:
        token = sim.store.tokens.get(credential)
        if token is None or token.revoked or token.expires_at <= now():
            raise ApiError(401, "Bad credentials")
        return token.installation_id


def verify_jwt(sim: GitHubSimulator, encoded: str) -> None:
    try:
        claims = jwt.decode(
            encoded,
            sim.app_public_key_pem,
            algorithms=["RS256"],
            options={"require": ["iat", "exp", "iss"], "verify_iat": False},
            leeway=0,
        )
    except jwt.ExpiredSignatureError as error:
        raise ApiError(401, "'Expiration time' claim ('exp') must be a numeric value in the future") from error
    except jwt.PyJWTError as error:
        raise ApiError(401, "A JSON web token could not be decoded") from error
    current = time.time()
    if str(claims["iss"]) != str(sim.app_id):
        raise ApiError(401, "'Issuer' claim ('iss') must be an Integer")
    if claims["exp"] - claims["iat"] > 660:
        raise ApiError(401, "'Expiration time' claim ('exp') is too far in the future")
    if claims["iat"] > current + 60:
        raise ApiError(401, "'Issued at' claim ('iat') must be an Integer representing a time in the past")


def issue_token(store: Store, installation_id: int, permissions: dict[str, str]) -> tuple[str, datetime]:
    """A fresh installation token that lasts an hour (`store.token_lifetime`), and when it expires."""
    alphabet = string.ascii_letters + string.digits
    # Real tokens change length over time: clients must treat them as opaque.
    token = "ghs_" + "".join(secrets.choice(alphabet) for _ in range(36 + secrets.randbelow(40)))
    expires = now().replace(microsecond=0) + store.token_lifetime
    with store.lock:
        store.tokens[token] = _Token(installation_id, expires, permissions)
    return token, expires
