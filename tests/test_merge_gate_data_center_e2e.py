"""The merge gate end to end against Jira Data Center: usernames and keys, e-mails, times in the server's zone."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
from conftest import JIRA_SECRET, LiveApp, completed_check

from simulators.github import Person
from simulators.jira import JiraSimulator

# A server in Europe: Data Center writes every time as 2024-01-18T08:27:50.429+0200.
CEST = timezone(timedelta(hours=2))


@pytest.fixture
def jira() -> Iterator[JiraSimulator]:
    """Jira Data Center, whose people have usernames and keys, and whose clock is two hours ahead of UTC."""
    sim = JiraSimulator(deployment_type="Server", webhook_secret=JIRA_SECRET)
    sim.time_zone = CEST
    sim.start()
    sim.add_user("JIRAUSER10000", "Alice Author", email="alice@corp.example", name="alice")
    sim.add_user("JIRAUSER10001", "Bob Builder", email="bob@corp.example", name="bob")
    yield sim
    sim.stop()


def open_pr(app: LiveApp, repo: str, title: str, author: Person) -> str:
    sha = app.github.add_commit(repo, "feature/work", "Work", author=author)
    app.github.open_pull_request(repo, head="feature/work", title=title, author=author.login or "")
    return sha


def test_approval_times_are_shown_in_utc(live_app: LiveApp, repo: str) -> None:
    live_app.github.put_file(repo, ".github/countersign.yml", "identities:\n  alice: alice\n  bob: bob\n")
    live_app.jira.add_ticket("PAY-1", status="In Review")
    live_app.jira.transition("PAY-1", "Approved", by="bob", at=datetime(2024, 1, 18, 6, 27, tzinfo=UTC))

    sha = open_pr(live_app, repo, "PAY-1: refunds", Person("Alice Author", "alice@corp.example", "alice"))

    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "success", check["output"]["title"]
    assert "| Approved | Bob Builder | 2024-01-18 06:27 UTC | ✅ passed |" in check["output"]["summary"]


def test_a_noreply_commit_email_does_not_tell_a_data_center_approver_apart(live_app: LiveApp, repo: str) -> None:
    live_app.github.put_file(repo, ".github/countersign.yml", "jira:\n  projects: [PAY]\n")
    live_app.jira.add_ticket("PAY-2", status="In Review")
    live_app.jira.transition("PAY-2", "Approved", by="alice")
    private = Person("Alice Author", "1234+alice@users.noreply.github.com", "alice")  # GitHub's private address

    sha = open_pr(live_app, repo, "PAY-2: refunds", private)

    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert check["output"]["summary"].count("cannot tell") == 1
    assert (
        "PAY-2: cannot tell whether Jira user Alice Author (username alice) is GitHub user alice (the PR author, the "
        f"author of {sha[:7]} and the committer of {sha[:7]}): alice's commits show only a GitHub noreply e-mail, "
        "which says nothing about their Jira account; add alice's Jira username under `identities` in "
        ".github/countersign.yml (`alice: alice` if that is them)"
    ) in check["output"]["summary"]


def test_a_data_center_user_without_an_email_is_not_cleared_by_an_email_mapping(live_app: LiveApp, repo: str) -> None:
    live_app.github.put_file(repo, ".github/countersign.yml", "identities:\n  alice: alice@corp.example\n")
    # Alice's second account, whose e-mail the server does not show.
    live_app.jira.add_user("JIRAUSER10002", "Alice (admin)", email="alice@corp.example", name="awong", hide_email=True)
    live_app.jira.add_ticket("PAY-3", status="In Review")
    live_app.jira.transition("PAY-3", "Approved", by="awong")

    sha = open_pr(live_app, repo, "PAY-3: refunds", Person("Alice Author", "alice@corp.example", "alice"))

    check = completed_check(live_app.github, repo, sha)
    assert check["conclusion"] == "failure"
    assert (
        "Jira does not show this user's e-mail; add alice's Jira username under `identities`"
        in (check["output"]["summary"])
    )
    assert "(`alice: awong` if that is them)" in check["output"]["summary"]
    assert not check["output"]["text"]  # no advice about e-mails on Data Center
