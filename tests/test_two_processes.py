"""Two Countersign processes on one PostgreSQL database, as deployed: one check run per head, the newest verdict shown.

Each process is gunicorn serving the app, as `countersign demo` starts it; the simulators run in the
test. Deliveries are sent by hand to one process or the other, and the simulated GitHub holds or
lines up requests so that the two evaluations meet where they used to collide.
"""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from conftest import ALICE, APP_ID, GITHUB_SECRET, JIRA_SECRET, completed_check, wait_for
from sqlalchemy import create_engine, text

from gating.db import Database
from gating.demo import app_environment, launch_app
from gating.intake.deliveries import DeliveryStore
from gating.services import utcnow
from simulators.github import GitHubSimulator
from simulators.jira import JiraSimulator

pytestmark = pytest.mark.postgres

COMPLETION = {"method": "PATCH", "when": lambda body: body.get("status") == "completed"}


def wait_ready(process: Process) -> None:
    """Until /readyz answers 200; a slow answer while gunicorn boots is waited out, not an error."""

    def ready() -> bool:
        if process.server.poll() is not None:
            raise AssertionError(f"the app exited with status {process.server.returncode}: see its log")
        try:
            return requests.get(f"{process.url}/readyz", timeout=5).ok
        except requests.RequestException:
            return False

    wait_for(ready, timeout=60, message=f"the app at {process.url} to be ready")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Process:
    url: str
    server: subprocess.Popen[bytes]

    @property
    def github_webhook(self) -> str:
        return f"{self.url}/webhooks/github"

    @property
    def jira_webhook(self) -> str:
        return f"{self.url}/webhooks/jira"


@dataclass
class TwoProcesses:
    a: Process
    b: Process
    github: GitHubSimulator
    jira: JiraSimulator
    database_url: str

    def deliver(self, process: Process, event: str, payload: dict[str, Any]) -> str:
        response = self.github.deliver(event, payload, url=process.github_webhook)
        assert response.status_code == 202, response.text
        return str(response.json()["delivery"])

    def finished(self, *deliveries: str) -> list[str]:
        """Wait until every delivery is done with (completed or failed); their statuses."""
        store = DeliveryStore(Database(self.database_url), utcnow)
        try:

            def statuses() -> list[str] | None:
                found = [store.status(d) or "" for d in deliveries]
                return found if all(s in ("completed", "failed") for s in found) else None

            return wait_for(statuses, timeout=30, message=f"deliveries {deliveries} to finish")  # type: ignore[no-any-return]
        finally:
            store.db.dispose()


@pytest.fixture
def two(
    app_keys: tuple[str, str], github: GitHubSimulator, jira: JiraSimulator, database_url: str
) -> Iterator[TwoProcesses]:
    if os.environ.get("COUNTERSIGN_TEST_DB") != "postgresql":
        pytest.skip("two processes share a database on PostgreSQL: COUNTERSIGN_TEST_DB=postgresql TEST_DATABASE_URL=…")
    assert github.app_id == APP_ID
    Database(database_url).upgrade()
    # A held request must outlast the test's wait on it: a generous client timeout, a short retry deadline.
    env = app_environment(
        github,
        jira,
        app_keys[0],
        GITHUB_SECRET,
        JIRA_SECRET,
        database_url,
        GITHUB_TIMEOUT="30",
        COUNTERSIGN_GITHUB_RETRY_SECONDS="5",
        LOG_LEVEL="WARNING",
    )
    processes = []
    try:
        for _ in range(2):
            port = free_port()
            server = launch_app(port, env, threads=4)
            processes.append(Process(f"http://127.0.0.1:{port}", server))
        for process in processes:
            wait_ready(process)
        github.webhook_url = None  # every delivery goes by hand to the process a test chooses
        yield TwoProcesses(processes[0], processes[1], github, jira, database_url)
    finally:
        github.faults.reset()  # release anything still held, so the processes can stop
        for process in processes:
            process.server.terminate()
        for process in processes:
            try:
                process.server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.server.kill()


def approved_pr(two: TwoProcesses, repo: str) -> tuple[int, str]:
    two.jira.add_ticket("PAY-1", "Refunds", status="In Review")
    two.jira.transition("PAY-1", "Approved", by="acc-bob")
    sha = two.github.add_commit(repo, "feature/pay-1", "Refunds", author=ALICE)
    number = two.github.open_pull_request(
        repo, head="feature/pay-1", title="PAY-1: refunds", author="alice", labels=("payments",)
    )
    return number, sha


def ours(two: TwoProcesses, repo: str, sha: str) -> list[dict[str, Any]]:
    return [r for r in two.github.check_runs(repo, sha) if r["name"] == "Countersign"]


