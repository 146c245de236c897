"""Shared fixtures: simulated GitHub and Jira over HTTP, a live Countersign, a clean database."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from gating.app import create_app
from gating.db import Database
from gating.services import Services
from gating.settings import Settings
from jira_client.gateway import JiraGateway
from simulators.github import GitHubSimulator, Person, generate_app_key
from simulators.http import ServerHandle, serve
from simulators.jira import JiraSimulator

APP_ID = 4242
GITHUB_SECRET = "It's a Secret to Everybody"
JIRA_SECRET = "jira-webhook-secret"

ALICE = Person(name="Alice Author", email="alice@example.com", login="alice")
BOB = Person(name="Bob Builder", email="bob@example.com", login="bob")
CAROL = Person(name="Carol Approver", email="carol@example.com", login="carol")

# The variables of the GitHub App, Jira, the database and the ledger key: where each list of variables the tests
# go through starts.
CORE_VARIABLES = (
    "GITHUB_APP_ID",
    "GITHUB_APP_PRIVATE_KEY",
    "GITHUB_APP_PRIVATE_KEY_PATH",
    "GITHUB_WEBHOOK_SECRET",
    "GITHUB_API_URL",
    "JIRA_URL",
    "JIRA_USER",
    "JIRA_TOKEN",
    "JIRA_WEBHOOK_SECRET",
    "DATABASE_URL",
    "COUNTERSIGN_SIGNING_KEY_PATH",
)

# The config a typical repository in these tests carries: people mapped to Jira accounts.
IDENTITIES_CONFIG = """\
jira:
  projects: [PAY, OPS]
identities:
  alice: acc-alice
  bob: acc-bob
  carol: acc-carol
"""


def wait_for(predicate: Callable[[], Any], timeout: float = 15.0, message: str = "condition") -> Any:
    """Poll until `predicate` returns something truthy; evaluations run after the webhook is answered."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


@pytest.fixture(scope="session")
def app_keys() -> tuple[str, str]:
    return generate_app_key()


@pytest.fixture(scope="session")
def github_spec() -> dict[str, Any]:
    from contract import load_github_spec

    return load_github_spec()


@pytest.fixture
def github(app_keys: tuple[str, str], github_spec: dict[str, Any]) -> Iterator[GitHubSimulator]:
    """Simulated GitHub; after the test, every request the app sent it must be valid under GitHub's OpenAPI."""
    from contract import validate_request

    sim = GitHubSimulator(app_id=APP_ID, app_public_key_pem=app_keys[1], webhook_secret=GITHUB_SECRET)
    sim.start()
    yield sim
    sim.stop()
    problems = [f"{r.method} {r.path}: {p}" for r in sim.recorder.requests for p in validate_request(github_spec, r)]
    assert not problems, "requests GitHub's OpenAPI description does not allow:\n" + "\n".join(problems)


@pytest.fixture
def jira() -> Iterator[JiraSimulator]:
    sim = JiraSimulator(deployment_type="Cloud", webhook_secret=JIRA_SECRET)
    sim.start()
    for account, name, email in (
        ("acc-alice", "Alice Author", "alice@example.com"),
        ("acc-bob", "Bob Builder", "bob@example.com"),
        ("acc-carol", "Carol Approver", "carol@example.com"),
    ):
        sim.add_user(account, name, email=email)
    yield sim
    sim.stop()


@pytest.fixture
def database_url(tmp_path: Any) -> Iterator[str]:
    """SQLite per test; with COUNTERSIGN_TEST_DB=postgresql, the TEST_DATABASE_URL database, emptied."""
    if os.environ.get("COUNTERSIGN_TEST_DB") == "postgresql":
        url = os.environ.get("TEST_DATABASE_URL")
        if not url:
            pytest.fail("COUNTERSIGN_TEST_DB=postgresql needs TEST_DATABASE_URL")
        engine = create_engine(url)
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
        engine.dispose()
        yield url
    else:
        yield f"sqlite:///{tmp_path / 'countersign.sqlite3'}"


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    """The test's database, migrated."""
    database = Database(database_url)
    database.upgrade()
    yield database
    database.dispose()


@pytest.fixture
def settings(app_keys: tuple[str, str], github: GitHubSimulator, jira: JiraSimulator, database_url: str) -> Settings:
    return Settings(
        github_app_id=str(APP_ID),
        github_private_key=app_keys[0],
        github_webhook_secret=GITHUB_SECRET,
        github_api_url=github.url,
        jira_url=jira.url,
        jira_user="countersign@example.com",
        jira_token="jira-api-token",
        jira_webhook_secret=JIRA_SECRET,
        database_url=database_url,
        jira_timeout=2.0,
        github_timeout=5.0,
        deploy_retry_seconds=2.0,
        github_retry_seconds=2.0,
        # A failed job runs once more, at once: retried, yet a test of a failure waits for two runs, not five.
        job_attempts=2,
        job_retry_backoff=0,
    )


@dataclass
class LiveApp:
    url: str
    services: Services
    github: GitHubSimulator
    jira: JiraSimulator

    @property
    def github_webhook(self) -> str:
        return f"{self.url}/webhooks/github"

    def deliver(self, event: str, payload: dict[str, Any], **kwargs: Any) -> Any:
        return self.github.deliver(event, payload, url=self.github_webhook, **kwargs)

    def settle(self, timeout: float = 15.0) -> None:
        """Wait until every accepted delivery has been processed."""
        wait_for(self.services.processor.idle, timeout, "background evaluations to finish")  # type: ignore[attr-defined]


@pytest.fixture
def live_app(settings: Settings, github: GitHubSimulator, jira: JiraSimulator) -> Iterator[LiveApp]:
    """Countersign served over HTTP, wired to the simulators both ways (API calls and webhooks)."""
    Database(settings.database_url).upgrade()
    gateway = JiraGateway(
        settings.jira_url, user=settings.jira_user, token=settings.jira_token, timeout=2.0, retries=2, backoff=0.05
    )
    app = create_app(settings, jira=gateway)
    server: ServerHandle = serve(app)
    github.webhook_url = f"{server.url}/webhooks/github"
    jira.webhook_url = f"{server.url}/webhooks/jira"
    services: Services = app.extensions["countersign"]
    # The periodic jobs' run at start (delivery recovery, the ledger's verification) is over before a test acts:
    # what a test then sees of the ledger's verification is its own doing.
    assert services.scheduler is None or services.scheduler.started.wait(60), "the periodic jobs' start"
    yield LiveApp(server.url, services, github, jira)
    services.processor.shutdown()
    server.stop()
    services.db.dispose()


@pytest.fixture
def repo(github: GitHubSimulator) -> str:
    """A repository with the app installed and a policy that maps everyone to Jira."""
    name = f"acme/payments-{uuid.uuid4().hex[:6]}"
    github.add_repository(name)
    github.put_file(name, ".github/countersign.yml", IDENTITIES_CONFIG)
    return name


def completed_check(github: GitHubSimulator, repository: str, sha: str, name: str = "Countersign") -> dict[str, Any]:
    """The completed check run on `sha`, once there is one."""

    def find() -> dict[str, Any] | None:
        runs = [r for r in github.check_runs(repository, sha) if r["name"] == name and r["status"] == "completed"]
        return runs[-1] if runs else None

    return wait_for(find, message=f"a completed {name} check run on {sha[:7]}")
