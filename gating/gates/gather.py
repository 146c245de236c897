"""Gather: the only gate code that reads GitHub and Jira. Each gate's facts are built here, once, frozen."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol

from gating.github_api import GitHubError, Installation, Repo, reads
from gating.policy.config import CONFIG_PATH, Policy, parse_policy
from gating.policy.deployment import (
    DeploymentFacts,
    DeploymentRequest,
    MergeGroupFacts,
    PullRequestInfo,
    ShippedBefore,
    deployment_references,
    first_deployment_range,
    pull_request_members,
    release_base,
    release_range,
)
from gating.policy.facts import Commit, PullRequestFacts
from gating.policy.pull_request import collect_references
from jira_client.gateway import JiraGateway
from jira_client.models import JiraUnavailable, TicketLookup

log = logging.getLogger(__name__)

# How many of an environment's latest deployments are read to find where a release starts.
DEPLOYMENTS_LOOKED_AT = 30


def gather_policy(installation: Installation, repository: str) -> Policy:
    """The repository's policy over its organisation's defaults. Raises PolicyError."""
    repo_text = reads.file_text(installation.repo(repository), CONFIG_PATH)
    owner, name = repository.split("/", 1)
    org_text = None
    if name != ".github":
        try:
            org_text = reads.file_text(installation.repo(f"{owner}/.github"), CONFIG_PATH)
        except GitHubError as exc:
            if exc.status != 403:  # no access to the org's .github repository: no org defaults
                raise
    return parse_policy(repo_text, org_text, org_source=f"{owner}/.github:{CONFIG_PATH}")


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
        # The detail (Jira's URL, its answer) stays in the log; the facts get what may be published.
        log.warning("jira.unavailable", extra={"error": exc.detail, "kind": exc.kind, "status": exc.status})
        return TicketLookup({}, frozenset()), exc.summary


@dataclass(frozen=True)
class ChangeToMerge:
    """A PR's change: its commits from its base to its head, and the PR as GitHub describes it."""

    base_sha: str
    head_sha: str
    pull: Mapping[str, Any]


@dataclass(frozen=True)
class GroupToMerge:
    """A merge queue's group: the commits from the group's base to its head, of one or more PRs."""

    base_sha: str
    head_sha: str


def gather_pull_request_facts(
    repo: Repo,
    jira: JiraGateway,
    change: ChangeToMerge,
    policy: Policy,
    *,
    fresh: bool,
    clock: Callable[[], datetime],
) -> PullRequestFacts:
    """The facts of a PR: every commit (past the PR endpoint's 250), reviews when required, tickets."""
    pull = change.pull
    head = pull.get("head") or {}
    number = pull.get("number")
    commits = reads.commits_between(repo, change.base_sha, change.head_sha)
    reviews = reads.reviews(repo, int(number)) if policy.require_review and number is not None else ()
    references = collect_references(
        policy,
        title=pull.get("title") or "",
        branch=head.get("ref") or "",
        body=pull.get("body") or "",
        commits=commits,
    )
    lookup, jira_error = gather_tickets(jira, references.all_keys, policy, fresh=fresh)
    # Only e-mail identities need to know the flavour (for advice); Jira is not asked again once it failed.
    emails_mapped = any("@" in value for value in policy.identities.values())
    jira_cloud = _jira_is_cloud(jira) if emails_mapped and jira_error is None else None
    return PullRequestFacts(
        repository=repo.full_name,
        number=number,
        title=pull.get("title") or "",
        body=pull.get("body") or "",
        head_ref=head.get("ref") or "",
        head_sha=change.head_sha,
        author=(pull.get("user") or {}).get("login") or "",
        labels=tuple(label["name"] for label in pull.get("labels") or ()),
        commits=commits,
        reviews=reviews,
        tickets=lookup.tickets,
        unknown_tickets=lookup.unknown,
        jira_error=jira_error,
        evaluated_at=clock(),
        jira_cloud=jira_cloud,
    )


