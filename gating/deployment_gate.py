"""The deploy gate: answer a custom deployment protection rule, after writing the evidence to the ledger."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from dataclasses import asdict
from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

import requests
from github import Github, GithubException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from gating.deliveries import Delivery
from gating.gather import (
    gather_checks,
    gather_policy,
    gather_pulls,
    gather_range,
    gather_tickets,
    last_successful_deployment_sha,
)
from gating.models import DeploymentDecision, Emergency
from gating.policy.config import Policy, PolicyError
from gating.policy.deployment import DeploymentFacts, deployment_references, evaluate_deployment
from gating.policy.pull_request import error_verdict
from gating.policy.ticket_approval import evaluate_ticket_approval
from gating.policy.verdict import Outcome, Verdict
from gating.routing import EventRouter
from gating.services import Services

log = logging.getLogger(__name__)

router = EventRouter()

COMMENT_LIMIT = 1024  # GitHub's limit on a protection-rule comment
PROGRESS_AFTER_SECONDS = 3.0
_CALLBACK_PATH = re.compile(r"/repos/([^/]+)/([^/]+)/actions/runs/(\d+)/deployment_protection_rule$")


class TransientError(Exception):
    """Jira or GitHub could not be read: worth waiting for, never a reason to approve."""


@router.register("deployment_protection_rule", "requested")
def on_protection_rule(delivery: Delivery, services: Services) -> None:
    """Decide a deployment: evidence to the ledger first, then one answer to GitHub."""
    request = ProtectionRequest.from_payload(delivery.payload)
    if not callback_is_trusted(request.callback_url, services.settings.github_api_url):
        # PyGithub would send the request to the configured host whatever the URL says: refuse it.
        log.warning("deploy.untrusted_callback", extra={"repository": request.repository, "url": request.callback_url})
        return
    decide(services, request)


class ProtectionRequest:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = payload
        self.repository: str = payload["repository"]["full_name"]
        self.installation_id = int(payload["installation"]["id"])
        self.environment: str = payload["environment"]
        self.callback_url: str = payload.get("deployment_callback_url") or ""
        deployment = payload.get("deployment") or {}
        self.deployment_id: int | None = deployment.get("id")
        self.sha: str | None = deployment.get("sha") or payload.get("sha")
        self.ref: str | None = deployment.get("ref") or payload.get("ref")
        creator = (deployment.get("creator") or {}).get("login")
        self.requester: str = creator or (payload.get("sender") or {}).get("login") or ""
        match = _CALLBACK_PATH.search(urlparse(self.callback_url).path)
        self.run_id = int(match.group(3)) if match else 0

    @classmethod
    def from_payload(cls, payload: dict[str, Any]) -> ProtectionRequest:
        return cls(payload)


def callback_is_trusted(url: str, api_url: str) -> bool:
    """Only a protection-rule callback on the configured GitHub API host, scheme and port is called."""
    target, api = urlparse(url), urlparse(api_url)
    if (target.scheme, target.hostname, target.port) != (api.scheme, api.hostname, api.port):
        return False
    prefix = api.path.rstrip("/")
    return target.path.startswith(prefix + "/") and bool(_CALLBACK_PATH.search(target.path))


def decide(services: Services, request: ProtectionRequest) -> None:
    existing = _decision(services, request)
    if existing is not None:
        if existing.callback_sent_at is None:
            # Decided and recorded, but the answer was not sent (crash or GitHub down): send the same one.
            _send_answer(services, request, existing.state, existing.comment)
            _mark_sent(services, existing.id)
        log.info("deploy.already_decided", extra={"repository": request.repository, "run_id": request.run_id})
        return
    # A long evaluation (thousands of commits, a slow Jira) tells the release manager it is under way.
    progress = threading.Timer(
        PROGRESS_AFTER_SECONDS,
        _try_progress,
        (services, request, "Countersign is checking this release's commits, tickets and CI results…"),
    )
    progress.daemon = True
    progress.start()
    try:
        verdict, evidence = _evaluate_with_retries(services, request)
    finally:
        progress.cancel()
    state = "approved" if verdict.passed else "rejected"
    decision_label = "emergency" if verdict.outcome is Outcome.EMERGENCY else state
    evidence["decision"] = {"state": state, "outcome": verdict.outcome.label, "reasons": list(verdict.reasons())}
    now = services.clock()
    try:
        with services.db.session() as session:
            entry = services.ledger.append(
                "deployment_decision",
                evidence,
                index={
                    "repository": request.repository,
                    "environment": request.environment,
                    "deployment_id": request.deployment_id,
                    "sha": request.sha,
                    "decision": decision_label,
                },
                session=session,
            )
            comment = render_comment(services, request, verdict, state, entry.id)
            row = DeploymentDecision(
                repository=request.repository,
                environment=request.environment,
                run_id=request.run_id,
                deployment_id=request.deployment_id,
                sha=request.sha or "",
                state=state,
                comment=comment,
                callback_url=request.callback_url,
                ledger_entry_id=entry.id,
                decided_at=now,
            )
            session.add(row)
            if verdict.outcome is Outcome.EMERGENCY:
                session.add(_emergency_row(services, request, verdict, evidence, entry.id))
            session.flush()
            decision_id = row.id
    except IntegrityError:
        log.info("deploy.decided_elsewhere", extra={"repository": request.repository, "run_id": request.run_id})
        return
    # The decision and its evidence are committed: a crash from here on leaves it to be re-sent.
    _send_answer(services, request, state, comment)
    _mark_sent(services, decision_id)
    log.info("deploy.decided", extra={"repository": request.repository, "state": state, "entry": entry.id})


def _decision(services: Services, request: ProtectionRequest) -> DeploymentDecision | None:
    with services.db.session() as session:
        return session.scalar(
            select(DeploymentDecision).where(
                DeploymentDecision.repository == request.repository,
                DeploymentDecision.environment == request.environment,
                DeploymentDecision.run_id == request.run_id,
            )
        )


def _mark_sent(services: Services, decision_id: int) -> None:
    with services.db.session() as session:
        row = session.get(DeploymentDecision, decision_id)
        if row is not None:
            row.callback_sent_at = services.clock()


def _last_approved_sha(services: Services, request: ProtectionRequest) -> str | None:
    with services.db.session() as session:
        return session.scalar(
            select(DeploymentDecision.sha)
            .where(
                DeploymentDecision.repository == request.repository,
                DeploymentDecision.environment == request.environment,
                DeploymentDecision.state == "approved",
            )
            .order_by(DeploymentDecision.decided_at.desc(), DeploymentDecision.id.desc())
            .limit(1)
        )


def _evaluate_with_retries(services: Services, request: ProtectionRequest) -> tuple[Verdict, dict[str, Any]]:
    """Evaluate; while Jira or GitHub is unavailable, wait and try again until the deadline, then reject."""
    deadline = time.monotonic() + services.settings.deploy_retry_seconds
    delay, reports = 1.0, 0
    while True:
        try:
            return services.github.with_installation(
                request.installation_id, lambda gh: _evaluate(services, gh, request)
            )
        except TransientError as exc:
            reason = str(exc)
        if time.monotonic() + delay > deadline:
            now = services.clock()
            verdict = error_verdict("availability", "Evidence could not be gathered", reason, now)
            return verdict, _base_evidence(request, now) | {"error": reason}
        if reports < 9:  # GitHub allows 10 progress reports; keep the last for a later message
            reports += 1
            _try_progress(services, request, f"Countersign is waiting: {reason[:200]}. Retrying in {delay:.0f} s.")
        time.sleep(delay)
        delay = min(delay * 2, 60.0)


def _evaluate(services: Services, gh: Github, request: ProtectionRequest) -> tuple[Verdict, dict[str, Any]]:
    now = services.clock()
    repo = gh.get_repo(request.repository)
    try:
        policy = gather_policy(gh, request.repository)
    except PolicyError as exc:
        return error_verdict("configuration", f"Fix {exc.source}", str(exc), now), _base_evidence(request, now)
    except GithubException as exc:
        raise TransientError(f"GitHub answered {exc.status} reading the policy") from exc
    try:
        sha = request.sha or repo.get_workflow_run(request.run_id).head_sha
        request.sha = sha
        base, method = _last_approved_sha(services, request), "last_approved"
        if base is None:
            base, method = last_successful_deployment_sha(repo, request.environment, sha), "last_successful"
        release, commits = gather_range(
            repo, sha, base_sha=base, method=method, first_limit=services.settings.first_deploy_commit_limit
        )
        pulls = gather_pulls(repo, commits)
        checks = gather_checks(repo, sha)
    except GithubException as exc:
        raise TransientError(f"GitHub answered {exc.status}") from exc
    partial = DeploymentFacts(
        request.repository, request.environment, request.deployment_id, request.run_id, sha, request.ref,
        request.requester, release, commits, pulls, {}, frozenset(), None, checks, now,
    )  # fmt: skip
    keys = deployment_references(partial, policy).all_keys
    # Fresh from Jira at this moment: a revoked approval must never pass on a cached read.
    lookup, jira_error = gather_tickets(services.jira, keys, policy, fresh=True)
    if jira_error:
        raise TransientError(f"Jira could not be read: {jira_error}")
    facts = DeploymentFacts(
        request.repository, request.environment, request.deployment_id, request.run_id, sha, request.ref,
        request.requester, release, commits, pulls, lookup.tickets, lookup.unknown, None, checks, services.clock(),
    )  # fmt: skip
    verdict = evaluate_deployment(facts, policy)
    return verdict, build_evidence(request, facts, verdict, policy)


def _base_evidence(request: ProtectionRequest, now: Any) -> dict[str, Any]:
    return {
        "repository": request.repository,
        "environment": request.environment,
        "deployment_id": request.deployment_id,
        "workflow_run_id": request.run_id,
        "sha": request.sha,
        "ref": request.ref,
        "requester": request.requester,
        "captured_at": now,
    }


def _person(person: Any) -> dict[str, Any]:
    return {"login": person.login, "name": person.name, "email": person.email}


def build_evidence(request: ProtectionRequest, facts: DeploymentFacts, verdict: Verdict, policy: Policy) -> dict:
    """Everything the decision rested on, as the ledger keeps it (canonical JSON: no floats)."""
    tickets = []
    results = {t.key: t for t in verdict.tickets}
    for key in sorted(results):
        result = results[key]
        ticket = facts.tickets.get(key)
        approval = evaluate_ticket_approval(ticket, policy).approval if ticket else None
        tickets.append(
            {
                "key": key,
                "url": result.url,
                "summary": ticket.summary if ticket else None,
                "issue_type": ticket.issue_type if ticket else None,
                "status": result.status,
                "approvers": list(result.approvers),
                "approved_at": result.approved_at,
                "approved_before_request": bool(result.approved_at and result.approved_at <= facts.evaluated_at),
                "approval_source": approval.source if approval else None,
                "approval_record": approval.record if approval else None,
                "outcome": result.outcome.label,
                "reasons": list(result.reasons),
            }
        )
    references = deployment_references(facts, policy)
    return _base_evidence(request, facts.evaluated_at) | {
        "range": asdict(facts.range),
        "commits": [
            {
                "sha": c.sha,
                "author": _person(c.author),
                "committer": _person(c.committer),
                "message": c.message,
                "parents": list(c.parents),
                "tickets": list(references.commit_keys.get(c.sha, ())),
            }
            for c in facts.commits
        ],
        "pull_requests": [
            {
                "number": p.number,
                "title": p.title,
                "author": p.author,
                "head_ref": p.head_ref,
                "labels": list(p.labels),
                "commits": list(p.commit_shas),
            }
            for p in facts.pulls
        ],
        "tickets": tickets,
        "unknown_tickets": sorted(facts.unknown_tickets),
        "checks": [
            {"name": c.name, "kind": c.kind, "status": c.status, "conclusion": c.conclusion, "raw": c.raw}
            for c in facts.checks
        ],
        "required_checks": list(policy.environment(facts.environment).required_checks),
        "emergency_deadline": (
            facts.evaluated_at + timedelta(hours=policy.retroactive_deadline_hours)
            if verdict.outcome is Outcome.EMERGENCY
            else None
        ),
        "findings": [
            {"rule": f.rule, "outcome": f.outcome.label, "summary": f.summary, "reasons": list(f.reasons)}
            for f in verdict.findings
        ],
    }


def render_comment(services: Services, request: ProtectionRequest, verdict: Verdict, state: str, entry_id: int) -> str:
    """A few lines for the release manager: the decision, each failing ticket and rule, the dossier link."""
    head = (
        f"Countersign {'approved' if state == 'approved' else 'rejected'} this deployment to "
        f"{request.environment} of {(request.sha or '')[:7]}"
    )
    if verdict.outcome is Outcome.EMERGENCY:
        head += " as an emergency change (approval is due after the fact)"
    lines = [head + "."]
    lines += [f"- {reason}" for reason in verdict.reasons()[:8]]
    if len(verdict.reasons()) > 8:
        lines.append(f"- and {len(verdict.reasons()) - 8} more")
    base = services.settings.public_url or ""
    link = f"Dossier: {base}/deployments/{entry_id} (ledger entry {entry_id})"
    body = "\n".join(lines)
    if len(body) + len(link) + 1 > COMMENT_LIMIT:
        body = body[: COMMENT_LIMIT - len(link) - 3] + "…"
    return f"{body}\n{link}"


def _send_answer(services: Services, request: ProtectionRequest, state: str, comment: str) -> None:
    """Send the recorded decision; while GitHub fails (5xx, 429, no connection), try again until the deadline."""
    body = {"environment_name": request.environment, "state": state, "comment": comment}
    deadline = time.monotonic() + services.settings.deploy_retry_seconds
    delay, attempt = 0.5, 0
    while True:
        attempt += 1
        try:
            services.github.with_installation(request.installation_id, lambda gh: _post(gh, request.callback_url, body))
            return
        except GithubException as exc:
            if exc.status == 422 and attempt > 1:
                # An earlier attempt reached GitHub even though its answer did not reach us.
                log.info("deploy.answer_already_recorded", extra={"repository": request.repository})
                return
            if not (exc.status >= 500 or exc.status == 429) or time.monotonic() + delay > deadline:
                raise
        except requests.RequestException:
            if time.monotonic() + delay > deadline:
                raise
        log.warning("deploy.answer_retry", extra={"repository": request.repository, "attempt": attempt})
        time.sleep(delay)
        delay = min(delay * 2, 30.0)


def _try_progress(services: Services, request: ProtectionRequest, message: str) -> None:
    body = {"environment_name": request.environment, "comment": message[:COMMENT_LIMIT]}
    try:
        services.github.with_installation(request.installation_id, lambda gh: _post(gh, request.callback_url, body))
    except Exception:  # a progress report is a courtesy; its failure changes nothing
        log.info("deploy.progress_failed", extra={"repository": request.repository})


def _post(gh: Github, url: str, body: dict[str, Any]) -> None:
    # Not retried by the client (POST): a decision is sent once; a failure surfaces and the
    # delivery is retried, which re-sends the recorded decision.
    gh.requester.requestJsonAndCheck("POST", url, input=body)


def _emergency_row(
    services: Services, request: ProtectionRequest, verdict: Verdict, evidence: dict[str, Any], entry_id: int
) -> Emergency:
    pending = [t.key for t in verdict.tickets if t.outcome is Outcome.EMERGENCY]
    people = [["the deployment requester", request.requester, None, None]]
    for commit in evidence.get("commits", []):
        for role in ("author", "committer"):
            person = commit[role]
            people.append([f"the {role} of {commit['sha'][:7]}", person["login"], person["name"], person["email"]])
    now = services.clock()
    deadline = evidence.get("emergency_deadline") or now + timedelta(hours=72)
    return Emergency(
        ledger_entry_id=entry_id,
        repository=request.repository,
        environment=request.environment,
        deployment_id=request.deployment_id,
        installation_id=request.installation_id,
        sha=request.sha or "",
        tickets=" ".join(pending),
        people=json.dumps(people),
        deadline=deadline,
        created_at=now,
    )
