"""Jira hangs while 50 pull requests arrive at once: every webhook is still answered 202 at once, gunicorn never
times a worker out (no request thread waits on Jira), and every PR gets its completed check once Jira answers.

Countersign runs under real gunicorn with a worker timeout shorter than Jira's hang: a worker whose main
loop were stuck behind Jira would be killed and logged as WORKER TIMEOUT.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
import requests
from conftest import ALICE, GITHUB_SECRET, JIRA_SECRET, wait_for
from test_two_processes import free_port

from gating.db import Database
from gating.demo import app_environment, launch_app
from simulators.github import GitHubSimulator
from simulators.jira import JiraSimulator

PULL_REQUESTS = 50
GUNICORN_TIMEOUT = 4  # seconds; Jira hangs for longer than this
HANG = 2 * GUNICORN_TIMEOUT + 1  # how long Jira is held
JIRA_TIMEOUT = 60  # the app waits for Jira longer than Jira hangs, so that it gets the real answers


@pytest.fixture
def served(
    app_keys: tuple[str, str], github: GitHubSimulator, jira: JiraSimulator, database_url: str, tmp_path: Path
) -> Iterator[tuple[str, Path]]:
    Database(database_url).upgrade()
    env = app_environment(
        github,
        jira,
        app_keys[0],
        GITHUB_SECRET,
        JIRA_SECRET,
        database_url,
        JIRA_TIMEOUT=str(JIRA_TIMEOUT),
        GUNICORN_TIMEOUT=str(GUNICORN_TIMEOUT),
        # 50 PRs make 100 writes: at GitHub's 80 a minute the last ones would wait for the next minute.
        COUNTERSIGN_GITHUB_WRITES_PER_MINUTE="200",
        LOG_LEVEL="INFO",
    )
    port = free_port()
    log = tmp_path / "gunicorn.log"
    with log.open("w") as stderr:
        server = launch_app(port, env, threads=8, stderr=stderr)
        url = f"http://127.0.0.1:{port}"
        try:

            def ready() -> bool:
                if server.poll() is not None:
                    raise AssertionError(f"the app exited with status {server.returncode}: {log.read_text()}")
                try:
                    return requests.get(f"{url}/readyz", timeout=5).ok
                except requests.RequestException:
                    return False

            wait_for(ready, timeout=60, message="the app to be ready")
            yield url, log
        finally:
            jira.faults.reset()  # release whatever is still held, so the app can stop
            server.terminate()
            server.wait(timeout=60)


def test_fifty_pull_requests_while_jira_hangs_are_all_acknowledged_and_all_checked(
    served: tuple[str, Path], github: GitHubSimulator, jira: JiraSimulator
) -> None:
    url, log = served
    github.webhook_url = None  # delivered by hand, all at once
    repo = "acme/payments"
    github.add_repository(repo)
    github.put_file(repo, ".github/countersign.yml", "identities:\n  alice: acc-alice\n  bob: acc-bob\n")
    jira.add_ticket("PAY-1", status="In Review")
    jira.transition("PAY-1", "Approved", by="acc-bob")
    payloads: list[dict[str, Any]] = []
    heads: list[str] = []
    for n in range(PULL_REQUESTS):
        heads.append(github.add_commit(repo, f"feature/{n}", f"PAY-1 part {n}", author=ALICE))
        number = github.open_pull_request(repo, head=f"feature/{n}", title=f"PAY-1: part {n}", author="alice")
        payloads.append(github.pull_request_payload(repo, number, "opened"))

    held = jira.faults.hold("/rest/", times=100_000, timeout=120)  # every Jira request waits until released
    with ThreadPoolExecutor(max_workers=PULL_REQUESTS) as pool:
        answers = list(
            pool.map(lambda p: github.deliver("pull_request", p, url=f"{url}/webhooks/github").status_code, payloads)
        )
    assert answers == [202] * PULL_REQUESTS
    wait_for(held.caught.is_set, timeout=60, message="the evaluations to reach Jira")
    # Jira hangs past gunicorn's worker timeout; webhooks are still answered meanwhile.
    time.sleep(HANG)
    late = github.deliver("pull_request", payloads[0], url=f"{url}/webhooks/github")
    assert late.status_code == 202  # a redelivery, answered while Jira still hangs
    held.release()

    def completed() -> bool:
        runs = [github.check_runs(repo, sha) for sha in heads]
        return all(r and all(run["status"] == "completed" for run in r) for r in runs)

    wait_for(completed, timeout=240, message="every PR's check run to complete")
    conclusions = {run["conclusion"] for sha in heads for run in github.check_runs(repo, sha)}
    assert conclusions == {"success"}
    text = log.read_text()
    assert "WORKER TIMEOUT" not in text
    assert text.count("Booting worker") == 1  # the one worker was never replaced
