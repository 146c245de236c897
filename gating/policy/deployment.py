"""The deploy gate's rules: the merge gate's, over a release's commits, plus CI checks and the requester."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from gating.policy.config import Policy
from gating.policy.facts import Commit, GitHubPerson
from gating.policy.pull_request import (
    References,
    collect_references,
    evaluate_tickets,
    make_verdict,
    traceability_finding,
    uncovered_commits,
)
from gating.policy.verdict import Finding, Outcome, Verdict
from jira_client.models import Ticket

_MERGE_PR = re.compile(r"^Merge pull request #(\d+)\b")
_SQUASH_PR = re.compile(r"\(#(\d+)\)\s*$")


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
class CheckResult:
    name: str
    kind: str  # check_run | status
    status: str
    conclusion: str | None
    raw: dict[str, Any]

    @property
    def succeeded(self) -> bool:
        if self.kind == "status":
            return self.status == "success"
        return self.status == "completed" and self.conclusion in ("success", "neutral", "skipped")


@dataclass(frozen=True)
class PullRequestInfo:
    number: int
    title: str
    body: str
    head_ref: str
    author: str
    labels: tuple[str, ...]
    commit_shas: tuple[str, ...]  # the release's commits that came with this PR


@dataclass(frozen=True)
class DeploymentFacts:
    repository: str
    environment: str
    deployment_id: int | None
    run_id: int
    sha: str
    ref: str | None
    requester: str
    range: ReleaseRange
    commits: tuple[Commit, ...]
    pulls: tuple[PullRequestInfo, ...]
    tickets: Mapping[str, Ticket]
    unknown_tickets: frozenset[str]
    jira_error: str | None
    checks: tuple[CheckResult, ...]
    evaluated_at: datetime


def pull_request_numbers(commits: Sequence[Commit]) -> dict[int, str]:
    """PR numbers named by merge and squash commits (GitHub's own messages), with the commit naming each."""
    numbers: dict[int, str] = {}
    for commit in commits:
        match = _MERGE_PR.match(commit.headline) or _SQUASH_PR.search(commit.headline)
        if match:
            numbers.setdefault(int(match.group(1)), commit.sha)
    return numbers


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


def deployment_references(facts: DeploymentFacts, policy: Policy) -> References:
    """Keys per commit: its own message's, plus those of the PR (title, branch, body) it came with."""
    own = collect_references(policy, commits=facts.commits)
    keys: dict[str, tuple[str, ...]] = {sha: tuple(found) for sha, found in own.commit_keys.items()}
    for pull in facts.pulls:
        change = collect_references(policy, title=pull.title, branch=pull.head_ref, body=pull.body).change_keys
        for sha in pull.commit_shas:
            keys[sha] = tuple(dict.fromkeys((*keys.get(sha, ()), *change)))
    return References((), keys)


def evaluate_deployment(facts: DeploymentFacts, policy: Policy) -> Verdict:
    """Approve only when every commit is covered, every ticket approved by a non-author (and not by the
    requester), and every required check has succeeded on the SHA."""
    references = deployment_references(facts, policy)
    requester = GitHubPerson(login=facts.requester)
    people_by_key: dict[str, list[tuple[str, GitHubPerson]]] = {}
    for pull in facts.pulls:
        change = collect_references(policy, title=pull.title, branch=pull.head_ref, body=pull.body).change_keys
        for key in change:
            people_by_key.setdefault(key, []).append((f"the author of PR #{pull.number}", GitHubPerson(pull.author)))
    emergency = any(policy.emergency_label in pull.labels for pull in facts.pulls)
    tickets = evaluate_tickets(
        references,
        facts.commits,
        facts.tickets,
        facts.unknown_tickets,
        facts.jira_error,
        policy,
        people=[("the deployment requester", requester)] if facts.requester else [],
        people_by_key=people_by_key,
        emergency=emergency,
        now=facts.evaluated_at,
    )
    findings: list[Finding] = []
    uncovered = uncovered_commits(references, facts.commits, policy)
    if uncovered:
        findings.append(
            traceability_finding(uncovered, "neither do the PRs they came with; reference a ticket in each")
        )
    required = policy.environment(facts.environment).required_checks
    for name in required:
        matching = [c for c in facts.checks if c.name == name]
        if any(c.succeeded for c in matching):
            findings.append(Finding("required_checks", Outcome.PASSED, f"{name} succeeded"))
            continue
        seen = ", ".join(sorted({c.conclusion or c.status for c in matching})) or "missing"
        findings.append(
            Finding(
                "required_checks",
                Outcome.FAILED,
                f"{name} has not succeeded",
                (f"required check `{name}` has not succeeded on {facts.sha[:7]} ({seen})",),
            )
        )
    return make_verdict(tickets, findings, uncovered, len(facts.commits), facts.evaluated_at)
