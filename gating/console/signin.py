"""Console sign-in: GitHub's OAuth web flow or an OpenID Connect provider (Authlib), then a server-side session.

GET /login offers what is configured; GET /login?provider=github|oidc starts the flow (state and PKCE, plus a nonce
for OpenID Connect, kept in the signed cookie until the callback); GET /auth/callback finishes it; GET /logout asks,
and POST /logout (with its CSRF token) signs out.

With GitHub, a person sees the repositories they can read among the app's installations, as GitHub lists them for
their user token during the callback; the token is used there and dropped, never stored. The list is kept with the
session (server-side) for the session's lifetime, so access removed on GitHub shows at the next sign-in, within
COUNTERSIGN_SESSION_HOURS at most; signing out and in again refreshes it at once (the list is cached for five
minutes per user, so that signing in twice in a row asks GitHub once).

With OpenID Connect, the ID token's verified `email` and its `groups` (else the userinfo endpoint's, for the same
`sub`) are matched against COUNTERSIGN_OIDC_ACCESS;
someone it does not name gets a 403 page and no session.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import requests
from authlib.integrations.base_client.errors import OAuthError
from authlib.integrations.flask_client import OAuth
from cachetools import TTLCache
from flask import Blueprint, Flask, current_app, g, redirect, request, session
from flask_wtf.csrf import CSRFError, CSRFProtect
from joserfc.errors import JoseError

from gating.console.auth import SESSION_KEY, Viewer, end_session, safe_next, session_viewer, start_session
from gating.console.rendering import render_message, templates
from gating.console.scope import EVERYTHING, Scope
from gating.settings import Settings, SignInSettings

log = logging.getLogger(__name__)

bp = Blueprint("signin", __name__)
EXTENSION = "countersign_signin"
REPOSITORIES_TTL = 300.0  # seconds a user's repository list is reused by a new sign-in
MAX_PAGES = 50  # of 100 installations or repositories each: beyond 5,000, GitHub's answer is cut short, not looped on
GITHUB_HEADERS = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}

# Authlib logs the PKCE verifier at DEBUG; LOG_LEVEL=DEBUG must not put it in the logs.
logging.getLogger("authlib").setLevel(logging.INFO)


class SignInRefused(Exception):
    """A sign-in that must not make a session; `message` is shown to the person, `reason` logged."""

    def __init__(self, status: int, title: str, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.title, self.message, self.reason = status, title, message, reason


def oauth_web_base(api_url: str) -> str:
    """Where GitHub's OAuth web flow is served (`<base>/login/oauth/authorize`), from the REST API's URL.

    - `https://api.github.com` → `https://github.com`
    - GitHub Enterprise Cloud with data residency, `https://api.SUBDOMAIN.ghe.com` → `https://SUBDOMAIN.ghe.com`
    - GitHub Enterprise Server, `https://HOST/api/v3` → `https://HOST`
    - anything else (the simulator): the same URL, which serves the web flow beside the API.
    """
    parsed = urlsplit(api_url.rstrip("/"))
    host = (parsed.hostname or "").lower()
    if host == "api.github.com":
        return "https://github.com"
    if host.startswith("api.") and host.endswith(".ghe.com"):
        return f"{parsed.scheme}://{parsed.netloc[4:]}"
    if parsed.path.rstrip("/").endswith("/api/v3"):
        return f"{parsed.scheme}://{parsed.netloc}{parsed.path.rstrip('/')[: -len('/api/v3')]}"
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}"


@dataclass
class SignIn:
    """The app's sign-in clients and the per-user cache of repository lists."""

    settings: Settings
    config: SignInSettings
    oauth: OAuth
    repositories: TTLCache[int, tuple[str, ...]]
    lock: threading.Lock

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(name for name, on in (("github", self.config.github), ("oidc", self.config.oidc)) if on)

    @property
    def lifetime(self) -> timedelta:
        return timedelta(hours=self.config.session_hours)


