"""Installation tokens shared through the database: two app instances on one database mint one token per
installation, replace an expiring or revoked one once, and keep it encrypted with a key from the app's private key.

Each instance is the whole app served over HTTP, with its own process cache and its own claim holder, as two
processes are; deliveries go by hand to one or the other. The simulated GitHub counts the tokens it issued.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from conftest import ALICE, completed_check, wait_for
from cryptography.fernet import Fernet
from sqlalchemy import update

from gating.app import create_app
from gating.db import Database
from gating.installation_tokens import SqlTokenStore, token_key
from gating.models import InstallationToken
from gating.services import Services, utcnow
from gating.settings import Settings
from jira_client.gateway import JiraGateway
from simulators.github import GitHubSimulator, generate_app_key
from simulators.http import ServerHandle, serve
from simulators.jira import JiraSimulator

INSTALLATION = 1  # the simulator's default installation for a repository


@dataclass
class Instance:
    url: str
    services: Services

    @property
    def github_webhook(self) -> str:
        return f"{self.url}/webhooks/github"


@dataclass
class TwoApps:
    a: Instance
    b: Instance
    github: GitHubSimulator
    jira: JiraSimulator
    settings: Settings
    start: Any

    def pr(self, repo: str, branch: str) -> tuple[dict[str, Any], str]:
        """A PR whose ticket is approved, and the `opened` delivery GitHub would send for it."""
        sha = self.github.add_commit(repo, branch, f"PAY-1 {branch}", author=ALICE)
        number = self.github.open_pull_request(repo, head=branch, title=f"PAY-1: {branch}", author="alice")
        return self.github.pull_request_payload(repo, number, "opened"), sha

    def deliver(self, instance: Instance, payload: dict[str, Any]) -> None:
        response = self.github.deliver("pull_request", payload, url=instance.github_webhook)
        assert response.status_code == 202, response.text

    def row(self) -> InstallationToken | None:
        with self.a.services.db.session() as session:
            row = session.get(InstallationToken, INSTALLATION)
            if row is not None:
                session.expunge(row)
            return row

    def shared_token(self) -> str | None:
        found = SqlTokenStore(self.a.services.db, self.settings.github_private_key, utcnow).load(INSTALLATION)
        return found[0] if found else None


@pytest.fixture
def two_apps(settings: Settings, github: GitHubSimulator, jira: JiraSimulator) -> Iterator[TwoApps]:
    # Both instances' workers take jobs from the one database: with one merge job at a time each, a job held
    # in A leaves the next delivery to B, as a test that delivers it to B means.
    settings = replace(settings, workers=1)
    Database(settings.database_url).upgrade()
    servers: list[ServerHandle] = []
    started: list[Services] = []

    def start() -> Instance:
        gateway = JiraGateway(settings.jira_url, user=settings.jira_user, token=settings.jira_token, timeout=2.0)
        app = create_app(settings, jira=gateway)
        server = serve(app)
        servers.append(server)
        started.append(app.extensions["countersign"])
        return Instance(server.url, app.extensions["countersign"])

    github.webhook_url = None  # each delivery goes to the instance a test chooses
    jira.add_ticket("PAY-1", status="In Review")
    jira.transition("PAY-1", "Approved", by="acc-bob")
    try:
        yield TwoApps(start(), start(), github, jira, settings, start)
    finally:
        github.faults.reset()
        for services in started:
            services.processor.shutdown()
        for server in servers:
            server.stop()
        for services in started:
            services.db.dispose()


def test_two_instances_missing_at_once_mint_one_token(
    two_apps: TwoApps, repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="gating.github_api.app")
    first, first_sha = two_apps.pr(repo, "one")
    second, second_sha = two_apps.pr(repo, "two")
    # A's mint is held at GitHub until B has found A's claim and is waiting for A's token.
    held = two_apps.github.faults.hold("/access_tokens", method="POST")
    two_apps.deliver(two_apps.a, first)
    assert held.caught.wait(15)
    two_apps.deliver(two_apps.b, second)
    wait_for(lambda: any(r.msg == "github.token_waiting" for r in caplog.records), message="B to wait for A's token")
    held.release()

    assert completed_check(two_apps.github, repo, first_sha)["conclusion"] == "success"
    assert completed_check(two_apps.github, repo, second_sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 1
    row = two_apps.row()
    assert row is not None and row.claimed_until is None  # the claim ended with the token


def test_the_stored_token_is_encrypted_with_a_key_from_the_app_key(two_apps: TwoApps, repo: str) -> None:
    payload, sha = two_apps.pr(repo, "one")
    two_apps.deliver(two_apps.a, payload)
    completed_check(two_apps.github, repo, sha)
    token = two_apps.a.services.github.installation_token(INSTALLATION)  # from A's cache: no second mint

    row = two_apps.row()
    assert row is not None and row.token_ciphertext and row.expires_at
    assert token not in row.token_ciphertext
    assert Fernet(token_key(two_apps.settings.github_private_key)).decrypt(row.token_ciphertext.encode()) == (
        token.encode()
    )
    assert two_apps.github.tokens_minted(INSTALLATION) == 1


def test_a_row_encrypted_with_another_app_key_is_ignored_and_replaced(two_apps: TwoApps, repo: str) -> None:
    other_key = generate_app_key()[0]
    SqlTokenStore(two_apps.a.services.db, other_key, utcnow).save(
        INSTALLATION, "ghs_from_before_the_key_rotation", utcnow() + timedelta(minutes=50)
    )
    payload, sha = two_apps.pr(repo, "one")
    two_apps.deliver(two_apps.a, payload)

    assert completed_check(two_apps.github, repo, sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 1
    shared = two_apps.shared_token()
    assert shared is not None and shared == two_apps.a.services.github.installation_token(INSTALLATION)
    assert SqlTokenStore(two_apps.a.services.db, other_key, utcnow).load(INSTALLATION) is None


def test_a_token_expiring_soon_is_replaced_once(two_apps: TwoApps, repo: str) -> None:
    first, first_sha = two_apps.pr(repo, "one")
    two_apps.deliver(two_apps.a, first)
    completed_check(two_apps.github, repo, first_sha)
    old = two_apps.shared_token()
    # Fifty-seven minutes later: the row says the token ends within the margin, and neither process caches it any
    # longer (each cache ends at that margin too).
    with two_apps.a.services.db.session() as session:
        session.execute(update(InstallationToken).values(expires_at=utcnow() + timedelta(minutes=3)))
    for instance in (two_apps.a, two_apps.b):
        instance.services.github.forget_token(INSTALLATION)

    second, second_sha = two_apps.pr(repo, "two")
    third, third_sha = two_apps.pr(repo, "three")
    both = [
        threading.Thread(target=two_apps.deliver, args=(i, p)) for i, p in ((two_apps.a, second), (two_apps.b, third))
    ]
    for thread in both:
        thread.start()
    for thread in both:
        thread.join()

    assert completed_check(two_apps.github, repo, second_sha)["conclusion"] == "success"
    assert completed_check(two_apps.github, repo, third_sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 2
    row = two_apps.row()
    assert row is not None and row.expires_at is not None and row.expires_at > utcnow() + timedelta(minutes=50)
    assert two_apps.shared_token() not in (None, old)


def test_a_revoked_token_is_replaced_once_and_not_reused(two_apps: TwoApps, repo: str) -> None:
    first, first_sha = two_apps.pr(repo, "one")
    two_apps.deliver(two_apps.a, first)
    completed_check(two_apps.github, repo, first_sha)
    revoked = two_apps.shared_token()
    two_apps.github.expire_tokens()  # GitHub now answers 401 to it

    # A has it cached; B reads it from the row: both are refused, and one new token serves them.
    second, second_sha = two_apps.pr(repo, "two")
    third, third_sha = two_apps.pr(repo, "three")
    two_apps.deliver(two_apps.a, second)
    two_apps.deliver(two_apps.b, third)
    assert completed_check(two_apps.github, repo, second_sha)["conclusion"] == "success"
    assert completed_check(two_apps.github, repo, third_sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 2
    fresh = two_apps.shared_token()
    assert fresh not in (None, revoked)

    # A third instance, with nothing cached, takes the new token from the row: the revoked one is gone.
    c = two_apps.start()
    fourth, fourth_sha = two_apps.pr(repo, "four")
    two_apps.deliver(c, fourth)
    assert completed_check(two_apps.github, repo, fourth_sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 2
    assert c.services.github.installation_token(INSTALLATION) == fresh


def test_a_claim_left_by_a_process_that_died_is_waited_out_then_minted_once(two_apps: TwoApps, repo: str) -> None:
    with two_apps.a.services.db.session() as session:
        session.add(
            InstallationToken(
                installation_id=INSTALLATION, claimed_by="gone", claimed_until=datetime.now(UTC) + timedelta(hours=1)
            )
        )
    two_apps.a.services.github.token_wait_seconds = 0.5  # not the default's half a minute
    payload, sha = two_apps.pr(repo, "one")
    two_apps.deliver(two_apps.a, payload)

    assert completed_check(two_apps.github, repo, sha)["conclusion"] == "success"
    assert two_apps.github.tokens_minted(INSTALLATION) == 1
    row = two_apps.row()
    assert row is not None and row.claimed_until is None and two_apps.shared_token() is not None


class BrokenStore:
    """A token store whose database is down: every call fails, with the token in the error, as a driver might."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def _fail(self, name: str, *args: Any) -> Any:
        self.calls.append(name)
        raise RuntimeError(f"database down while running {name}{args}")

    def load(self, installation_id: int) -> tuple[str, datetime] | None:
        return self._fail("load", installation_id)  # type: ignore[no-any-return]

    def claim(self, installation_id: int, lease_seconds: float) -> bool:
        return self._fail("claim", installation_id, lease_seconds)  # type: ignore[no-any-return]

    def save(self, installation_id: int, token: str, expires_at: datetime) -> None:
        self._fail("save", installation_id, token, expires_at)

    def release(self, installation_id: int) -> None:
        self._fail("release", installation_id)

    def discard(self, installation_id: int, token: str) -> None:
        self._fail("discard", installation_id, token)


