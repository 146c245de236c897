"""When a ticket in an approved status still does not count as approved, and what the check says to do."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from builders import JIRA_BOB, JIRA_CAROL, NOW, a_jsm_decision, a_ticket, pr_facts

from gating.policy.config import Policy, build_policy
from gating.policy.pull_request import evaluate_pull_request
from gating.policy.verdict import Outcome, Verdict
from jira_client.models import StatusChange, Ticket

POLICY = build_policy()


def verdict_for(ticket: Ticket, policy: Policy = POLICY) -> Verdict:
    return evaluate_pull_request(pr_facts(tickets=(ticket,)), policy)


def test_an_approved_status_with_no_transition_into_it_fails_and_says_how_to_record_one() -> None:
    # Created straight in Approved (an import, a workflow whose first status is Approved): no one approved it.
    ticket = replace(a_ticket("PAY-1"), status_changes=())

    verdict = verdict_for(ticket)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == "PAY-1 is Approved but its history shows no transition into it; move it out and back"
    assert verdict.tickets[0].approvers == ()


def test_a_history_that_ends_in_another_status_leaves_the_approval_time_unknown() -> None:
    approved = a_ticket("PAY-1")
    moved_on = StatusChange("Approved", "3", "In Review", "4", JIRA_BOB, NOW - timedelta(minutes=30), "h2")
    ticket = replace(approved, status_changes=(*approved.status_changes, moved_on))

    verdict = verdict_for(ticket)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == "PAY-1's history does not end in its current status Approved; approval time unknown"


def test_a_transition_by_an_automation_with_no_person_does_not_approve() -> None:
    verdict = verdict_for(a_ticket("PAY-1", approver=None))

    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == (
        "PAY-1 was moved to Approved by an automation with no person recorded; a person must approve it"
    )


def test_statuses_match_whatever_their_case_and_every_approved_status_is_named() -> None:
    policy = build_policy({"jira": {"approved_statuses": ["Approved", "Ready to ship"]}})

    assert verdict_for(a_ticket("PAY-1", status="READY TO SHIP"), policy).passed
    assert verdict_for(a_ticket("PAY-1", status="In Progress"), policy).title == (
        "PAY-1 is In Progress; it needs to be moved to Approved or Ready to ship in Jira"
    )


JSM = build_policy({"jira": {"approval_source": "jsm"}})


def test_a_jsm_approval_that_no_approver_answered_yes_to_names_no_one() -> None:
    # JSM can complete an approval as approved by its condition while every named approver is still pending.
    decision = a_jsm_decision("approved", NOW - timedelta(hours=1), ((JIRA_CAROL, "pending"), (JIRA_BOB, "pending")))
    ticket = replace(a_ticket("PAY-1"), jsm_approvals=(decision,))

    verdict = verdict_for(ticket, JSM)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == ("PAY-1's approval 'Change approval' names no approving person",)
