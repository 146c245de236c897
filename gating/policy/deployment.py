"""The deploy gate's rules: the merge gate's, over a release's commits, plus CI checks and the requester."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from gating.policy.checks import CheckResult, evaluate_required_checks
from gating.policy.config import Policy
from gating.policy.facts import Commit, GitHubPerson
from gating.policy.pull_request import (
    References,
    collect_references,
    evaluate_tickets,
    exemption_finding,
    make_verdict,
    traceability_finding,
    uncovered_commits,
)
from gating.policy.verdict import Finding, Outcome, TicketResult, Verdict
from jira_client.models import Ticket


@dataclass(frozen=True)
class ReleaseRange:
    """Which commits a deployment ships, and how that was decided (stated in the dossier)."""

    base_sha: str | None
    head_sha: str
    method: str  # last_approved | last_successful | first_deployment
    status: str  # ahead | identical | behind | diverged | first
    description: str
    truncated: bool = False


@dataclass(frozen=True)
class ShippedBefore:
    """Deployments to the environment: those Countersign approved, and those GitHub reports as successful."""

    approved: tuple[tuple[int | None, str], ...]  # (deployment id, SHA), newest first
    succeeded: tuple[tuple[int, str], ...]  # (deployment id, SHA), newest first


def release_base(shipped: ShippedBefore, sha: str) -> tuple[str | None, str]:
    """Where the release starts, and how that was decided.

    The last SHA Countersign approved *and* GitHub reports as successfully deployed: an approval whose
    deployment was then stopped shipped nothing, and must not shorten the next release. Else the last
    successful deployment GitHub reports (of another SHA); else none: the environment's first deployment.
    """
    succeeded_ids = {ident for ident, _sha in shipped.succeeded}
    succeeded_shas = {shipped_sha for _ident, shipped_sha in shipped.succeeded}
    for ident, approved_sha in shipped.approved:
        if ident in succeeded_ids or (ident is None and approved_sha in succeeded_shas):
            return approved_sha, "last_approved"
    for _ident, shipped_sha in shipped.succeeded:
        if shipped_sha != sha:
            return shipped_sha, "last_successful"
    return None, "first_deployment"


def first_deployment_range(sha: str, count: int, truncated: bool, limit: int) -> ReleaseRange:
    """The range of an environment's first deployment: the SHA's history, up to `limit` commits."""
    description = f"first deployment to this environment: the {count} most recent commits reachable from {sha[:7]}" + (
        f" (limited to {limit})" if truncated else " (its whole history)"
    )
    return ReleaseRange(None, sha, "first_deployment", "first", description, truncated)


def release_range(base_sha: str, sha: str, method: str, status: str, count: int) -> ReleaseRange:
    """The range from a known earlier deployment, described from GitHub's comparison status."""
    source = (
        "the last deployment Countersign approved and GitHub reports as deployed"
        if method == "last_approved"
        else "the last successful deployment GitHub reports"
    )
    descriptions = {
        "ahead": f"{count} commit(s) since {source} ({base_sha[:7]})",
        "identical": f"a redeploy of {sha[:7]}, the SHA of {source}: no new commits",
        "behind": f"a rollback: {sha[:7]} is an ancestor of {source} ({base_sha[:7]}), so it ships no new commits",
        "diverged": (
            f"{sha[:7]} does not descend from {source} ({base_sha[:7]}), e.g. after a force-push: "
            f"{count} commit(s) since their merge base"
        ),
    }
    description = descriptions.get(status, f"{count} commit(s) since {base_sha[:7]} ({status})")
    return ReleaseRange(base_sha, sha, method, status, description)


@dataclass(frozen=True)
class PullRequestInfo:
    """A PR that GitHub says brought some of the release's commits."""

    number: int
    title: str
    body: str
    head_ref: str
    author: str
    labels: tuple[str, ...]
    commit_shas: tuple[str, ...]  # the release's commits that came with this PR
    merge_commit_sha: str | None = None
    merged_by: str | None = None
    head_sha: str | None = None