def init_signin(app: Flask, settings: Settings, *, csrf_exempt: Iterable[Blueprint] = ()) -> None:
    """Register /login, /logout and /auth/callback; with sign-in configured, the session cookie and CSRF too.

    CSRF protection covers every form the app serves; `csrf_exempt` names the blueprints that take no cookie
    (webhooks are signed by their senders, the API takes bearer tokens only).
    """
    app.register_blueprint(bp)
    config = settings.signin
    if config is None:
        return
    app.secret_key = config.secret_key
    app.config.update(
        SESSION_COOKIE_NAME="countersign_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SECURE=config.cookie_secure,
        # Lax: the provider's redirect back to /auth/callback is a top-level GET, which must carry the cookie.
        SESSION_COOKIE_SAMESITE="Lax",
        PERMANENT_SESSION_LIFETIME=timedelta(hours=config.session_hours),
        # The form's token lives as long as the session; the session's own expiry bounds it.
        WTF_CSRF_TIME_LIMIT=None,
    )
    csrf = CSRFProtect(app)
    for blueprint in csrf_exempt:
        csrf.exempt(blueprint)
    oauth = OAuth(app)
    timeout = settings.github_timeout
    if config.github:
        base = oauth_web_base(settings.github_api_url)
        oauth.register(
            "github",
            client_id=config.github_client_id,
            client_secret=config.github_client_secret,
            authorize_url=f"{base}/login/oauth/authorize",
            access_token_url=f"{base}/login/oauth/access_token",
            api_base_url=settings.github_api_url.rstrip("/") + "/",
            # GitHub takes the client's credentials in the form body; a GitHub App's user token needs no scope.
            client_kwargs={
                "code_challenge_method": "S256",
                "token_endpoint_auth_method": "client_secret_post",
                "default_timeout": timeout,
            },
        )
    if config.oidc:
        oauth.register(
            "oidc",
            client_id=config.oidc_client_id,
            client_secret=config.oidc_client_secret,
            server_metadata_url=f"{config.oidc_issuer}/.well-known/openid-configuration",
            client_kwargs={
                "scope": "openid email profile",
                "code_challenge_method": "S256",
                "default_timeout": timeout,
            },
        )
    app.extensions[EXTENSION] = SignIn(
        settings, config, oauth, TTLCache(maxsize=1024, ttl=REPOSITORIES_TTL), threading.Lock()
    )
    app.register_error_handler(CSRFError, _csrf_refused)


def _signin() -> SignIn | None:
    found: SignIn | None = current_app.extensions.get(EXTENSION)
    return found


def _page(body: str, status: int = 200) -> Any:
    response = current_app.response_class(body, status=status, mimetype="text/html")
    response.headers["Content-Security-Policy"] = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"
    response.headers["X-Content-Type-Options"] = "nosniff"
    response.headers["Referrer-Policy"] = "no-referrer"  # the callback's URL holds the code: never pass it on
    response.headers["Cache-Control"] = "no-store"
    return response


def _message(title: str, message: str, status: int) -> Any:
    return _page(render_message(title, message), status)


@bp.get("/login")
def login() -> Any:
    signin = _signin()
    if signin is None:
        return _message(
            "Sign-in is not configured",
            "This Countersign takes API tokens only: give a token as the password when your browser asks "
            "(any user name). An administrator creates one with `countersign token create --name NAME`.",
            404,
        )
    provider = request.args.get("provider")
    target = safe_next(request.args.get("next"))
    if provider is None:
        page = templates().get_template("pages/login.html").render(providers=signin.providers, next=target)
        return _page(page)
    if provider not in signin.providers:
        return _message("Unknown sign-in", f"Sign-in with {provider!r} is not configured here.", 404)
    session["next"] = target
    client = signin.oauth.create_client(provider)
    redirect_uri = _callback_url(signin.settings)
    try:
        flow = client.create_authorization_url(redirect_uri)
    except requests.RequestException as exc:  # OpenID Connect discovery failed
        log.warning("signin.provider_unavailable", extra={"provider": provider, "error": type(exc).__name__})
        return _message("Sign-in is unavailable", "The sign-in provider did not answer; try again shortly.", 502)
    if provider == "github":
        # GitHub's authorize page takes no response_type (its flow is the code flow, always): send only what it takes.
        flow["url"] = _without(flow["url"], "response_type")
    # The state, the PKCE verifier and the nonce wait in the signed cookie for the callback (Authlib's own keys).
    client.save_authorize_data(redirect_uri=redirect_uri, **flow)
    return redirect(flow["url"])


def _without(url: str, parameter: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != parameter]
    return urlunsplit(parts._replace(query=urlencode(query)))


def _callback_url(settings: Settings) -> str:
    # Behind a proxy the request's own host may be an internal one: the public URL is what providers redirect to.
    base = settings.public_url.rstrip("/") if settings.public_url else request.host_url.rstrip("/")
    return f"{base}/auth/callback"


