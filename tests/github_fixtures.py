"""Helpers for tests that run the GitHub simulator on 127.0.0.1 and read it with the real PyGithub."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from github import Auth, Github, GithubIntegration
from werkzeug.wrappers import Request, Response

from simulators.github import GitHubSimulator, Person, generate_app_key
from simulators.http import ServerHandle, serve
from tests.contract import GITHUB_SPEC_PATH, load_github_spec, validate_request

APP_ID = 4242
WEBHOOK_SECRET = "It's a Secret to Everybody"
REPO = "acme/payments"
FIXTURES = Path(__file__).parent / "fixtures" / "github"

ALICE = Person("Alice Author", "alice@example.com", "alice")
BOB = Person("Bob Reviewer", "bob@example.com", "bob")
OUTSIDER = Person("Someone", "someone@example.net")  # an e-mail that belongs to no GitHub user


@functools.cache
def app_key() -> tuple[str, str]:
    """One RSA key pair per test run: generating 2048-bit keys is slow enough to share."""
    return generate_app_key()


@contextmanager
def running_github(**kwargs: Any) -> Iterator[GitHubSimulator]:
    """A started simulator for app APP_ID; keyword arguments go to GitHubSimulator."""
    options: dict[str, Any] = {"app_id": APP_ID, "app_public_key_pem": app_key()[1], "webhook_secret": WEBHOOK_SECRET}
    options.update(kwargs)
    sim = GitHubSimulator(**options)
    sim.start()
    try:
        yield sim
    finally:
        sim.faults.reset()
        sim.stop()


def integration(sim: GitHubSimulator) -> GithubIntegration:
    """PyGithub acting as the app itself (JWT auth)."""
    assert sim.url is not None
    return GithubIntegration(auth=Auth.AppAuth(APP_ID, app_key()[0]), base_url=sim.url + "/")


def installation_client(sim: GitHubSimulator, installation_id: int = 1) -> Github:
    """PyGithub acting as an installation, with the throttling sleeps PyGithub adds by default turned off."""
    assert sim.url is not None
    token = integration(sim).get_access_token(installation_id).token
    return Github(
        base_url=sim.url + "/",
        auth=Auth.Token(token),
        seconds_between_requests=0,
        seconds_between_writes=0,
        retry=0,
    )


def spec_available() -> bool:
    return GITHUB_SPEC_PATH.exists()


def contract_problems(sim: GitHubSimulator) -> list[str]:
    """Every request the simulator received, checked against GitHub's official REST description."""
    spec = load_github_spec()
    return [problem for req in sim.recorder.requests for problem in validate_request(spec, req)]


def load_webhooks_spec() -> dict[str, Any]:
    with open(FIXTURES / "webhooks-openapi-subset.json", encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


def load_example(name: str) -> dict[str, Any]:
    with open(FIXTURES / "webhooks" / f"{name}.json", encoding="utf-8") as handle:
        return json.load(handle)  # type: ignore[no-any-return]


class WebhookReceiver:
    """A tiny HTTP endpoint that keeps every delivery it gets (lower-cased headers and raw body)."""

    def __init__(self, status: int = 202) -> None:
        self.status = status
        self.deliveries: list[tuple[dict[str, str], bytes]] = []
        self._handle: ServerHandle = serve(self._app)
        self.url = self._handle.url + "/webhooks/github"

    def _app(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        request = Request(environ)
        self.deliveries.append(({k.lower(): v for k, v in request.headers.items()}, request.get_data()))
        return Response("", status=self.status)(environ, start_response)

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        return [(headers["x-github-event"], json.loads(body)) for headers, body in self.deliveries]

    def stop(self) -> None:
        self._handle.stop()


def a_pull_request_with_commits(sim: GitHubSimulator, count: int, *, branch: str = "feature") -> int:
    """A repository with a PR whose branch has `count` commits by ALICE."""
    sim.add_repository(REPO)
    for i in range(count):
        sim.add_commit(REPO, branch, f"PAY-{i + 1}: change {i + 1}", author=ALICE)
    return sim.open_pull_request(REPO, head=branch, title="PAY-1: a long change", author="alice")
