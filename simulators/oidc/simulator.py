"""The simulated OpenID Connect provider: who signs in is set by the test; the next ID token can be spoiled on purpose
(wrong audience or issuer, expired, signed by another key, another nonce) to prove the app refuses it."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask, Response, jsonify, redirect, request

from simulators.http import Faults, RecordingMiddleware, Served


@dataclass(frozen=True)
class OidcPerson:
    sub: str
    email: str
    name: str
    groups: tuple[str, ...] = ()
    email_verified: bool = True


@dataclass
class _Code:
    person: OidcPerson
    redirect_uri: str
    nonce: str | None
    challenge: str | None
    method: str | None
    used: bool = False


@dataclass
class OidcSimulator(Served):
    client_id: str
    client_secret: str
    redirect_uri: str | None = None  # the registered one; None: set it before the first sign-in
    person: OidcPerson = field(default_factory=lambda: OidcPerson("sub-0", "nobody@example.com", "Nobody"))
    key_id: str = "sim-key-1"

    def __post_init__(self) -> None:
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.lock = threading.Lock()
        self.codes: dict[str, _Code] = {}
        self.access_tokens: dict[str, OidcPerson] = {}
        self.spoil: dict[str, Any] = {}  # applied to the next ID token only
        # As many providers are set up: the groups only from the userinfo endpoint, not in the ID token.
        self.groups_in_id_token = True
        self.userinfo_sub: str | None = None  # a userinfo answer naming someone else (a provider's mix-up)
        self.faults = Faults()
        self.flask_app = Flask("oidc-simulator")
        self._routes(self.flask_app)
        self.recorder = RecordingMiddleware(
            self.flask_app.wsgi_app, self.faults, lambda status: {"error": "server_error"}
        )
        self.wsgi = self.recorder

    # ------------------------------------------------------------------ server

    @property
    def issuer(self) -> str:
        assert self.url, "start() first"
        return self.url

    # ------------------------------------------------------------------ state API

    def sign_in_as(self, person: OidcPerson) -> None:
        self.person = person

    def spoil_next_id_token(self, *, other_key: bool = False, **claims: Any) -> None:
        """Change the next ID token: claims replaced (`aud`, `iss`, `exp`, `nonce`, ...) or signed by a stranger."""
        with self.lock:
            self.spoil = {**claims, "_other_key": other_key}

    def id_token(self, person: OidcPerson, nonce: str | None) -> str:
        now = int(time.time())
        claims: dict[str, Any] = {
            "iss": self.issuer,
            "sub": person.sub,
            "aud": self.client_id,
            "iat": now,
            "exp": now + 300,
            "auth_time": now,
            "email": person.email,
            "email_verified": person.email_verified,
            "name": person.name,
        }
        if self.groups_in_id_token:
            claims["groups"] = list(person.groups)
        if nonce is not None:
            claims["nonce"] = nonce
        with self.lock:
            spoil, self.spoil = self.spoil, {}
        other_key = spoil.pop("_other_key", False)
        claims.update(spoil)
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048) if other_key else self.key
        return jwt.encode(claims, key, algorithm="RS256", headers={"kid": self.key_id})

    def jwks(self) -> dict[str, Any]:
        jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.key.public_key(), as_dict=True)
        return {"keys": [{**jwk, "kid": self.key_id, "use": "sig", "alg": "RS256"}]}

    # ------------------------------------------------------------------ the provider's endpoints

    def _routes(self, app: Flask) -> None:
        app.add_url_rule("/.well-known/openid-configuration", "discovery", self._discovery)
        app.add_url_rule("/jwks", "jwks", lambda: jsonify(self.jwks()))
        app.add_url_rule("/authorize", "authorize", self._authorize)
        app.add_url_rule("/token", "token", self._token, methods=["POST"])
        app.add_url_rule("/userinfo", "userinfo", self._userinfo)

    def _discovery(self) -> Response:
        base = self.issuer
        return jsonify(
            issuer=base,
            authorization_endpoint=f"{base}/authorize",
            token_endpoint=f"{base}/token",
            jwks_uri=f"{base}/jwks",
            userinfo_endpoint=f"{base}/userinfo",
            response_types_supported=["code"],
            subject_types_supported=["public"],
            id_token_signing_alg_values_supported=["RS256"],
            scopes_supported=["openid", "email", "profile"],
            token_endpoint_auth_methods_supported=["client_secret_basic", "client_secret_post"],
            code_challenge_methods_supported=["S256"],
            claims_supported=["sub", "email", "email_verified", "name", "groups"],
        )

    def _authorize(self) -> Response:
        args = request.args
        if args.get("client_id") != self.client_id:
            return Response("unknown client", status=400)
        if not self.redirect_uri or args.get("redirect_uri") != self.redirect_uri:
            return Response("redirect_uri is not registered for this client", status=400)  # never redirected to
        state = args.get("state")
        back: dict[str, str] = {"state": state} if state else {}
        if args.get("response_type") != "code" or "openid" not in (args.get("scope") or "").split():
            return redirect(f"{self.redirect_uri}?{urlencode({'error': 'invalid_request', **back})}")  # type: ignore[return-value]
        code = secrets.token_urlsafe(16)
        with self.lock:
            self.codes[code] = _Code(
                self.person,
                self.redirect_uri,
                args.get("nonce"),
                args.get("code_challenge"),
                args.get("code_challenge_method"),
            )
        return redirect(f"{self.redirect_uri}?{urlencode({'code': code, **back})}")  # type: ignore[return-value]

    def _client_authenticated(self) -> bool:
        header = request.headers.get("Authorization", "")
        if header.lower().startswith("basic "):
            try:
                client_id, _, secret = base64.b64decode(header[6:]).decode().partition(":")
            except ValueError:
                return False
        else:
            client_id, secret = request.form.get("client_id", ""), request.form.get("client_secret", "")
        return hmac.compare_digest(client_id, self.client_id) and hmac.compare_digest(secret, self.client_secret)

    def _token(self) -> Response:
        def error(name: str, status: int = 400) -> Response:
            response = jsonify(error=name)
            response.status_code = status
            return response

        if not self._client_authenticated():
            return error("invalid_client", 401)
        form = request.form
        if form.get("grant_type") != "authorization_code":
            return error("unsupported_grant_type")
        with self.lock:
            code = self.codes.get(form.get("code", ""))
            if code is None or code.used:
                return error("invalid_grant")
            code.used = True
        if form.get("redirect_uri") != code.redirect_uri:
            return error("invalid_grant")
        if code.challenge is not None:
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if not verifier or not hmac.compare_digest(digest, code.challenge):
                return error("invalid_grant")
        access = secrets.token_urlsafe(24)
        with self.lock:
            self.access_tokens[access] = code.person
        return jsonify(
            access_token=access, token_type="Bearer", expires_in=300, id_token=self.id_token(code.person, code.nonce)
        )

    def _userinfo(self) -> Response:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        person = self.access_tokens.get(token) if scheme.lower() == "bearer" else None
        if person is None:
            return Response(status=401, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})
        return jsonify(
            sub=self.userinfo_sub or person.sub,
            email=person.email,
            email_verified=person.email_verified,
            name=person.name,
            groups=list(person.groups),
        )
