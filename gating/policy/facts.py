"""Frozen facts gathered from GitHub and Jira that the gates evaluate."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from jira_client.models import Ticket


@dataclass(frozen=True)
class GitHubPerson:
    """Someone who touched a commit or a PR, as GitHub shows them."""

    login: str | None  # None: the e-mail is not linked to a GitHub account
    name: str | None = None
    email: str | None = None

    def label(self) -> str:
        return self.login or self.email or self.name or "unknown"


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    author: GitHubPerson
    committer: GitHubPerson
    parents: tuple[str, ...] = ()
    verified: bool = False  # GitHub verified the commit's signature (commit.verification.verified)

    @property
    def short_sha(self) -> str:
        return self.sha[:7]

    @property
    def headline(self) -> str:
        return self.message.splitlines()[0] if self.message else ""


@dataclass(frozen=True)
class Review:
    login: str
    state: str  # APPROVED, CHANGES_REQUESTED, COMMENTED, DISMISSED
    commit_id: str | None
    submitted_at: datetime | None


@dataclass(frozen=True)
class PullRequestFacts:
    """Everything the merge gate decides on, gathered at `evaluated_at`."""

    repository: str
    number: int | None  # None for a merge group
    title: str
    body: str
    head_ref: str
    head_sha: str
    author: str
    labels: tuple[str, ...]
    commits: tuple[Commit, ...]
    reviews: tuple[Review, ...]
    tickets: dict[str, Ticket]
    unknown_tickets: frozenset[str]
    jira_error: str | None  # set when Jira could not be read: the gate must not pass
    evaluated_at: datetime
    jira_cloud: bool | None = None  # Jira Cloud (hides e-mails by default) or Data Center; None: not asked
