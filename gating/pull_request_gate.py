"""The merge gate: gather a PR's facts, evaluate them, publish one check run on its head SHA."""

from __future__ import annotations

import dataclasses
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from github import Github, GithubException, UnknownObjectException
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError

from gating.deliveries import Delivery
from gating.gather import gather_commits, gather_policy, gather_reviews, gather_tickets
from gating.models import CheckRunRecord, PullRequestTicket
from gating.policy.config import DEFAULTS, Policy, PolicyError
from gating.policy.facts import Commit, PullRequestFacts, Review
from gating.policy.pull_request import collect_references, error_verdict, evaluate_pull_request
from gating.policy.verdict import Verdict
from gating.rendering import render_check_run
from gating.routing import EventRouter
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()

# Two deliveries for the same head (a push and a review) must not both create a check run.
_head_locks: dict[tuple[str, str], threading.Lock] = {}
_head_locks_guard = threading.Lock()


def _lock_for(repository: str, sha: str) -> threading.Lock:
    with _head_locks_guard:
        return _head_locks.setdefault((repository, sha), threading.Lock())


@dataclass(frozen=True)
class PullRequestRef:
    repository: str
    installation_id: int
    number: int

    @classmethod
    def from_payload(cls, payload: dict[str, Any], number: int | None = None) -> PullRequestRef:
        return cls(
            repository=payload["repository"]["full_name"],
            installation_id=int(payload["installation"]["id"]),
            number=int(number if number is not None else payload["pull_request"]["number"]),
        )


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
    forget_pull_request(services, ref.repository, ref.number)


@router.register("check_run", "rerequested")
@router.register("check_suite", "rerequested")
def on_rerequested(delivery: Delivery, services: Services) -> None:
    """Someone pressed Re-run: evaluate again, with tickets read fresh from Jira."""
    payload = delivery.payload
    subject = payload.get("check_run") or payload.get("check_suite") or {}
    head_sha = subject.get("head_sha")
    numbers = [p["number"] for p in subject.get("pull_requests") or ()]
    repository = payload["repository"]["full_name"]
    installation_id = int(payload["installation"]["id"])
    if not numbers and head_sha:
        # Check events carry no pull requests for forks: find the open PRs with this head.
        numbers = services.github.with_installation(
            installation_id, lambda gh: _open_pulls_with_head(gh, repository, head_sha)
        )
    for number in numbers:
        gate_pull_request(services, PullRequestRef(repository, installation_id, number), fresh=True, new_run=True)


@router.register("merge_group", "checks_requested")
def on_merge_group(delivery: Delivery, services: Services) -> None:
    """Evaluate the commits a merge queue is about to merge, on the group's head SHA."""
    payload = delivery.payload
    group = payload["merge_group"]
    repository = payload["repository"]["full_name"]
    installation_id = int(payload["installation"]["id"])
    services.github.with_installation(installation_id, lambda gh: _gate_merge_group(services, gh, repository, group))


def _open_pulls_with_head(gh: Github, repository: str, head_sha: str) -> list[int]:
    repo = gh.get_repo(repository)
    return [p.number for p in repo.get_pulls(state="open") if p.raw_data["head"]["sha"] == head_sha]


def gate_pull_request(services: Services, ref: PullRequestRef, *, fresh: bool = False, new_run: bool = False) -> None:
    services.github.with_installation(
        ref.installation_id, lambda gh: _gate(services, gh, ref, fresh=fresh, new_run=new_run)
    )