@bp.get("/auth/callback")
def callback() -> Any:
    signin = _signin()
    if signin is None:
        return _message("Sign-in is not configured", "This Countersign takes API tokens only.", 404)
    state = request.args.get("state", "")
    # The state names the flow this browser started, and so the provider: Authlib keeps it under its client's name.
    provider = next((name for name in signin.providers if state and f"_state_{name}_{state}" in session), None)
    if provider is None:
        log.warning("signin.refused", extra={"provider": None, "reason": "unknown state"})
        return _message(
            "Sign-in not recognised",
            "This sign-in was not started from this browser, or it has already been used. Start again from the "
            "sign-in page.",
            400,
        )
    target = session.get("next")
    try:
        viewer = _finish(signin, provider)
    except SignInRefused as refused:
        log.warning("signin.refused", extra={"provider": provider, "reason": refused.reason})
        _forget_flow(provider, state)
        return _message(refused.title, refused.message, refused.status)
    services = current_app.extensions["countersign"]
    sid = start_session(
        services.db,
        provider=provider,
        subject=viewer.name,
        display_name=viewer.name,
        scope=viewer.scope,
        now=services.clock(),
        lifetime=signin.lifetime,
    )
    # A fresh cookie: whatever the browser carried before (a planted session, old flows) is dropped, and a session
    # it held ends here rather than lingering until it expires.
    previous = session.get(SESSION_KEY)
    if isinstance(previous, str) and previous:
        end_session(services.db, previous)
    session.clear()
    session[SESSION_KEY] = sid
    session.permanent = True
    log.info(
        "signin.succeeded",
        extra={"provider": provider, "subject": viewer.name, "scope": viewer.scope.describe()[:500]},
    )
    return redirect(safe_next(target if isinstance(target, str) else None))


def _forget_flow(provider: str, state: str) -> None:
    session.pop(f"_state_{provider}_{state}", None)
    session.pop("next", None)


def _finish(signin: SignIn, provider: str) -> Viewer:
    client = signin.oauth.create_client(provider)
    try:
        # Checks the state against this browser's, sends the PKCE verifier; for OpenID Connect also validates the ID
        # token: signature against the provider's JWKS, issuer, audience, expiry and nonce.
        token = client.authorize_access_token(**_id_token_checks(signin, provider))
    except OAuthError as exc:
        raise SignInRefused(403, "Sign-in refused", "The sign-in provider refused this sign-in.", exc.error) from exc
    except JoseError as exc:
        raise SignInRefused(
            403, "Sign-in refused", "The identity token did not verify.", f"id token: {exc.error}: {exc.description}"
        ) from exc
    except requests.RequestException as exc:
        raise SignInRefused(
            502, "Sign-in is unavailable", "The sign-in provider did not answer; try again shortly.", type(exc).__name__
        ) from exc
    if provider == "github":
        return _github_viewer(signin, client, token)
    return _oidc_viewer(signin, client, token)


def _id_token_checks(signin: SignIn, provider: str) -> dict[str, Any]:
    """The ID token's issuer and audience, stated: Authlib checks `aud` only when told to (an ID token issued to
    another client, naming us as `azp`, would pass), and `iss` against the discovered issuer, which must be the one
    configured (OpenID Connect Discovery 1.0, section 4.3)."""
    if provider != "oidc":
        return {}
    issuer = signin.config.oidc_issuer or ""
    return {
        "claims_options": {
            "iss": {"essential": True, "values": [issuer, issuer + "/"]},
            "aud": {"essential": True, "values": [signin.config.oidc_client_id]},
        }
    }


def _github_viewer(signin: SignIn, client: Any, token: dict[str, Any]) -> Viewer:
    try:
        user = _get(client, token, "user").json()
        login_name, user_id = str(user["login"]), int(user["id"])
        with signin.lock:
            cached = signin.repositories.get(user_id)
        if cached is None:
            cached = tuple(sorted(_readable_repositories(signin, client, token), key=str.lower))
            with signin.lock:
                signin.repositories[user_id] = cached
    except (requests.RequestException, KeyError, TypeError, ValueError) as exc:
        raise SignInRefused(
            502,
            "Sign-in is unavailable",
            "GitHub did not list your repositories; try again shortly.",
            f"github: {type(exc).__name__}",
        ) from exc
    return Viewer("github", login_name, Scope(cached))


def _get(client: Any, token: dict[str, Any], url: str, **params: Any) -> requests.Response:
    response: requests.Response = client.get(url, token=token, headers=GITHUB_HEADERS, params=params or None)
    response.raise_for_status()
    return response


