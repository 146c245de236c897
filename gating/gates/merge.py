"""The merge gate: gather a PR's (or merge group's) facts, evaluate them, publish one check run on the head SHA."""

from __future__ import annotations

import logging
import threading
from typing import Any

from gating.gates.check_runs import complete_check_run, start_check_run
from gating.gates.commit_pulls import CommitPullCache
from gating.gates.gather import (
    ChangeToMerge,
    GroupToMerge,
    gather_merge_group_facts,
    gather_policy,
    gather_pull_request_facts,
)
from gating.gates.pull_requests import PullRequestRef, forget_pull_request, index_pull_request
from gating.github_api import GitHubError, GitHubNotFound, Installation, Repo, reads
from gating.intake.deliveries import Delivery
from gating.intake.payloads import NotActionable, optional, required
from gating.intake.routing import EventRouter
from gating.policy.config import DEFAULTS, Policy, PolicyError
from gating.policy.deployment import evaluate_merge_group
from gating.policy.pull_request import error_verdict, evaluate_pull_request
from gating.policy.verdict import Verdict
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()

# Two deliveries for the same head (a push and a review) must not both create a check run.
_head_locks: dict[tuple[str, str], threading.Lock] = {}
_head_locks_guard = threading.Lock()


def _lock_for(repository: str, sha: str) -> threading.Lock:
    with _head_locks_guard:
        return _head_locks.setdefault((repository, sha), threading.Lock())


@router.register("pull_request", "opened")
@router.register("pull_request", "reopened")
@router.register("pull_request", "synchronize")
@router.register("pull_request", "edited")
@router.register("pull_request", "ready_for_review")
@router.register("pull_request", "labeled")
@router.register("pull_request", "unlabeled")
@router.register("pull_request_review", "submitted")
@router.register("pull_request_review", "edited")
@router.register("pull_request_review", "dismissed")
def on_pull_request(delivery: Delivery, services: Services) -> None:
    """Evaluate the PR's tickets and approvals and publish the check run."""
    gate_pull_request(services, PullRequestRef.from_payload(delivery.payload))


@router.register("pull_request", "closed")
def on_pull_request_closed(delivery: Delivery, services: Services) -> None:
    """A closed PR no longer needs re-evaluating when its tickets change."""
    ref = PullRequestRef.from_payload(delivery.payload)
    forget_pull_request(services.db, ref.repository, ref.number)


@router.register("check_run", "rerequested")
@router.register("check_suite", "rerequested")
def on_rerequested(delivery: Delivery, services: Services) -> None:
    """Someone pressed Re-run: evaluate again, with tickets read fresh from Jira."""
    payload = delivery.payload
    subject = payload.get("check_run") or payload.get("check_suite") or {}
    head_sha = optional(subject, "head_sha", str)
    numbers = [n for p in subject.get("pull_requests") or () if (n := optional(p, "number", int)) is not None]
    repository = required(payload, "repository.full_name", str)
    installation_id = required(payload, "installation.id", int)
    if not numbers and head_sha:
        # Check events carry no pull requests for forks: find the open PRs with this head.
        numbers = services.github.with_installation(
            installation_id, lambda inst: reads.open_pull_numbers_with_head(inst.repo(repository), head_sha)
        )
    for number in numbers:
        gate_pull_request(services, PullRequestRef(repository, installation_id, number), fresh=True, new_run=True)


@router.register("merge_group", "checks_requested")
def on_merge_group(delivery: Delivery, services: Services) -> None:
    """Evaluate the commits a merge queue is about to merge, on the group's head SHA."""
    payload = delivery.payload
    repository = required(payload, "repository.full_name", str)
    installation_id = required(payload, "installation.id", int)
    group = required(payload, "merge_group", dict)
    for name in ("head_sha", "base_sha"):
        required(group, name, str)
    services.github.with_installation(
        installation_id, lambda inst: _gate_merge_group(services, inst, repository, group)
    )


def gate_pull_request(services: Services, ref: PullRequestRef, *, fresh: bool = False, new_run: bool = False) -> None:
    services.github.with_installation(
        ref.installation_id, lambda inst: _gate(services, inst, ref, fresh=fresh, new_run=new_run)
    )


def _gate(services: Services, installation: Installation, ref: PullRequestRef, *, fresh: bool, new_run: bool) -> None:
    repo = installation.repo(ref.repository)
    try:
        pull = reads.pull_request(repo, ref.number)  # always the current head: deliveries arrive out of order
    except GitHubNotFound as exc:
        raise NotActionable(f"{ref.repository}#{ref.number} is not visible to the app (GitHub answered 404)") from exc
    if pull.get("state") != "open":
        forget_pull_request(services.db, ref.repository, ref.number)
        return
    change = ChangeToMerge(pull["base"]["sha"], pull["head"]["sha"], pull)
    verdict = _evaluate_and_publish(services, installation, repo, change, ref.number, new_run=new_run, fresh=fresh)
    if verdict is not None:
        index_pull_request(services.db, ref, [t.key for t in verdict.tickets], services.clock())
        log.info(
            "gate.pull_request",
            extra={
                "repository": ref.repository,
                "number": ref.number,
                "sha": change.head_sha,
                "outcome": verdict.outcome.label,
            },
        )


def _gate_merge_group(services: Services, installation: Installation, repository: str, group: dict[str, Any]) -> None:
    repo = installation.repo(repository)
    change = GroupToMerge(group["base_sha"], group["head_sha"])
    _evaluate_and_publish(services, installation, repo, change, None, new_run=True, fresh=True)


def _evaluate_and_publish(
    services: Services,
    installation: Installation,
    repo: Repo,
    change: ChangeToMerge | GroupToMerge,
    number: int | None,
    *,
    new_run: bool,
    fresh: bool,
) -> Verdict | None:
    """Policy, check run in progress, facts, verdict, completed check run. None when the policy is broken."""
    with _lock_for(repo.full_name, change.head_sha):
        try:
            policy = gather_policy(installation, repo.full_name)
        except PolicyError as exc:
            verdict = error_verdict("configuration", f"Fix {exc.source}", str(exc), services.clock())
            name = DEFAULTS["check_name"]  # the file that would name the check cannot be read
            run_id = start_check_run(services.db, repo, change.head_sha, name, number, new_run)
            complete_check_run(services.db, repo, change.head_sha, name, run_id, verdict)
            return None
        name = policy.check_name
        run_id = start_check_run(services.db, repo, change.head_sha, name, number, new_run)
        try:
            verdict = _evaluate(services, repo, change, policy, fresh=fresh)
        except GitHubError as exc:
            # Reading GitHub failed mid-way: say so on the check, and let a redelivery try again.
            reason = f"{exc.describe()}; re-run this check"
            verdict = error_verdict("github", "GitHub could not be read", reason, services.clock())
            complete_check_run(services.db, repo, change.head_sha, name, run_id, verdict)
            raise
        complete_check_run(services.db, repo, change.head_sha, name, run_id, verdict)
        return verdict


def _evaluate(
    services: Services, repo: Repo, change: ChangeToMerge | GroupToMerge, policy: Policy, *, fresh: bool
) -> Verdict:
    """Gather the facts once and evaluate them: a PR on its own, or every PR of a merge group."""
    if isinstance(change, GroupToMerge):
        cache = CommitPullCache(services.db, services.clock)
        group = gather_merge_group_facts(repo, services.jira, change, policy, clock=services.clock, cache=cache)
        return evaluate_merge_group(group, policy)
    facts = gather_pull_request_facts(repo, services.jira, change, policy, fresh=fresh, clock=services.clock)
    return evaluate_pull_request(facts, policy)