def _gate(services: Services, gh: Github, ref: PullRequestRef, *, fresh: bool, new_run: bool) -> None:
    repo = gh.get_repo(ref.repository)
    pull = repo.get_pull(ref.number)  # always the current head: deliveries arrive out of order
    raw = pull.raw_data
    if raw.get("state") != "open":
        forget_pull_request(services, ref.repository, ref.number)
        return
    head_sha = raw["head"]["sha"]

    def gather(policy: Policy) -> PullRequestFacts:
        commits = gather_commits(repo, raw["base"]["sha"], head_sha)
        reviews = gather_reviews(pull) if policy.require_review else ()
        return _gather_facts(services, ref.repository, raw, head_sha, commits, reviews, policy, fresh=fresh)

    verdict = _evaluate_and_publish(services, gh, ref.repository, head_sha, ref.number, new_run, gather)
    if verdict is not None:
        index_pull_request(services, ref, [t.key for t in verdict.tickets])
        log.info(
            "gate.pull_request",
            extra={
                "repository": ref.repository,
                "number": ref.number,
                "sha": head_sha,
                "outcome": verdict.outcome.label,
            },
        )


_QUEUE_REF = re.compile(r"/pr-(\d+)-")


def _gate_merge_group(services: Services, gh: Github, repository: str, group: dict[str, Any]) -> None:
    repo = gh.get_repo(repository)
    head_sha = group["head_sha"]

    def gather(policy: Policy) -> PullRequestFacts:
        commits = gather_commits(repo, group["base_sha"], head_sha)
        # The queue branch names the PR the group was made for; its title and branch cover
        # the commits like they do on the PR itself.
        match = _QUEUE_REF.search(group.get("head_ref") or "")
        pull = (_pull_or_none(repo, int(match.group(1))) if match else None) or {}
        facts = _gather_facts(services, repository, pull, head_sha, commits, (), policy, fresh=True)
        return dataclasses.replace(facts, number=None)

    _evaluate_and_publish(services, gh, repository, head_sha, None, True, gather)


def _gather_facts(
    services: Services,
    repository: str,
    pull: dict[str, Any],
    head_sha: str,
    commits: tuple[Commit, ...],
    reviews: tuple[Review, ...],
    policy: Policy,
    *,
    fresh: bool,
) -> PullRequestFacts:
    """The facts of a PR (or of the PR a merge group was made for: `pull` may be empty)."""
    head = pull.get("head") or {}
    references = collect_references(
        policy,
        title=pull.get("title") or "",
        branch=head.get("ref") or "",
        body=pull.get("body") or "",
        commits=commits,
    )
    lookup, jira_error = gather_tickets(services.jira, references.all_keys, policy, fresh=fresh)
    return PullRequestFacts(
        repository=repository,
        number=pull.get("number"),
        title=pull.get("title") or "",
        body=pull.get("body") or "",
        head_ref=head.get("ref") or "",
        head_sha=head_sha,
        author=(pull.get("user") or {}).get("login") or "",
        labels=tuple(label["name"] for label in pull.get("labels") or ()),
        commits=commits,
        reviews=reviews,
        tickets=lookup.tickets,
        unknown_tickets=lookup.unknown,
        jira_error=jira_error,
        evaluated_at=services.clock(),
    )


def _evaluate_and_publish(
    services: Services,
    gh: Github,
    repository: str,
    head_sha: str,
    number: int | None,
    new_run: bool,
    gather: Callable[[Policy], PullRequestFacts],
) -> Verdict | None:
    """Policy, check run in progress, facts, verdict, completed check run. None when the policy is broken."""
    repo = gh.get_repo(repository)
    with _lock_for(repository, head_sha):
        try:
            policy = gather_policy(gh, repository)
        except PolicyError as exc:
            verdict = error_verdict("configuration", f"Fix {exc.source}", str(exc), services.clock())
            name = DEFAULTS["check_name"]  # the file that would name the check cannot be read
            run_id = _start_check_run(services, repo, repository, head_sha, name, number, new_run)
            _complete_check_run(services, repo, repository, head_sha, name, run_id, verdict)
            return None
        run_id = _start_check_run(services, repo, repository, head_sha, policy.check_name, number, new_run)
        try:
            verdict = evaluate_pull_request(gather(policy), policy)
        except GithubException as exc:
            # Reading GitHub failed mid-way: say so on the check, and let a redelivery try again.
            reason = f"GitHub answered {exc.status}; re-run this check"
            verdict = error_verdict("github", "GitHub could not be read", reason, services.clock())
            _complete_check_run(services, repo, repository, head_sha, policy.check_name, run_id, verdict)
            raise
        _complete_check_run(services, repo, repository, head_sha, policy.check_name, run_id, verdict)
        return verdict


