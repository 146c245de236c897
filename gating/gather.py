"""The only code that reads GitHub and Jira for the gates: it returns frozen facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime
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
    repo_text = read_file(github.get_repo(repository, lazy=True), CONFIG_PATH)
    owner, name = repository.split("/", 1)
    org_text = None
    if name != ".github":
        try:
            org_text = read_file(github.get_repo(f"{owner}/.github", lazy=True), CONFIG_PATH)
        except GithubException as exc:
            if exc.status != 403:  # no access to the org's .github repository: no org defaults
                raise
    return parse_policy(repo_text, org_text, org_source=f"{owner}/.github:{CONFIG_PATH}")


def person(git_person: dict[str, Any] | None, account: dict[str, Any] | None) -> GitHubPerson:
    git_person = git_person or {}
    return GitHubPerson(login=(account or {}).get("login"), name=git_person.get("name"), email=git_person.get("email"))


def commit_from_raw(raw: dict[str, Any]) -> Commit:
    """A commit from the REST shape; reads raw data so that PyGithub never lazily fetches more."""
    inner = raw.get("commit") or {}
    return Commit(
        sha=raw["sha"],
        message=inner.get("message") or "",
        author=person(inner.get("author"), raw.get("author")),
        committer=person(inner.get("committer"), raw.get("committer")),
        parents=tuple(p["sha"] for p in raw.get("parents") or ()),
    )


def gather_commits(repo: Repository, base: str, head: str) -> tuple[Commit, ...]:
    """Every commit reachable from head and not from base, paging the compare endpoint.

    The pull request commits endpoint stops at 250 commits; compare pages go further.
    """
    comparison = repo.compare(base, head, comparison_commits_per_page=COMPARE_PAGE_SIZE)
    return tuple(commit_from_raw(c.raw_data) for c in comparison.commits)


def gather_reviews(pull: Any) -> tuple[Review, ...]:
    reviews = []
    for review in pull.get_reviews():
        raw = review.raw_data
        submitted = raw.get("submitted_at")
        reviews.append(
            Review(
                login=(raw.get("user") or {}).get("login") or "",
                state=raw.get("state") or "",
                commit_id=raw.get("commit_id"),
                submitted_at=datetime.fromisoformat(submitted.replace("Z", "+00:00")) if submitted else None,
            )
        )
    return tuple(reviews)


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
