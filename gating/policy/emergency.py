"""Emergency changes: who was involved, and whether their tickets are now approved after the fact."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from gating.policy.config import Policy
from gating.policy.facts import GitHubPerson
from gating.policy.separation_of_duties import check_separation
from gating.policy.ticket_approval import evaluate_ticket_approval
from gating.policy.verdict import Outcome, Verdict
from jira_client.models import Ticket

Involved = tuple[str, GitHubPerson]  # (role, person), e.g. ("the author of 3f2a9c1", alice)


def pending_tickets(verdict: Verdict) -> list[str]:
    """The tickets that shipped as emergencies and still need an approval."""
    return [t.key for t in verdict.tickets if t.outcome is Outcome.EMERGENCY]


def involved_people(evidence: Mapping[str, Any]) -> list[Involved]:
    """Everyone who may not approve an emergency after the fact: the requester and every author and committer."""
    people: list[Involved] = [("the deployment requester", GitHubPerson(str(evidence.get("requester") or "")))]
    for commit in evidence.get("commits") or ():
        for role in ("author", "committer"):
            person = commit[role]
            people.append(
                (f"the {role} of {commit['sha'][:7]}", GitHubPerson(person["login"], person["name"], person["email"]))
            )
    return people


def evaluate_retroactive_approval(
    keys: Sequence[str], tickets: Mapping[str, Ticket], people: Sequence[Involved], policy: Policy
) -> list[dict[str, Any]] | None:
    """The approval records when every ticket is now approved by someone none of `people` is; else None.

    Separation of duties applies as before the fact: an approval by anyone who wrote, committed or
    requested the change does not count, and neither does one whose identity cannot be told.
    """
    approvals: list[dict[str, Any]] = []
    for key in keys:
        ticket = tickets.get(key)
        approval = evaluate_ticket_approval(ticket, policy).approval if ticket else None
        if ticket is None or approval is None:
            return None
        for approver in approval.approvers:
            conflicts, unresolved = check_separation(approver, people, policy.identities, {})
            if conflicts or unresolved:
                return None
        approvals.append(
            {
                "key": key,
                "status": ticket.status,
                "approvers": [a.label() for a in approval.approvers],
                "approved_at": approval.approved_at,
                "approval_source": approval.source,
                "approval_record": approval.record,
            }
        )
    return approvals


def approved_within_deadline(approvals: Sequence[Mapping[str, Any]], deadline: datetime) -> bool:
    return all(a["approved_at"] <= deadline for a in approvals)


def is_overdue(deadline: datetime, now: datetime) -> bool:
    return deadline < now