def github_merge_commits(commits: Sequence[Commit], pulls: Sequence[PullRequestInfo]) -> dict[str, PullRequestInfo]:
    """The merge commits GitHub made when merging a PR (the Merge button: the PR's merge commit; a merge queue:
    a commit whose second parent is the PR's head), by SHA.

    Their author is whoever pressed Merge or queued the PR, who merged the code but wrote none of it. A merge
    commit made locally and pushed by a person is not one of these (GitHub neither committed nor signed it):
    its author still counts as an author.
    """
    found = {}
    heads = {pull.head_sha: pull for pull in pulls if pull.head_sha}
    merges = {pull.merge_commit_sha: pull for pull in pulls if pull.merge_commit_sha}
    for commit in commits:
        if len(commit.parents) < 2 or not commit.verified or (commit.committer.login or "").lower() != "web-flow":
            continue
        pull = merges.get(commit.sha) or heads.get(commit.parents[1])
        if pull is not None and commit.sha in pull.commit_shas:
            found[commit.sha] = pull
    return found


@dataclass(frozen=True)
class DeploymentRequest:
    """What GitHub asked: deploy `sha` (None until read from the workflow run) of `repository` to `environment`."""

    repository: str
    environment: str
    deployment_id: int | None
    run_id: int
    sha: str | None
    ref: str | None
    requester: str
    requested_at: datetime  # the deployment's creation, else when Countersign received the request
    run_attempt: int | None = None  # read from the workflow run: a re-run keeps the run id


@dataclass(frozen=True)
class DeploymentFacts:
    repository: str
    environment: str
    deployment_id: int | None
    run_id: int
    sha: str
    ref: str | None
    requester: str
    requested_at: datetime
    run_attempt: int | None
    range: ReleaseRange
    commits: tuple[Commit, ...]
    pulls: tuple[PullRequestInfo, ...]
    tickets: Mapping[str, Ticket]
    unknown_tickets: frozenset[str]
    jira_error: str | None
    checks: tuple[CheckResult, ...]
    evaluated_at: datetime


def pull_request_members(commits: Sequence[Commit], naming_sha: str) -> tuple[str, ...]:
    """The release's commits that a PR brought: the merge commit and what only its second parent reaches."""
    by_sha = {c.sha: c for c in commits}
    commit = by_sha.get(naming_sha)
    if commit is None:
        return ()
    if len(commit.parents) < 2:
        return (commit.sha,)  # a squash or rebase merge: the commit is the PR

    def reach(start: str) -> set[str]:
        seen: set[str] = set()
        stack = [start]
        while stack:
            sha = stack.pop()
            if sha in seen or sha not in by_sha:
                continue
            seen.add(sha)
            stack.extend(by_sha[sha].parents)
        return seen

    members = reach(commit.parents[1]) - reach(commit.parents[0])
    return (commit.sha, *sorted(members))


def deployment_references(commits: Sequence[Commit], pulls: Sequence[PullRequestInfo], policy: Policy) -> References:
    """Keys per commit: its own message's, plus those of the PR (title, branch, body) it came with."""
    own = collect_references(policy, commits=commits)
    keys: dict[str, tuple[str, ...]] = {sha: tuple(found) for sha, found in own.commit_keys.items()}
    for pull in pulls:
        change = collect_references(policy, title=pull.title, branch=pull.head_ref, body=pull.body).change_keys
        for sha in pull.commit_shas:
            keys[sha] = tuple(dict.fromkeys((*keys.get(sha, ()), *change)))
    return References((), keys)


def emergency_tickets(commits: Sequence[Commit], pulls: Sequence[PullRequestInfo], policy: Policy) -> frozenset[str]:
    """The tickets of the release's emergency PRs: their title, branch, body (when configured) and own commits.

    One emergency PR must not wave the rest of the release through: other tickets are evaluated normally.
    """
    by_sha = {c.sha: c for c in commits}
    keys: set[str] = set()
    for pull in pulls:
        if policy.emergency_label not in pull.labels:
            continue
        own = [by_sha[sha] for sha in pull.commit_shas if sha in by_sha]
        references = collect_references(policy, title=pull.title, branch=pull.head_ref, body=pull.body, commits=own)
        keys.update(references.all_keys)
    return frozenset(keys)


