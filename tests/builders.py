"""Builders for core facts: readable literals for the pure evaluation tests."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from itertools import count

from gating.policy.facts import Commit, GitHubPerson, PullRequestFacts, Review
from jira_client.models import JiraUser, JsmApprovalDecision, StatusChange, Ticket

NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)
_ids = count(1)

ALICE = GitHubPerson(login="alice", name="Alice Author", email="alice@example.com")
BOB = GitHubPerson(login="bob", name="Bob Builder", email="bob@example.com")
JIRA_ALICE = JiraUser(account_id="acc-alice", display_name="Alice Author", email="alice@example.com")
JIRA_BOB = JiraUser(account_id="acc-bob", display_name="Bob Builder", email="bob@example.com")
JIRA_CAROL = JiraUser(account_id="acc-carol", display_name="Carol Approver", email="carol@example.com")


def a_commit(
    message: str, author: GitHubPerson = ALICE, committer: GitHubPerson | None = None, *, verified: bool = False
) -> Commit:
    sha = hashlib.sha1(f"{message}{next(_ids)}".encode()).hexdigest()
    return Commit(sha=sha, message=message, author=author, committer=committer or author, verified=verified)


def a_ticket(
    key: str,
    status: str = "Approved",
    approver: JiraUser | None = JIRA_CAROL,
    approved_at: datetime = NOW - timedelta(hours=1),
    issue_type: str = "Story",
) -> Ticket:
    changes = []
    if status != "To Do":
        changes.append(StatusChange("To Do", "1", status, "3", approver, approved_at, str(next(_ids)), {"id": "h"}))
    return Ticket(key, f"{key} summary", status, "3", issue_type, f"https://jira.example/browse/{key}", tuple(changes))


def pr_facts(
    *,
    title: str = "PAY-1: refunds",
    branch: str = "feature/refunds",
    body: str = "",
    commits: tuple[Commit, ...] | None = None,
    tickets: tuple[Ticket, ...] = (),
    unknown: frozenset[str] = frozenset(),
    author: str = "alice",
    labels: tuple[str, ...] = (),
    reviews: tuple[Review, ...] = (),
    jira_error: str | None = None,
) -> PullRequestFacts:
    commits = commits if commits is not None else (a_commit("Add refunds"),)
    return PullRequestFacts(
        repository="acme/payments",
        number=7,
        title=title,
        body=body,
        head_ref=branch,
        head_sha=commits[-1].sha if commits else "0" * 40,
        author=author,
        labels=labels,
        commits=commits,
        reviews=reviews,
        tickets={t.key: t for t in tickets},
        unknown_tickets=unknown,
        jira_error=jira_error,
        evaluated_at=NOW,
    )


def a_jsm_decision(
    final: str,
    completed_at: datetime | None,
    approvers: tuple[tuple[JiraUser, str], ...] = ((JIRA_CAROL, "approved"),),
    *,
    created_at: datetime | None = None,
    name: str = "Change approval",
) -> JsmApprovalDecision:
    """One JSM approval of a request: its final decision, who answered what, and when it was decided."""
    return JsmApprovalDecision(str(next(_ids)), name, final, approvers, completed_at, created_at=created_at)
