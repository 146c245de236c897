"""Console sign-in and who sees what: GitHub's web flow and OpenID Connect against their simulators, sessions, CSRF,
scoped API tokens, and every page and API route for every kind of viewer.

The app runs twice over: served over HTTP (the deploy gate writes the ledger through real webhooks, and one browser
walks the whole redirect chain), and through Flask's test client on the same database, whose cookies a test can
inspect and spoil. Either way the app's own calls to GitHub and the provider are real HTTP to the simulators.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from conftest import LiveApp
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select, update
from test_deploy_gate_e2e import answers, approved, deploy, setup_release

from gating.app import create_app
from gating.console.auth import authenticate, create_token, list_tokens
from gating.console.signin import oauth_web_base
from gating.db import Database
from gating.intake.jobs import InlineProcessor
from gating.logs import Redactor
from gating.models import ConsoleSession
from gating.settings import AccessRule, Settings, SignInSettings
from jira_client.gateway import JiraGateway
from simulators.github import GitHubSimulator
from simulators.http import serve
from simulators.jira import JiraSimulator
from simulators.oidc import OidcPerson, OidcSimulator

GITHUB_CLIENT_ID = "Iv23liSignInClient"
GITHUB_CLIENT_SECRET = "github-client-secret-0123456789abcdef"
OIDC_CLIENT_ID = "countersign-console"
OIDC_CLIENT_SECRET = "oidc-client-secret-0123456789abcdef"
SECRET_KEY = "k" * 48
TEST_CLIENT_CALLBACK = "http://localhost/auth/callback"  # where the test client's app sends providers back to

CAROL = OidcPerson("sub-carol", "carol@example.com", "Carol Auditor", groups=("finance",))
SOX = OidcPerson("sub-sam", "sam@example.com", "Sam Sox", groups=("sox-auditors",))
STRANGER = OidcPerson("sub-eve", "eve@example.com", "Eve Outsider", groups=("marketing",))
UNVERIFIED = OidcPerson("sub-fake", "carol@example.com", "Not Carol", email_verified=False)

WEB, SECRET, TOOLS = "acme/web", "other/secret", "elsewhere/tools"


@pytest.fixture
def oidc() -> Iterator[OidcSimulator]:
    sim = OidcSimulator(OIDC_CLIENT_ID, OIDC_CLIENT_SECRET, redirect_uri=TEST_CLIENT_CALLBACK)
    sim.start()
    yield sim
    sim.stop()


@pytest.fixture
def settings(settings: Settings, github: GitHubSimulator, oidc: OidcSimulator) -> Settings:
    github.register_oauth_client(GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, TEST_CLIENT_CALLBACK)
    signin = SignInSettings(
        secret_key=SECRET_KEY,
        github_client_id=GITHUB_CLIENT_ID,
        github_client_secret=GITHUB_CLIENT_SECRET,
        oidc_issuer=oidc.issuer,
        oidc_client_id=OIDC_CLIENT_ID,
        oidc_client_secret=OIDC_CLIENT_SECRET,
        oidc_access=(AccessRule("carol@example.com", (WEB,)), AccessRule("group:sox-auditors", ("*",))),
        cookie_secure=False,  # the test servers speak plain HTTP
    )
    return replace(settings, signin=signin)


@dataclass
class World:
    live: LiveApp
    app: Flask
    web_id: int
    secret_id: int
    secret_sha: str

    def client(self) -> FlaskClient:
        return self.app.test_client()


@pytest.fixture
def console(settings: Settings, github: GitHubSimulator, jira: JiraSimulator) -> Iterator[tuple[LiveApp, Flask]]:
    """Countersign served over HTTP (as conftest's live_app), and the same app for the test client."""
    Database(settings.database_url).upgrade()
    gateway = JiraGateway(settings.jira_url, user=settings.jira_user, token=settings.jira_token, timeout=2.0, retries=2)
    app = create_app(settings, jira=gateway)
    server = serve(app)
    github.webhook_url = f"{server.url}/webhooks/github"
    jira.webhook_url = f"{server.url}/webhooks/jira"
    services = app.extensions["countersign"]
    yield LiveApp(server.url, services, github, jira), app
    services.processor.shutdown()
    server.stop()
    services.db.dispose()


@pytest.fixture
def world(console: tuple[LiveApp, Flask]) -> World:
    """Two repositories with evidence: an approved release of acme/web (installation 1) and an emergency change of
    other/secret (installation 2), still awaiting retroactive approval. elsewhere/tools (installation 3) has none."""
    live, app = console
    github = live.github
    github.add_repository(WEB, installation_id=1)
    github.add_repository(SECRET, installation_id=2)
    github.add_repository(TOOLS, installation_id=3)
    approved(live, "PAY-1")
    web_sha = setup_release(live, WEB, ["PAY-1 refunds"])
    deploy(live, WEB, web_sha)
    assert answers(live, WEB)[0]["state"] == "approved"
    live.jira.add_ticket("OPS-7", "Hotfix", status="In Progress", issue_type="Emergency Change")
    secret_sha = setup_release(live, SECRET, ["OPS-7 hotfix"])
    deploy(live, SECRET, secret_sha)
    assert answers(live, SECRET)[0]["state"] == "approved"
    entries = {e.content()["payload"]["repository"]: e for e in live.services.ledger.search(limit=10)}
    github.grant_read("bob", WEB)
    github.grant_read("mallory", TOOLS)
    return World(live, app, entries[WEB].sequence, entries[SECRET].sequence, secret_sha)


# -- a browser, for the test client ----------------------------------------------------------------------------------


def start(client: FlaskClient, provider: str, next_: str = "/") -> str:
    """GET /login?provider=..: the provider's authorize URL the app redirects to."""
    response = client.get("/login", query_string={"provider": provider, "next": next_})
    assert response.status_code == 302, response.text
    return str(response.location)


def at_provider(authorize_url: str) -> str:
    """What the provider's authorize page sends the browser back to: the app's callback path and query."""
    response = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert response.status_code == 302, response.text
    back = urlsplit(response.headers["Location"])
    assert f"{back.scheme}://{back.netloc}{back.path}" == TEST_CLIENT_CALLBACK
    return f"{back.path}?{back.query}"


def sign_in(client: FlaskClient, provider: str, next_: str = "/") -> Any:
    return client.get(at_provider(start(client, provider, next_)))


def session_cookie(client: FlaskClient) -> str | None:
    cookie = client.get_cookie("countersign_session")
    return cookie.value if cookie else None


def signed_in(client: FlaskClient) -> bool:
    with client.session_transaction() as session:
        return "sid" in session


def hidden(world: World, text: str) -> None:
    """Nothing of other/secret's evidence: its name, its commit, its ticket, its dossier's link."""
    for leak in (SECRET, world.secret_sha, world.secret_sha[:7], "OPS-7", f'/deployments/{world.secret_id}"'):
        assert leak not in text, f"{leak!r} leaked"


def hidden_but_searched(world: World, text: str, params: dict[str, str]) -> None:
    """As `hidden`; the search form shows what was searched for, and nothing else may name it."""
    for value in params.values():
        text = text.replace(f'value="{value}"', "")
    hidden(world, text)


def probe_pages(world: World, get: Any) -> None:
    """Every way a page could show other/secret: search parameters, the dossier id; each must show none of it."""
    for params in ({}, {"repo": SECRET}, {"repo": "other/*"}, {"ticket": "OPS-7"}, {"sha": world.secret_sha[:7]}):
        response = get("/", params)
        assert response.status_code in (200, 400), response.text
        hidden_but_searched(world, response.text, params)
    response = get(f"/deployments/{world.secret_id}", {})
    assert response.status_code == 404
    hidden(world, response.text)
    for path, params in (
        ("/login", {}),
        ("/logout", {}),
        ("/auth/callback", {}),
        ("/auth/callback", {"state": "x", "code": str(world.secret_id)}),
    ):
        response = get(path, params)
        assert response.status_code in (200, 400), (path, response.status_code)
        hidden(world, response.text)


def probe_api(world: World, get: Any) -> None:
    for params in ({}, {"repo": SECRET}, {"ticket": "OPS-7"}, {"sha": world.secret_sha}, {"decision": "approved"}):
        response = get("/api/v1/deployments", params)
        assert response.status_code == 200, response.text
        body = json.loads(response.text)
        links = body.pop("links")  # they repeat the search as it was asked, and nothing else
        assert all(link is None or "page=" in link for link in links.values()), links
        hidden(world, json.dumps(body))
    response = get(f"/api/v1/deployments/{world.secret_id}", {})
    assert response.status_code == 404
    hidden(world, response.text)
    for params in ({}, {"overdue": "true"}, {"overdue": "false"}):
        response = get("/api/v1/emergencies", params)
        assert response.status_code == 200 and json.loads(response.text)["emergencies"] == [], response.text
    verification = get("/api/v1/ledger/verify", {})
    assert verification.status_code == 200
    assert json.loads(verification.text) == {"ok": True, "count": 2, "signatures_checked": False, "limited": True}


def client_get(client: FlaskClient, headers: dict[str, str] | None = None) -> Any:
    return lambda path, params: client.get(path, query_string=params, headers=headers or {})


# -- who sees what ---------------------------------------------------------------------------------------------------


def test_anonymous_is_sent_to_sign_in_on_pages_and_refused_by_the_api(world: World) -> None:
    client = world.client()
    for path in ("/", f"/deployments/{world.secret_id}", f"/deployments/{world.web_id}", "/?repo=other/secret"):
        response = client.get(path)
        assert response.status_code == 302 and response.location.startswith("/login?next=")
        hidden(world, response.text)
    assert client.get("/?repo=acme/web").location == "/login?next=%2F%3Frepo%3Dacme%2Fweb"
    for path in ("/api/v1/deployments", f"/api/v1/deployments/{world.secret_id}", "/api/v1/emergencies",
                 "/api/v1/ledger/verify"):  # fmt: skip
        response = client.get(path)
        assert response.status_code == 401 and response.headers["WWW-Authenticate"] == "Bearer"
        hidden(world, response.text)
    login = client.get("/login")
    assert login.status_code == 200
    assert "Sign in with GitHub" in login.text and "Sign in with your organisation" in login.text
    assert client.get("/logout").text.count("You are not signed in") == 1
    assert client.get("/auth/callback").status_code == 400
    assert client.post("/logout").status_code == 400  # no CSRF token: refused before anything else
    assert not signed_in(client)


def test_a_github_user_of_another_installation_sees_nothing(world: World) -> None:
    world.live.github.sign_in_as("mallory")
    client = world.client()
    response = sign_in(client, "github", "/")
    assert response.status_code == 302 and response.location == "/"
    dashboard = client.get("/")
    assert dashboard.status_code == 200
    assert "Signed in as <strong>mallory</strong>" in dashboard.text and "sees 1 repository" in dashboard.text
    assert WEB not in dashboard.text
    probe_pages(world, client_get(client))
    assert client.get(f"/deployments/{world.web_id}").status_code == 404
    # The API is for tokens: a session cookie opens none of it.
    for path in ("/api/v1/deployments", f"/api/v1/deployments/{world.web_id}", "/api/v1/emergencies",
                 "/api/v1/ledger/verify"):  # fmt: skip
        assert client.get(path).status_code == 401


def test_a_github_user_sees_exactly_the_repositories_github_lets_them_read(world: World) -> None:
    world.live.github.sign_in_as("bob", "Bob Builder")
    client = world.client()
    sign_in(client, "github", f"/deployments/{world.web_id}")
    page = client.get(f"/deployments/{world.web_id}")
    assert page.status_code == 200 and WEB in page.text
    probe_pages(world, client_get(client))
    dashboard = client.get("/")
    assert f"/deployments/{world.web_id}" in dashboard.text and "sees 1 repository" in dashboard.text
    # What the app asked GitHub with the user's token, each a valid request (the contract check runs at teardown).
    paths = [r.path for r in world.live.github.recorder.requests if r.path.startswith(("/user", "/login/oauth"))]
    assert paths == [
        "/login/oauth/authorize",
        "/login/oauth/access_token",
        "/user",
        "/user/installations",
        "/user/installations/1/repositories",
    ]
    authorize = world.live.github.oauth.authorize_requests[0]
    assert authorize["code_challenge_method"] == "S256" and len(authorize["state"]) >= 20


def test_a_token_scoped_to_acme_sees_acme_only_on_every_route(world: World) -> None:
    token = create_token(world.live.services.db, "acme-auditor", datetime.now(UTC), "acme/*")
    bearer = {"Authorization": f"Bearer {token}"}
    client = world.client()
    probe_api(world, client_get(client, bearer))
    probe_pages(world, client_get(client, bearer))
    listed = client.get("/api/v1/deployments", headers=bearer).json["deployments"]
    assert [d["repository"] for d in listed] == [WEB]
    assert client.get(f"/api/v1/deployments/{world.web_id}", headers=bearer).status_code == 200
    # The same over HTTP, the token as a browser's Basic password.
    live = world.live.url
    page = requests.get(f"{live}/deployments/{world.secret_id}", auth=("any", token), timeout=10)
    assert page.status_code == 404
    searched = requests.get(f"{live}/", auth=("any", token), params={"repo": SECRET}, timeout=10)
    hidden_but_searched(world, searched.text, {"repo": SECRET})
    # An unscoped token still sees everything, as before scopes.
    everything = create_token(world.live.services.db, "admin", datetime.now(UTC))
    every = client.get("/api/v1/deployments", headers={"Authorization": f"Bearer {everything}"}).json
    assert {d["repository"] for d in every["deployments"]} == {WEB, SECRET}
    full = client.get("/api/v1/ledger/verify", headers={"Authorization": f"Bearer {everything}"}).json
    assert full["ok"] and "head_hash" in full and "spans" in full
    # The probes above looked where the evidence is: this token sees other/secret's open emergency.
    open_ = client.get("/api/v1/emergencies", headers={"Authorization": f"Bearer {everything}"}).json
    assert [e["repository"] for e in open_["emergencies"]] == [SECRET]


def test_an_oidc_auditor_allowed_one_repository_sees_that_one(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(CAROL)
    client = world.client()
    response = sign_in(client, "oidc")
    assert response.status_code == 302 and signed_in(client)
    dashboard = client.get("/")
    assert "Signed in as <strong>carol@example.com</strong>" in dashboard.text
    assert f"/deployments/{world.web_id}" in dashboard.text
    probe_pages(world, client_get(client))
    assert client.get("/api/v1/deployments").status_code == 401
    assert client.get("/api/v1/emergencies").status_code == 401


def test_an_oidc_group_allowed_everything_sees_both(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    client = world.client()
    sign_in(client, "oidc")
    dashboard = client.get("/")
    assert SECRET in dashboard.text and WEB in dashboard.text and "sees every repository" in dashboard.text
    assert client.get(f"/deployments/{world.secret_id}").status_code == 200


def test_groups_only_the_userinfo_endpoint_gives_count_for_the_same_person(world: World, oidc: OidcSimulator) -> None:
    oidc.groups_in_id_token = False  # as many providers are set up: the groups come from userinfo alone
    oidc.sign_in_as(SOX)
    client = world.client()
    assert sign_in(client, "oidc").status_code == 302 and signed_in(client)
    assert "sees every repository" in client.get("/").text
    assert any(r.path == "/userinfo" and r.status == 200 for r in oidc.recorder.requests)

    oidc.userinfo_sub = "sub-someone-else"  # a userinfo answer about another person proves nothing of this one
    other = world.client()
    refused = sign_in(other, "oidc")
    assert refused.status_code == 403 and "Not allowed" in refused.text and not signed_in(other)

    oidc.userinfo_sub = None
    oidc.faults.fail_path("/userinfo", 500)  # and one that fails leaves no groups, not a guess
    failed = world.client()
    assert sign_in(failed, "oidc").status_code == 403 and not signed_in(failed)


@pytest.mark.parametrize("person", [STRANGER, UNVERIFIED], ids=["not listed", "unverified e-mail"])
def test_someone_oidc_access_does_not_name_gets_a_403_and_no_session(
    world: World, oidc: OidcSimulator, person: OidcPerson
) -> None:
    oidc.sign_in_as(person)
    client = world.client()
    response = sign_in(client, "oidc")
    assert response.status_code == 403 and "Not allowed" in response.text
    assert not signed_in(client)
    assert client.get("/").status_code == 302


def test_a_whole_sign_in_over_http_with_one_browser(world: World) -> None:
    live = world.live
    live.github.register_oauth_client(GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, f"{live.url}/auth/callback")
    live.github.sign_in_as("bob")
    live.github.grant_read("bob", WEB)
    browser = requests.Session()
    landed = browser.get(f"{live.url}/deployments/{world.web_id}", timeout=10)  # -> /login
    assert landed.url.startswith(f"{live.url}/login?next=")
    button = browser.get(f"{live.url}/login", params={"provider": "github", "next": f"/deployments/{world.web_id}"})
    assert button.status_code == 200 and button.url == f"{live.url}/deployments/{world.web_id}"
    assert WEB in button.text and "Signed in as <strong>bob</strong>" in button.text
    cookie = next(c for c in browser.cookies if c.name == "countersign_session")
    assert cookie.has_nonstandard_attr("HttpOnly") and cookie.expires is not None
    assert browser.get(f"{live.url}/deployments/{world.secret_id}", timeout=10).status_code == 404
    assert browser.get(f"{live.url}/api/v1/deployments", timeout=10).status_code == 401


# -- attacks -----------------------------------------------------------------------------------------------------------


def test_an_oidc_sign_in_over_http_with_one_browser(world: World, oidc: OidcSimulator) -> None:
    live = world.live
    oidc.redirect_uri = f"{live.url}/auth/callback"
    oidc.sign_in_as(CAROL)
    browser = requests.Session()
    landed = browser.get(f"{live.url}/login", params={"provider": "oidc"}, timeout=10)
    assert landed.url == f"{live.url}/" and "Signed in as <strong>carol@example.com</strong>" in landed.text
    hidden_but_searched(world, browser.get(f"{live.url}/", params={"repo": SECRET}, timeout=10).text, {"repo": SECRET})
    assert browser.get(f"{live.url}/deployments/{world.secret_id}", timeout=10).status_code == 404
    assert browser.get(f"{live.url}/deployments/{world.web_id}", timeout=10).status_code == 200


def test_a_callback_url_github_does_not_know_is_refused(world: World) -> None:
    # GitHub sends the browser to the registered callback with an error, never to an unregistered URL.
    world.live.github.register_oauth_client(GITHUB_CLIENT_ID, GITHUB_CLIENT_SECRET, "http://localhost/elsewhere")
    client = world.client()
    response = requests.get(start(client, "github"), allow_redirects=False, timeout=10)
    back = urlsplit(response.headers["Location"])
    assert back.path == "/elsewhere" and parse_qs(back.query)["error"] == ["redirect_uri_mismatch"]
    refused = client.get("/auth/callback?" + back.query)
    assert refused.status_code == 403 and not signed_in(client)


def test_a_forged_or_absent_state_is_refused(world: World) -> None:
    client = world.client()
    callback = at_provider(start(client, "github"))
    query = parse_qs(urlsplit(callback).query)
    forged = client.get("/auth/callback", query_string={"code": query["code"][0], "state": "forged-state"})
    assert forged.status_code == 400 and not signed_in(client)
    absent = client.get("/auth/callback", query_string={"code": query["code"][0]})
    assert absent.status_code == 400 and not signed_in(client)
    # Another browser's flow: the state is real, but not this browser's.
    other = world.client()
    assert other.get(callback).status_code == 400 and not signed_in(other)


def test_a_replayed_code_is_refused(world: World) -> None:
    world.live.github.sign_in_as("bob")
    client = world.client()
    callback = at_provider(start(client, "github"))
    assert client.get(callback).status_code == 302 and signed_in(client)
    again = world.client()
    assert again.get(callback).status_code == 400  # its state was this other browser's, and is spent
    # The same code with a state of its own: GitHub refuses a code twice.
    fresh = world.client()
    state = parse_qs(urlsplit(start(fresh, "github")).query)["state"][0]
    code = parse_qs(urlsplit(callback).query)["code"][0]
    replayed = fresh.get("/auth/callback", query_string={"code": code, "state": state})
    assert replayed.status_code == 403 and not signed_in(fresh)


def test_a_wrong_pkce_verifier_is_refused(world: World) -> None:
    client = world.client()
    callback = at_provider(start(client, "github"))
    with client.session_transaction() as session:
        key = next(k for k in session if k.startswith("_state_github_"))
        flow = session[key]
        flow["data"]["code_verifier"] = "x" * 64
        session[key] = flow
    response = client.get(callback)
    assert response.status_code == 403 and not signed_in(client)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        ({"aud": "someone-else"}, "id token: invalid_claim: Invalid claim: 'aud'"),
        ({"aud": "someone-else", "azp": OIDC_CLIENT_ID}, "id token: invalid_claim: Invalid claim: 'aud'"),
        ({"iss": "https://evil.example"}, "id token: invalid_claim: Invalid claim: 'iss'"),
        ({"exp": 1_000_000_000}, "id token: expired_token: The token is expired"),
        ({"other_key": True}, "id token: bad_signature: "),
        ({"nonce": "not-the-nonce"}, "id token: invalid_claim: Invalid claim: 'nonce'"),
    ],
    ids=[
        "wrong audience",
        "wrong audience naming us as azp",
        "wrong issuer",
        "expired",
        "bad signature",
        "nonce mismatch",
    ],
)
def test_a_bad_id_token_is_refused(
    world: World, oidc: OidcSimulator, spoil: dict[str, Any], reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    oidc.sign_in_as(SOX)
    oidc.spoil_next_id_token(**spoil)
    client = world.client()
    response = sign_in(client, "oidc")
    assert response.status_code == 403 and "Sign-in refused" in response.text
    assert [r.reason for r in caplog.records if r.msg == "signin.refused"] == [reason]  # type: ignore[attr-defined]
    assert not signed_in(client)
    hidden(world, response.text)
    assert client.get("/").status_code == 302


def test_a_tampered_cookie_is_no_session(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    client = world.client()
    sign_in(client, "oidc")
    value = session_cookie(client)
    assert value and client.get("/").status_code == 200
    payload, _, signature = value.rpartition(".")
    spoiled = payload + "." + ("A" if signature[0] != "A" else "B") + signature[1:]
    client.set_cookie("countersign_session", spoiled, domain="localhost")
    assert client.get("/").status_code == 302
    # A cookie signed with another key, naming a session id, is no better.
    other = Flask("forger")
    other.secret_key = "f" * 48
    forged = other.session_interface.get_signing_serializer(other).dumps({"sid": "guessed"})  # type: ignore[attr-defined]
    client.set_cookie("countersign_session", forged, domain="localhost")
    assert client.get("/").status_code == 302


def test_sign_out_needs_its_csrf_token_and_ends_the_session_for_good(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    client = world.client()
    sign_in(client, "oidc")
    stolen = session_cookie(client)
    assert client.post("/logout").status_code == 400
    assert client.post("/logout", data={"csrf_token": "forged"}).status_code == 400
    assert client.get("/").status_code == 200  # still signed in
    confirm = client.get("/logout")
    assert confirm.status_code == 200 and 'action="/logout"' in confirm.text
    token = confirm.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post("/logout", data={"csrf_token": token})
    assert done.status_code == 200 and "You are signed out" in done.text
    assert client.get("/").status_code == 302
    # A copy of the cookie taken before signing out opens nothing: its session row is gone.
    assert stolen
    client.set_cookie("countersign_session", stolen, domain="localhost")
    assert client.get("/").status_code == 302


def test_an_open_redirect_after_sign_in_goes_to_the_dashboard(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    for target in ("https://evil.example/", "//evil.example/", "/\\evil.example"):
        client = world.client()
        response = sign_in(client, "oidc", target)
        assert response.status_code == 302 and response.location == "/"


def test_no_secret_reaches_the_logs_or_the_pages(
    world: World, oidc: OidcSimulator, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.live.github.sign_in_as("bob")
    oidc.sign_in_as(SOX)
    pages = []
    for provider in ("github", "oidc"):
        client = world.client()
        authorize = start(client, provider)
        callback = at_provider(authorize)
        pages += [client.get(callback).text, client.get("/").text, client.get("/logout").text]
        spoiled = world.client()  # and a refused one
        pages.append(spoiled.get(at_provider(start(spoiled, provider)) + "x").text)
    oauth = world.live.github.oauth
    assert oauth is not None
    secrets = [GITHUB_CLIENT_SECRET, OIDC_CLIENT_SECRET, SECRET_KEY, *oauth.user_tokens, *oauth.codes]
    secrets += [*oidc.codes, *oidc.access_tokens]
    logged = caplog.text + json.dumps([r.__dict__ for r in caplog.records], default=str)
    for secret in secrets:
        assert secret not in logged, "a secret was logged"
        assert all(secret not in page for page in pages), "a secret was shown"
    assert any(r.msg == "signin.succeeded" for r in caplog.records)


# -- scoped tokens and their last use ---------------------------------------------------------------------------------


def test_a_tokens_last_use_is_recorded_at_most_once_a_minute(database_url: str) -> None:
    db = Database(database_url)
    db.upgrade()
    start_ = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
    token = create_token(db, "ci", start_, "acme/*, other/web")
    assert list_tokens(db)[0].last_used_at is None
    for seconds, recorded in ((0, 0), (30, 0), (59, 0), (60, 60), (61, 60), (200, 200)):
        viewer = authenticate(db, token, start_ + timedelta(seconds=seconds))
        assert viewer is not None and viewer.scope.patterns == ("acme/*", "other/web")
        assert list_tokens(db)[0].last_used_at == start_ + timedelta(seconds=recorded)
    assert authenticate(db, token) is not None  # no clock, no write
    db.dispose()


def test_a_sign_in_that_github_cannot_answer_makes_no_session(world: World) -> None:
    world.live.github.sign_in_as("bob")
    world.live.github.faults.answer("/user/installations", 502)
    client = world.client()
    response = sign_in(client, "github")
    assert response.status_code == 502 and not signed_in(client)


def test_signing_in_twice_asks_github_for_the_repositories_once(world: World) -> None:
    world.live.github.sign_in_as("bob")
    for _ in range(2):
        client = world.client()
        sign_in(client, "github")
        assert signed_in(client)
    listed = [r for r in world.live.github.recorder.requests if r.path == "/user/installations"]
    assert len(listed) == 1


# -- where GitHub's web flow is ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("api_url", "web"),
    [
        ("https://api.github.com", "https://github.com"),
        ("https://api.github.com/", "https://github.com"),
        ("https://github.example.com/api/v3", "https://github.example.com"),
        ("https://example.com/github/api/v3/", "https://example.com/github"),
        ("https://api.octocorp.ghe.com", "https://octocorp.ghe.com"),
        ("http://127.0.0.1:8123", "http://127.0.0.1:8123"),  # the simulator serves both
    ],
)
def test_the_oauth_web_flow_url_follows_the_configured_github(api_url: str, web: str) -> None:
    assert oauth_web_base(api_url) == web


# -- the cookie --------------------------------------------------------------------------------------------------------


def test_the_cookie_is_secure_httponly_and_lax_outside_the_demo(settings: Settings) -> None:
    Database(settings.database_url).upgrade()
    assert settings.signin is not None
    app = create_app(
        replace(settings, signin=replace(settings.signin, cookie_secure=True)), processor=InlineProcessor()
    )
    response = app.test_client().get("/login?provider=github")
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith("countersign_session=")
    assert "; Secure" in cookie and "; HttpOnly" in cookie and "; SameSite=Lax" in cookie
    app.extensions["countersign"].db.dispose()


def test_the_cookie_holds_a_session_id_and_no_provider_token(world: World) -> None:
    world.live.github.sign_in_as("bob")
    client = world.client()
    sign_in(client, "github")
    client.get("/")  # the page's sign-out form adds its CSRF token
    value = session_cookie(client)
    assert value
    serializer = world.app.session_interface.get_signing_serializer(world.app)  # type: ignore[attr-defined]
    content = serializer.loads(value)
    assert set(content) == {"sid", "csrf_token", "_permanent"}
    oauth = world.live.github.oauth
    assert oauth is not None and oauth.user_tokens
    assert not any(token in json.dumps(content) for token in oauth.user_tokens)
    with world.live.services.db.session() as session:  # nor in the database: the row holds what it may see
        (row,) = session.scalars(select(ConsoleSession)).all()
        assert row.repositories == json.dumps([WEB]) and row.subject == "bob"
        assert row.id_sha256 != content["sid"] and row.expires_at - row.created_at == timedelta(hours=8)


def test_an_expired_session_is_no_session(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    client = world.client()
    sign_in(client, "oidc")
    assert client.get("/").status_code == 200
    with world.live.services.db.session() as session:
        session.execute(update(ConsoleSession).values(expires_at=datetime.now(UTC) - timedelta(seconds=1)))
    assert client.get("/").status_code == 302


def test_a_logged_callback_url_loses_its_code() -> None:
    assert Redactor().text("GET /auth/callback?code=4f2a9c1e77&state=s1") == (
        "GET /auth/callback?code=[redacted]&state=s1"
    )


def test_signing_in_again_ends_the_session_the_browser_held(world: World, oidc: OidcSimulator) -> None:
    oidc.sign_in_as(SOX)
    client = world.client()
    sign_in(client, "oidc")
    first = session_cookie(client)
    sign_in(client, "oidc")
    assert client.get("/").status_code == 200
    with world.live.services.db.session() as session:
        assert len(session.scalars(select(ConsoleSession)).all()) == 1
    assert first
    client.set_cookie("countersign_session", first, domain="localhost")
    assert client.get("/").status_code == 302


def test_every_page_of_the_users_repositories_is_read(world: World) -> None:
    github = world.live.github
    many = [f"acme/service-{n:03}" for n in range(130)]
    for name in many:
        github.add_repository(name, installation_id=1)
    github.grant_read("bob", *many)
    github.sign_in_as("bob")
    client = world.client()
    sign_in(client, "github")
    assert "sees 131 repositories" in client.get("/").text
    pages = [r.query.get("page") for r in github.recorder.requests if r.path == "/user/installations/1/repositories"]
    assert pages == [None, ["2"]]
    with world.live.services.db.session() as session:
        (row,) = session.scalars(select(ConsoleSession)).all()
        assert set(json.loads(row.repositories)) == {WEB, *many}