def test_a_failing_token_store_costs_a_mint_not_the_gate(
    settings: Settings, github: GitHubSimulator, repo: str, caplog: pytest.LogCaptureFixture
) -> None:
    from gating.github_api import GitHubApp

    caplog.set_level(logging.INFO)
    store = BrokenStore()
    app = GitHubApp(settings.github_app_id, settings.github_private_key, settings.github_api_url, tokens=store)

    token = app.installation_token(INSTALLATION)

    assert github.tokens_minted(INSTALLATION) == 1
    assert app.installation_token(INSTALLATION) == token  # cached in the process as before
    # The second look is the one after every claim (a token may have been shared in between).
    assert store.calls == ["load", "claim", "load", "save"]
    # Only the error's type is logged: the driver's message quoted the token.
    assert [r.__dict__.get("error") for r in caplog.records if r.msg == "github.token_store_failed"] == [
        "RuntimeError"
    ] * 4
    assert not any(token in r.getMessage() or token in str(r.__dict__) for r in caplog.records)


def test_the_store_claims_once_and_discards_only_the_token_refused(
    database_url: str, app_keys: tuple[str, str]
) -> None:
    db = Database(database_url)
    db.upgrade()
    moment = [datetime(2026, 1, 1, 12, tzinfo=UTC)]
    one, other = (SqlTokenStore(db, app_keys[0], lambda: moment[0]) for _ in range(2))
    try:
        assert one.load(INSTALLATION) is None
        assert one.claim(INSTALLATION, 30) and not other.claim(INSTALLATION, 30)
        other.release(INSTALLATION)  # not its claim: it stays
        assert not other.claim(INSTALLATION, 30)
        moment[0] += timedelta(seconds=31)  # the claimer died: its claim has lapsed
        assert other.claim(INSTALLATION, 30)

        expires = moment[0] + timedelta(hours=1)
        other.save(INSTALLATION, "ghs_new", expires)
        assert one.load(INSTALLATION) == ("ghs_new", expires)
        assert one.claim(INSTALLATION, 30)  # saving ended the claim
        one.release(INSTALLATION)

        one.discard(INSTALLATION, "ghs_old")  # refused with an older token: the newer one stays
        assert other.load(INSTALLATION) == ("ghs_new", expires)
        one.discard(INSTALLATION, "ghs_new")
        assert other.load(INSTALLATION) is None
    finally:
        db.dispose()
