"""The only code that reads GitHub and Jira for the gates: it returns frozen facts."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from github import GithubException, UnknownObjectException
from github.Repository import Repository

from gating.policy.config import CONFIG_PATH, Policy, parse_policy
from gating.policy.deployment import (
    CheckResult,
    PullRequestInfo,
    ReleaseRange,
    pull_request_members,
    pull_request_numbers,
)
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


def gather_range(
    repo: Repository, sha: str, *, base_sha: str | None, method: str, first_limit: int
) -> tuple[ReleaseRange, tuple[Commit, ...]]:
    """The commits a deployment of `sha` ships: compare from the base, or the SHA's history on a first deployment."""
    if base_sha is None:
        commits: list[Commit] = []
        for commit in repo.get_commits(sha=sha):
            if len(commits) >= first_limit:
                break
            commits.append(commit_from_api(commit))
        truncated = len(commits) >= first_limit
        commits.reverse()  # oldest first, like compare
        description = (
            f"first deployment to this environment: the {len(commits)} most recent commits reachable from "
            f"{sha[:7]}" + (f" (limited to {first_limit})" if truncated else " (its whole history)")
        )
        return ReleaseRange(None, sha, "first_deployment", "first", description, truncated), tuple(commits)
    comparison = repo.compare(base_sha, sha, comparison_commits_per_page=COMPARE_PAGE_SIZE)
    status = comparison.status  # completes the first page; the commits list reuses it
    commits_in = tuple(commit_from_api(c) for c in comparison.commits)
    source = (
        "the last deployment Countersign approved"
        if method == "last_approved"
        else ("the last successful deployment GitHub reports")
    )
    descriptions = {
        "ahead": f"{len(commits_in)} commit(s) since {source} ({base_sha[:7]})",
        "identical": f"a redeploy of {sha[:7]}, the SHA of {source}: no new commits",
        "behind": f"a rollback: {sha[:7]} is an ancestor of {source} ({base_sha[:7]}), so it ships no new commits",
        "diverged": (
            f"{sha[:7]} does not descend from {source} ({base_sha[:7]}), e.g. after a force-push: "
            f"{len(commits_in)} commit(s) since their merge base"
        ),
    }
    description = descriptions.get(status, f"{len(commits_in)} commit(s) since {base_sha[:7]} ({status})")
    return ReleaseRange(base_sha, sha, method, status, description), commits_in


def last_successful_deployment_sha(repo: Repository, environment: str, exclude_sha: str, limit: int = 10) -> str | None:
    """The SHA of the newest deployment to `environment` whose latest status is success (GitHub's record)."""
    for index, deployment in enumerate(repo.get_deployments(environment=environment)):
        if index >= limit:
            break
        statuses = deployment.get_statuses()
        latest = next(iter(statuses), None)
        if latest is not None and latest.state == "success" and deployment.sha != exclude_sha:
            return str(deployment.sha)
    return None


def gather_pulls(repo: Repository, commits: tuple[Commit, ...], limit: int = 100) -> tuple[PullRequestInfo, ...]:
    """The PRs that merge and squash commits in the release name, with the commits each brought."""
    pulls = []
    for number, naming_sha in list(pull_request_numbers(commits).items())[:limit]:
        try:
            raw = repo.get_pull(number).raw_data
        except UnknownObjectException:
            continue
        pulls.append(
            PullRequestInfo(
                number=number,
                title=raw.get("title") or "",
                body=raw.get("body") or "",
                head_ref=(raw.get("head") or {}).get("ref") or "",
                author=(raw.get("user") or {}).get("login") or "",
                labels=tuple(label["name"] for label in raw.get("labels") or ()),
                commit_shas=pull_request_members(commits, naming_sha),
            )
        )
    return tuple(pulls)


def gather_checks(repo: Repository, sha: str) -> tuple[CheckResult, ...]:
    """Every check run and commit status on the SHA (the raw records are evidence)."""
    commit = repo.get_commit(sha)
    results = [
        CheckResult(run.name, "check_run", run.status, run.conclusion, _check_run_record(run))
        for run in commit.get_check_runs()
    ]
    combined = commit.get_combined_status()
    results += [CheckResult(s.context, "status", s.state, None, s.raw_data) for s in combined.statuses]
    return tuple(results)


def _check_run_record(run: Any) -> dict[str, Any]:
    # Attributes the list response carries (raw_data would fetch every check run again).
    return {
        "id": run.id,
        "name": run.name,
        "head_sha": run.head_sha,
        "status": run.status,
        "conclusion": run.conclusion,
        "started_at": run.started_at.isoformat() if run.started_at else None,
        "completed_at": run.completed_at.isoformat() if run.completed_at else None,
        "app": run.app.slug if run.app is not None else None,
        "html_url": run.html_url,
    }
