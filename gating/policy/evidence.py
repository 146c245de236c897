"""The deployment evidence document: everything a decision rested on, as the ledger keeps it.

Values are JSON types and datetimes (the ledger's canonical form has no floats); the dossier and the
auditor's answers read only this document, so what it records is what they show.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime, timedelta
from typing import Any

from gating.policy.config import Policy
from gating.policy.deployment import DeploymentFacts, DeploymentRequest, deployment_references
from gating.policy.facts import GitHubPerson
from gating.policy.ticket_approval import evaluate_ticket_approval
from gating.policy.verdict import Outcome, Verdict


def deployment_state(verdict: Verdict) -> str:
    """GitHub's answer: `approved` for a passing (or emergency) verdict, else `rejected`."""
    return "approved" if verdict.passed else "rejected"


def decision_label(verdict: Verdict) -> str:
    """The decision as the ledger indexes it: approved, rejected, or emergency."""
    return "emergency" if verdict.outcome is Outcome.EMERGENCY else deployment_state(verdict)


def _decision(verdict: Verdict) -> dict[str, Any]:
    return {"state": deployment_state(verdict), "outcome": verdict.outcome.label, "reasons": list(verdict.reasons())}


def approved_before(approved_at: datetime | None, requested_at: datetime) -> bool:
    """Whether an approval came no later than the request: compared with the request, never the evaluation
    (retries can evaluate minutes later), to the second, the precision GitHub gives `created_at`."""
    return approved_at is not None and approved_at.replace(microsecond=0) <= requested_at


def request_evidence(request: DeploymentRequest, captured_at: datetime) -> dict[str, Any]:
    """The request itself: which deployment, of what, by whom, captured when."""
    return {
        "repository": request.repository,
        "environment": request.environment,
        "deployment_id": request.deployment_id,
        "workflow_run_id": request.run_id,
        "workflow_run_attempt": request.run_attempt,
        "sha": request.sha,
        "ref": request.ref,
        "requester": request.requester,
        "requested_at": request.requested_at,
        "captured_at": captured_at,
    }


def error_evidence(request: DeploymentRequest, verdict: Verdict, error: str | None = None) -> dict[str, Any]:
    """The evidence of a request that could not be evaluated: the request, the error and the decision."""
    document = request_evidence(request, verdict.evaluated_at)
    if error is not None:
        document["error"] = error
    return document | {"decision": _decision(verdict)}


def _person(person: GitHubPerson) -> dict[str, Any]:
    return {"login": person.login, "name": person.name, "email": person.email}


def build_evidence(facts: DeploymentFacts, verdict: Verdict, policy: Policy) -> dict[str, Any]:
    """Everything the decision rested on: range, commits, PRs, tickets with their raw approvals, checks, findings."""
    request = DeploymentRequest(
        facts.repository,
        facts.environment,
        facts.deployment_id,
        facts.run_id,
        facts.sha,
        facts.ref,
        facts.requester,
        facts.requested_at,
        facts.run_attempt,
    )
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
                "approved_before_request": approved_before(result.approved_at, facts.requested_at),
                "approval_source": approval.source if approval else None,
                "approval_record": approval.record if approval else None,
                "outcome": result.outcome.label,
                "reasons": list(result.reasons),
            }
        )
    references = deployment_references(facts.commits, facts.pulls, policy)
    return request_evidence(request, facts.evaluated_at) | {
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
                "merge_commit_sha": p.merge_commit_sha,
                "merged_by": p.merged_by,
            }
            for p in facts.pulls
        ],
        "tickets": tickets,
        "unknown_tickets": sorted(facts.unknown_tickets),
        "checks": [
            {
                "name": c.name,
                "kind": c.kind,
                "status": c.status,
                "conclusion": c.conclusion,
                "succeeded": c.succeeded,
                "app": c.app,
                "raw": c.raw,
            }
            for c in facts.checks
        ],
        "required_checks": [rule.record() for rule in policy.environment(facts.environment).required_checks],
        # The mapping separation of duties matched GitHub people to Jira accounts with: the dossier shows how each
        # approver was told apart from the authors, and must not guess the mapping that was in force.
        "identities": dict(sorted(policy.identities.items())),
        "emergency_deadline": (
            facts.evaluated_at + timedelta(hours=policy.retroactive_deadline_hours)
            if verdict.outcome is Outcome.EMERGENCY
            else None
        ),
        "findings": [
            {"rule": f.rule, "outcome": f.outcome.label, "summary": f.summary, "reasons": list(f.reasons)}
            for f in verdict.findings
        ],
        "decision": _decision(verdict),
    }
