"""The only code that reads GitHub and Jira for the gates: it returns frozen facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from github import GithubException, UnknownObjectException
from github.Repository import Repository

from gating.policy.config import CONFIG_PATH, Policy, parse_policy
from gating.policy.facts import Commit, GitHubPerson, Review
from jira_client.gateway import JiraGateway
from jira_client.models import JiraUnavailable, TicketLookup

log = logging.getLogger(__name__)

COMPARE_PAGE_SIZE = 100


def read_file(repo: Repository, path: str) -> str | None:
    """A file's text on the default branch, or None when it (or the repository) does not exist."""
    try:
        content = repo.get_contents(path)
    except UnknownObjectException:
        return None
    if isinstance(content, list):
        return None  # a directory where the file should be
    return content.decoded_content.decode("utf-8", "replace")


def gather_policy(github: Any, repository: str) -> Policy:
    """The repository's policy over its organisation's defaults. Raises PolicyError."""
    repo_text = read_file(github.get_repo(repository), CONFIG_PATH)
    owner, name = repository.split("/", 1)
    org_text = None
    if name != ".github":
        try:
            org_text = read_file(github.get_repo(f"{owner}/.github"), CONFIG_PATH)
        except GithubException as exc:
            if exc.status != 403:  # no access to the org's .github repository: no org defaults
                raise
    return parse_policy(repo_text, org_text, org_source=f"{owner}/.github:{CONFIG_PATH}")


def _person(git_person: Any, account: Any) -> GitHubPerson:
    return GitHubPerson(
        login=account.login if account is not None else None,
        name=git_person.name if git_person is not None else None,
        email=git_person.email if git_person is not None else None,
    )


def commit_from_api(commit: Any) -> Commit:
    """A commit from PyGithub, reading only attributes the list response carries.

    (`raw_data` would make PyGithub fetch each commit again: 300 commits, 300 requests.)
    """
    inner = commit.commit
    return Commit(
        sha=commit.sha,
        message=inner.message or "",
        author=_person(inner.author, commit.author),
        committer=_person(inner.committer, commit.committer),
        parents=tuple(p.sha for p in commit.parents),
    )


def gather_commits(repo: Repository, base: str, head: str) -> tuple[Commit, ...]:
    """Every commit reachable from head and not from base, paging the compare endpoint.

    The pull request commits endpoint stops at 250 commits; compare pages go further.
    """
    comparison = repo.compare(base, head, comparison_commits_per_page=COMPARE_PAGE_SIZE)
    return tuple(commit_from_api(c) for c in comparison.commits)


def gather_reviews(pull: Any) -> tuple[Review, ...]:
    return tuple(
        Review(
            login=review.user.login if review.user is not None else "",
            state=review.state or "",
            commit_id=review.commit_id,
            submitted_at=review.submitted_at,
        )
        for review in pull.get_reviews()
    )


def gather_tickets(
    jira: JiraGateway, keys: Iterable[str], policy: Policy, *, fresh: bool = False
) -> tuple[TicketLookup, str | None]:
    """Tickets in one batched fetch; Jira being unavailable is a fact, not an exception."""
    keys = list(keys)
    if not keys:
        return TicketLookup({}, frozenset()), None
    try:
        return jira.fetch_tickets(keys, include_jsm=policy.approval_source == "jsm", fresh=fresh), None
    except JiraUnavailable as exc:
        log.warning("jira.unavailable", extra={"error": str(exc)})
        return TicketLookup({}, frozenset()), str(exc)
