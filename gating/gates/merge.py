"""The merge gate: gather a PR's (or merge group's) facts, evaluate them, publish one check run on the head SHA."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, TypeVar

from gating import metrics
from gating.deferral import RetryLater
from gating.gates.check_runs import CheckRunPublisher, StartedRun
from gating.gates.commit_pulls import CommitPullCache
from gating.gates.gather import (
    ChangeToMerge,
    GroupToMerge,
    gather_merge_group_facts,
    gather_policy,
    gather_pull_request_facts,
    gather_tickets,
)
from gating.gates.pull_requests import PullRequestRef, forget_pull_request, index_pull_request
from gating.gates.ticket_changes import changed_since_read
from gating.github_api import GitHubError, GitHubNotFound, Installation, InstallationGone, Repo, reads
from gating.github_api.errors import retrying
from gating.intake.deliveries import Delivery
from gating.intake.payloads import NotActionable, optional, required
from gating.intake.routing import EventRouter
from gating.policy.config import DEFAULTS, Policy, PolicyError
from gating.policy.deployment import evaluate_merge_group
from gating.policy.facts import PullRequestFacts
from gating.policy.pull_request import error_verdict, evaluate_pull_request
from gating.policy.verdict import Verdict
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()

T = TypeVar("T")


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
    gate_pull_request(
        services,
        PullRequestRef.from_payload(delivery.payload),
        delivery_id=delivery.id,
        head_hint=optional(delivery.payload, "pull_request.head.sha", str),
    )


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
        gate_pull_request(
            services,
            PullRequestRef(repository, installation_id, number),
            fresh=True,
            new_run=True,
            delivery_id=delivery.id,
            head_hint=head_sha,
        )


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
        installation_id, lambda inst: _gate_merge_group(services, inst, repository, group, delivery.id)
    )


def gate_pull_request(
    services: Services,
    ref: PullRequestRef,
    *,
    fresh: bool = False,
    new_run: bool = False,
    delivery_id: str = "",
    head_hint: str | None = None,
) -> None:
    """Evaluate an open PR's current head and publish its check run.

    `delivery_id` is named by the error verdict if this fails; `head_hint` (the head the delivery
    named) is where that verdict goes when even the PR could not be read.
    """
    services.github.with_installation(
        ref.installation_id,
        lambda inst: _gate(
            services, inst, ref, fresh=fresh, new_run=new_run, delivery_id=delivery_id, head_hint=head_hint
        ),
    )


def _gate(
    services: Services,
    installation: Installation,
    ref: PullRequestRef,
    *,
    fresh: bool,
    new_run: bool,
    delivery_id: str,
    head_hint: str | None,
) -> None:
    repo = installation.repo(ref.repository)
    try:
        # Always the current head: deliveries arrive out of order.
        pull = _retrying(services, lambda: reads.pull_request(repo, ref.number), "pull request")
        is_open = pull.get("state") == "open"
        change = ChangeToMerge(pull["base"]["sha"], pull["head"]["sha"], pull) if is_open else None
    except GitHubNotFound as exc:
        raise NotActionable(f"{ref.repository}#{ref.number} is not visible to the app (GitHub answered 404)") from exc
    except Exception as exc:
        # Not even the head is known: the error verdict goes on the head the delivery named.
        if head_hint and _worth_an_error_verdict(exc):
            publisher = _publisher(services, repo, head_hint, DEFAULTS["check_name"], ref.number)
            publisher.publish_error(None, delivery_id, exc, services.clock())
        raise
    if change is None:
        forget_pull_request(services.db, ref.repository, ref.number)
        return
    verdict = _evaluate_and_publish(
        services, installation, repo, change, ref.number, new_run=new_run, fresh=fresh, delivery_id=delivery_id
    )
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


def _gate_merge_group(
    services: Services, installation: Installation, repository: str, group: dict[str, Any], delivery_id: str
) -> None:
    repo = installation.repo(repository)
    change = GroupToMerge(group["base_sha"], group["head_sha"])
    _evaluate_and_publish(services, installation, repo, change, None, new_run=True, fresh=True, delivery_id=delivery_id)


def _evaluate_and_publish(
    services: Services,
    installation: Installation,
    repo: Repo,
    change: ChangeToMerge | GroupToMerge,
    number: int | None,
    *,
    new_run: bool,
    fresh: bool,
    delivery_id: str,
) -> Verdict | None:
    """Policy, check run in progress, facts, verdict, completed check run. None when the policy is broken.

    Whatever fails on the way, the check run ends completed: with an error verdict that names the
    delivery, after which the exception goes on to mark the delivery failed (a redelivery runs it again).
    """
    publisher = _publisher(services, repo, change.head_sha, DEFAULTS["check_name"], number)
    started_at = services.clock()
    run: StartedRun | None = None
    try:
        try:
            policy = _retrying(services, lambda: gather_policy(installation, repo.full_name), "policy")
        except PolicyError as exc:
            # The file that would name the check cannot be read: the default name carries the error.
            verdict = error_verdict("configuration", f"Fix {exc.source}", str(exc), services.clock())
            run = publisher.start(new_run, key=delivery_id)
            if publisher.complete(run, verdict):
                metrics.verdict_published("merge", verdict.outcome.label, services.clock())
            return None
        publisher.name = policy.check_name
        # Keyed by the delivery: a job deferred (a rate limit) and run again adopts the run it created.
        run = publisher.start(new_run, key=delivery_id)
        verdict = _evaluate(services, repo, change, policy, fresh=fresh)
        if publisher.complete(run, verdict):
            metrics.verdict_published("merge", verdict.outcome.label, services.clock())
        return verdict
    except Exception as exc:
        if _worth_an_error_verdict(exc):
            metrics.verdict_published("merge", "error", services.clock())
            log.warning(
                "gate.error_verdict",
                extra={"repository": repo.full_name, "sha": change.head_sha, "delivery": delivery_id},
            )
            publisher.publish_error(run, delivery_id, exc, started_at)
        raise


def _evaluate(
    services: Services, repo: Repo, change: ChangeToMerge | GroupToMerge, policy: Policy, *, fresh: bool
) -> Verdict:
    """Gather the facts once and evaluate them: a PR on its own, or every PR of a merge group."""
    if isinstance(change, GroupToMerge):
        cache = CommitPullCache(services.db, services.clock)
        group = _retrying(
            services,
            lambda: gather_merge_group_facts(repo, services.jira, change, policy, clock=services.clock, cache=cache),
            "merge group facts",
        )
        return evaluate_merge_group(group, policy)
    facts = _retrying(
        services,
        lambda: gather_pull_request_facts(repo, services.jira, change, policy, fresh=fresh, clock=services.clock),
        "pull request facts",
    )
    if not fresh:
        facts = _reread_changed_tickets(services, facts, policy)
    return evaluate_pull_request(facts, policy)


def _reread_changed_tickets(services: Services, facts: PullRequestFacts, policy: Policy) -> PullRequestFacts:
    """Facts whose tickets changed after this process cached them (another process heard the webhook): read fresh."""
    stale = changed_since_read(services.db, facts.tickets)
    if not stale:
        return facts
    log.info("gate.tickets_reread", extra={"repository": facts.repository, "tickets": stale})
    lookup, jira_error = gather_tickets(services.jira, stale, policy, fresh=True)
    tickets = {key: ticket for key, ticket in facts.tickets.items() if key not in stale}
    tickets.update(lookup.tickets)
    return replace(
        facts,
        tickets=tickets,
        unknown_tickets=(facts.unknown_tickets - set(stale)) | lookup.unknown,
        jira_error=facts.jira_error or jira_error,
    )


def _publisher(services: Services, repo: Repo, head_sha: str, name: str, number: int | None) -> CheckRunPublisher:
    return CheckRunPublisher(
        services.db,
        repo,
        head_sha,
        name,
        number,
        app_id=services.github.app_id,
        retry_seconds=services.settings.github_retry_seconds,
        clock=services.clock,
    )


def _retrying(services: Services, operation: Callable[[], T], what: str) -> T:
    return retrying(operation, seconds=services.settings.github_retry_seconds, what=what)


def _worth_an_error_verdict(exc: Exception) -> bool:
    # Deferred (a rate limit): not a failure; the job runs again later and publishes the real verdict.
    if isinstance(exc, RetryLater):
        return False
    # A rejected token is retried with a fresh one by `with_installation`; an error verdict now
    # could not be published with the rejected token anyway.
    # Nor can anything be published where the app is no longer installed.
    return not (isinstance(exc, GitHubError) and exc.status == 401) and not isinstance(exc, InstallationGone)
