"""Reads the gates need, as plain values: files, pull requests, commits, reviews, checks, deployments, runs."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gating.github_api.app import Repo
from gating.github_api.errors import GitHubNotFound, translated
from gating.policy.checks import CheckResult
from gating.policy.facts import Commit, GitHubPerson, Review

COMPARE_PAGE_SIZE = 100


@translated
def file_text(repo: Repo, path: str) -> str | None:
    """A file's text on the default branch, or None when it (or the repository) does not exist."""
    try:
        content = translated(repo.api.get_contents)(path)
    except GitHubNotFound:
        return None
    if isinstance(content, list):
        return None  # a directory where the file should be
    return content.decoded_content.decode("utf-8", "replace")


@translated
def pull_request(repo: Repo, number: int) -> dict[str, Any]:
    """The PR as GitHub describes it now (its current head: deliveries arrive out of order)."""
    return dict(repo.api.get_pull(number).raw_data)


def pull_request_or_none(repo: Repo, number: int) -> dict[str, Any] | None:
    try:
        return pull_request(repo, number)
    except GitHubNotFound:
        return None


# Lookups of a release's commits run side by side: a first deployment can have a thousand of them.
# GitHub allows 100 concurrent requests per installation; stay far below.
PULL_LOOKUPS_IN_FLIGHT = 16


@translated
def pull_requests_for_commit(repo: Repo, sha: str) -> list[dict[str, Any]]:
    """GitHub's pull requests associated with a commit: the merged PR that introduced it (every merge method,
    rebase and fast-forward included) and, for a commit not on the default branch, the open PRs containing it."""
    # The JSON as listed: PyGithub's objects from a list would fetch each PR again for their raw data.
    _headers, data = repo.api.requester.requestJsonAndCheck(
        "GET", f"{repo.api.url}/commits/{sha}/pulls", parameters={"per_page": 100}
    )
    return [dict(pull) for pull in data] if isinstance(data, list) else []


def pull_requests_for_commits(repo: Repo, shas: list[str]) -> dict[str, list[dict[str, Any]]]:
    """`pull_requests_for_commit` for each SHA, a few at a time."""
    if not shas:
        return {}
    with ThreadPoolExecutor(max_workers=min(PULL_LOOKUPS_IN_FLIGHT, len(shas))) as pool:
        return dict(zip(shas, pool.map(lambda sha: pull_requests_for_commit(repo, sha), shas), strict=True))


@translated
def open_pull_numbers_with_head(repo: Repo, head_sha: str) -> list[int]:
    """Open PRs whose head is `head_sha` (check events carry no PRs for forks)."""
    return [p.number for p in repo.api.get_pulls(state="open") if p.head.sha == head_sha]


@translated
def reviews(repo: Repo, number: int) -> tuple[Review, ...]:
    return tuple(
        Review(
            login=review.user.login if review.user is not None else "",
            state=review.state or "",
            commit_id=review.commit_id,
            submitted_at=review.submitted_at,
        )
        for review in repo.api.get_pull(number).get_reviews()
    )


def _person(git_person: Any, account: Any) -> GitHubPerson:
    return GitHubPerson(
        login=account.login if account is not None else None,
        name=git_person.name if git_person is not None else None,
        email=git_person.email if git_person is not None else None,
    )


def _commit(commit: Any) -> Commit:
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
        # Present in list and compare responses, so reading it fetches nothing more.
        verified=bool(inner.verification.verified) if inner.verification is not None else False,
    )


@translated
def commits_between(repo: Repo, base: str, head: str) -> tuple[Commit, ...]:
    """Every commit reachable from head and not from base, paging the compare endpoint.

    The pull request commits endpoint stops at 250 commits; compare pages go further.
    """
    comparison = repo.api.compare(base, head, comparison_commits_per_page=COMPARE_PAGE_SIZE)
    return tuple(_commit(c) for c in comparison.commits)


@translated
def compare(repo: Repo, base: str, head: str) -> tuple[str, tuple[Commit, ...]]:
    """GitHub's comparison status (ahead, identical, behind, diverged) and the commits, as `commits_between`."""
    comparison = repo.api.compare(base, head, comparison_commits_per_page=COMPARE_PAGE_SIZE)
    status = comparison.status  # completes the first page; the commits list reuses it
    return status, tuple(_commit(c) for c in comparison.commits)


@translated
def history(repo: Repo, sha: str, limit: int) -> tuple[tuple[Commit, ...], bool]:
    """Up to `limit` commits reachable from `sha`, oldest first, and whether the limit cut it short."""
    commits: list[Commit] = []
    for commit in repo.api.get_commits(sha=sha):
        if len(commits) >= limit:
            break
        commits.append(_commit(commit))
    commits.reverse()  # oldest first, like compare
    return tuple(commits), len(commits) >= limit


@translated
def workflow_run(repo: Repo, run_id: int) -> tuple[str, int]:
    """A workflow run's head SHA and attempt (a re-run keeps the id and counts attempts)."""
    run = repo.api.get_workflow_run(run_id)
    return str(run.head_sha), int(run.run_attempt)


@translated
def successful_deployments(
    repo: Repo, environment: str, *, limit: int, enough: Callable[[int, str], bool]
) -> list[tuple[int, str]]:
    """(id, SHA) of the newest deployments to `environment` whose latest status is success, newest first:
    GitHub's record of what was shipped. Stops at `limit` deployments looked at, or once `enough` says so."""
    found: list[tuple[int, str]] = []
    for index, deployment in enumerate(repo.api.get_deployments(environment=environment)):
        if index >= limit:
            break
        latest = next(iter(deployment.get_statuses()), None)
        if latest is not None and latest.state == "success":
            found.append((int(deployment.id), str(deployment.sha)))
            if enough(found[-1][0], found[-1][1]):
                break
    return found


@translated
def checks(repo: Repo, sha: str) -> tuple[CheckResult, ...]:
    """Every check run and commit status on the SHA (the raw records are evidence)."""
    commit = repo.api.get_commit(sha)
    results = [
        CheckResult(run.name, "check_run", run.status, run.conclusion, _check_run_record(run))
        for run in commit.get_check_runs(filter="all")  # every run: the core decides which are current
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