def _pages(signin: SignIn, client: Any, token: dict[str, Any], url: str, key: str) -> Iterator[dict[str, Any]]:
    """Every item of a paginated GitHub list (`{"total_count": .., key: [..]}`), following its `link: next`."""
    api = signin.settings.github_api_url.rstrip("/") + "/"
    response = _get(client, token, url, per_page=100)
    for _ in range(MAX_PAGES):
        yield from response.json()[key]
        following = response.links.get("next", {}).get("url")
        # Only GitHub's own links: the user's token is never sent elsewhere.
        if not following or not following.startswith(api):
            return
        response = _get(client, token, following)


def _readable_repositories(signin: SignIn, client: Any, token: dict[str, Any]) -> Iterator[str]:
    app_id = signin.settings.github_app_id
    for installation in _pages(signin, client, token, "user/installations", "installations"):
        # A GitHub App's user token lists that app's installations only; another app's would show nothing here.
        if str(installation.get("app_id")) != app_id:
            continue
        url = f"user/installations/{int(installation['id'])}/repositories"
        for repository in _pages(signin, client, token, url, "repositories"):
            yield str(repository["full_name"])


def _oidc_groups(signin: SignIn, client: Any, token: dict[str, Any], claims: dict[str, Any]) -> list[str]:
    """The person's groups: the ID token's `groups` claim; when it has none and an access rule names a group, the
    provider's userinfo endpoint (many providers send groups only there), believed only when its `sub` is the ID
    token's (OpenID Connect Core 5.3.2). Any failure there means no groups: never more access than proven."""
    groups = claims.get("groups")
    if groups is None and any(rule.principal.startswith("group:") for rule in signin.config.oidc_access):
        try:
            info = client.userinfo(token=token)
        except (OAuthError, requests.RequestException, ValueError) as exc:
            log.warning("signin.userinfo_failed", extra={"reason": type(exc).__name__})
            return []
        if info.get("sub") != claims.get("sub"):
            log.warning("signin.userinfo_refused", extra={"reason": "its sub is not the ID token's"})
            return []
        groups = info.get("groups")
    return [str(group) for group in groups] if isinstance(groups, list) else []


def _oidc_viewer(signin: SignIn, client: Any, token: dict[str, Any]) -> Viewer:
    claims = token.get("userinfo")
    if not claims:  # no ID token in the answer, so nothing was verified: a token alone proves no identity
        raise SignInRefused(403, "Sign-in refused", "The provider sent no identity token.", "no id token")
    # An address the provider says it has not verified proves nothing (anyone could have typed it).
    email = claims.get("email") if claims.get("email_verified", True) is not False else None
    groups = _oidc_groups(signin, client, token, claims)
    patterns: list[str] = []
    for rule in signin.config.oidc_access:
        if rule.matches(email if isinstance(email, str) else None, groups):
            patterns.extend(p for p in rule.patterns if p not in patterns)
    who = str(email or claims.get("preferred_username") or claims.get("sub"))
    if not patterns:
        raise SignInRefused(
            403,
            "Not allowed",
            f"You signed in as {who}, but Countersign gives that account and its groups no access. Ask an "
            "administrator to add you to COUNTERSIGN_OIDC_ACCESS.",
            "not in COUNTERSIGN_OIDC_ACCESS",
        )
    return Viewer("oidc", who, EVERYTHING if "*" in patterns else Scope(tuple(patterns)))


@bp.get("/logout")
def logout_confirm() -> Any:
    viewer = session_viewer() if _signin() is not None else None
    if viewer is None:
        return _message("Signed out", "You are not signed in.", 200)
    g.viewer = viewer  # for the page's header, as on every page
    return _page(templates().get_template("pages/logout.html").render(name=viewer.name))


@bp.post("/logout")
def logout() -> Any:
    # CSRFProtect has checked the form's token before this runs: a cross-site form cannot sign anyone out.
    if _signin() is None:
        return _message("Sign-in is not configured", "There is no session to end.", 404)
    sid = session.get(SESSION_KEY)
    if isinstance(sid, str) and sid:
        end_session(current_app.extensions["countersign"].db, sid)
        log.info("signin.signed_out")
    session.clear()
    return _message("Signed out", "You are signed out.", 200)


def _csrf_refused(exc: CSRFError) -> Any:
    log.warning("console.csrf_refused", extra={"path": request.path, "reason": exc.description})
    return _message("Form expired", "This form is no longer valid; reload the page and try again.", 400)