def opened_and_labeled(two: TwoProcesses, repo: str, number: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """What GitHub sends when a PR is opened with a label: `opened` and `labeled`, for the same head."""
    return (
        two.github.pull_request_payload(repo, number, "opened"),
        two.github.pull_request_payload(repo, number, "labeled", label={"name": "payments"}),
    )


def test_opened_and_labeled_in_two_processes_make_one_check_run_that_completes(two: TwoProcesses, repo: str) -> None:
    number, sha = approved_pr(two, repo)
    opened, labeled = opened_and_labeled(two, repo, number)
    # Both evaluations read the PR together, so that they reach the check run at the same moment.
    two.github.faults.rendezvous(f"/pulls/{number}", 2, method="GET")

    first = two.deliver(two.a, "pull_request", opened)
    second = two.deliver(two.b, "pull_request", labeled)

    assert two.finished(first, second) == ["completed", "completed"]
    (run,) = ours(two, repo, sha)
    assert (run["status"], run["conclusion"]) == ("completed", "success")
    creates = [r for r in two.github.recorder.requests if r.method == "POST" and r.path.endswith("/check-runs")]
    assert len(creates) == 1


def test_a_ticket_reopened_through_the_other_process_is_not_passed_from_this_ones_cache(
    two: TwoProcesses, repo: str
) -> None:
    number, sha = approved_pr(two, repo)
    opened, labeled = opened_and_labeled(two, repo, number)
    two.finished(two.deliver(two.a, "pull_request", opened))
    assert completed_check(two.github, repo, sha)["conclusion"] == "success"  # process A now caches PAY-1

    two.jira.webhook_url = two.b.jira_webhook  # Jira tells process B, and only B
    two.jira.transition("PAY-1", "In Progress", by="acc-carol")
    wait_for(lambda: ours(two, repo, sha)[0]["conclusion"] == "failure", message="B to fail the check")

    # A GitHub event for the same PR reaches process A, whose cached copy still says Approved.
    assert two.finished(two.deliver(two.a, "pull_request", labeled)) == ["completed"]
    (run,) = ours(two, repo, sha)
    assert run["conclusion"] == "failure"
    assert run["output"]["title"] == "PAY-1 is In Progress; it needs to be moved to Approved in Jira"


def waiting_on_a_lock(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            return bool(
                connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                    )
                ).scalar()
            )
    finally:
        engine.dispose()


def jira_delivery_taken(database_url: str) -> bool:
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            statuses = connection.execute(text("SELECT status FROM deliveries WHERE source = 'jira'")).scalars().all()
            return bool(statuses) and all(status != "queued" for status in statuses)
    finally:
        engine.dispose()


def test_an_older_verdict_landing_late_does_not_replace_a_newer_one(two: TwoProcesses, repo: str) -> None:
    number, sha = approved_pr(two, repo)
    opened, labeled = opened_and_labeled(two, repo, number)
    two.finished(two.deliver(two.a, "pull_request", opened))
    assert completed_check(two.github, repo, sha)["conclusion"] == "success"

    # Process A evaluates again (PAY-1 approved) and its completion is held on the way to GitHub.
    held = two.github.faults.hold("/check-runs/", **COMPLETION)
    late = two.deliver(two.a, "pull_request", labeled)
    wait_for(held.caught.is_set, message="A's completion to be held")

    # Meanwhile PAY-1 is reopened; Jira tells process B, which evaluates afresh and publishes.
    two.jira.webhook_url = two.b.jira_webhook
    two.jira.transition("PAY-1", "In Progress", by="acc-carol")

    def b_published_or_waits() -> bool:
        failed = any(
            r.method == "PATCH" and (r.body or {}).get("conclusion") == "failure" for r in two.github.recorder.requests
        )
        # Publishing holds the check-run row locked until GitHub answered: B waits on A's lock. On PostgreSQL
        # the job queue may hand the Jira delivery's job to A's own worker, where it waits on A's in-process
        # lock of the head instead; either way the newer evaluation has been taken up before A's lands.
        return failed or waiting_on_a_lock(two.database_url) or jira_delivery_taken(two.database_url)

    wait_for(b_published_or_waits, timeout=30, message="B to publish, or to wait for A's publication")
    held.release()  # A's older verdict reaches GitHub now

    assert two.finished(late) == ["completed"]

    def settled() -> dict[str, Any] | None:
        (run,) = ours(two, repo, sha)
        return run if run["conclusion"] == "failure" and not waiting_on_a_lock(two.database_url) else None

    run = wait_for(settled, timeout=30, message="the newer verdict to be the one shown")
    assert run["output"]["title"] == "PAY-1 is In Progress; it needs to be moved to Approved in Jira"


def test_two_processes_share_one_installation_token(two: TwoProcesses, repo: str) -> None:
    number, sha = approved_pr(two, repo)
    other_sha = two.github.add_commit(repo, "feature/pay-1-more", "More refunds", author=ALICE)
    other = two.github.open_pull_request(repo, head="feature/pay-1-more", title="PAY-1: more refunds", author="alice")
    # Both evaluations need a token at once: the first to claim the row mints, the other takes its token.
    first = two.deliver(two.a, "pull_request", two.github.pull_request_payload(repo, number, "opened"))
    second = two.deliver(two.b, "pull_request", two.github.pull_request_payload(repo, other, "opened"))

    assert two.finished(first, second) == ["completed", "completed"]
    assert completed_check(two.github, repo, sha)["conclusion"] == "success"
    assert completed_check(two.github, repo, other_sha)["conclusion"] == "success"
    assert two.github.tokens_minted() == 1