@dataclass(frozen=True)
class MergeGroupFacts:
    """What a merge queue is about to merge: every PR in the group, each with its own commits."""

    repository: str
    head_sha: str
    commits: tuple[Commit, ...]
    pulls: tuple[PullRequestInfo, ...]
    tickets: Mapping[str, Ticket]
    unknown_tickets: frozenset[str]
    jira_error: str | None
    evaluated_at: datetime


def evaluate_changes(
    commits: Sequence[Commit],
    pulls: Sequence[PullRequestInfo],
    tickets: Mapping[str, Ticket],
    unknown: frozenset[str],
    jira_error: str | None,
    policy: Policy,
    *,
    people: Sequence[tuple[str, GitHubPerson]],
    now: datetime,
) -> tuple[tuple[TicketResult, ...], list[Finding], tuple[Commit, ...]]:
    """Commits that came with several PRs (a release, a merge group): each commit covered by its own message or
    by the PR it came with, each PR's tickets approved by someone who is neither its author nor an author or
    committer of the commits that reference them (nor one of `people`)."""
    references = deployment_references(commits, pulls, policy)
    people_by_key: dict[str, list[tuple[str, GitHubPerson]]] = {}
    for pull in pulls:
        change = collect_references(policy, title=pull.title, branch=pull.head_ref, body=pull.body).change_keys
        for key in change:
            people_by_key.setdefault(key, []).append((f"the author of PR #{pull.number}", GitHubPerson(pull.author)))
    results = evaluate_tickets(
        references,
        commits,
        tickets,
        unknown,
        jira_error,
        policy,
        people=people,
        people_by_key=people_by_key,
        emergency_keys=emergency_tickets(commits, pulls, policy),
        github_merges=frozenset(github_merge_commits(commits, pulls)),
        now=now,
    )
    findings: list[Finding] = []
    uncovered = uncovered_commits(references, commits, policy)
    if uncovered:
        fix = "neither do the PRs they came with; reference a ticket in each"
        findings.append(traceability_finding(uncovered, fix, policy))
    exempted = exemption_finding(commits, policy)
    if exempted is not None:
        findings.append(exempted)
    return results, findings, uncovered


def evaluate_merge_group(facts: MergeGroupFacts, policy: Policy) -> Verdict:
    """The merge gate over a merge queue's group: every PR in it evaluated with its own title, branch and body."""
    tickets, findings, uncovered = evaluate_changes(
        facts.commits,
        facts.pulls,
        facts.tickets,
        facts.unknown_tickets,
        facts.jira_error,
        policy,
        people=(),
        now=facts.evaluated_at,
    )
    return make_verdict(tickets, findings, uncovered, len(facts.commits), facts.evaluated_at)


def evaluate_deployment(facts: DeploymentFacts, policy: Policy) -> Verdict:
    """Approve only when every commit is covered, every ticket approved by a non-author (and not by the
    requester), and every required check has succeeded on the SHA."""
    requester = [("the deployment requester", GitHubPerson(login=facts.requester))] if facts.requester else []
    tickets, findings, uncovered = evaluate_changes(
        facts.commits,
        facts.pulls,
        facts.tickets,
        facts.unknown_tickets,
        facts.jira_error,
        policy,
        people=requester,
        now=facts.evaluated_at,
    )
    required = policy.environment(facts.environment).required_checks
    for check in evaluate_required_checks(required, facts.checks):
        label = check.rule.label()
        if check.passed:
            findings.append(Finding("required_checks", Outcome.PASSED, f"{label} succeeded"))
            continue
        seen = ", ".join(check.results) or "missing"
        if check.other_apps:
            seen += (
                f"; `{check.name}` from {', '.join(check.other_apps)} does not count: the policy pins {check.rule.app}"
            )
        findings.append(
            Finding(
                "required_checks",
                Outcome.FAILED,
                f"{label} has not succeeded",
                (f"required check `{label}` has not succeeded on {facts.sha[:7]} ({seen})",),
            )
        )
    return make_verdict(tickets, findings, uncovered, len(facts.commits), facts.evaluated_at)