def _jira_is_cloud(jira: JiraGateway) -> bool | None:
    """Whether Jira is Cloud, read from the client's serverInfo (one request per process); None if unknown."""
    try:
        return jira.deployment_type == "Cloud"
    except JiraUnavailable as exc:
        log.info("jira.deployment_type_unknown", extra={"error": exc.detail})
        return None


def gather_merge_group_facts(
    repo: Repo,
    jira: JiraGateway,
    group: GroupToMerge,
    policy: Policy,
    *,
    clock: Callable[[], datetime],
    cache: AssociationCache | None = None,
) -> MergeGroupFacts:
    """The facts of a merge group: its commits, the PR GitHub says each came with, every ticket read fresh."""
    commits = reads.commits_between(repo, group.base_sha, group.head_sha)
    pulls = gather_pulls(repo, commits, cache)
    keys = deployment_references(commits, pulls, policy).all_keys
    lookup, jira_error = gather_tickets(jira, keys, policy, fresh=True)
    return MergeGroupFacts(
        repository=repo.full_name,
        head_sha=group.head_sha,
        commits=commits,
        pulls=pulls,
        tickets=lookup.tickets,
        unknown_tickets=lookup.unknown,
        jira_error=jira_error,
        evaluated_at=clock(),
    )


def identify_run(repo: Repo, request: DeploymentRequest) -> DeploymentRequest:
    """The request with its workflow run's attempt, and its SHA: the deployment's, else the payload's, else the
    run's head. Raises GitHubNotFound when the run is gone."""
    head_sha, attempt = reads.workflow_run(repo, request.run_id)
    return replace(request, sha=request.sha or head_sha, run_attempt=attempt)


def gather_release_facts(
    repo: Repo,
    jira: JiraGateway,
    request: DeploymentRequest,
    policy: Policy,
    *,
    approved: tuple[tuple[int | None, str], ...],
    first_limit: int,
    clock: Callable[[], datetime],
    cache: AssociationCache | None = None,
) -> DeploymentFacts:
    """The facts of a deployment: its release's commits and PRs, the SHA's checks, and every ticket read fresh.

    The release starts at the last deployment Countersign approved (`approved`: (deployment id, SHA), newest
    first) that GitHub reports as successful, else at the last successful deployment GitHub reports, else it
    is the SHA's history up to `first_limit` commits. `request` has its SHA (`resolve_sha`).
    Raises GitHubError; a Jira failure is recorded in `jira_error`.
    """
    sha = request.sha
    if not sha:
        raise ValueError("resolve the request's SHA first")
    ids, shas = {ident for ident, _ in approved}, {approved_sha for _, approved_sha in approved}
    succeeded = reads.successful_deployments(
        repo,
        request.environment,
        limit=DEPLOYMENTS_LOOKED_AT,
        enough=lambda ident, shipped: ident in ids or shipped in shas,  # the newest approved one that shipped
    )
    base, method = release_base(ShippedBefore(approved, tuple(succeeded)), sha)
    if base is None:
        commits, truncated = reads.history(repo, sha, first_limit)
        release = first_deployment_range(sha, len(commits), truncated, first_limit)
    else:
        status, commits = reads.compare(repo, base, sha)
        release = release_range(base, sha, method, status, len(commits))
    pulls = gather_pulls(repo, commits, cache)
    checks = reads.checks(repo, sha)
    keys = deployment_references(commits, pulls, policy).all_keys
    # Fresh from Jira at this moment: a revoked approval must never pass on a cached read.
    lookup, jira_error = gather_tickets(jira, keys, policy, fresh=True)
    return DeploymentFacts(
        repository=request.repository,
        environment=request.environment,
        deployment_id=request.deployment_id,
        run_id=request.run_id,
        sha=sha,
        ref=request.ref,
        requester=request.requester,
        requested_at=request.requested_at,
        run_attempt=request.run_attempt,
        range=release,
        commits=commits,
        pulls=pulls,
        tickets=lookup.tickets,
        unknown_tickets=lookup.unknown,
        jira_error=jira_error,
        checks=checks,
        evaluated_at=clock(),
    )