def _pull_or_none(repo: Any, number: int) -> dict[str, Any] | None:
    try:
        return repo.get_pull(number).raw_data
    except UnknownObjectException:
        return None


def _check_run_record(repository: str, head_sha: str, name: str) -> Any:
    return select(CheckRunRecord).where(
        CheckRunRecord.repository == repository,
        CheckRunRecord.head_sha == head_sha,
        CheckRunRecord.check_name == name,
    )


def _start_check_run(
    services: Services, repo: Any, repository: str, head_sha: str, name: str, number: int | None, new_run: bool
) -> int:
    """Create the check run in progress, or put the existing one for this head back in progress."""
    with services.db.session() as session:
        record = session.scalar(_check_run_record(repository, head_sha, name))
        existing = record.check_run_id if record else None
    if existing and not new_run:
        _patch_check_run(repo, existing, status="in_progress")
        return existing
    run = repo.create_check_run(name=name, head_sha=head_sha, status="in_progress")
    with services.db.session() as session:
        record = session.scalar(_check_run_record(repository, head_sha, name))
        if record:
            record.check_run_id = run.id
        else:
            session.add(
                CheckRunRecord(
                    repository=repository, head_sha=head_sha, check_name=name, check_run_id=run.id, pull_number=number
                )
            )
    return int(run.id)


def _patch_check_run(repo: Any, run_id: int, **fields: Any) -> None:
    # PATCH through the requester: editing a lazily built CheckRun object would need a GET first.
    repo._requester.requestJsonAndCheck("PATCH", f"{repo.url}/check-runs/{run_id}", input=fields)


def _complete_check_run(
    services: Services, repo: Any, repository: str, head_sha: str, name: str, run_id: int, verdict: Verdict
) -> None:
    output = render_check_run(verdict)
    fields: dict[str, Any] = {
        "status": "completed",
        "conclusion": output.conclusion,
        "completed_at": verdict.evaluated_at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "output": {"title": output.title, "summary": output.summary},
    }
    if output.text:
        fields["output"]["text"] = output.text
    _patch_check_run(repo, run_id, **fields)
    with services.db.session() as session:
        record = session.scalar(_check_run_record(repository, head_sha, name))
        if record:
            record.outcome = verdict.outcome.label
            record.title = output.title
            record.evaluated_at = verdict.evaluated_at


def index_pull_request(services: Services, ref: PullRequestRef, keys: list[str]) -> None:
    """Remember which tickets this open PR references (replacing what it referenced before)."""
    try:
        _replace_index(services, ref, keys)
    except IntegrityError:
        # Two evaluations of the same PR (different heads) raced; the second write settles it.
        _replace_index(services, ref, keys)


def _replace_index(services: Services, ref: PullRequestRef, keys: list[str]) -> None:
    now = services.clock()
    with services.db.session() as session:
        session.execute(
            delete(PullRequestTicket).where(
                PullRequestTicket.repository == ref.repository, PullRequestTicket.number == ref.number
            )
        )
        for key in keys:
            session.add(
                PullRequestTicket(
                    repository=ref.repository,
                    number=ref.number,
                    ticket_key=key,
                    installation_id=ref.installation_id,
                    updated_at=now,
                )
            )


def forget_pull_request(services: Services, repository: str, number: int) -> None:
    with services.db.session() as session:
        session.execute(
            delete(PullRequestTicket).where(
                PullRequestTicket.repository == repository, PullRequestTicket.number == number
            )
        )


def pull_requests_for_ticket(services: Services, key: str) -> list[PullRequestRef]:
    with services.db.session() as session:
        rows = session.scalars(select(PullRequestTicket).where(PullRequestTicket.ticket_key == key)).all()
        return [PullRequestRef(r.repository, r.installation_id, r.number) for r in rows]
