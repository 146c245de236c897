"""GitHub's OAuth web flow for the app's client (authorize, access_token) and what a user token reads: the user, the
app's installations they can access and those installations' repositories they can read.

The authorize page approves at once, as the person `GitHubSimulator.sign_in_as` names: a test or the demo's browser
follows the redirect straight back to the app. PKCE is checked as GitHub does (S256 or plain).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import string
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, Response, redirect, request

from simulators.github.errors import ApiError
from simulators.github.render import installation_json, repo_json, user_json
from simulators.github.routes.common import answer, paginate, simulator
from simulators.github.state import iso

bp = Blueprint("oauth", __name__)

DOCS_OAUTH = "https://docs.github.com/apps/creating-github-apps/authenticating-with-a-github-app/troubleshooting"


def _callback_allowed(registered: str, given: str) -> bool:
    """GitHub's rule: same scheme, host and port as the registered callback URL, and its path or a subdirectory."""
    want, got = urlsplit(registered), urlsplit(given)
    if (want.scheme, want.netloc) != (got.scheme, got.netloc):
        return False
    base = want.path.rstrip("/")
    return got.path == base or got.path.startswith(base + "/") or (not base and got.path.startswith("/"))


@bp.get("/login/oauth/authorize")
def authorize() -> Response:
    sim = simulator()
    oauth = sim.oauth
    client_id = request.args.get("client_id", "")
    if oauth is None or not hmac.compare_digest(client_id, oauth.client_id):
        return Response("Not Found", status=404, mimetype="text/plain")
    redirect_uri = request.args.get("redirect_uri") or oauth.callback_url
    state = request.args.get("state")
    if not _callback_allowed(oauth.callback_url, redirect_uri):
        # GitHub sends the browser to the registered callback with the error, never to the unregistered URL.
        query = {"error": "redirect_uri_mismatch", "error_description": "The redirect_uri MUST match the registered "
                 "callback URL for this application.", "error_uri": DOCS_OAUTH}  # fmt: skip
        if state:
            query["state"] = state
        return redirect(f"{oauth.callback_url}?{urlencode(query)}")  # type: ignore[return-value]
    challenge = request.args.get("code_challenge")
    method = request.args.get("code_challenge_method") or ("plain" if challenge else None)
    if method not in (None, "plain", "S256"):
        return Response("code_challenge_method must be S256 or plain", status=400, mimetype="text/plain")
    code = secrets.token_hex(10)
    with sim.store.lock:
        oauth.codes[code] = {
            "login": oauth.signed_in_as,
            "redirect_uri": request.args.get("redirect_uri"),
            "challenge": challenge,
            "method": method,
            "used": False,
        }
        oauth.authorize_requests.append(dict(request.args))
    query = {"code": code, **({"state": state} if state is not None else {})}
    separator = "&" if "?" in redirect_uri else "?"
    return redirect(f"{redirect_uri}{separator}{urlencode(query)}")  # type: ignore[return-value]


def _token_answer(body: dict[str, Any]) -> Response:
    # GitHub answers JSON only when asked to (Accept: application/json); form encoding otherwise, errors included,
    # and errors with status 200.
    if "application/json" in request.headers.get("Accept", ""):
        return answer(body)
    return Response(urlencode(body), mimetype="application/x-www-form-urlencoded")


def _error(error: str, description: str) -> Response:
    return _token_answer({"error": error, "error_description": description, "error_uri": DOCS_OAUTH})


def _verifier_matches(code: dict[str, Any], verifier: str | None) -> bool:
    if code["challenge"] is None:
        return True
    if not verifier:
        return False
    if code["method"] == "S256":
        digest = hashlib.sha256(verifier.encode("ascii")).digest()
        expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")
    else:
        expected = verifier
    return hmac.compare_digest(expected, code["challenge"])


@bp.post("/login/oauth/access_token")
def access_token() -> Response:
    sim = simulator()
    oauth = sim.oauth
    params = request.form.to_dict() if request.form else (request.get_json(silent=True) or {})
    params.update({k: v for k, v in request.args.items() if k not in params})
    if oauth is None or not hmac.compare_digest(str(params.get("client_id", "")), oauth.client_id):
        return _error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
    if not hmac.compare_digest(str(params.get("client_secret", "")), oauth.client_secret):
        return _error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.")
    with sim.store.lock:
        code = oauth.codes.get(str(params.get("code", "")))
        if code is None or code["used"]:
            return _error("bad_verification_code", "The code passed is incorrect or expired.")
        code["used"] = True  # one use, even when what follows fails: a code is never redeemed twice
        if code["redirect_uri"] and params.get("redirect_uri") not in (None, code["redirect_uri"]):
            return _error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL.")
        if not _verifier_matches(code, params.get("code_verifier")):
            return _error("bad_verification_code", "The code_verifier does not match the code_challenge.")
        token = "ghu_" + "".join(secrets.choice(string.ascii_letters + string.digits) for _ in range(36))
        oauth.user_tokens[token] = code["login"]
    return _token_answer({"access_token": token, "token_type": "bearer", "scope": ""})


def _user() -> str:
    sim = simulator()
    if request.method == "HEAD":
        raise ApiError(404, "Not Found")
    scheme, _, credential = request.headers.get("Authorization", "").partition(" ")
    login = sim.oauth.user_tokens.get(credential) if sim.oauth and scheme.lower() in ("token", "bearer") else None
    if login is None:
        if credential in sim.store.tokens:
            raise ApiError(403, "Resource not accessible by integration")
        raise ApiError(401, "Bad credentials")
    return login


@bp.get("/user")
def get_user() -> Response:
    login = _user()
    sim = simulator()
    body = user_json(sim, login)
    created = iso(datetime(2020, 1, 2, tzinfo=UTC))
    body.update(name=sim.oauth.names.get(login), company=None, blog="", location=None, email=None, hireable=None,
                bio=None, public_repos=0, public_gists=0, followers=0, following=0, created_at=created,
                updated_at=created)  # fmt: skip
    return answer(body)


def _readable(login: str) -> dict[int, list[Any]]:
    """The repositories `login` can read where the app is installed, by installation."""
    sim = simulator()
    found: dict[int, list[Any]] = {}
    with sim.store.lock:
        for key in sorted(sim.oauth.readers.get(login, set())):
            repo = sim.store.repos.get(key)
            if repo is not None:
                found.setdefault(repo.installation_id, []).append(repo)
    return found


@bp.get("/user/installations")
def list_user_installations() -> Response:
    login = _user()
    readable = _readable(login)
    sim = simulator()
    items = [installation_json(sim, iid, repos[0].owner) for iid, repos in sorted(readable.items())]
    page, headers = paginate(items)
    return answer({"total_count": len(items), "installations": page}, headers=headers)


@bp.get("/user/installations/<int:installation_id>/repositories")
def list_user_installation_repositories(installation_id: int) -> Response:
    login = _user()
    repos = _readable(login).get(installation_id)
    if repos is None:  # an installation the user cannot reach is as absent as one that does not exist
        raise ApiError(404, "Not Found")
    sim = simulator()
    items = [repo_json(sim, repo) for repo in repos]
    page, headers = paginate(items)
    return answer(
        {"total_count": len(items), "repository_selection": "selected", "repositories": page}, headers=headers
    )