class AssociationCache(Protocol):
    """Remembers the PRs GitHub associates with a commit, once that can no longer change."""

    def get(self, repository: str, shas: Iterable[str]) -> dict[str, tuple[int, ...]]: ...

    def put(self, repository: str, associations: Mapping[str, tuple[int, ...]]) -> None: ...


def gather_pulls(
    repo: Repo, commits: tuple[Commit, ...], cache: AssociationCache | None = None
) -> tuple[PullRequestInfo, ...]:
    """The PRs GitHub says brought the commits, with the commits each brought. A commit's own message never
    names its PR: `(#42)` can be typed by anyone. Every merge method counts, rebase and fast-forward included.

    Merge commits are resolved first: when GitHub says one is a PR's merge commit, the commits only its second
    parent reaches came with that PR and need no request of their own.
    """
    by_sha = {c.sha: c for c in commits}
    raw: dict[int, dict[str, Any]] = {}
    brought: dict[int, set[str]] = {}
    attributed: set[str] = set()
    merges = [c.sha for c in reversed(commits) if len(c.parents) >= 2]
    singles = [c.sha for c in reversed(commits) if len(c.parents) < 2]
    for batch in (merges, singles):
        pending = [sha for sha in batch if sha not in attributed]
        for sha, pulls in _associations(repo, pending, raw, cache).items():
            for number in pulls:
                brought.setdefault(number, set()).add(sha)
                attributed.add(sha)
                pull = raw[number]
                if pull.get("merged_at") and pull.get("merge_commit_sha") == sha and len(by_sha[sha].parents) >= 2:
                    members = pull_request_members(commits, sha)
                    brought[number].update(members)
                    attributed.update(members)
    return tuple(
        _pull_info(raw[number], tuple(s for s in by_sha if s in shas)) for number, shas in sorted(brought.items())
    )


def _associations(
    repo: Repo, shas: list[str], raw: dict[int, dict[str, Any]], cache: AssociationCache | None
) -> dict[str, tuple[int, ...]]:
    """PR numbers per SHA: remembered ones, else GitHub's list of PRs associated with the commit."""
    known = cache.get(repo.full_name, shas) if cache is not None else {}
    asked = reads.pull_requests_for_commits(repo, [sha for sha in shas if sha not in known])
    final: dict[str, tuple[int, ...]] = {}
    found = dict(known)
    for sha, pulls in asked.items():
        found[sha] = tuple(sorted(p["number"] for p in pulls))
        for pull in pulls:
            raw.setdefault(pull["number"], pull)
        if pulls and all(p.get("merged_at") for p in pulls):
            # Merged PRs only: that will not change. A commit with no PR yet may still gain one.
            final[sha] = found[sha]
    for number in sorted({n for numbers in known.values() for n in numbers} - set(raw)):
        raw[number] = reads.pull_request(repo, number)
    if cache is not None:
        cache.put(repo.full_name, final)
    return found


def _pull_info(raw: Mapping[str, Any], commit_shas: tuple[str, ...]) -> PullRequestInfo:
    return PullRequestInfo(
        number=int(raw["number"]),
        title=raw.get("title") or "",
        body=raw.get("body") or "",
        head_ref=(raw.get("head") or {}).get("ref") or "",
        author=(raw.get("user") or {}).get("login") or "",
        labels=tuple(label["name"] for label in raw.get("labels") or ()),
        commit_shas=commit_shas,
        merge_commit_sha=raw.get("merge_commit_sha") if raw.get("merged_at") else None,
        merged_by=(raw.get("merged_by") or {}).get("login"),
        head_sha=(raw.get("head") or {}).get("sha"),
    )
