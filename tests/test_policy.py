"""The merge gate's rules as pure functions: facts in, the exact verdict users read out."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta, timezone

from builders import (
    ALICE,
    BOB,
    JIRA_ALICE,
    JIRA_BOB,
    JIRA_CAROL,
    NOW,
    a_commit,
    a_jsm_decision,
    a_ticket,
    pr_facts,
)

from gating.policy.config import build_policy
from gating.policy.facts import Commit, GitHubPerson, Review
from gating.policy.pull_request import evaluate_pull_request
from gating.policy.ticket_keys import find_keys
from gating.policy.verdict import Outcome, Verdict
from jira_client.models import JiraUser, JsmApprovalDecision

POLICY = build_policy()


def test_keys_are_found_in_order_and_filtered_by_project() -> None:
    assert find_keys("PAY-1 and OPS-22, again PAY-1") == ("PAY-1", "OPS-22")
    assert find_keys("PAY-1 and OPS-22", ["OPS"]) == ("OPS-22",)
    assert find_keys("XPAY-1 PAY-12x PAY-123") == ("XPAY-1", "PAY-12", "PAY-123")
    assert find_keys("pay-101 lower case") == ()
    assert find_keys("feature/pay-101-refunds", ignore_case=True) == ("PAY-101",)


def test_approved_ticket_by_someone_else_passes() -> None:
    verdict = evaluate_pull_request(pr_facts(tickets=(a_ticket("PAY-1"),)), POLICY)
    assert verdict.outcome is Outcome.PASSED
    assert verdict.title == "1 ticket approved by someone other than the authors"
    assert verdict.tickets[0].approvers == ("Carol Approver",)


def test_unapproved_ticket_fails_naming_status_and_fix() -> None:
    verdict = evaluate_pull_request(pr_facts(tickets=(a_ticket("PAY-1", status="In Progress"),)), POLICY)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == "PAY-1 is In Progress; it needs to be moved to Approved in Jira"


def test_self_approval_fails_separation_of_duties_by_email() -> None:
    facts = pr_facts(tickets=(a_ticket("PAY-1", approver=JIRA_ALICE),))
    sha = facts.commits[0].short_sha
    verdict = evaluate_pull_request(facts, POLICY)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        f"PAY-1: Alice Author approved it but is also the PR author, the author of {sha} and the committer of {sha}; "
        "ask someone else to approve it",
    )


def test_committer_who_approved_fails_even_when_someone_else_opened_the_pr() -> None:
    commit = a_commit("PAY-1 tweak", author=ALICE, committer=BOB)
    facts = pr_facts(title="refunds", commits=(commit,), tickets=(a_ticket("PAY-1", approver=JIRA_BOB),))
    verdict = evaluate_pull_request(facts, POLICY)
    assert verdict.outcome is Outcome.FAILED
    assert f"the committer of {commit.short_sha}" in verdict.title


def test_identity_mapping_beats_email_and_hidden_email_fails_closed() -> None:
    hidden = JiraUser(account_id="acc-x", display_name="Mystery Person")  # Cloud hid the e-mail
    facts = pr_facts(tickets=(a_ticket("PAY-1", approver=hidden),))
    sha = facts.commits[0].short_sha
    verdict = evaluate_pull_request(facts, POLICY)
    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        "PAY-1: cannot tell whether Jira user Mystery Person (accountId acc-x) is GitHub user alice (the PR author, "
        f"the author of {sha} and the committer of {sha}): Jira does not show this user's e-mail; add alice's Jira "
        "accountId under `identities` in .github/countersign.yml (`alice: acc-x` if that is them)",
    )
    mapped = build_policy({"identities": {"alice": "acc-alice"}})
    assert evaluate_pull_request(pr_facts(tickets=(a_ticket("PAY-1", approver=hidden),)), mapped).passed
    same = build_policy({"identities": {"alice": "acc-x"}})
    assert not evaluate_pull_request(pr_facts(tickets=(a_ticket("PAY-1", approver=hidden),)), same).passed


def test_an_email_mapping_never_passes_an_approver_whose_email_jira_hides() -> None:
    # PRODUCT.md's own example on Jira Cloud, where Alice's e-mail is hidden: she approved her own ticket.
    policy = build_policy({"identities": {"alice": "alice@example.com"}})
    hidden = JiraUser(account_id="5b10ac8d82e05b22cc7d4ef5", display_name="Alice Author")
    facts = pr_facts(tickets=(a_ticket("PAY-1", approver=hidden),))
    sha = facts.commits[0].short_sha

    verdict = evaluate_pull_request(facts, policy)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.title == verdict.reasons()[0][:200]
    assert verdict.reasons() == (
        "PAY-1: cannot tell whether Jira user Alice Author (accountId 5b10ac8d82e05b22cc7d4ef5) is GitHub user alice "
        f"(the PR author, the author of {sha} and the committer of {sha}): Jira does not show this user's e-mail; "
        "add alice's Jira accountId under `identities` in .github/countersign.yml "
        "(`alice: 5b10ac8d82e05b22cc7d4ef5` if that is them)",
    )
    mapped = build_policy({"identities": {"alice": "5b10ac8d82e05b22cc7d4ef5"}})
    assert [t.reasons for t in evaluate_pull_request(facts, mapped).tickets] == [
        (
            f"PAY-1: Alice Author approved it but is also the PR author, the author of {sha} and the committer "
            f"of {sha}; ask someone else to approve it",
        )
    ]


def test_a_noreply_commit_email_never_tells_a_data_center_approver_apart() -> None:
    alice = GitHubPerson(login="alice", name="Alice Author", email="1234+alice@users.noreply.github.com")
    dc_alice = JiraUser(name="alice", key="JIRAUSER10000", email="alice@corp.example", display_name="Alice Author")
    facts = pr_facts(commits=(a_commit("Add refunds", author=alice),), tickets=(a_ticket("PAY-1", approver=dc_alice),))
    sha = facts.commits[0].short_sha

    verdict = evaluate_pull_request(facts, POLICY)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        "PAY-1: cannot tell whether Jira user Alice Author (username alice) is GitHub user alice (the PR author, "
        f"the author of {sha} and the committer of {sha}): alice's commits show only a GitHub noreply e-mail, "
        "which says nothing about their Jira account; add alice's Jira username under `identities` in "
        ".github/countersign.yml (`alice: alice` if that is them)",
    )
    assert evaluate_pull_request(facts, build_policy({"identities": {"alice": "alice2"}})).passed


def test_email_identities_on_jira_cloud_are_warned_about_without_failing() -> None:
    policy = build_policy({"identities": {"alice": "alice@example.com", "bob": "acc-bob"}})
    facts = replace(pr_facts(tickets=(a_ticket("PAY-1", approver=JIRA_BOB),)), jira_cloud=True)

    verdict = evaluate_pull_request(facts, policy)

    assert verdict.passed
    (warning,) = [f for f in verdict.findings if f.rule == "identities"]
    assert warning.outcome is Outcome.PASSED
    assert warning.reasons == (
        "`identities` maps alice to e-mail addresses, but Jira Cloud hides e-mail addresses by default, so "
        "Countersign often cannot match them: map each login to its Jira accountId instead (`alice: <accountId>`; "
        "it ends the address of the user's Jira profile page)",
    )
    on_data_center = evaluate_pull_request(replace(facts, jira_cloud=False), policy)
    assert [f for f in on_data_center.findings if f.rule == "identities"] == []


def test_commit_with_no_ticket_fails_when_the_pr_names_none() -> None:
    first, second = a_commit("PAY-1 start"), a_commit("tidy up")
    verdict = evaluate_pull_request(
        pr_facts(title="refunds", commits=(first, second), tickets=(a_ticket("PAY-1"),)), POLICY
    )
    assert verdict.outcome is Outcome.FAILED
    assert verdict.uncovered_commits == (second,)
    assert verdict.title.startswith(f"commits {second.short_sha} (tidy up) name no Jira ticket")


def test_pr_title_covers_every_commit_and_exempt_bots_need_no_ticket() -> None:
    facts = pr_facts(commits=(a_commit("tidy"), a_commit("more")), tickets=(a_ticket("PAY-1"),))
    assert evaluate_pull_request(facts, POLICY).passed
    bot = GitHubPerson(login="dependabot[bot]", email="bot@example.com")
    bump = a_commit("Bump lib", author=bot, verified=True)
    facts = pr_facts(title="Bump lib", commits=(bump,), author="dependabot[bot]")
    verdict = evaluate_pull_request(facts, POLICY)
    assert verdict.passed
    assert verdict.title == "Nothing to approve: every commit is by an exempt author"
    (exempted,) = [f for f in verdict.findings if f.rule == "exemption"]
    assert exempted.reasons == (
        f"{bump.short_sha} by dependabot[bot]: author and committer are exempt accounts and its signature is verified",
    )


WEB_FLOW = GitHubPerson(login="web-flow", name="GitHub", email="noreply@github.com")
BOT = GitHubPerson(login="dependabot[bot]", email="49699333+dependabot[bot]@users.noreply.github.com")


def test_a_bot_commit_is_exempt_only_when_github_vouches_for_author_committer_and_signature() -> None:
    def verdict_for(commit: Commit) -> Verdict:
        return evaluate_pull_request(pr_facts(title="Bump lib", commits=(commit,), author="dependabot[bot]"), POLICY)

    # GitHub committing on the bot's behalf, signed: exempt.
    assert verdict_for(a_commit("Bump lib", author=BOT, committer=WEB_FLOW, verified=True)).passed
    # Anyone can put the bot's e-mail on a commit: unsigned, it needs a ticket like any other.
    spoofed = a_commit("Bump lib", author=BOT, verified=False)
    verdict = verdict_for(spoofed)
    assert not verdict.passed
    (traceability,) = [f for f in verdict.findings if f.rule == "traceability"]
    assert (
        traceability.reasons[1] == f"{spoofed.short_sha} is by dependabot[bot] but GitHub did not verify its signature"
    )
    # Signed by a person who committed it under the bot's name as author.
    relayed = a_commit("Bump lib", author=BOT, committer=ALICE, verified=True)
    verdict = verdict_for(relayed)
    assert not verdict.passed
    assert f"{relayed.short_sha} is by dependabot[bot] but was committed by alice, not an exempt account" in (
        verdict.reasons()
    )
    # A committer e-mail that imitates GitHub's is not GitHub: only the login GitHub attributes counts.
    imitation = GitHubPerson(login=None, name="GitHub", email="noreply@github.com")
    assert not verdict_for(a_commit("Bump lib", author=BOT, committer=imitation, verified=True)).passed


def test_no_ticket_at_all_fails() -> None:
    verdict = evaluate_pull_request(pr_facts(title="refunds", commits=(a_commit("tidy"),)), POLICY)
    assert verdict.outcome is Outcome.FAILED


def test_unknown_ticket_is_named() -> None:
    verdict = evaluate_pull_request(pr_facts(title="PAY-404 gone", unknown=frozenset({"PAY-404"})), POLICY)
    assert (
        verdict.title == "PAY-404 does not exist in Jira, or Countersign's Jira user cannot see it; fix the reference"
    )


def test_jira_error_blocks_and_says_to_rerun() -> None:
    error = "Jira did not answer in time; re-run when it is back"
    verdict = evaluate_pull_request(pr_facts(jira_error=error), POLICY)
    assert verdict.outcome is Outcome.ERROR
    assert not verdict.passed
    assert verdict.title == f"PAY-1 could not be read: {error}"
    two = evaluate_pull_request(pr_facts(title="PAY-1 and PAY-2", jira_error=error), POLICY)
    assert two.title == f"PAY-1 could not be read: {error} (and 1 more ticket(s))"


def test_reopened_after_approval_needs_new_approval() -> None:
    ticket = a_ticket("PAY-1", status="Reopened")
    assert not evaluate_pull_request(pr_facts(tickets=(ticket,)), POLICY).passed


def test_review_required_and_invalidated_by_a_later_push() -> None:
    policy = build_policy({"pull_requests": {"require_review": True}})
    facts = pr_facts(tickets=(a_ticket("PAY-1"),))
    stale = Review("carol", "APPROVED", "0" * 40, None)
    commits = facts.commits
    verdict = evaluate_pull_request(pr_facts(commits=commits, tickets=(a_ticket("PAY-1"),), reviews=(stale,)), policy)
    assert verdict.title == (
        f"approving reviews by carol (on 0000000) predate the latest push {facts.head_sha[:7]}; ask for a new review"
    )
    fresh = Review("carol", "APPROVED", commits[-1].sha, None)
    assert evaluate_pull_request(
        pr_facts(commits=commits, tickets=(a_ticket("PAY-1"),), reviews=(fresh,)), policy
    ).passed
    own = Review("alice", "APPROVED", commits[-1].sha, None)
    assert not evaluate_pull_request(
        pr_facts(commits=commits, tickets=(a_ticket("PAY-1"),), reviews=(own,)), policy
    ).passed


def test_emergency_label_passes_unapproved_ticket_as_emergency() -> None:
    facts = pr_facts(tickets=(a_ticket("PAY-1", status="In Progress"),), labels=("emergency",))
    verdict = evaluate_pull_request(facts, POLICY)
    assert verdict.outcome is Outcome.EMERGENCY
    assert verdict.passed
    assert "by 2026-12-03 12:00 UTC" in verdict.tickets[0].reasons[0]
    # The deadline is printed in UTC even when the evaluation's clock is in another zone.
    later = replace(facts, evaluated_at=NOW.astimezone(timezone(timedelta(hours=2))))
    assert "by 2026-12-03 12:00 UTC" in evaluate_pull_request(later, POLICY).tickets[0].reasons[0]


def test_jsm_approval_source() -> None:
    from datetime import UTC, datetime

    from jira_client.models import JsmApprovalDecision

    policy = build_policy({"jira": {"approval_source": "jsm"}})
    ticket = a_ticket("PAY-1")
    decision = JsmApprovalDecision(
        "1",
        "Change approval",
        "approved",
        ((JIRA_CAROL, "approved"), (JIRA_BOB, "pending")),
        datetime(2026, 11, 29, tzinfo=UTC),
    )
    verdict = evaluate_pull_request(pr_facts(tickets=(replace(ticket, jsm_approvals=(decision,)),)), policy)
    assert verdict.passed
    assert verdict.tickets[0].approvers == ("Carol Approver",)
    assert not evaluate_pull_request(pr_facts(tickets=(replace(ticket, jsm_approvals=()),)), policy).passed


JSM = build_policy({"jira": {"approval_source": "jsm"}})


def jsm_verdict(*decisions: JsmApprovalDecision) -> Verdict:
    ticket = replace(a_ticket("PAY-1"), jsm_approvals=decisions)
    return evaluate_pull_request(pr_facts(tickets=(ticket,)), JSM)


def test_a_jsm_approval_declined_later_no_longer_counts() -> None:
    approved = a_jsm_decision("approved", NOW - timedelta(hours=3))
    declined = a_jsm_decision("declined", NOW - timedelta(hours=1), ((JIRA_BOB, "declined"),), name="CAB review")

    verdict = jsm_verdict(approved, declined)

    assert verdict.outcome is Outcome.FAILED
    assert verdict.reasons() == (
        "PAY-1's latest Jira Service Management approval 'CAB review' was declined on 2026-11-30 11:00 UTC; "
        "it needs a new approval",
    )
    assert jsm_verdict(declined, approved).outcome is Outcome.FAILED  # listed in either order: time decides


def test_a_jsm_approval_given_after_a_decline_counts() -> None:
    declined = a_jsm_decision("declined", NOW - timedelta(hours=3), ((JIRA_BOB, "declined"),))
    approved = a_jsm_decision("approved", NOW - timedelta(hours=1))

    verdict = jsm_verdict(approved, declined)

    assert verdict.passed
    assert (verdict.tickets[0].approvers, verdict.tickets[0].approved_at) == (
        ("Carol Approver",),
        NOW - timedelta(hours=1),
    )


def test_the_latest_jsm_approval_is_found_by_completion_then_creation_then_order() -> None:
    approved = a_jsm_decision("approved", NOW - timedelta(hours=3))
    pending = a_jsm_decision("pending", None, ((JIRA_BOB, "pending"),), created_at=NOW - timedelta(hours=2))
    assert jsm_verdict(approved, pending).reasons() == (
        "PAY-1's latest Jira Service Management approval 'Change approval' is still pending; "
        "it counts once it is approved",
    )
    older_request = replace(pending, created_at=NOW - timedelta(hours=4))
    assert jsm_verdict(older_request, approved).passed
    undated_declined = a_jsm_decision("declined", None, ((JIRA_BOB, "declined"),))
    undated_approved = a_jsm_decision("approved", None)
    assert not jsm_verdict(undated_approved, undated_declined).passed
    assert jsm_verdict(undated_declined, undated_approved).reasons() == (
        "PAY-1's approval 'Change approval' has no completion time; approval time unknown",
    )
    assert jsm_verdict().reasons() == ("PAY-1 has no Jira Service Management approval",)
