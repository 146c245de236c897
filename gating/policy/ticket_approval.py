"""Whether a ticket is approved, by whom and when, from its status history or JSM approvals."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gating.policy.config import Policy
from jira_client.models import JiraUser, JsmApprovalDecision, Ticket

_UNDATED = datetime.min.replace(tzinfo=UTC)  # an approval with no date sorts before every dated one


@dataclass(frozen=True)
class Approval:
    approvers: tuple[JiraUser, ...]
    approved_at: datetime
    source: str  # changelog | jsm
    record: dict[str, Any]  # the raw Jira record the approval was read from (evidence)


@dataclass(frozen=True)
class ApprovalResult:
    approval: Approval | None
    problem: str | None  # why the ticket does not count as approved; None when approved


def _is_approved_status(name: str | None, policy: Policy) -> bool:
    return name is not None and name.casefold() in {s.casefold() for s in policy.approved_statuses}


def evaluate_ticket_approval(ticket: Ticket, policy: Policy) -> ApprovalResult:
    """Approved means: the current status is an approved one AND the approval event is known."""
    wanted = " or ".join(policy.approved_statuses)
    if not _is_approved_status(ticket.status, policy):
        return ApprovalResult(None, f"{ticket.key} is {ticket.status}; it needs to be moved to {wanted} in Jira")
    if policy.approval_source == "jsm":
        return _from_jsm(ticket)
    return _from_changelog(ticket, wanted)


def _from_changelog(ticket: Ticket, wanted: str) -> ApprovalResult:
    # The approval is the transition that put the ticket in its current status: the latest
    # status change. An older approval followed by a reopen and a re-approval counts once, late.
    if not ticket.status_changes:
        return ApprovalResult(
            None, f"{ticket.key} is {ticket.status} but its history shows no transition into it; move it out and back"
        )
    last = ticket.status_changes[-1]
    if last.to_status.casefold() != (ticket.status or "").casefold():
        return ApprovalResult(
            None, f"{ticket.key}'s history does not end in its current status {ticket.status}; approval time unknown"
        )
    if last.author is None:
        return ApprovalResult(
            None,
            f"{ticket.key} was moved to {last.to_status} by an automation with no person recorded; "
            "a person must approve it",
        )
    return ApprovalResult(Approval((last.author,), last.at, "changelog", last.raw), None)


def _from_jsm(ticket: Ticket) -> ApprovalResult:
    # The latest decision is the ticket's answer, whatever it is: an approval declined later (a second
    # approver, a re-review) no longer counts, and one given after a decline does.
    decision = latest_jsm_decision(ticket.jsm_approvals or ())
    if decision is None:
        return ApprovalResult(None, f"{ticket.key} has no Jira Service Management approval")
    latest = f"{ticket.key}'s latest Jira Service Management approval '{decision.name}'"
    if decision.final_decision == "pending":
        return ApprovalResult(None, f"{latest} is still pending; it counts once it is approved")
    if decision.final_decision != "approved":
        on = f" on {decision.completed_at.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if decision.completed_at else ""
        return ApprovalResult(None, f"{latest} was {decision.final_decision}{on}; it needs a new approval")
    if decision.completed_at is None:
        return ApprovalResult(
            None, f"{ticket.key}'s approval '{decision.name}' has no completion time; approval time unknown"
        )
    approvers = tuple(user for user, answer in decision.approvers if answer == "approved")
    if not approvers:
        return ApprovalResult(None, f"{ticket.key}'s approval '{decision.name}' names no approving person")
    return ApprovalResult(Approval(approvers, decision.completed_at, "jsm", decision.raw), None)


def latest_jsm_decision(decisions: Sequence[JsmApprovalDecision]) -> JsmApprovalDecision | None:
    """The approval decided (else asked for) last; Jira's order breaks ties and stands in for missing dates."""
    if not decisions:
        return None

    def moment(indexed: tuple[int, JsmApprovalDecision]) -> tuple[datetime, int]:
        index, decision = indexed
        return decision.completed_at or decision.created_at or _UNDATED, index

    return max(enumerate(decisions), key=moment)[1]
